package pop3client

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"petrel/internal/client/wire"
	"petrel/internal/lib/scram"
	"strings"

	"github.com/emersion/go-sasl"
)

// Mechanisms a caller can ask Login for.
const (
	MechAuto  = ""              // the best one the server offers (see Login)
	MechSCRAM = "SCRAM-SHA-256" // RFC 7677 via AUTH (RFC 5034)
	MechPlain = "PLAIN"         // RFC 4616 via AUTH
	MechAPOP  = "APOP"          // RFC 1939 §7
	MechUser  = "USER"          // USER/PASS, RFC 1939 §7
)

// LoginToken authenticates with an OAuth 2.0 access token: mech is wire.MechOAuthBearer,
// wire.MechXOAuth2 or MechAuto (OAUTHBEARER if CAPA lists it, else XOAUTH2, which Google and
// Microsoft do not always list). host and port are the server's, for OAUTHBEARER. A refusal is
// a *wire.TokenError with the provider's status, if it sent one. A bearer token is as good as
// a password, so a plaintext connection needs allowPlaintext.
func (c *Client) LoginToken(mech, user, token, host string, port int, allowPlaintext bool) error {
	if !c.tls && !allowPlaintext {
		return fmt.Errorf("%w: an OAuth token on a plaintext connection needs allow_plaintext", ErrNoMechanism)
	}
	if mech == MechAuto {
		capa, err := c.Capabilities()
		if err != nil {
			return err
		}
		mech = wire.MechXOAuth2
		for _, m := range strings.Fields(capa["SASL"]) {
			if strings.EqualFold(m, wire.MechOAuthBearer) {
				mech = wire.MechOAuthBearer
			}
		}
	}
	sc := wire.NewOAuthClient(mech, user, token, host, port)
	return sc.Refused(c.Auth(sc))
}

// ErrNoMechanism is returned when no acceptable login method is available.
var ErrNoMechanism = errors.New("pop3: no acceptable authentication mechanism")

// Login authenticates with the given mechanism, or with MechAuto the best one available:
// SCRAM-SHA-256 (the password never crosses the wire and the server proves it knows it), then
// PLAIN or USER/PASS if the connection is TLS-protected, then APOP when the greeting offers a
// timestamp. Sending a cleartext password over a plaintext connection needs allowPlaintext.
func (c *Client) Login(mech, user, pass string, allowPlaintext bool) error {
	capa, err := c.Capabilities()
	if err != nil {
		return err
	}
	mechs := map[string]bool{}
	for _, m := range strings.Fields(capa["SASL"]) {
		mechs[strings.ToUpper(m)] = true
	}
	cleartextOK := c.tls || allowPlaintext
	stamp := apopTimestamp(c.greeting)
	if mech == MechAuto {
		_, hasUser := capa["USER"]
		switch {
		case mechs[MechSCRAM]:
			mech = MechSCRAM
		case mechs[MechPlain] && cleartextOK:
			mech = MechPlain
		case stamp != "":
			mech = MechAPOP
		case cleartextOK && (hasUser || len(capa) == 0):
			// RFC 2449 §6.8: a server that lists capabilities and not USER has no USER/PASS;
			// a server without CAPA may well have it.
			mech = MechUser
		default:
			return ErrNoMechanism
		}
	}
	switch strings.ToUpper(mech) {
	case MechSCRAM:
		return c.Auth(scram.NewClient(user, pass))
	case MechPlain:
		if !cleartextOK {
			return fmt.Errorf("%w: PLAIN on a plaintext connection needs allow_plaintext", ErrNoMechanism)
		}
		return c.Auth(sasl.NewPlainClient("", user, pass))
	case MechAPOP:
		if stamp == "" {
			return fmt.Errorf("%w: the greeting offers no APOP timestamp", ErrNoMechanism)
		}
		return c.APOP(user, pass)
	case MechUser:
		if !cleartextOK {
			return fmt.Errorf("%w: USER/PASS on a plaintext connection needs allow_plaintext", ErrNoMechanism)
		}
		return c.UserPass(user, pass)
	}
	return fmt.Errorf("%w: unknown mechanism %q", ErrNoMechanism, mech)
}

// UserPass runs USER and PASS (RFC 1939 §7).
func (c *Client) UserPass(user, pass string) error {
	if _, err := c.cmd("USER", "USER "+user); err != nil {
		return err
	}
	_, err := c.cmd("PASS", "PASS "+pass)
	return err
}

// apopTimestamp returns the msg-id style timestamp of the greeting ("<1896.697170952@host>"),
// or "" (RFC 1939 §7: "the timestamp ... MUST be different each time").
func apopTimestamp(greeting string) string {
	start := strings.IndexByte(greeting, '<')
	if start < 0 {
		return ""
	}
	end := strings.IndexByte(greeting[start:], '>')
	if end < 0 {
		return ""
	}
	stamp := greeting[start : start+end+1]
	if !strings.Contains(stamp, "@") {
		return ""
	}
	return stamp
}

// APOP logs in with the digest of the greeting's timestamp and the secret (RFC 1939 §7).
func (c *Client) APOP(user, pass string) error {
	stamp := apopTimestamp(c.greeting)
	if stamp == "" {
		return fmt.Errorf("%w: the greeting offers no APOP timestamp", ErrNoMechanism)
	}
	sum := md5.Sum([]byte(stamp + pass))
	_, err := c.cmd("APOP", "APOP "+user+" "+hex.EncodeToString(sum[:]))
	return err
}

// verifier is implemented by SASL clients that authenticate the server (SCRAM): the
// exchange only counts as successful if the server's proof was checked.
type verifier interface {
	ServerVerified() bool
}

// Auth runs a SASL exchange with AUTH (RFC 5034 §4).
func (c *Client) Auth(sc sasl.Client) error {
	mech, ir, err := sc.Start()
	if err != nil {
		return err
	}
	line := "AUTH " + mech
	if ir != nil {
		if len(ir) == 0 {
			line += " =" // RFC 5034 §4: an empty initial response
		} else {
			line += " " + base64.StdEncoding.EncodeToString(ir)
		}
	}
	if err := c.send(line); err != nil {
		return err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return err
		}
		if challenge, ok := strings.CutPrefix(l, "+ "); ok || l == "+" {
			data, err := base64.StdEncoding.DecodeString(challenge)
			if err != nil {
				c.send("*") // RFC 5034 §4: cancel the exchange
				c.readStatus("AUTH")
				return fmt.Errorf("%w: bad base64 in AUTH challenge", ErrProtocol)
			}
			resp, err := sc.Next(data)
			if err != nil {
				c.send("*")
				c.readStatus("AUTH")
				return fmt.Errorf("pop3 AUTH %s: %w", mech, err)
			}
			if err := c.send(base64.StdEncoding.EncodeToString(resp)); err != nil {
				return err
			}
			continue
		}
		ok, text, err := ParseStatus(l)
		if err != nil {
			c.fail(err)
			return err
		}
		if !ok {
			e := &Error{Command: "AUTH"}
			e.Code, e.Text = splitCode(text)
			return e
		}
		if v, ok := sc.(verifier); ok && !v.ServerVerified() {
			// The server let us in without proving it knows the password: it may be an
			// impostor. Drop the connection rather than hand it our mail requests.
			c.fail(fmt.Errorf("pop3 AUTH %s: server accepted without proving its identity", mech))
			return c.err
		}
		return nil
	}
}
