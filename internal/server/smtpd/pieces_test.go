package smtpd

import (
	"errors"
	"io"
	"strings"
	"testing"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/msgauth"
)

// TestHeaderSection: the header section after the trace, for messages with and without a
// body, with an empty header, and over the bound.
func TestHeaderSection(t *testing.T) {
	const trace = "Return-Path: <a@b>\r\nReceived: x\r\n"
	for _, tc := range []struct{ msg, want string }{
		{"Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\n"},
		{"Subject: a\r\nTo: b\r\n", "Subject: a\r\nTo: b\r\n"}, // no body
		{"\r\nbody only\r\n", "\r\n"},                          // no header fields
		{"Subject: a\r\n\tfolded\r\n\r\n\r\n\r\n", "Subject: a\r\n\tfolded\r\n\r\n"},
		{"X: " + strings.Repeat("y", 10000) + "\r\n\r\nb\r\n", "X: " + strings.Repeat("y", 10000) + "\r\n\r\n"},
	} {
		sp := deliver.NewSpool("", 1<<20)
		io.WriteString(sp, trace+tc.msg)
		got, err := headerSection(sp, int64(len(trace)), 1<<20)
		if err != nil || string(got) != tc.want {
			t.Errorf("headerSection(%.20q) = %.40q, %v; want %.40q", tc.msg, got, err, tc.want)
		}
		sp.Close()
	}
	sp := deliver.NewSpool("", 1<<20)
	defer sp.Close()
	io.WriteString(sp, trace+"X: "+strings.Repeat("y", 5000)+"\r\n\r\n")
	if _, err := headerSection(sp, int64(len(trace)), 1000); !errors.Is(err, msgauth.ErrHeaderTooLarge) {
		t.Errorf("header over the bound: %v", err)
	}
}

// TestPieces: ReadAt over consecutive parts, at every offset and length.
func TestPieces(t *testing.T) {
	sp := deliver.NewSpool("", 1<<20)
	defer sp.Close()
	io.WriteString(sp, "0123456789")
	p := newPieces(io.NewSectionReader(sp, 0, 3), bytesPart(nil), bytesPart([]byte("abc")), io.NewSectionReader(sp, 3, 7))
	want := "012abc3456789"
	if p.Size() != int64(len(want)) {
		t.Fatalf("Size = %d", p.Size())
	}
	for off := 0; off <= len(want); off++ {
		for n := 0; off+n <= len(want)+2; n++ {
			buf := make([]byte, n)
			got, err := p.ReadAt(buf, int64(off))
			wantN := min(n, len(want)-off)
			if got != wantN || string(buf[:got]) != want[off:off+wantN] || (wantN < n) != (err == io.EOF) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d %q, %v", n, off, got, buf[:got], err)
			}
		}
	}
}
