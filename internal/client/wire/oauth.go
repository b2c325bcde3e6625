package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SASL mechanism names for OAuth 2.0 bearer tokens.
const (
	MechOAuthBearer = "OAUTHBEARER" // RFC 7628
	MechXOAuth2     = "XOAUTH2"     // Google's and Microsoft's older mechanism, still the one they document
)

// OAuthClient is a SASL client (go-sasl's Client interface) that logs in with an OAuth 2.0
// access token, by OAUTHBEARER or XOAUTH2. Both send the token in the initial response; a
// refusal comes as a challenge carrying a base64 JSON status (RFC 7628 §3.2.2), which the
// client must acknowledge before the server sends its final failure: OAUTHBEARER with a
// single %x01 (§3.2.3), XOAUTH2 with an empty response. Next keeps the decoded status in
// Failure so that the caller can say why (Explain).
//
// go-sasl's OAUTHBEARER client is not used: it answers the error challenge with an error,
// which makes the POP3, IMAP and SMTP clients cancel the exchange ("*") instead of
// completing it, and it has no XOAUTH2.
type OAuthClient struct {
	mech, user, token, host string
	port                    int
	// Failure is the provider's status, once the server sent one.
	Failure *OAuthStatus
}

// NewOAuthClient returns a client for mech (MechOAuthBearer or MechXOAuth2). host and port
// name the server for OAUTHBEARER's host and port keys (RFC 7628 §3.1; optional, "" and 0
// leave them out).
func NewOAuthClient(mech, user, token, host string, port int) *OAuthClient {
	return &OAuthClient{mech: strings.ToUpper(mech), user: user, token: token, host: host, port: port}
}

// Start implements sasl.Client.
func (c *OAuthClient) Start() (string, []byte, error) {
	switch c.mech {
	case MechOAuthBearer:
		// gs2-header: no channel binding, authzid = the user (RFC 7628 §3.1, RFC 5801 §4),
		// with ',' and '=' escaped as RFC 5801 requires.
		authz := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
		var b strings.Builder
		b.WriteString("n,a=" + authz + ",\x01")
		if c.host != "" {
			b.WriteString("host=" + c.host + "\x01")
		}
		if c.port != 0 {
			b.WriteString("port=" + strconv.Itoa(c.port) + "\x01")
		}
		b.WriteString("auth=Bearer " + c.token + "\x01\x01")
		return c.mech, []byte(b.String()), nil
	case MechXOAuth2:
		return c.mech, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
	}
	return "", nil, fmt.Errorf("unknown OAuth SASL mechanism %q", c.mech)
}

// Next implements sasl.Client: the only challenge is the error status.
func (c *OAuthClient) Next(challenge []byte) ([]byte, error) {
	if c.Failure != nil {
		return nil, fmt.Errorf("%w: %s sent a second challenge", ErrProtocol, c.mech)
	}
	st := &OAuthStatus{}
	if err := json.Unmarshal(challenge, st); err != nil || st.Status == "" {
		// Not the JSON the RFC asks for; keep the text so that the user sees something.
		st = &OAuthStatus{Raw: string(challenge)}
	}
	c.Failure = st
	if c.mech == MechOAuthBearer {
		return []byte{1}, nil
	}
	return []byte{}, nil
}

// Refused wraps err, the server's refusal of this login, as a TokenError carrying the
// decoded status if any. nil stays nil.
func (c *OAuthClient) Refused(err error) error {
	if err == nil {
		return nil
	}
	return &TokenError{Mech: c.mech, Status: c.Failure, Err: err}
}

// OAuthStatus is the JSON a server sends when it refuses a token (RFC 7628 §3.2.2). Google
// and Microsoft send HTTP-like codes ("401", "400"); RFC 6750 names ("invalid_token",
// "insufficient_scope") are what RFC 7628 servers such as Dovecot send.
type OAuthStatus struct {
	Status  string `json:"status"`
	Scope   string `json:"scope"`
	Schemes string `json:"schemes"`
	// OpenIDConfig is where the server says the token should come from.
	OpenIDConfig string `json:"openid-configuration"`
	Raw          string `json:"-"` // the challenge, when it was not JSON
}

// Explain says in words what the status means.
func (s *OAuthStatus) Explain() string {
	if s.Raw != "" {
		return "server said " + strconv.Quote(s.Raw)
	}
	var why string
	switch strings.ToLower(s.Status) {
	case "invalid_token", "401":
		why = "token expired, revoked or not valid for this server"
	case "insufficient_scope", "invalid_scope", "403":
		why = "invalid scope: the token does not grant mail access"
	case "invalid_request", "400":
		why = "the server found the login request malformed"
	default:
		why = "refused"
	}
	out := why + " (status " + s.Status
	if s.Scope != "" {
		out += ", scope needed: " + s.Scope
	}
	return out + ")"
}

// TokenError is a login with an OAuth token that the server refused. Callers get a fresh
// token (a refresh, or token_command run again) and try once more.
type TokenError struct {
	Mech   string
	Status *OAuthStatus // nil when the server refused without a status
	Err    error        // the server's final answer
}

func (e *TokenError) Error() string {
	if e.Status != nil {
		return fmt.Sprintf("%s: %s: %v", e.Mech, e.Status.Explain(), e.Err)
	}
	return fmt.Sprintf("%s: token refused: %v", e.Mech, e.Err)
}

func (e *TokenError) Unwrap() error { return e.Err }

// IsTokenRefused reports whether err is a refused OAuth token.
func IsTokenRefused(err error) bool {
	var te *TokenError
	return errors.As(err, &te)
}
