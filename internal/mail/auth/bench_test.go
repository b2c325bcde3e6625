package auth

import (
	"context"
	"testing"
)

// BenchmarkCheckPasswordCached is the steady state of clients that log in again and again.
func BenchmarkCheckPasswordCached(b *testing.B) {
	s, _ := newTestService(b)
	ctx := context.Background()
	if _, err := s.CheckPassword(ctx, "user@example.com", "pencil", testRemote); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.CheckPassword(ctx, "user@example.com", "pencil", testRemote); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPasswordUncached is the argon2id cost: first login, or after a failure.
func BenchmarkCheckPasswordUncached(b *testing.B) {
	s, _ := newTestService(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.cache = newVerifiedCache(cacheSize, cacheTTL)
		if _, err := s.CheckPassword(ctx, "user@example.com", "pencil", testRemote); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSCRAM is a full server-side exchange; the client's PBKDF2 is done once, outside.
func BenchmarkSCRAM(b *testing.B) {
	s, _ := newTestService(b)
	s.newNonce = func() string { return "fixed" }
	c := &scramClient{username: "user@example.com", password: "pencil"}
	_, first, _ := c.Start()
	x, _ := s.NewSASL(context.Background(), "SCRAM-SHA-256", testRemote)
	serverFirst, _, err := x.Next(first)
	if err != nil {
		b.Fatal(err)
	}
	final, err := c.Next(serverFirst)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		x, _ := s.NewSASL(context.Background(), "SCRAM-SHA-256", testRemote)
		for _, msg := range [][]byte{first, final, {}} {
			if _, _, err := x.Next(msg); err != nil {
				b.Fatal(err)
			}
		}
		if x.Account().ID != 7 {
			b.Fatal("not authenticated")
		}
	}
}
