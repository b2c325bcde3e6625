package sieve

import (
	"testing"
)

const benchMessage = `Return-Path: <alice@remote.example>
Received: from mx.remote.example by mx.example.test; Mon, 7 Dec 2026 12:00:00 +0000
From: Alice <alice@remote.example>
To: bob@example.test
Subject: Quarterly figures
Date: Mon, 7 Dec 2026 12:00:00 +0000
Message-ID: <q4@remote.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello Bob, here are the figures you asked for. Nothing to unsubscribe from.
`

// BenchmarkRun20Rules is the script's cost per message, parse excluded (delivery caches
// parsed scripts).
func BenchmarkRun20Rules(b *testing.B) {
	s, err := Parse(Rules20(), DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	msg := testMessage(benchMessage)
	env := Envelope{From: "alice@remote.example", To: "bob@example.test"}
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Run(env, msg, DefaultLimits())
		if err != nil || len(res.Deliveries) != 1 {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkParse20Rules is the cost of parsing it (once per script content).
func BenchmarkParse20Rules(b *testing.B) {
	src := Rules20()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}
