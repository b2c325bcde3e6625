// Package connid names connections for the logs. Every protocol session logs with a
// "conn" attribute holding one of these ids, so that `grep conn=ID` (or a JSON query)
// finds every line of one connection, whatever the listener. The id is random rather than
// a counter: it stays unique across restarts and across the nodes that share a store, and
// it tells a reader of the logs nothing about the server's load.
package connid

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// New returns a fresh id: 60 random bits in 12 lower-case base32 characters.
func New() string { return Random(12) }

// Random returns n lower-case base32 characters (5 random bits each), for the other ids the
// logs carry, such as the SMTP server's transaction ids (16 characters, 80 bits).
func Random(n int) string {
	b := make([]byte, (n*5+7)/8)
	rand.Read(b) // never fails (crypto/rand)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:n]
}

type key struct{}

// With returns ctx carrying id (net/http's ConnContext hands it to every request of the
// connection).
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
