package store

import "context"

// Admins says which accounts are operators: they may use the web admin (issue 14). Being
// an admin changes nothing else: such an account receives and sends mail like any other.
// `petrel account admin ADDRESS on|off` sets it; a new account is not an admin.
//
// A separate interface, not part of Store, so that a backend written against Store keeps
// compiling; the web listener finds it by a type assertion.
type Admins interface {
	// SetAdmin makes an account an admin or not; ErrNotFound if it does not exist.
	SetAdmin(ctx context.Context, accountID int64, admin bool) error
	// IsAdmin reports whether an account is an admin; ErrNotFound if it does not exist.
	IsAdmin(ctx context.Context, accountID int64) (bool, error)
}
