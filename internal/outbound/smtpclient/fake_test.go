package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"

	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/outbound/mx"
)

// fake is a scripted SMTP server for the cases a real server library cannot play: missing
// extensions, garbage, stalls, odd replies. It answers one command at a time, which also
// serves pipelined clients.
type fake struct {
	greeting string   // default "220 fake ESMTP"
	ext      []string // EHLO keywords; nil: a plain "250 hello"
	noEHLO   bool     // refuse EHLO (502), take HELO
	helo     string   // reply to HELO (default 250)
	tls      *tls.Config
	startTLS string                   // reply to STARTTLS instead of 220, or "garbage" or "inject"
	mail     func(from string) string // reply to MAIL (default 250)
	rcpt     func(to string, n int) string
	data     string // reply to DATA (default 354)
	final    string // reply after the body (default 250)
	// stallData stops reading after the DATA reply; stallEnd reads the body but never
	// answers the final ".". Both hold until the test ends.
	stallData, stallEnd bool

	mu       sync.Mutex
	commands []string // every command line, per server
	bodies   []string
	conns    int
	done     chan struct{}
}

// startFakes starts one fake per server on 127.0.0.N:P, one port for all (the client
// dials every host on the same destination port, as in production). It returns the port.
func startFakes(t *testing.T, fakes ...*fake) int {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		var ls []net.Listener
		port := 0
		ok := true
		for i := range fakes {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i+2, port))
			if err != nil {
				ok = false
				break
			}
			port = l.Addr().(*net.TCPAddr).Port
			ls = append(ls, l)
		}
		if !ok {
			for _, l := range ls {
				l.Close()
			}
			continue
		}
		for i, f := range fakes {
			f.done = make(chan struct{})
			l := ls[i]
			var wg sync.WaitGroup
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					wg.Go(func() { f.serve(c) })
				}
			}()
			t.Cleanup(func() { close(f.done); l.Close(); wg.Wait() })
		}
		return port
	}
	t.Fatal("no common free port on 127.0.0.2 and up")
	return 0
}

func (f *fake) record(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, line)
}

func (f *fake) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

func (f *fake) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

func (f *fake) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func (f *fake) serve(c net.Conn) {
	defer c.Close()
	go func() { <-f.done; c.Close() }()
	if f.stallData {
		c.(*net.TCPConn).SetReadBuffer(8192) // so that a small message fills the buffers
	}
	f.mu.Lock()
	f.conns++
	f.mu.Unlock()
	var rw io.ReadWriter = c
	r := bufio.NewReader(rw)
	say := func(s string) { io.WriteString(rw, s+"\r\n") }
	greeting := f.greeting
	if greeting == "" {
		greeting = "220 fake ESMTP"
	}
	say(greeting)
	rcpts, accepted := 0, 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.record(line)
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if f.noEHLO {
				say("502 5.5.2 what?")
				continue
			}
			if f.ext == nil {
				say("250 hello")
				continue
			}
			lines := append([]string{"fake"}, f.ext...)
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				say("250" + sep + l)
			}
		case "HELO":
			if f.helo != "" {
				say(f.helo)
			} else {
				say("250 hello")
			}
		case "STARTTLS":
			switch f.startTLS {
			case "":
			case "garbage": // a handshake that fails
				say("220 go ahead")
				r.ReadByte() // the client hello has begun
				say("this is not a TLS handshake")
				continue
			case "inject": // a reply behind the 220, before any handshake
				say("220 go ahead\r\n250 injected")
				continue
			default:
				say(f.startTLS)
				continue
			}
			say("220 2.0.0 go ahead")
			tc := tls.Server(c, f.tls)
			if tc.Handshake() != nil {
				return
			}
			rw = tc
			r = bufio.NewReader(rw)
		case "MAIL":
			rcpts, accepted = 0, 0
			if f.mail != nil {
				say(f.mail(arg))
			} else {
				say("250 2.1.0 ok")
			}
		case "RCPT":
			rcpts++
			rep := "250 2.1.5 ok"
			if f.rcpt != nil {
				rep = f.rcpt(arg, rcpts)
			}
			if rep[0] == '2' {
				accepted++
			}
			say(rep)
		case "DATA":
			if f.data != "" {
				say(f.data)
				continue
			}
			if accepted == 0 {
				say("554 5.5.1 no valid recipients")
				continue
			}
			say("354 go ahead")
			if f.stallData {
				<-f.done
				return
			}
			var body strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			f.mu.Lock()
			f.bodies = append(f.bodies, body.String())
			f.mu.Unlock()
			if f.stallEnd {
				<-f.done
				return
			}
			if f.final != "" {
				say(f.final)
			} else {
				say("250 2.0.0 queued")
			}
		case "RSET", "NOOP":
			say("250 2.0.0 ok")
		case "QUIT":
			say("221 2.0.0 bye")
			return
		case "AUTH":
			// AUTH PLAIN with the initial response: user "u", password "p".
			if arg == "PLAIN AHUAcA==" {
				say("235 2.7.0 ok")
			} else {
				say("535 5.7.8 no")
			}
		default:
			say("500 5.5.1 unknown")
		}
	}
}

// staticRouter routes every domain to fixed hosts.
type staticRouter struct{ route *mx.Route }

func (s staticRouter) Route(context.Context, string) (*mx.Route, error) { return s.route, nil }

// route makes a route to 127.0.0.2, 127.0.0.3, ... in order, one host each.
func route(n int, policy mx.TLSPolicy) *mx.Route {
	r := &mx.Route{Domain: "example.test"}
	for i := range n {
		r.Hosts = append(r.Hosts, mx.Host{
			Name:  fmt.Sprintf("mx%d.example.test", i+1),
			Pref:  10 * (i + 1),
			Addrs: []netip.Addr{netip.MustParseAddr(fmt.Sprintf("127.0.0.%d", i+2))},
			TLS:   policy,
		})
	}
	return r
}

// testClient makes a client for route on port, with timeouts generous enough that a test
// machine under load never hits them: tests whose server stalls on purpose use stallClient.
func testClient(route *mx.Route, port int) *Client {
	const long = 30 * time.Second
	return clientWith(route, port, Timeouts{Connect: long, Greeting: long, EHLO: long, StartTLS: long,
		Mail: long, Rcpt: long, DataInit: long, DataBlock: long, DataEnd: long, Quit: long})
}

// stallClient is testClient with short timeouts for the steps the stall tests stop in: the
// greeting, a DATA block, the reply to the final dot. Short, but not so short that a healthy
// server on a loaded machine misses them (nothing asserts on the time).
func stallClient(route *mx.Route, port int) *Client {
	const long, short = 30 * time.Second, 2 * time.Second
	return clientWith(route, port, Timeouts{Connect: long, Greeting: short, EHLO: long, StartTLS: long,
		Mail: long, Rcpt: long, DataInit: long, DataBlock: short, DataEnd: short, Quit: short})
}

func clientWith(route *mx.Route, port int, t Timeouts) *Client {
	return New(Config{
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetWriteBuffer(8192) // a stalled reader blocks us soon
			}
			return c, err
		},
		Hostname: "client.test",
		Router:   staticRouter{route},
		Port:     port,
		Timeouts: t,
	})
}

func message(body string, rcpts ...string) *Message {
	m := &Message{From: "sender@origin.test", Body: strings.NewReader(body), Size: int64(len(body))}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, Recipient{Addr: r})
	}
	return m
}

// wantReplies checks the code and enhanced code of each recipient's reply.
func wantReplies(t *testing.T, res Result, want ...string) {
	t.Helper()
	if len(res.Recipients) != len(want) {
		t.Fatalf("%d replies, want %d", len(res.Recipients), len(want))
	}
	for i, w := range want {
		r := res.Recipients[i]
		got := strconv.Itoa(r.Code) + " " + r.Enhanced
		if !strings.HasPrefix(got+" "+r.Text, w) {
			t.Errorf("recipient %d: %s, want %q\ntrace: %q", i, r, w, res.Trace)
		}
	}
}
