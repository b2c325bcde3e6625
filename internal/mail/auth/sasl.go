package auth

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"

	"petrel/internal/store"
)

// errAuthzid refuses to let one account act as another (RFC 4422 §3.4.1): no password is
// tested, so it is not throttled.
var errAuthzid = fmt.Errorf("%w: authorization identity differs from authentication identity", ErrInvalid)

// errOver is returned by Next after the exchange ended, successfully or not.
var errOver = fmt.Errorf("%w: exchange is over", ErrMalformed)

// plainServer implements PLAIN (RFC 4616).
type plainServer struct {
	s      *Service
	ctx    context.Context
	remote netip.Addr

	asked bool // we sent the empty challenge
	over  bool
	acct  store.Account
}

func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.over {
		return nil, false, errOver
	}
	if len(response) == 0 && !p.asked {
		// No initial response (or an empty one, "="): an empty challenge asks for it
		// (RFC 4422 §5, RFC 4954 §4).
		p.asked = true
		return []byte{}, false, nil
	}
	p.over = true
	// RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
	f := bytes.Split(response, []byte{0})
	if len(f) != 3 || len(f[1]) == 0 || len(f[2]) == 0 {
		return nil, false, ErrMalformed
	}
	authzid, authcid, passwd := string(f[0]), string(f[1]), string(f[2])
	if authzid != "" && loginName(authzid) != loginName(authcid) {
		return nil, false, errAuthzid
	}
	acct, err := p.s.CheckPassword(p.ctx, authcid, passwd, p.remote)
	if err != nil {
		return nil, false, err
	}
	p.acct = acct
	return nil, true, nil
}

func (p *plainServer) Account() store.Account { return p.acct }

// loginServer implements LOGIN (draft-murchison-sasl-login-00): two challenges, "Username:"
// and "Password:", each answered with the bare value. Clients such as go-sasl's send the
// user name as the initial response and only expect "Password:".
type loginServer struct {
	s      *Service
	ctx    context.Context
	remote netip.Addr

	step     int // 0: start, 1: asked user name, 2: asked password, 3: over
	username string
	acct     store.Account
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if len(response) == 0 {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		if len(response) == 0 {
			l.step = 3
			return nil, false, ErrMalformed
		}
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		if len(response) == 0 {
			return nil, false, ErrMalformed
		}
		acct, err := l.s.CheckPassword(l.ctx, l.username, string(response), l.remote)
		if err != nil {
			return nil, false, err
		}
		l.acct = acct
		return nil, true, nil
	}
	return nil, false, errOver
}

func (l *loginServer) Account() store.Account { return l.acct }
