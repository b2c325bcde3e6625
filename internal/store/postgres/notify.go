package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"petrel/internal/store"
)

// Change events across nodes.
//
// A write sends its changes with NOTIFY in its own transaction (PostgreSQL delivers them at
// COMMIT, in commit order, and drops them on rollback), tagged with the sending Store's
// origin. Every Store LISTENs on one connection of its own and publishes to its subscribers
// the changes of other origins; its own it has published already, right after the commit.
//
// A notification can be lost only with the listening connection. After the notifier has
// reconnected and LISTENs again it catches up by MODSEQ: for each account with
// subscribers, if the account's MODSEQ is above the highest this Store published, it cuts
// those subscribers off, and they resync from the store by MODSEQ as store.Changes says
// (an IMAP session in IDLE polls and subscribes again). Since the LISTEN came first, every
// change after the catch-up read is notified: nothing falls in between.
//
// The price: PostgreSQL commits transactions that notified one at a time (it holds a
// database-wide lock from before their commit record until after its flush), so they do
// not share WAL flushes. docs/benchmarks.md measures it and names the alternative (notify
// after the commit, from a batching sender).

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

// send queues the changes of t for NOTIFY at its commit.
func (n *notifier) send(t *tx) error {
	if len(t.changes) == 0 {
		return nil
	}
	var payloads []string
	for _, c := range t.changes {
		uids := c.UIDs
		for first := true; first || len(uids) > 0; first = false {
			part := uids[:min(len(uids), uidsPerNotification)]
			uids = uids[len(part):]
			p, err := json.Marshal(notice{Origin: n.origin, Kind: int(c.Kind), AccountID: c.AccountID,
				MailboxID: c.MailboxID, ModSeq: c.ModSeq, UIDs: part})
			if err != nil {
				return err
			}
			payloads = append(payloads, string(p))
		}
	}
	_, err := t.tx.Exec(t.ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) p`, notifyChannel, payloads)
	return err
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
