package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DNSServer answers A, MX and TXT questions from a fixed list of records, on
// UDP and TCP: the resolver of a benchmark run (scenario "dns"), so that a
// server under test finds its relay's MX and its senders' DKIM keys, SPF and
// DMARC records without the machine's resolver. Names it does not know get
// NXDOMAIN; known names without records of the type asked get an empty
// answer (NOERROR).
type DNSServer struct {
	udp, tcp *dns.Server
	zone     map[string][]dns.RR // by lower-case FQDN
	queries  atomic.Int64
}

// ParseRecord reads one record as "NAME TYPE VALUE": A (an IPv4 address), MX
// ("PREF HOST") or TXT (the rest of the line, split into 255-octet strings).
func ParseRecord(s string) (dns.RR, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return nil, fmt.Errorf("dns record %q: want NAME TYPE VALUE", s)
	}
	name := dns.Fqdn(strings.ToLower(f[0]))
	hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: 3600}
	switch strings.ToUpper(f[1]) {
	case "A":
		ip := net.ParseIP(f[2]).To4()
		if ip == nil || len(f) != 3 {
			return nil, fmt.Errorf("dns record %q: A wants one IPv4 address", s)
		}
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: ip}, nil
	case "MX":
		pref, err := strconv.ParseUint(f[2], 10, 16)
		if err != nil || len(f) != 4 {
			return nil, fmt.Errorf("dns record %q: MX wants PREFERENCE HOST", s)
		}
		hdr.Rrtype = dns.TypeMX
		return &dns.MX{Hdr: hdr, Preference: uint16(pref), Mx: dns.Fqdn(f[3])}, nil
	case "TXT":
		// The value is everything after the type, spaces kept.
		rest := strings.TrimSpace(s)
		for range 2 {
			rest = strings.TrimSpace(rest[len(strings.Fields(rest)[0]):])
		}
		var parts []string
		for len(rest) > 255 {
			parts, rest = append(parts, rest[:255]), rest[255:]
		}
		hdr.Rrtype = dns.TypeTXT
		return &dns.TXT{Hdr: hdr, Txt: append(parts, rest)}, nil
	}
	return nil, fmt.Errorf("dns record %q: type must be A, MX or TXT", s)
}

// StartDNS serves records on addr (host:port), UDP and TCP, until Close.
func StartDNS(addr string, records []dns.RR) (*DNSServer, error) {
	s := &DNSServer{zone: map[string][]dns.RR{}}
	for _, rr := range records {
		name := strings.ToLower(rr.Header().Name)
		s.zone[name] = append(s.zone[name], rr)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, err
	}
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: l, Handler: s}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	return s, nil
}

// Addr is the address the server answers on (UDP and TCP).
func (s *DNSServer) Addr() string { return s.udp.PacketConn.LocalAddr().String() }

// Queries is the number of questions answered so far.
func (s *DNSServer) Queries() int64 { return s.queries.Load() }

// Close stops both listeners.
func (s *DNSServer) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	rrs, known := s.zone[strings.ToLower(q.Name)]
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			c := dns.Copy(rr)
			c.Header().Name = q.Name
			m.Answer = append(m.Answer, c)
		}
	}
	if len(m.Answer) == 0 {
		// A negative answer carries the zone's SOA (RFC 2308 §3), as any authoritative
		// server's does: resolvers keep it for the SOA's negative TTL.
		m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
			Ns: "ns.invalid.", Mbox: "hostmaster.invalid.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300})
	}
	if w.RemoteAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size) // sets TC: the client asks again over TCP
	}
	_ = w.WriteMsg(m)
}

// DNSConfig configures RunDNS.
type DNSConfig struct {
	Listen  string   // host:port
	Records []string // "NAME TYPE VALUE" each (ParseRecord)
}

// RunDNS serves cfg.Records until ctx ends (the -timeout, or an interrupt:
// compare.sh stops it with SIGTERM) and reports the questions answered.
func RunDNS(ctx context.Context, cfg DNSConfig) (*Result, error) {
	var rrs []dns.RR
	for _, r := range cfg.Records {
		rr, err := ParseRecord(r)
		if err != nil {
			return nil, err
		}
		rrs = append(rrs, rr)
	}
	start := time.Now()
	s, err := StartDNS(cfg.Listen, rrs)
	if err != nil {
		return nil, err
	}
	<-ctx.Done()
	s.Close()
	res := &Result{Scenario: "dns", Target: s.Addr(), Unit: "query", Ops: s.Queries()}
	res.finish(time.Since(start))
	return res, nil
}
