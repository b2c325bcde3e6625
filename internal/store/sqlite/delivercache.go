package sqlite

import (
	"fmt"
	"math"

	"petrel/internal/store"
)

// The delivery counters.
//
// Every delivery raises its account's MODSEQ and usage and takes the next UID of its
// mailbox, whose counts grow. Done in SQL, that is two UPDATE ... RETURNING statements per
// recipient (each building a temporary table for its RETURNING row), about 40% of the
// committer's CPU per message. Instead the committer keeps those counters in memory while
// it runs deliveries and writes each changed row once, just before the statement that ends
// the run of deliveries (the COMMIT, or a request of another kind): one UPDATE per account
// and per mailbox per batch.
//
// Rules that keep the counters right:
//   - Only delivery requests use them. Before any other request runs, the committer writes
//     them out and forgets them, so that request sees the rows as they are and may change
//     them freely.
//   - A delivery keeps what it takes in its tx (tx.counted) and the committer merges that
//     into its counters only once the request succeeded: a request rolled back to its
//     savepoint leaves the counters as they were.
//   - Any ROLLBACK of the whole transaction forgets them (counters.reset).
//   - They are values read inside our own write transactions, so they stay right across
//     batches unless another connection (the CLI, another process) committed in between:
//     PRAGMA data_version, read after each BEGIN, tells (https://www.sqlite.org/pragma.html#pragma_data_version).

// counters is the committer's copy of the delivery counters.
type counters struct {
	// version is PRAGMA data_version as of the current (or last) write transaction; -1
	// before the first.
	version   int64
	accounts  map[int64]*accountCount
	mailboxes map[int64]*mailboxCount
	targets   map[targetKey]int64 // where a Target goes (the named mailbox, or INBOX as a fallback)
}

type accountCount struct {
	modseq uint64
	base   counts            // usage in the row (messages, size), as this committer last wrote or read it
	added  counts            // delivered since the row was written (messages, size)
	limits store.QuotaLimits // quota in force (quota.go)
	dirty  bool              // not yet written
}

type mailboxCount struct {
	accountID   int64 // whose usage grows with the mailbox's counts
	uidvalidity uint32
	uidnext     int64  // the next UID to give
	added       counts // delivered since the row was written
	modseq      uint64 // of the last delivery
	dirty       bool
}

type targetKey struct {
	accountID int64
	mailbox   string // store.LookupMailboxName
	fallback  bool   // Delivery.InboxFallback
}

// counted is what one delivery request took; merged into counters when it succeeds.
type counted struct {
	modseq    map[int64]uint64 // account -> its raised MODSEQ (also tx.modseq)
	mailboxes map[int64]mailboxCount
}

func newCounters() counters {
	return counters{version: -1, accounts: map[int64]*accountCount{},
		mailboxes: map[int64]*mailboxCount{}, targets: map[targetKey]int64{}}
}

// reset forgets the counters; used when the database may no longer match them (rollback,
// a request of another kind, another connection's commit).
func (k *counters) reset() {
	if len(k.accounts) > 0 || len(k.mailboxes) > 0 || len(k.targets) > 0 {
		clear(k.accounts)
		clear(k.mailboxes)
		clear(k.targets)
	}
}

// checkVersion forgets the counters if another connection committed since they were read.
// It runs at the start of each write transaction.
func (c *committer) checkVersion() error {
	var v int64
	st, err := c.stmt("PRAGMA data_version")
	if err != nil {
		return err
	}
	if err := st.QueryRowContext(c.ctx).Scan(&v); err != nil {
		return err
	}
	if v != c.counters.version {
		c.counters.reset()
		c.counters.version = v
	}
	return nil
}

// flushCounters writes the changed counters into their rows (inside the current
// transaction). After an error the transaction must be rolled back.
func (c *committer) flushCounters() error {
	for id, a := range c.counters.accounts {
		if !a.dirty {
			continue
		}
		if err := c.exec(`UPDATE accounts SET modseq = ?, messages = messages + ?, size = size + ? WHERE id = ?`,
			int64(a.modseq), a.added.messages, a.added.size, id); err != nil {
			return err
		}
		a.base.add(a.added)
		a.dirty, a.added = false, counts{}
	}
	for id, m := range c.counters.mailboxes {
		if !m.dirty {
			continue
		}
		d := m.added
		if err := c.exec(`UPDATE mailboxes SET uidnext = ?, messages = messages + ?, unseen = unseen + ?,
			deleted = deleted + ?, size = size + ?, modseq = ? WHERE id = ?`,
			m.uidnext, d.messages, d.unseen, d.deleted, d.size, int64(m.modseq), id); err != nil {
			return err
		}
		m.dirty, m.added = false, counts{}
	}
	return nil
}

func (c *committer) exec(query string, args ...any) error {
	st, err := c.stmt(query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(c.ctx, args...)
	return err
}

// merge makes what a successful delivery request took part of the counters.
func (k *counters) merge(n *counted) {
	for id, m := range n.modseq {
		a := k.accounts[id]
		a.modseq, a.dirty = m, true
	}
	for id, m := range n.mailboxes {
		// What the request added to the mailbox, the account's usage gains too.
		old := k.mailboxes[id]
		d := m.added
		d.sub(old.added)
		k.accounts[m.accountID].added.add(d)
		m.dirty = true
		*old = m
	}
}

// deliveryModSeq is raiseModSeq for a delivery request: the account's MODSEQ raised once per
// request, from the committer's counters. A missing account is store.ErrNotFound.
func (t *tx) deliveryModSeq(accountID int64) (uint64, error) {
	if m, ok := t.modseq[accountID]; ok {
		return m, nil
	}
	a, err := t.deliveryAccount(accountID)
	if err != nil {
		return 0, err
	}
	if t.modseq == nil {
		t.modseq = map[int64]uint64{}
	}
	t.modseq[accountID] = a.modseq + 1
	t.counted.modseq = t.modseq
	return a.modseq + 1, nil
}

// deliveryAccount returns the committer's counters of an account, reading its row the
// first time. A missing account is store.ErrNotFound.
func (t *tx) deliveryAccount(accountID int64) (*accountCount, error) {
	k := &t.c.counters
	if a, ok := k.accounts[accountID]; ok {
		return a, nil
	}
	var m int64
	a := &accountCount{}
	d := t.c.defaultQuota
	if err := t.queryRow(`SELECT modseq, messages, size, coalesce(quota_storage, ?), coalesce(quota_messages, ?) FROM accounts WHERE id = ?`,
		[]any{d.Storage, d.Messages, accountID}, &m, &a.base.messages, &a.base.size, &a.limits.Storage, &a.limits.Messages); err != nil {
		return nil, err
	}
	a.modseq = uint64(m)
	k.accounts[accountID] = a
	return a, nil
}

// takeUID finds the mailbox a delivery target goes to (the named one or, with fallback and
// when it does not exist, INBOX: store.Delivery.InboxFallback), gives the message its next
// UID and counts it there and in the account: c holds the message's counts.
func (t *tx) takeUID(accountID int64, name string, fallback bool, modseq uint64, c counts) (mailboxID int64, uidvalidity, uid uint32, err error) {
	k := &t.c.counters
	key := targetKey{accountID, name, fallback}
	id, ok := k.targets[key]
	if !ok {
		var next int64
		query := `SELECT id, uidvalidity, uidnext FROM mailboxes WHERE account_id = ? AND name = ?`
		if fallback {
			query = `SELECT id, uidvalidity, uidnext FROM mailboxes WHERE account_id = ? AND name IN (?, 'INBOX')
			ORDER BY name = 'INBOX' LIMIT 1`
		}
		if err := t.queryRow(query, []any{accountID, name}, &id, &uidvalidity, &next); err != nil {
			return 0, 0, 0, fmt.Errorf("mailbox %q: %w", name, err)
		}
		k.targets[key] = id
		if _, ok := k.mailboxes[id]; !ok {
			k.mailboxes[id] = &mailboxCount{accountID: accountID, uidvalidity: uidvalidity, uidnext: next}
		}
	}
	m, ok := t.counted.mailboxes[id]
	if !ok {
		m = *k.mailboxes[id]
	}
	if m.uidnext <= 0 || m.uidnext > math.MaxUint32 {
		return 0, 0, 0, fmt.Errorf("mailbox %d: UIDs exhausted (UIDNEXT %d)", id, m.uidnext)
	}
	uid = uint32(m.uidnext)
	m.uidnext++
	m.added.add(c)
	m.modseq = modseq
	if t.counted.mailboxes == nil {
		t.counted.mailboxes = map[int64]mailboxCount{}
	}
	t.counted.mailboxes[id] = m
	return id, m.uidvalidity, uid, nil
}
