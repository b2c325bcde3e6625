package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"petrel/internal/lib/scram"
	"petrel/internal/store"
)

// scramServer implements SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding: we do
// not offer SCRAM-SHA-256-PLUS, so a client asking for binding ("p=") is refused.
//
// The exchange is four Next calls:
//
//	client-first    -> server-first  (r=nonce,s=salt,i=iterations)
//	client-final    -> server-final  (v=ServerSignature), done=false
//	empty response  -> done=true
//
// The server-final message is sent as a challenge rather than as "additional data with
// success" (RFC 4422 §5) because our SMTP and POP3 loops, like go-smtp's, discard a challenge
// returned with done=true; RFC 4954 §4 and RFC 5034 §4 let a client answer it with an empty
// line. A client that skips verifying v= still has to send that line.
//
// For an unknown user, or one without SCRAM keys, the exchange continues with a salt derived
// from the name (so repeated attempts see the same salt, as for a real account) and always
// fails at the proof, after the usual throttling.
type scramServer struct {
	s      *Service
	ctx    context.Context
	remote netip.Addr

	step  int  // 0: want client-first, 1: sent server-first, 2: sent server-final, 3: over
	asked bool // sent an empty challenge for a missing initial response

	login           string
	acct            store.Account
	found           bool // acct exists and has usable SCRAM keys
	keys            scramKeys
	gs2Header       string // as sent; client-final's c= must carry it back
	nonce           string // client nonce + server nonce
	clientFirstBare string
	serverFirst     string
}

const (
	maxSCRAMMessage = 4096 // no legitimate message is near this
	maxNonce        = 256
)

var errChannelBinding = fmt.Errorf("%w: channel binding requested but not offered", ErrMalformed)

func (x *scramServer) Next(response []byte) ([]byte, bool, error) {
	switch x.step {
	case 0:
		if len(response) == 0 && !x.asked {
			x.asked = true // RFC 4422 §5: an empty challenge asks for the client-first message
			return []byte{}, false, nil
		}
		challenge, err := x.first(response)
		if err != nil {
			x.step = 3
			return nil, false, err
		}
		x.step = 1
		return challenge, false, nil
	case 1:
		challenge, err := x.final(response)
		if err != nil {
			x.step = 3
			return nil, false, err
		}
		x.step = 2
		return challenge, false, nil
	case 2:
		x.step = 3
		if len(response) != 0 {
			return nil, false, ErrMalformed
		}
		return nil, true, nil
	}
	return nil, false, errOver
}

func (x *scramServer) Account() store.Account { return x.acct }

// first handles client-first-message and returns server-first-message (RFC 5802 §5.1).
func (x *scramServer) first(msg []byte) ([]byte, error) {
	cf, err := parseClientFirst(msg)
	if err != nil {
		return nil, err
	}
	x.login = loginName(cf.username)
	if cf.authzid != "" && loginName(cf.authzid) != x.login {
		return nil, errAuthzid
	}
	acct, found, err := x.s.account(x.ctx, x.login)
	if err != nil {
		return nil, err
	}
	if found {
		x.keys, err = parseSCRAMKeys(acct.Credentials.SCRAMSHA256)
		if err != nil {
			x.s.log.Info("account has no usable SCRAM-SHA-256 keys", "account", acct.Address, "err", err)
			found = false
		}
	}
	if !found {
		x.keys = x.s.mockSCRAMKeys(x.login)
	}
	x.acct, x.found = acct, found
	x.gs2Header, x.clientFirstBare = cf.gs2Header, cf.bare
	x.nonce = cf.nonce + x.s.newNonce()
	x.serverFirst = "r=" + x.nonce + ",s=" + base64.StdEncoding.EncodeToString(x.keys.salt) +
		",i=" + strconv.Itoa(x.keys.iterations)
	return []byte(x.serverFirst), nil
}

// final checks client-final-message and returns server-final-message (RFC 5802 §3, §5.1).
func (x *scramServer) final(msg []byte) ([]byte, error) {
	cf, err := parseClientFinal(msg)
	if err != nil {
		return nil, err
	}
	// The client echoes the GS2 header so that a downgrade of it is detected (§5.1 "c=").
	if string(cf.channelBinding) != x.gs2Header {
		return nil, fmt.Errorf("%w: channel binding data does not match the GS2 header", ErrMalformed)
	}
	if cf.nonce != x.nonce {
		return nil, fmt.Errorf("%w: nonce mismatch", ErrMalformed)
	}
	authMessage := []byte(x.clientFirstBare + "," + x.serverFirst + "," + cf.withoutProof)
	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); valid if H(ClientKey) = StoredKey.
	clientKey := scram.HMAC(x.keys.storedKey, authMessage)
	subtle.XORBytes(clientKey, clientKey, cf.proof)
	storedKey := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(storedKey[:], x.keys.storedKey) != 1 || !x.found {
		x.s.failed(x.ctx, "SCRAM-SHA-256", x.login, x.remote)
		return nil, ErrInvalid
	}
	x.s.succeeded(x.login)
	serverSignature := scram.HMAC(x.keys.serverKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), nil
}

// mockSCRAMKeys returns keys no proof matches, with a salt that is stable for a login name
// within this process. (Across restarts it changes, unlike a real account's: a known limit.)
func (s *Service) mockSCRAMKeys(login string) scramKeys {
	salt := scram.HMAC(s.mockKey[:], []byte(login))[:saltLen]
	return scramKeys{
		iterations: scramIterations,
		salt:       salt,
		storedKey:  make([]byte, sha256.Size),
		serverKey:  make([]byte, sha256.Size),
	}
}

// randomNonce returns 18 random bytes in base64: printable, without ',' (RFC 5802 §7).
func randomNonce() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// clientFirst is a parsed client-first-message (RFC 5802 §7):
//
//	client-first-message = gs2-header client-first-message-bare
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
type clientFirst struct {
	gs2Header string // as sent, e.g. "n,,"
	authzid   string // decoded; "" if absent
	username  string // decoded
	nonce     string
	bare      string // client-first-message-bare, part of AuthMessage
}

func parseClientFirst(msg []byte) (clientFirst, error) {
	if len(msg) > maxSCRAMMessage || !utf8.Valid(msg) {
		return clientFirst{}, ErrMalformed
	}
	s := string(msg)
	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return clientFirst{}, ErrMalformed
	}
	switch {
	case flag == "n", flag == "y":
		// "y": the client could bind but thinks we cannot. True, since we advertise no
		// -PLUS mechanism, so it is not a downgrade (§6).
	case strings.HasPrefix(flag, "p="):
		return clientFirst{}, errChannelBinding
	default:
		return clientFirst{}, ErrMalformed
	}
	var cf clientFirst
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return clientFirst{}, ErrMalformed
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return clientFirst{}, ErrMalformed
		}
		var err error
		if cf.authzid, err = decodeSASLName(v); err != nil {
			return clientFirst{}, err
		}
	}
	cf.gs2Header = s[:len(s)-len(bare)]
	cf.bare = bare

	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return clientFirst{}, ErrMalformed
	}
	// "m" is reserved; its presence MUST cause authentication failure (§5.1).
	user, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return clientFirst{}, ErrMalformed
	}
	var err error
	if cf.username, err = decodeSASLName(user); err != nil {
		return clientFirst{}, err
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !validNonce(nonce) {
		return clientFirst{}, ErrMalformed
	}
	cf.nonce = nonce
	if !validExtensions(attrs[2:]) {
		return clientFirst{}, ErrMalformed
	}
	return cf, nil
}

// clientFinal is a parsed client-final-message (RFC 5802 §7):
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message = client-final-message-without-proof "," proof
type clientFinal struct {
	channelBinding []byte // decoded c=
	nonce          string
	withoutProof   string // part of AuthMessage
	proof          []byte
}

func parseClientFinal(msg []byte) (clientFinal, error) {
	if len(msg) > maxSCRAMMessage || !utf8.Valid(msg) {
		return clientFinal{}, ErrMalformed
	}
	s := string(msg)
	i := strings.LastIndex(s, ",p=")
	if i < 0 {
		return clientFinal{}, ErrMalformed
	}
	var cf clientFinal
	var err error
	cf.withoutProof = s[:i]
	cf.proof, err = base64.StdEncoding.DecodeString(s[i+len(",p="):])
	if err != nil || len(cf.proof) != sha256.Size {
		return clientFinal{}, ErrMalformed
	}
	attrs := strings.Split(cf.withoutProof, ",")
	if len(attrs) < 2 {
		return clientFinal{}, ErrMalformed
	}
	cb, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return clientFinal{}, ErrMalformed
	}
	if cf.channelBinding, err = base64.StdEncoding.DecodeString(cb); err != nil {
		return clientFinal{}, ErrMalformed
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !validNonce(nonce) {
		return clientFinal{}, ErrMalformed
	}
	cf.nonce = nonce
	if !validExtensions(attrs[2:]) {
		return clientFinal{}, ErrMalformed
	}
	return cf, nil
}

// decodeSASLName decodes a saslname (RFC 5802 §5.1): "=2C" is ',', "=3D" is '=', and any
// other '=' is an error.
func decodeSASLName(s string) (string, error) {
	if s == "" {
		return "", ErrMalformed
	}
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1 : min(i+3, len(s))] {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", ErrMalformed
		}
		i += 2
	}
	return b.String(), nil
}

// validNonce reports whether s is 1*printable, printable being %x21-2B / %x2D-7E (no ',').
func validNonce(s string) bool {
	if s == "" || len(s) > maxNonce {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}

// validExtensions checks attr-val syntax (ALPHA "=" value) of extensions we ignore. The
// reserved "m" attribute must fail (§5.1); so must a repeated proof, which could otherwise
// be misparsed as the last attribute.
func validExtensions(attrs []string) bool {
	for _, a := range attrs {
		if len(a) < 2 || a[1] != '=' || !(a[0] >= 'a' && a[0] <= 'z' || a[0] >= 'A' && a[0] <= 'Z') {
			return false
		}
		switch a[0] {
		case 'm', 'n', 'r', 'c', 'p', 'a':
			return false
		}
	}
	return true
}
