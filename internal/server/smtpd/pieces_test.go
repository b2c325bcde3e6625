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

// FuzzWithAuthResults: whatever the message, the stored one is our Return-Path, the
// Authentication-Results field, the rest of the trace, then the message with only fields
// removed from its header section, and its body unchanged.
func FuzzWithAuthResults(f *testing.F) {
	for _, seed := range []string{
		"Subject: a\r\n\r\nbody\r\n",
		"Authentication-Results: mx.example.test; spf=pass\r\nX: y\r\n\r\nb\r\n",
		"Authentication-Results: (c) MX.EXAMPLE.TEST;\r\n dkim=pass\r\n\r\n",
		"\r\n",
		"",
		"no colon line\r\n\r\n",
	} {
		f.Add(seed)
	}
	const trace = "Return-Path: <a@b>\r\nReceived: from x\r\n\tby y; date\r\n"
	const ar = "Authentication-Results: mx.example.test; spf=none\r\n"
	s := &session{srv: &Server{cfg: Config{Verify: &Verification{AuthServID: "mx.example.test", MaxHeaderBytes: 4096}}}}
	f.Fuzz(func(t *testing.T, msg string) {
		sp := deliver.NewSpool("", 1<<20)
		defer sp.Close()
		io.WriteString(sp, trace+msg)
		body, err := s.withAuthResults(sp, int64(len(trace)), ar, nil)
		if err != nil {
			if !errors.Is(err, msgauth.ErrHeaderTooLarge) {
				t.Fatal(err)
			}
			return
		}
		b, err := io.ReadAll(io.NewSectionReader(body, 0, body.Size()))
		if err != nil {
			t.Fatal(err)
		}
		out := string(b)
		prefix := "Return-Path: <a@b>\r\n" + ar + "Received: from x\r\n\tby y; date\r\n"
		if !strings.HasPrefix(out, prefix) {
			t.Fatalf("stored message starts %q", out[:min(len(out), len(prefix))])
		}
		hdr, bodyPart, found := strings.Cut(msg, "\r\n\r\n")
		if strings.HasPrefix(msg, "\r\n") {
			hdr, bodyPart, found = "", msg[2:], true
		}
		if found && !strings.HasSuffix(out, "\r\n\r\n"+bodyPart) && !(hdr == "" && strings.HasSuffix(out, "\r\n"+bodyPart)) {
			t.Fatalf("body changed: stored %q from %q", out, msg)
		}
		if len(out)-len(prefix) > len(msg) {
			t.Fatalf("the message grew: %q from %q", out, msg)
		}
	})
}
