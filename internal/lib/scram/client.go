package scram

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
)

// SCRAM is the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding
// (gs2 flag "n"). It implements go-sasl's sasl.Client, so the SMTP client can use it too.
// The exchange only succeeds if the server proves that it knows the password (RFC 5802 §3,
// ServerSignature); ServerVerified reports that.
type Client struct {
	user, pass string
	nonce      string // client nonce; tests may set it before Start

	step            int
	clientFirstBare string
	serverSignature []byte
	verified        bool
}

var _ sasl.Client = (*Client)(nil)

// minIterations refuses a server that asks for a trivially cheap key derivation, which would
// make a captured exchange easy to brute-force (RFC 7677 §4: at least 4096).
const minIterations = 4096

// maxIterations bounds the work a hostile server can make us do.
const maxIterations = 10_000_000

// NewClient returns a SCRAM-SHA-256 client for user and password.
func NewClient(user, pass string) *Client {
	return &Client{user: user, pass: pass}
}

// Start returns the client-first message (RFC 5802 §7).
func (s *Client) Start() (string, []byte, error) {
	if s.nonce == "" {
		b := make([]byte, 18)
		rand.Read(b)
		s.nonce = base64.RawStdEncoding.EncodeToString(b)
	}
	s.clientFirstBare = "n=" + saslName(s.user) + ",r=" + s.nonce
	return "SCRAM-SHA-256", []byte("n,," + s.clientFirstBare), nil
}

// Next answers the server-first message with the client-final message, then checks the
// server-final message.
func (s *Client) Next(challenge []byte) ([]byte, error) {
	s.step++
	switch s.step {
	case 1:
		return s.clientFinal(string(challenge))
	case 2:
		// The server-final message comes as a last challenge; the answer is empty
		// (RFC 4954 §4, RFC 5034 §4). Non-nil: go-smtp sends nothing for a nil response.
		return []byte{}, s.checkServerFinal(string(challenge))
	}
	return nil, errors.New("scram: unexpected challenge")
}

// ServerVerified reports whether the server's signature was checked successfully.
func (s *Client) ServerVerified() bool { return s.verified }

// ServerFirst is the parsed server-first message (RFC 5802 §7).
type ServerFirst struct {
	Nonce      string
	Salt       []byte
	Iterations int
}

// ParseServerFirst parses "r=nonce,s=salt,i=count[,extensions]".
func ParseServerFirst(msg string) (ServerFirst, error) {
	var sf ServerFirst
	f := strings.Split(msg, ",")
	if len(f) < 3 {
		return sf, fmt.Errorf("scram: bad server-first message")
	}
	if strings.HasPrefix(f[0], "m=") {
		return sf, errors.New("scram: server requires an unsupported extension")
	}
	nonce, ok1 := strings.CutPrefix(f[0], "r=")
	salt, ok2 := strings.CutPrefix(f[1], "s=")
	iter, ok3 := strings.CutPrefix(f[2], "i=")
	if !ok1 || !ok2 || !ok3 || nonce == "" || salt == "" {
		return sf, fmt.Errorf("scram: bad server-first message")
	}
	for i := 0; i < len(nonce); i++ {
		// RFC 5802 §7: printable ASCII except ",".
		if nonce[i] < 0x21 || nonce[i] > 0x7e || nonce[i] == ',' {
			return sf, errors.New("scram: bad nonce")
		}
	}
	var err error
	if sf.Salt, err = base64.StdEncoding.DecodeString(salt); err != nil || len(sf.Salt) == 0 {
		return sf, errors.New("scram: bad salt")
	}
	if sf.Iterations, err = strconv.Atoi(iter); err != nil || iter[0] == '+' {
		return sf, errors.New("scram: bad iteration count")
	}
	sf.Nonce = nonce
	return sf, nil
}

func (s *Client) clientFinal(serverFirst string) ([]byte, error) {
	sf, err := ParseServerFirst(serverFirst)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(sf.Nonce, s.nonce) || len(sf.Nonce) == len(s.nonce) {
		return nil, errors.New("scram: server nonce does not extend ours")
	}
	if sf.Iterations < minIterations || sf.Iterations > maxIterations {
		return nil, fmt.Errorf("scram: iteration count %d outside [%d, %d]", sf.Iterations, minIterations, maxIterations)
	}
	k, err := Derive(Prep(s.pass), sf.Salt, sf.Iterations)
	if err != nil {
		return nil, err
	}
	clientKey := k.ClientKey
	// c= is the base64 of the GS2 header "n,," (no channel binding, no authzid).
	withoutProof := "c=biws,r=" + sf.Nonce
	authMessage := s.clientFirstBare + "," + serverFirst + "," + withoutProof
	sig := HMAC(k.StoredKey, []byte(authMessage))
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	s.serverSignature = HMAC(k.ServerKey, []byte(authMessage))
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (s *Client) checkServerFinal(msg string) error {
	if e, ok := strings.CutPrefix(msg, "e="); ok {
		return fmt.Errorf("scram: server error %q", e)
	}
	v, ok := strings.CutPrefix(msg, "v=")
	if !ok {
		return errors.New("scram: bad server-final message")
	}
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i] // extensions
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || subtle.ConstantTimeCompare(sig, s.serverSignature) != 1 {
		return errors.New("scram: server signature does not match: the server does not know the password")
	}
	s.verified = true
	return nil
}

// saslName escapes "=" and "," in a user name (RFC 5802 §5.1).
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(Prep(s))
}
