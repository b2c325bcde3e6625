package pull

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sealing the passwords of pull sources.
//
// The store keeps a source's password sealed with AES-256-GCM under a key that lives in a
// file outside the data directory ([pull] key_file: by default beside the config file). A
// sealed secret is version byte 1, the 12-byte random nonce, then the ciphertext and tag. The
// additional data binds it to the account, the server and the user it was made for, so that
// someone who can write the database but not read the key cannot move a sealed password to
// another source, one pointing at a server of theirs, and have the poller send it there.
//
// What it protects against: a copy of the data directory alone (a backup, a stolen disk of
// the database, a PostgreSQL dump) does not reveal the outside passwords. What it does not:
// anyone who can read the key file as well, which includes the server's own user and root on
// the host, since the server must log in with the password; nor a memory dump of the running
// server.

const sealVersion = 1

// keySize is an AES-256 key.
const keySize = 32

// Sealer seals and opens passwords with one key.
type Sealer struct{ aead cipher.AEAD }

// LoadKey reads the key file at path (the key in hex, one line). create makes a new random
// key there (mode 0600, its directory 0700 if missing) when the file does not exist.
func LoadKey(path string, create bool) (*Sealer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, keySize)
		rand.Read(key)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		// Written whole into a temporary file, then linked to its name, which fails if the
		// name exists: two processes creating the key at once (commands, or PostgreSQL
		// nodes starting together on one key file) end with one key, and neither ever
		// reads a file the other has not finished writing.
		f, err := os.CreateTemp(filepath.Dir(path), ".pull-key-*")
		if err != nil {
			return nil, fmt.Errorf("pull key: %w", err)
		}
		defer os.Remove(f.Name())
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
		if err = errors.Join(err, f.Chmod(0o600), f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("pull key: %w", err)
		}
		if err := os.Link(f.Name(), path); errors.Is(err, os.ErrExist) {
			return LoadKey(path, false)
		} else if err != nil {
			return nil, fmt.Errorf("pull key: %w", err)
		}
		return NewSealer(key)
	}
	if err != nil {
		return nil, fmt.Errorf("pull key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != keySize {
		return nil, fmt.Errorf("pull key %s: want %d bytes in hex on one line", path, keySize)
	}
	return NewSealer(key)
}

// NewSealer returns a Sealer with key (32 bytes).
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead}, nil
}

// binding is the additional data of a source's sealed password.
func binding(accountID int64, protocol, addr, user string) []byte {
	return fmt.Appendf(nil, "petrel pull v1\x00%d\x00%s\x00%s\x00%s", accountID, protocol, addr, user)
}

// Seal seals password for the source of accountID at protocol, addr and user.
func (s *Sealer) Seal(password string, accountID int64, protocol, addr, user string) []byte {
	return s.SealData([]byte(password), binding(accountID, protocol, addr, user))
}

// SealData seals any secret under the key, bound to the additional data ad: another
// secret the store keeps (a DKIM private key on PostgreSQL) uses the same key file and
// form, with an ad of its own so that no sealed value opens as another kind.
func (s *Sealer) SealData(secret, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, secret, ad)
}

// ErrSealed is a sealed password that does not open: another key, or a secret moved to
// another source or altered.
var ErrSealed = errors.New("the stored password does not open with this key (another key file, or the database was altered)")

// Open returns the password sealed in sealed for the source.
func (s *Sealer) Open(sealed []byte, accountID int64, protocol, addr, user string) (string, error) {
	pw, err := s.OpenData(sealed, binding(accountID, protocol, addr, user))
	if err != nil {
		return "", ErrSealed
	}
	return string(pw), nil
}

// errOpen is a sealed value that does not open: another key, another ad, or altered.
var errOpen = errors.New("the sealed value does not open with this key")

// OpenData returns the secret SealData sealed with ad.
func (s *Sealer) OpenData(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, errOpen
	}
	b, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], ad)
	if err != nil {
		return nil, errOpen
	}
	return b, nil
}
