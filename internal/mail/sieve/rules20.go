package sieve

import (
	"fmt"
	"strings"
)

// Rules20 is a realistic 20-rule script (list filing by header, sender rules by address, a
// body test, flags and variables) that the benchmarks of this package, of delivery and of
// the SMTP server share, so that their figures are about the same script.
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
