package sieve

import (
	"fmt"
	"strings"
	"testing"
)

// Rules20 is a realistic 20-rule script: list filing by header, sender rules by address,
// a body test, flags and variables. Delivery benchmarks use it too.
func Rules20() string {
	var b strings.Builder
	b.WriteString(`require ["fileinto", "imap4flags", "variables", "envelope", "body", "copy"];` + "\n")
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "if header :contains \"list-id\" \"list%d.example.org\" { fileinto \"Lists/%d\"; stop; }\n", i, i)
	}
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "if address :domain :is \"from\" \"vendor%d.example\" { addflag \"$Vendor%d\"; }\n", i, i)
	}
	b.WriteString(`if header :matches "subject" "*[SPAM]*" { fileinto "Junk"; stop; }` + "\n")
	b.WriteString(`if envelope :is "from" "" { fileinto "Bounces"; stop; }` + "\n")
	b.WriteString(`if size :over 5M { addflag "$Big"; }` + "\n")
	b.WriteString(`if body :contains "unsubscribe" { addflag "$Newsletter"; }` + "\n")
	b.WriteString(`if header :matches "from" "*@*" { set "sender_domain" "${2}"; }` + "\n")
	b.WriteString(`if anyof (header :contains "x-priority" "1", header :is "importance" "high") { addflag "\\Flagged"; }` + "\n")
	return b.String()
}

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
