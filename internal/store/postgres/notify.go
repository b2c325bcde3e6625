package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"petrel/internal/store"
)

// Change events across nodes.
//
// A write sends its changes with NOTIFY right after its COMMIT, in the same pipelined round
// trip (runTx, commit below): the COMMIT and the NOTIFY leave in one write to the socket,
// the server runs the NOTIFY only if the COMMIT succeeded, so an event never announces
// something that did not happen, and a node killed after that write has sent both.
// Notifications are tagged with the sending Store's origin. Every Store LISTENs on one
// connection of its own and publishes to its subscribers the changes of other origins; its
// own it has published already, right after the commit.
//
// Why not NOTIFY inside the writing transaction, which PostgreSQL would deliver at COMMIT
// for free: a transaction that notified commits under a database-wide lock held from
// before its commit record until after the WAL flush, so such transactions commit one
// flush at a time and lose PostgreSQL's group commit (docs/benchmarks.md measures it).
// The NOTIFY after the COMMIT runs in a transaction of its own that writes no WAL and so
// waits for no flush: it holds that lock for microseconds. The price is order: two nodes'
// notifications may arrive in another order than their commits. That is harmless because
// a change is a wake-up (store.Changes): a subscriber reads what changed from the store by
// MODSEQ, and the catch-up below compares with the highest MODSEQ published.
//
// A notification can be lost only with the listening connection, or with the server (a
// crash between the COMMIT and the NOTIFY), which ends every listening connection too.
// After the notifier has reconnected and LISTENs again it catches up by MODSEQ: for each
// account with subscribers, if the account's MODSEQ is above the highest this Store
// published, it cuts those subscribers off, and they resync from the store by MODSEQ as
// store.Changes says (an IMAP session in IDLE polls and subscribes again). Since the
// LISTEN came first, every change after the catch-up read is notified: nothing falls in
// between.

// notifyChannel is the channel of change notifications.
const notifyChannel = "petrel_changes"

// uidsPerNotification keeps a payload under PostgreSQL's 8000-byte limit; a change with
// more UIDs goes as several notifications.
const uidsPerNotification = 500

// notice is the payload of a notification.
type notice struct {
	Origin    string   `json:"o"`
	Kind      int      `json:"k"`
	AccountID int64    `json:"a"`
	MailboxID int64    `json:"m"`
	ModSeq    uint64   `json:"s"`
	UIDs      []uint32 `json:"u,omitempty"`
}

type notifier struct {
	s      *Store
	origin string
	cancel context.CancelFunc
	done   chan struct{}
	// drop, when sent to, closes the listening connection (tests of the catch-up).
	drop chan struct{}
}

func startNotifier(s *Store) *notifier {
	var b [8]byte
	rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	n := &notifier{s: s, origin: hex.EncodeToString(b[:]), cancel: cancel, done: make(chan struct{}), drop: make(chan struct{})}
	ready := make(chan struct{})
	go n.run(ctx, ready)
	// Wait (briefly) for the first LISTEN, so that a Store that returned from Open hears
	// the changes committed after it; if the database is slow, the catch-up covers it.
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
	}
	return n
}

func (n *notifier) stop() {
	n.cancel()
	<-n.done
}

// commit commits t's transaction and, in the same round trip, notifies its
// changes. An error means the COMMIT failed (nothing was committed, the connection lost
// during COMMIT aside); a failed NOTIFY after a good COMMIT is only logged: the write
// happened, and the other nodes' sessions see it at their next command.
func (n *notifier) commit(t *tx) error {
	if t.committed {
		return nil
	}
	conn := t.conn
	switch conn.PgConn().TxStatus() {
	case 'T':
	case 'I':
		if t.tx == nil && len(t.changes) == 0 {
			return nil // writePipelined whose function sent nothing
		}
		return errors.New("store: no transaction to commit")
	default:
		// A statement failed and fn went on (it should not): COMMIT would answer ROLLBACK,
		// and the NOTIFY behind it would announce what did not happen.
		t.rollback()
		return errors.New("store: transaction failed before COMMIT")
	}
	payloads, err := n.payloads(t.changes)
	if err != nil {
		t.rollback()
		return err
	}
	b := &pgx.Batch{}
	b.Queue("COMMIT")
	if len(payloads) > 0 {
		b.Queue(`SELECT pg_notify($1, p) FROM unnest($2::text[]) p`, notifyChannel, payloads)
	}
	br := conn.SendBatch(t.ctx, b)
	tag, err := br.Exec()
	if err == nil && tag.String() != "COMMIT" {
		err = pgx.ErrTxCommitRollback
	}
	if err != nil {
		br.Close()
		return err
	}
	if len(payloads) > 0 {
		if _, err := br.Exec(); err != nil {
			n.s.log.Warn("store: notifying other nodes of a commit", "err", err)
		}
	}
	br.Close()
	return nil
}

// payloads encodes changes as notification payloads.
func (n *notifier) payloads(changes []store.Change) ([]string, error) {
	var payloads []string
	for _, c := range changes {
		uids := c.UIDs
		for first := true; first || len(uids) > 0; first = false {
			part := uids[:min(len(uids), uidsPerNotification)]
			uids = uids[len(part):]
			p, err := json.Marshal(notice{Origin: n.origin, Kind: int(c.Kind), AccountID: c.AccountID,
				MailboxID: c.MailboxID, ModSeq: c.ModSeq, UIDs: part})
			if err != nil {
				return nil, err
			}
			payloads = append(payloads, string(p))
		}
	}
	return payloads, nil
}

// run listens until ctx ends, reconnecting after a lost connection.
func (n *notifier) run(ctx context.Context, ready chan struct{}) {
	defer close(n.done)
	backoff := 50 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		err := n.listen(ctx, ready, !first)
		if ctx.Err() != nil {
			return
		}
		n.s.log.Warn("store: listening for changes of other nodes", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listen opens a connection, LISTENs, catches up if this is a reconnection, and publishes
// notifications until the connection fails.
func (n *notifier) listen(ctx context.Context, ready chan struct{}, reconnect bool) error {
	conn, err := pgx.ConnectConfig(ctx, n.s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	if reconnect {
		if err := n.catchUp(ctx, conn); err != nil {
			return err
		}
	}
	select {
	case <-ready:
	default:
		close(ready)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.drop:
			cancel()
		case <-lctx.Done():
		}
	}()
	for {
		msg, err := conn.WaitForNotification(lctx)
		if err != nil {
			return err
		}
		var c notice
		if err := json.Unmarshal([]byte(msg.Payload), &c); err != nil {
			n.s.log.Warn("store: bad change notification", "payload", msg.Payload, "err", err)
			continue
		}
		if c.Origin == n.origin {
			continue
		}
		n.s.changes.Publish(store.Change{Kind: store.ChangeKind(c.Kind), AccountID: c.AccountID,
			MailboxID: c.MailboxID, UIDs: c.UIDs, ModSeq: c.ModSeq})
	}
}

// catchUp cuts off the subscribers of every account that changed beyond what this Store
// published (see above).
func (n *notifier) catchUp(ctx context.Context, conn *pgx.Conn) error {
	seen := n.s.changes.Seen()
	for accountID, modseq := range seen {
		var now uint64
		err := conn.QueryRow(ctx, `SELECT modseq FROM accounts WHERE id = $1`, accountID).Scan(&now)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		if err == pgx.ErrNoRows || now > modseq {
			n.s.changes.CutOff(accountID)
		}
	}
	return nil
}
