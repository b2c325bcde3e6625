package dkim

import (
	"regexp"
	"testing"
)

// removeSignatureRegexp is removeSignature as v0.7.0 wrote it: the reference
// the scanner must agree with.
var sigRegexp = regexp.MustCompile(`(b\s*=)[^;]+`)

func removeSignatureRegexp(s string) string {
	return sigRegexp.ReplaceAllString(s, "$1")
}

var removeSignatureCases = []string{
	"",
	"b",
	"b=",
	"b=;",
	"b=x",
	"b =\r\n x; bh=abc=",
	"DKIM-Signature: v=1; a=rsa-sha256; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB\r\n 4nujc7YopdG5dWLSdNg6xNAZpOPr+kHxt1IrE+NahM6L/LbvaHut\r\n KVdkLLkpVaVVQPzeRDI009SO2Il5Lu7rDNH6mZckBdrIx0orEtZV\r\n 4bmp/YzhwvcubU4=;\r\n",
	"DKIM-Signature: b=abc; bh=def; b = ghi ;x",
	"a=b;b\t\n\f\r=c;bb=d;b;b=;;b= ;",
	"d=example.b=x; s=sb\r\n =y", // a "b=" inside another tag's value matched too: kept
	"b=1;b=2;b=3",
	"bbb==;b==b",
}

func TestRemoveSignature(t *testing.T) {
	for _, s := range removeSignatureCases {
		if got, want := removeSignature(s), removeSignatureRegexp(s); got != want {
			t.Errorf("removeSignature(%q) = %q, want %q", s, got, want)
		}
	}
	const sig = "v=1; a=rsa-sha256; b=abcdef; bh=xyz=;"
	if got := removeSignature(sig); got != "v=1; a=rsa-sha256; b=; bh=xyz=;" {
		t.Errorf("removeSignature(%q) = %q", sig, got)
	}
}

func FuzzRemoveSignature(f *testing.F) {
	for _, s := range removeSignatureCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := removeSignature(s), removeSignatureRegexp(s); got != want {
			t.Errorf("removeSignature(%q) = %q, want %q", s, got, want)
		}
	})
}

func BenchmarkRemoveSignature(b *testing.B) {
	s := removeSignatureCases[6]
	b.Run("scanner", func(b *testing.B) {
		for b.Loop() {
			removeSignature(s)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			removeSignatureRegexp(s)
		}
	})
}
