package store

import (
	"context"
	"time"
)

// WebSession is a logged-in browser of the webmail, as the store records it so that
// `petrel webmail sessions` (another process) can list and revoke it. The token itself is
// never stored: ID is derived from a hash of it.
type WebSession struct {
	ID        string // hex of a hash of the token: what the CLI names
	AccountID int64
	Address   string // the account's address (filled by ListWebSessions)
	Created   time.Time
	Seen      time.Time // last use, to the minute
	Remote    string    // the client's IP address at login
}

// WebSessions keeps the webmail's sessions. The webmail checks that a session is still
// recorded on each request, so a revocation from the CLI takes effect at the next request.
type WebSessions interface {
	AddWebSession(ctx context.Context, s WebSession) error
	// WebSessionExists reports whether the session id is recorded (not revoked).
	WebSessionExists(ctx context.Context, id string) (bool, error)
	// WebSession returns the recorded session id with its address (ErrNotFound when it is
	// not recorded), so that a node that did not start it (several nodes on one database,
	// or one restarted since) can take it up.
	WebSession(ctx context.Context, id string) (WebSession, error)
	TouchWebSession(ctx context.Context, id string, seen time.Time) error
	// ListWebSessions lists every recorded session, oldest first, with its address.
	ListWebSessions(ctx context.Context) ([]WebSession, error)
	// RevokeWebSessions removes the session id when id is given, else every session of
	// accountID when it is not 0, else every session; it returns how many it removed.
	RevokeWebSessions(ctx context.Context, accountID int64, id string) (int, error)
}

// WebSessionColumns are the columns, from web_sessions w joined to accounts a, that
// ScanWebSession reads: both backends keep the same rows.
const WebSessionColumns = `w.id, w.account_id, a.address, w.created, w.seen, w.remote`

// ScanWebSession reads a session from a row of WebSessionColumns (the times in unix
// seconds); scan is the row's Scan.
func ScanWebSession(scan func(dest ...any) error) (WebSession, error) {
	var ws WebSession
	var created, seen int64
	if err := scan(&ws.ID, &ws.AccountID, &ws.Address, &created, &seen, &ws.Remote); err != nil {
		return WebSession{}, err
	}
	ws.Created, ws.Seen = time.Unix(created, 0), time.Unix(seen, 0)
	return ws, nil
}
