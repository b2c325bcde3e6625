package store

import (
	"context"
	"time"
)

// Sieve scripts (RFC 5228) per account, as ManageSieve (RFC 5804) and the CLI manage them,
// and the vacation log (RFC 5230 §4.2) that keeps auto-replies to once per sender and
// period. At most one script of an account is active; delivery runs that one.
//
// This is an interface of its own rather than part of Store, so that a backend can be
// written against Store first; the app finds it by a type assertion. A backend that
// implements it also honours Delivery.TargetFlags and Delivery.More, which delivery uses
// only when a script asks for them.

// SieveScript is one stored script.
type SieveScript struct {
	Name    string
	Content string
	Active  bool
	Updated time.Time
}

// Sieve keeps an account's scripts and its vacation log. A missing account or script is
// ErrNotFound.
type Sieve interface {
	// SieveScripts lists an account's scripts, sorted by name.
	SieveScripts(ctx context.Context, accountID int64) ([]SieveScript, error)
	SieveScript(ctx context.Context, accountID int64, name string) (SieveScript, error)
	// ActiveSieveScript returns the active script, or ErrNotFound when none is.
	ActiveSieveScript(ctx context.Context, accountID int64) (SieveScript, error)
	// PutSieveScript creates a script or replaces its content (an active one stays
	// active). The caller has checked the content; the store does not parse Sieve.
	PutSieveScript(ctx context.Context, accountID int64, name, content string) error
	// SetActiveSieveScript makes name the only active script; "" deactivates all.
	SetActiveSieveScript(ctx context.Context, accountID int64, name string) error
	// DeleteSieveScript removes a script; the active one is ErrInvalid (RFC 5804 §2.10).
	DeleteSieveScript(ctx context.Context, accountID int64, name string) error
	// RenameSieveScript renames a script (an existing new name is ErrExists).
	RenameSieveScript(ctx context.Context, accountID int64, from, to string) error

	// VacationReply decides, atomically, whether the vacation reply named handle may go to
	// sender now: true if none went within period before now, and then it records now. So
	// two deliveries at once never both reply.
	VacationReply(ctx context.Context, accountID int64, handle, sender string, now time.Time, period time.Duration) (bool, error)
}

// ValidSieveName reports whether name may name a script (RFC 5804 §1.6: no control
// characters, at most 128 characters here).
func ValidSieveName(name string) bool {
	if name == "" || len(name) > 512 {
		return false
	}
	n := 0
	for _, r := range name {
		n++
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 || r == 0xfffd {
			return false
		}
	}
	return n <= 128
}
