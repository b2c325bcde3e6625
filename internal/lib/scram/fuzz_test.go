package scram

import (
	"strings"
	"testing"
)

func FuzzParseServerFirst(f *testing.F) {
	f.Add("r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	f.Add("r=a,s=,i=")
	f.Add("m=x,r=a,s=b,i=1")
	f.Fuzz(func(t *testing.T, msg string) {
		sf, err := ParseServerFirst(msg)
		if err == nil && (sf.Nonce == "" || len(sf.Salt) == 0 || strings.Contains(sf.Nonce, ",")) {
			t.Fatalf("ParseServerFirst(%q) = %+v", msg, sf)
		}
		s := NewClient("u", "p")
		s.nonce = "a"
		s.Start()
		s.Next([]byte(msg)) // must not panic (or run away: iterations are bounded)
	})
}
