package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"petrel/internal/lib/scram"
	"petrel/internal/store"
)

// Argon2id cost for new hashes: the OWASP Password Storage Cheat Sheet's first choice
// (m=19 MiB, t=2, p=1), which is also near RFC 9106 §4's guidance scaled to a small server.
// Measured on the 2-core target (AMD EPYC, other load present): ~40 ms per hash; m=64 MiB,
// t=3 took ~250 ms. Why this point:
//   - The verified-password cache (cache.go) means a hash is computed once per account per
//     hour plus once per failed attempt, so login throughput does not depend on this cost;
//     40 ms is invisible to a user.
//   - Failures cost the attacker our CPU; hashes run at most GOMAXPROCS at a time (see
//     Service.hashSem), so memory stays bounded at GOMAXPROCS × 19 MiB whatever the number
//     of connections, and a 64 MiB setting would have made that bound 3× worse for little gain
//     on the offline side, where the SCRAM keys (below) are the weaker link anyway.
//   - p=1: parallel lanes inside one hash would only compete with other sessions on 2 cores.
//
// The parameters are stored in each PHC string, so changing them affects new passwords only.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// scramIterations is the PBKDF2 count for new SCRAM-SHA-256 keys: the RFC 7677 §4 minimum.
// The server never runs PBKDF2 during SCRAM (it keeps StoredKey/ServerKey); the client does,
// at every login unless it caches SaltedPassword, so a higher count slows clients, including
// the load generator sharing our 2 cores.
const scramIterations = 4096

// maxPasswordLen bounds passwords (in octets) so that hashing cost does not depend on input.
const maxPasswordLen = 1024

var errBadPassword = errors.New("auth: password is empty, too long, or contains control characters")

// normalizePassword prepares a password for both argon2id and SCRAM, so that the two always
// agree. It follows SASLprep (RFC 4013 §2), which SCRAM clients apply (RFC 5802 §2.2):
// "commonly mapped to nothing" characters (RFC 3454 B.1) are removed, non-ASCII spaces become
// U+0020, the result is NFKC-normalized, and control characters are refused. Unlike full
// SASLprep it does not refuse private-use, unassigned or bidirectional-mixing code points:
// refusing would only lock out such passwords, not make any two passwords collide.
func normalizePassword(p string) (string, error) {
	if p == "" || len(p) > maxPasswordLen || !utf8.ValidString(p) {
		return "", errBadPassword
	}
	ascii := true
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x20 || c == 0x7f {
			return "", errBadPassword
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if ascii {
		return p, nil // the common case: SASLprep is the identity on printable ASCII
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return "", errBadPassword
		}
	}
	out := scram.Prep(p)
	if out == "" {
		return "", errBadPassword
	}
	return out, nil
}

// NewCredentials hashes a new password into credentials for the store.
func NewCredentials(password string) (store.Credentials, error) {
	pw, err := normalizePassword(password)
	if err != nil {
		return store.Credentials{}, err
	}
	argonSalt, scramSalt := make([]byte, saltLen), make([]byte, saltLen)
	rand.Read(argonSalt) // crypto/rand.Read never fails (Go 1.24+)
	rand.Read(scramSalt)
	keys, err := deriveSCRAMKeys(pw, scramSalt, scramIterations)
	if err != nil {
		return store.Credentials{}, err
	}
	return store.Credentials{
		PasswordHash: hashArgon2id(pw, argonSalt),
		SCRAMSHA256:  keys.String(),
	}, nil
}

// argonParams is a parsed PHC string "$argon2id$v=19$m=M,t=T,p=P$salt$hash"
// (https://github.com/P-H-C/phc-string-format; base64 without padding).
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	hash    []byte
}

var b64 = base64.RawStdEncoding

func hashArgon2id(pw string, salt []byte) string {
	hash := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(hash))
}

// parseArgon2id parses a stored hash. The store is trusted, but the limits keep a corrupt
// or hostile row from making one login allocate gigabytes or spin for minutes.
func parseArgon2id(s string) (argonParams, error) {
	bad := func(why string) (argonParams, error) {
		return argonParams{}, fmt.Errorf("auth: stored password hash: %s", why)
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return bad("not a PHC argon2id string")
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version " + f[2])
	}
	var p argonParams
	for kv := range strings.SplitSeq(f[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("bad parameter " + kv)
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return bad("bad parameter " + kv)
			}
			p.threads = uint8(n)
		default:
			return bad("unknown parameter " + kv)
		}
	}
	if p.threads < 1 || p.threads > 16 || p.time < 1 || p.time > 64 ||
		p.memory < 8*uint32(p.threads) || p.memory > 1<<20 {
		return bad("parameters out of range " + f[3])
	}
	var err error
	if p.salt, err = b64.DecodeString(f[4]); err != nil || len(p.salt) < 8 {
		return bad("bad salt")
	}
	if p.hash, err = b64.DecodeString(f[5]); err != nil || len(p.hash) < 16 || len(p.hash) > 64 {
		return bad("bad hash")
	}
	return p, nil
}

// verify reports whether pw (normalized) matches p, in constant time.
func (p argonParams) verify(pw string) bool {
	got := argon2.IDKey([]byte(pw), p.salt, p.time, p.memory, p.threads, uint32(len(p.hash)))
	return subtle.ConstantTimeCompare(got, p.hash) == 1
}

// scramKeys are stored SCRAM-SHA-256 credentials (RFC 5802 §3). They are encoded like
// PostgreSQL's: "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", standard base64.
type scramKeys struct {
	iterations int
	salt       []byte
	storedKey  []byte // H(ClientKey)
	serverKey  []byte // HMAC(SaltedPassword, "Server Key")
}

const scramPrefix = "SCRAM-SHA-256$"

func deriveSCRAMKeys(pw string, salt []byte, iterations int) (scramKeys, error) {
	k, err := scram.Derive(pw, salt, iterations)
	if err != nil {
		return scramKeys{}, err
	}
	return scramKeys{iterations: iterations, salt: salt, storedKey: k.StoredKey, serverKey: k.ServerKey}, nil
}

func (k scramKeys) String() string {
	e := base64.StdEncoding
	return fmt.Sprintf("%s%d:%s$%s:%s", scramPrefix, k.iterations, e.EncodeToString(k.salt),
		e.EncodeToString(k.storedKey), e.EncodeToString(k.serverKey))
}

func parseSCRAMKeys(s string) (scramKeys, error) {
	bad := errors.New("auth: stored SCRAM-SHA-256 keys: bad format")
	rest, ok := strings.CutPrefix(s, scramPrefix)
	if !ok {
		return scramKeys{}, bad
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return scramKeys{}, bad
	}
	iter, salt, ok1 := strings.Cut(params, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return scramKeys{}, bad
	}
	var k scramKeys
	var err error
	e := base64.StdEncoding
	if k.iterations, err = strconv.Atoi(iter); err != nil || k.iterations < 1 {
		return scramKeys{}, bad
	}
	if k.salt, err = e.DecodeString(salt); err != nil || len(k.salt) == 0 {
		return scramKeys{}, bad
	}
	if k.storedKey, err = e.DecodeString(stored); err != nil || len(k.storedKey) != sha256.Size {
		return scramKeys{}, bad
	}
	if k.serverKey, err = e.DecodeString(server); err != nil || len(k.serverKey) != sha256.Size {
		return scramKeys{}, bad
	}
	return k, nil
}
