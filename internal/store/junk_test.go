package store

import (
	"encoding/binary"
	"hash/fnv"
	"testing"
)

// TestJunkTokenIDIsFNV: the written-out hash is hash/fnv's FNV-1a of the account and the
// token, the key stores already hold, so it must never change.
func TestJunkTokenIDIsFNV(t *testing.T) {
	for _, tok := range []string{"", "a", "cheap", "h:content-type:text/plain", "ünïcode"} {
		for _, id := range []int64{0, 1, 42, 1 << 40} {
			h := fnv.New64a()
			var a [8]byte
			binary.LittleEndian.PutUint64(a[:], uint64(id))
			h.Write(a[:])
			h.Write([]byte(tok))
			if want := int64(h.Sum64() >> 1); JunkTokenID(id, tok) != want {
				t.Errorf("JunkTokenID(%d, %q) = %d, want %d", id, tok, JunkTokenID(id, tok), want)
			}
		}
	}
}
