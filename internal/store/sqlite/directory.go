package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"petrel/internal/store"
)

// Directory methods. Names are lower-cased here even though callers pass normalized
// values: the store is the last place that can keep "A@x" and "a@x" from becoming two rows.

// domainExists is store.ErrNotFound (wrapped) when the domain is not hosted.
func (t *tx) domainExists(name string) error {
	var one int
	if err := t.queryRow(`SELECT 1 FROM domains WHERE name = ?`, []any{name}, &one); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("domain %s: %w", name, store.ErrNotFound)
		}
		return err
	}
	return nil
}

// affected turns "no row changed" into store.ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (s *Store) AddDomain(ctx context.Context, name string) error {
	name, err := store.CheckDomainName(name)
	if err != nil {
		return err
	}
	return s.write(ctx, 0, func(t *tx) error {
		err := affected(t.exec(`INSERT INTO domains (name) VALUES (?) ON CONFLICT DO NOTHING`, name))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("domain %s: %w", name, store.ErrExists)
		}
		return err
	})
}

func (s *Store) DeleteDomain(ctx context.Context, name string) error {
	name = strings.ToLower(name)
	return s.write(ctx, 0, func(t *tx) error {
		var n int
		if err := t.queryRow(`SELECT count(*) FROM accounts WHERE domain = ?`, []any{name}, &n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("domain %s still has %d accounts: %w", name, n, store.ErrExists)
		}
		// Aliases of the domain go with it (ON DELETE CASCADE): without the domain they
		// could never receive mail.
		return affected(t.exec(`DELETE FROM domains WHERE name = ?`, name))
	})
}

func (s *Store) Domains(ctx context.Context) ([]store.Domain, error) {
	rows, err := s.query(ctx, `SELECT name, coalesce(catch_all, '') FROM domains ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Domain
	for rows.Next() {
		var d store.Domain
		if err := rows.Scan(&d.Name, &d.CatchAll); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *Store) Domain(ctx context.Context, name string) (store.Domain, error) {
	var d store.Domain
	err := s.queryRow(ctx, `SELECT name, coalesce(catch_all, '') FROM domains WHERE name = ?`,
		strings.ToLower(name)).Scan(&d.Name, &d.CatchAll)
	return d, notFound(err)
}

// SetCatchAll implements store.Directory. The target must be an existing account; if that
// account is deleted the catch-all is cleared with it (ON DELETE SET NULL).
func (s *Store) SetCatchAll(ctx context.Context, domain, target string) error {
	domain = strings.ToLower(domain)
	var catchAll any // NULL clears
	if target != "" {
		addr, _, err := store.SplitAddress(target)
		if err != nil {
			return err
		}
		catchAll = addr
	}
	return s.write(ctx, 0, func(t *tx) error {
		if err := t.domainExists(domain); err != nil {
			return err
		}
		if catchAll != nil {
			var id int64
			if err := t.queryRow(`SELECT id FROM accounts WHERE address = ?`, []any{catchAll}, &id); err != nil {
				return fmt.Errorf("catch-all account %s: %w", catchAll, err)
			}
		}
		_, err := t.exec(`UPDATE domains SET catch_all = ? WHERE name = ?`, catchAll, domain)
		return err
	})
}

// AddAccount implements store.Directory. An address is either an account or an alias,
// never both (ErrExists), so that delivery never has to choose.
func (s *Store) AddAccount(ctx context.Context, address string, cred store.Credentials) (store.Account, error) {
	addr, domain, err := store.SplitAddress(address)
	if err != nil {
		return store.Account{}, err
	}
	a := store.Account{
		Address:     addr,
		Credentials: cred,
		POP3Delete:  store.POP3Delete,
		Created:     time.Now().UTC(),
	}
	err = s.write(ctx, 0, func(t *tx) error {
		if err := t.domainExists(domain); err != nil {
			return err
		}
		var one int
		switch err := t.queryRow(`SELECT 1 FROM aliases WHERE address = ?`, []any{addr}, &one); {
		case err == nil:
			return fmt.Errorf("%s is an alias: %w", addr, store.ErrExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		err := t.queryRow(`INSERT INTO accounts (address, domain, password_hash, scram_sha256, pop3_delete, created)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
			[]any{addr, domain, cred.PasswordHash, cred.SCRAMSHA256, string(a.POP3Delete), a.Created.UnixNano()}, &a.ID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("account %s: %w", addr, store.ErrExists)
		}
		if err != nil {
			return err
		}
		for _, name := range store.DefaultMailboxes {
			if _, err := t.createMailbox(a.ID, name, store.DefaultSpecialUse(name)); err != nil {
				return err
			}
			if _, err := t.exec(`INSERT INTO subscriptions (account_id, name) VALUES (?, ?)`, a.ID, name); err != nil {
				return err
			}
		}
		// Nobody subscribes to the changes of an account that did not exist.
		t.changes = nil
		return nil
	})
	if err != nil {
		return store.Account{}, err
	}
	return a, nil
}

// DeleteAccount implements store.Directory: the account, its mailboxes and messages go
// (ON DELETE CASCADE), and so do the bodies nobody else received.
func (s *Store) DeleteAccount(ctx context.Context, address string) error {
	addr := strings.ToLower(address)
	return s.write(ctx, 0, func(t *tx) error {
		rows, err := t.query(`SELECT DISTINCT m.blob_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
			JOIN accounts a ON a.id = b.account_id WHERE a.address = ?`, addr)
		if err != nil {
			return err
		}
		blobs, err := scanColumn[int64](rows)
		if err != nil {
			return err
		}
		if err := affected(t.exec(`DELETE FROM accounts WHERE address = ?`, addr)); err != nil {
			return err
		}
		return t.markGarbage(blobs)
	})
}

// scanColumn reads a one-column result into a slice and closes rows.
func scanColumn[T any](rows *sql.Rows) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

const accountColumns = `id, address, password_hash, scram_sha256, pop3_delete, pop3_uidl, created`

func scanAccount(sc interface{ Scan(...any) error }) (store.Account, error) {
	var a store.Account
	var policy, uidl string
	var created int64
	if err := sc.Scan(&a.ID, &a.Address, &a.Credentials.PasswordHash, &a.Credentials.SCRAMSHA256, &policy, &uidl, &created); err != nil {
		return store.Account{}, err
	}
	a.POP3Delete = store.POP3DeletePolicy(policy)
	a.POP3UIDL = store.POP3UIDLFormat(uidl)
	a.Created = time.Unix(0, created).UTC()
	return a, nil
}

func (s *Store) Accounts(ctx context.Context, domain string) ([]store.Account, error) {
	rows, err := s.query(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE ?1 = '' OR domain = ?1 ORDER BY address`, strings.ToLower(domain))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *Store) AccountByAddress(ctx context.Context, address string) (store.Account, error) {
	a, err := scanAccount(s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE address = ?`,
		strings.ToLower(address)))
	return a, notFound(err)
}

func (s *Store) AccountByID(ctx context.Context, id int64) (store.Account, error) {
	a, err := scanAccount(s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
	return a, notFound(err)
}

func (s *Store) SetCredentials(ctx context.Context, accountID int64, cred store.Credentials) error {
	return s.write(ctx, 0, func(t *tx) error {
		return affected(t.exec(`UPDATE accounts SET password_hash = ?, scram_sha256 = ? WHERE id = ?`,
			cred.PasswordHash, cred.SCRAMSHA256, accountID))
	})
}

func (s *Store) SetPOP3Delete(ctx context.Context, accountID int64, p store.POP3DeletePolicy) error {
	if !p.Valid() {
		return fmt.Errorf("store: unknown POP3 delete policy %q", p)
	}
	return s.write(ctx, 0, func(t *tx) error {
		return affected(t.exec(`UPDATE accounts SET pop3_delete = ? WHERE id = ?`, string(p), accountID))
	})
}

func (s *Store) SetPOP3UIDL(ctx context.Context, accountID int64, f store.POP3UIDLFormat) error {
	if !f.Valid() {
		return fmt.Errorf("store: unknown POP3 UIDL format %q: %w", f, store.ErrInvalid)
	}
	return s.write(ctx, 0, func(t *tx) error {
		return affected(t.exec(`UPDATE accounts SET pop3_uidl = ? WHERE id = ?`, string(f), accountID))
	})
}

// AddAlias implements store.Directory. The alias's domain must be hosted, and the address
// must not be an account (ErrExists).
func (s *Store) AddAlias(ctx context.Context, address string, targets []string) error {
	addr, domain, err := store.SplitAddress(address)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("store: alias %s has no targets", addr)
	}
	norm := make([]string, len(targets))
	for i, tg := range targets {
		if norm[i], _, err = store.SplitAddress(tg); err != nil {
			return err
		}
	}
	js, err := json.Marshal(norm)
	if err != nil {
		return err
	}
	return s.write(ctx, 0, func(t *tx) error {
		if err := t.domainExists(domain); err != nil {
			return err
		}
		var one int
		switch err := t.queryRow(`SELECT 1 FROM accounts WHERE address = ?`, []any{addr}, &one); {
		case err == nil:
			return fmt.Errorf("%s is an account: %w", addr, store.ErrExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		err := affected(t.exec(`INSERT INTO aliases (address, domain, targets) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			addr, domain, string(js)))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("alias %s: %w", addr, store.ErrExists)
		}
		return err
	})
}

func (s *Store) DeleteAlias(ctx context.Context, address string) error {
	addr := strings.ToLower(address)
	return s.write(ctx, 0, func(t *tx) error {
		return affected(t.exec(`DELETE FROM aliases WHERE address = ?`, addr))
	})
}

func scanAlias(sc interface{ Scan(...any) error }) (store.Alias, error) {
	var a store.Alias
	var js string
	if err := sc.Scan(&a.Address, &js); err != nil {
		return store.Alias{}, err
	}
	if err := json.Unmarshal([]byte(js), &a.Targets); err != nil {
		return store.Alias{}, fmt.Errorf("store: alias %s: bad targets: %w", a.Address, err)
	}
	return a, nil
}

func (s *Store) Aliases(ctx context.Context, domain string) ([]store.Alias, error) {
	rows, err := s.query(ctx, `SELECT address, targets FROM aliases
		WHERE ?1 = '' OR domain = ?1 ORDER BY address`, strings.ToLower(domain))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Alias
	for rows.Next() {
		a, err := scanAlias(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *Store) Alias(ctx context.Context, address string) (store.Alias, error) {
	a, err := scanAlias(s.queryRow(ctx, `SELECT address, targets FROM aliases WHERE address = ?`,
		strings.ToLower(address)))
	return a, notFound(err)
}

// notFound maps sql.ErrNoRows to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}
