package fetch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"petrel/internal/lib/safefile"
	"time"
)

// state is what one account's fetch remembers between runs: the unique-ids of the messages
// already archived (IMAP: their UIDs), with the time each was first archived (for keep-days). It is a JSON file
// replaced atomically (safefile.WriteAtomic), so a crash leaves the previous or the next version.
type state struct {
	Version int `json:"version"`
	// Server identifies the mailbox (user@host, the port may change): a state is not
	// applied to another one.
	Server string `json:"server"`
	// MboxSize is the size of the mbox after the last successful commit; recovery scans
	// only what was appended after it.
	MboxSize int64 `json:"mbox_size,omitempty"`
	// Seen maps a unique-id (or, without UIDL, a header digest) to the Unix time it was
	// first archived.
	Seen map[string]int64 `json:"seen"`
	// UIDValidity (IMAP) is the UIDVALIDITY of the folder the UIDs in Seen belong to
	// (RFC 9051 §2.3.1.1).
	UIDValidity uint32 `json:"uidvalidity,omitempty"`
	// Headers (IMAP) maps a key of Seen to a digest of the message's header and size, which
	// recognizes archived messages after the server changed UIDVALIDITY (imap.go).
	Headers map[string]string `json:"headers,omitempty"`

	path string
}

const stateVersion = 1

func loadState(path, server string) (*state, error) {
	st := &state{Version: stateVersion, Server: server, Seen: map[string]int64{}, Headers: map[string]string{}, path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%v); move it away to start over (messages would be downloaded again)", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s has version %d; this petrel knows %d", path, st.Version, stateVersion)
	}
	if st.Server != server {
		return nil, fmt.Errorf("state file %s belongs to %s, not %s; give the account its own state file", path, st.Server, server)
	}
	if st.Seen == nil {
		st.Seen = map[string]int64{}
	}
	if st.Headers == nil {
		st.Headers = map[string]string{}
	}
	st.path = path
	return st, nil
}

func (s *state) save() error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	return safefile.WriteAtomic(s.path, b, 0o600)
}

func (s *state) firstSeen(uid string) (time.Time, bool) {
	t, ok := s.Seen[uid]
	return time.Unix(t, 0), ok
}
