package mailtest

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNS is a test DNS server on one loopback port (UDP and TCP), answering like a recursive
// resolver would: from a zone of plain maps, following CNAMEs within the zone, with switches
// for the ways real answers go wrong. Tests point the outbound resolver at Addr; several
// Petrel instances of an end-to-end test find each other's MX, A, TXT and TLSA records here.
//
// Zone keys are lower-case names without the trailing dot; queries match them whatever their
// case. The zone may be changed while the server runs (Update); every query sees a
// consistent zone.
type DNS struct {
	Addr string // host:port, the same port for UDP and TCP

	mu      sync.Mutex
	zone    Zone
	queries []string // "TYPE name" of every query, in arrival order
	udp     *dns.Server
	tcp     *dns.Server
}

// Zone is the content of the test DNS server. Keys are domain names.
type Zone struct {
	MX    map[string][]MX
	A     map[string][]string // IPv4 addresses, textual
	AAAA  map[string][]string // IPv6 addresses, textual
	TXT   map[string][]string // one string per TXT record (split into 255-byte pieces on the wire)
	CNAME map[string]string
	TLSA  map[string][]TLSA // e.g. "_25._tcp.mx.example.test"
	SRV   map[string][]SRV  // e.g. "_imaps._tcp.example.test"
	// PTR maps an IP address (textual, "192.0.2.1" or "2001:db8::1") to its names; queries
	// for its reverse name (in-addr.arpa, ip6.arpa) find them.
	PTR map[string][]string

	// Fail makes queries fail instead of answering. The key is a name (all types) or
	// "TYPE name" (one type, e.g. "MX example.test").
	Fail map[string]Failure
	// Authentic names get the AD bit in their answers when the query asks for it (AD or DO
	// set, RFC 6840 §5.7), as a validating resolver does for a DNSSEC-signed zone. An
	// answer carries AD only if every name in it (the CNAME chain too) is authentic.
	// AllAuthentic makes every name authentic.
	Authentic    map[string]bool
	AllAuthentic bool
	// NegativeTTL, when set, puts an SOA record into the authority section of every
	// negative answer (NXDOMAIN and NODATA), with this MINIMUM and this TTL, as an
	// authoritative server's answer carries one (RFC 2308 §3); a resolver caches the
	// negative answer for that long. Zero: negative answers carry no SOA.
	NegativeTTL uint32
}

// MX is one MX record.
type MX struct {
	Pref uint16
	Host string
}

// TLSA is one TLSA record (RFC 6698 §2.1). It has the fields of mx.TLSA, so a test writes
// mailtest.TLSA(mx.TLSAFor(cert, 3, 1, 1)).
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// SRV is one SRV record (RFC 2782); Target "." says the service is not offered.
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// Failure is a way a query can fail.
type Failure int

const (
	// ServFail answers SERVFAIL, as a resolver does when it cannot reach the authority or
	// DNSSEC validation fails.
	ServFail Failure = iota + 1
	// Timeout never answers.
	Timeout
	// TruncateUDP answers over UDP with the TC bit and no records, and fully over TCP: a
	// client must retry over TCP (RFC 7766).
	TruncateUDP
	// TruncateAlways sets TC on every answer, TCP too: a broken server.
	TruncateAlways
	// Huge answers with a thousand records, as many as fit in a DNS message (64 KiB over TCP;
	// UDP answers are truncated to the client's buffer size, so the client retries over TCP).
	Huge
	// Refused answers REFUSED.
	Refused
	// Garbage answers with bytes that are not a DNS message.
	Garbage
)

// StartDNS starts a DNS server on 127.0.0.1 on a free port; t.Cleanup stops it.
func StartDNS(t testing.TB, zone Zone) *DNS {
	t.Helper()
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil { // the TCP port of the same number is taken: try another
			pc.Close()
			lastErr = err
			continue
		}
		return startDNS(t, zone, pc, l)
	}
	t.Fatalf("no free port for UDP and TCP: %v", lastErr)
	return nil
}

// StartDNSOn starts a DNS server on addr (host:port, e.g. "127.0.0.1:53" inside a network
// namespace of the test); t.Cleanup stops it.
func StartDNSOn(t testing.TB, addr string, zone Zone) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	return startDNS(t, zone, pc, l)
}

func startDNS(t testing.TB, zone Zone, pc net.PacketConn, l net.Listener) *DNS {
	d := &DNS{Addr: pc.LocalAddr().String(), zone: zone}
	started := make(chan struct{}, 2)
	d.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serveUDP), NotifyStartedFunc: func() { started <- struct{}{} }}
	d.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(d.serveTCP), NotifyStartedFunc: func() { started <- struct{}{} },
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}
	go d.udp.ActivateAndServe()
	go d.tcp.ActivateAndServe()
	<-started
	<-started
	t.Cleanup(func() {
		d.udp.Shutdown()
		d.tcp.Shutdown()
	})
	return d
}

// Update changes the zone under the server's lock.
func (d *DNS) Update(change func(z *Zone)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	change(&d.zone)
}

// Queries returns the queries received so far, each as "TYPE name" (name lower case,
// without the trailing dot).
func (d *DNS) Queries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.queries...)
}

func (d *DNS) serveUDP(w dns.ResponseWriter, r *dns.Msg) { d.serve(w, r, false) }
func (d *DNS) serveTCP(w dns.ResponseWriter, r *dns.Msg) { d.serve(w, r, true) }

// maxCNAMEHops is how far the server follows a CNAME chain inside one answer; a longer
// chain (or a loop) ends the answer with a CNAME, and the client must ask again.
const maxCNAMEHops = 8

func (d *DNS) serve(w dns.ResponseWriter, r *dns.Msg, overTCP bool) {
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := norm(q.Name)
	typ := dns.TypeToString[q.Qtype]

	d.mu.Lock()
	d.queries = append(d.queries, typ+" "+name)
	failure, failed := d.zone.Fail[typ+" "+name]
	if !failed {
		failure, failed = d.zone.Fail[name]
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	authentic := d.answer(m, q, name, failure == Huge)
	d.mu.Unlock()

	wantAD := r.AuthenticatedData
	if opt := r.IsEdns0(); opt != nil {
		wantAD = wantAD || opt.Do()
	}
	m.AuthenticatedData = authentic && wantAD

	switch {
	case failed && failure == ServFail:
		m = new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
	case failed && failure == Refused:
		m = new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
	case failed && failure == Timeout:
		return
	case failed && failure == Garbage:
		w.Write([]byte("this is not a DNS message, and it goes on and on"))
		return
	case failed && (failure == TruncateAlways || failure == TruncateUDP && !overTCP):
		m.Answer = nil
		m.Truncated = true
	}
	if !overTCP {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size) // sets TC when records had to go
	} else if m.Len() > dns.MaxMsgSize {
		// A full TCP message: as many records as fit, without TC, so the client has to
		// cope with a 64 KiB answer of valid records.
		m.Truncate(dns.MaxMsgSize)
		m.Truncated = failed && failure == TruncateAlways
	}
	w.WriteMsg(m)
}

// answer fills m with the records for q, following CNAMEs within the zone. It reports
// whether every name of the answer is authentic. The caller holds d.mu.
func (d *DNS) answer(m *dns.Msg, q dns.Question, name string, huge bool) bool {
	z := &d.zone
	authentic := true
	exists := false
	for hop := 0; ; hop++ {
		authentic = authentic && (z.AllAuthentic || z.Authentic[name])
		target, isAlias := z.CNAME[name]
		if isAlias && q.Qtype != dns.TypeCNAME {
			exists = true
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: dns.Fqdn(norm(target))})
			name = norm(target)
			if hop+1 >= maxCNAMEHops {
				return authentic
			}
			continue
		}
		break
	}
	rrs, found := d.records(name, q.Qtype)
	exists = exists || found
	if huge {
		rrs = hugeAnswer(name, q.Qtype)
	}
	m.Answer = append(m.Answer, rrs...)
	if !exists && len(m.Answer) == 0 {
		m.Rcode = dns.RcodeNameError // NXDOMAIN
	}
	if len(rrs) == 0 && z.NegativeTTL > 0 {
		// The SOA of the zone the name would be in: "test." stands for every test zone.
		m.Ns = append(m.Ns, &dns.SOA{
			Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.NegativeTTL},
			Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400,
			Minttl: z.NegativeTTL,
		})
	}
	return authentic
}

// records returns the records of type qtype at name, and whether the name exists at all.
func (d *DNS) records(name string, qtype uint16) ([]dns.RR, bool) {
	z := &d.zone
	var out []dns.RR
	for _, mx := range z.MX[name] {
		if qtype == dns.TypeMX {
			out = append(out, &dns.MX{Hdr: hdr(name, dns.TypeMX), Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
		}
	}
	for _, a := range z.A[name] {
		if qtype == dns.TypeA {
			out = append(out, &dns.A{Hdr: hdr(name, dns.TypeA), A: net.ParseIP(a).To4()})
		}
	}
	for _, a := range z.AAAA[name] {
		if qtype == dns.TypeAAAA {
			out = append(out, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: net.ParseIP(a)})
		}
	}
	for _, txt := range z.TXT[name] {
		if qtype == dns.TypeTXT {
			out = append(out, &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: split255(txt)})
		}
	}
	for _, r := range z.TLSA[name] {
		if qtype == dns.TypeTLSA {
			out = append(out, &dns.TLSA{Hdr: hdr(name, dns.TypeTLSA), Usage: r.Usage, Selector: r.Selector,
				MatchingType: r.MatchingType, Certificate: hex.EncodeToString(r.Data)})
		}
	}
	for _, r := range z.SRV[name] {
		if qtype == dns.TypeSRV {
			out = append(out, &dns.SRV{Hdr: hdr(name, dns.TypeSRV), Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: dns.Fqdn(r.Target)})
		}
	}
	ptrs := z.PTR[reverseToAddr(name)]
	for _, p := range ptrs {
		if qtype == dns.TypePTR {
			out = append(out, &dns.PTR{Hdr: hdr(name, dns.TypePTR), Ptr: dns.Fqdn(p)})
		}
	}
	if t, ok := z.CNAME[name]; ok && qtype == dns.TypeCNAME {
		out = append(out, &dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: dns.Fqdn(norm(t))})
	}
	exists := len(ptrs) > 0 || len(z.MX[name])+len(z.A[name])+len(z.AAAA[name])+len(z.TXT[name])+len(z.TLSA[name])+len(z.SRV[name]) > 0
	if _, ok := z.CNAME[name]; ok {
		exists = true
	}
	// A name with records below it exists too (an "empty non-terminal", NODATA not NXDOMAIN).
	for _, m := range []map[string][]string{z.A, z.AAAA, z.TXT} {
		for k := range m {
			exists = exists || strings.HasSuffix(norm(k), "."+name)
		}
	}
	return out, exists
}

// hugeAnswer makes a thousand records of the type.
func hugeAnswer(name string, qtype uint16) []dns.RR {
	var out []dns.RR
	for i := range 1000 { // never fits UDP; MX, TXT and TLSA answers exceed 64 KiB
		switch qtype {
		case dns.TypeMX:
			out = append(out, &dns.MX{Hdr: hdr(name, dns.TypeMX), Preference: uint16(i % 7),
				Mx: fmt.Sprintf("mx%d.a-rather-long-label-to-fill-the-message.%s.", i, name)})
		case dns.TypeA:
			out = append(out, &dns.A{Hdr: hdr(name, dns.TypeA), A: net.IPv4(127, 1, byte(i>>8), byte(i))})
		case dns.TypeAAAA:
			ip := netip.AddrFrom16([16]byte{0xfd, 15: byte(i), 14: byte(i >> 8)})
			out = append(out, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()})
		case dns.TypeTXT:
			out = append(out, &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: []string{strings.Repeat("x", 200)}})
		case dns.TypeTLSA:
			out = append(out, &dns.TLSA{Hdr: hdr(name, dns.TypeTLSA), Usage: 3, Selector: 1, MatchingType: 1,
				Certificate: strings.Repeat("ab", 32)})
		}
	}
	return out
}

func hdr(name string, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: typ, Class: dns.ClassINET, Ttl: 60}
}

func norm(name string) string { return strings.TrimSuffix(strings.ToLower(name), ".") }

// split255 cuts a TXT record's text into the character strings of at most 255 bytes that the
// wire format allows (RFC 1035 §3.3.14); readers concatenate them again (RFC 7208 §3.3).
func split255(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// reverseToAddr turns a reverse-lookup name (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5
// ip6.arpa) into the textual address it names, "" for any other name.
func reverseToAddr(name string) string {
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa"):
		o := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa"), ".")
		if len(o) != 4 {
			return ""
		}
		a, err := netip.ParseAddr(o[3] + "." + o[2] + "." + o[1] + "." + o[0])
		if err != nil {
			return ""
		}
		return a.String()
	case strings.HasSuffix(name, ".ip6.arpa"):
		n := strings.Split(strings.TrimSuffix(name, ".ip6.arpa"), ".")
		if len(n) != 32 {
			return ""
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			b.WriteString(n[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		a, err := netip.ParseAddr(b.String())
		if err != nil {
			return ""
		}
		return a.String()
	}
	return ""
}
