package deliver

import (
	"bytes"
	"strings"
	"testing"

	"petrel/internal/store"
)

// The cost of Sieve at delivery: the same message delivered to one account without a
// script and with a 20-rule script (the sieve package's Rules20, copied here to keep
// the packages' tests apart), through a real store, several deliveries at once so that
// the store's group commit works as under SMTP load.

const rules20 = `require ["fileinto", "imap4flags", "variables", "envelope", "body", "copy"];
if header :contains "list-id" "list0.example.org" { fileinto "Lists/0"; stop; }
if header :contains "list-id" "list1.example.org" { fileinto "Lists/1"; stop; }
if header :contains "list-id" "list2.example.org" { fileinto "Lists/2"; stop; }
if header :contains "list-id" "list3.example.org" { fileinto "Lists/3"; stop; }
if header :contains "list-id" "list4.example.org" { fileinto "Lists/4"; stop; }
if header :contains "list-id" "list5.example.org" { fileinto "Lists/5"; stop; }
if header :contains "list-id" "list6.example.org" { fileinto "Lists/6"; stop; }
if header :contains "list-id" "list7.example.org" { fileinto "Lists/7"; stop; }
if address :domain :is "from" "vendor0.example" { addflag "$Vendor0"; }
if address :domain :is "from" "vendor1.example" { addflag "$Vendor1"; }
if address :domain :is "from" "vendor2.example" { addflag "$Vendor2"; }
if address :domain :is "from" "vendor3.example" { addflag "$Vendor3"; }
if address :domain :is "from" "vendor4.example" { addflag "$Vendor4"; }
if address :domain :is "from" "vendor5.example" { addflag "$Vendor5"; }
if header :matches "subject" "*[SPAM]*" { fileinto "Junk"; stop; }
if envelope :is "from" "" { fileinto "Bounces"; stop; }
if size :over 5M { addflag "$Big"; }
if body :contains "unsubscribe" { addflag "$Newsletter"; }
if header :matches "from" "*@*" { set "sender_domain" "${2}"; }
if anyof (header :contains "x-priority" "1", header :is "importance" "high") { addflag "\\Flagged"; }
`

func benchmarkDeliver(b *testing.B, script string) {
	w := newSieveWorld(b, store.SendingLimits{})
	if script != "" {
		w.script("ann@example.test", script)
	}
	msg := []byte(strings.ReplaceAll(plainMsg, "\n", "\r\n") + strings.Repeat("Some text of an ordinary message body.\r\n", 40))
	target := []store.Target{{AccountID: w.accs["ann@example.test"].ID, Mailbox: store.Inbox}}
	b.SetParallelism(8) // 16 deliveries at once on 2 cores, as an SMTP load has
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := w.d.Deliver(w.ctx, Envelope{MailFrom: "carl@remote.example", Targets: target}, memBody{bytes.NewReader(msg)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkDeliverNoScript(b *testing.B) { benchmarkDeliver(b, "") }
func BenchmarkDeliver20Rules(b *testing.B)  { benchmarkDeliver(b, rules20) }
