package load

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testTLSConfig returns a server config with a fresh self-signed certificate
// for 127.0.0.1.
func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fake"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// trust returns a pool holding the certificate of a testTLSConfig.
func trust(t testing.TB, cfg *tls.Config) *x509.CertPool {
	t.Helper()
	cert, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// fakeSMTP is a go-smtp backend that counts what it accepts and checks that
// every message is valid and unique.
type fakeSMTP struct {
	t    testing.TB
	addr string
	auth *Account             // required login; nil: none
	tls  *tls.Config          // offered with STARTTLS, or used for implicit TLS
	onto func(string, []byte) // called for each accepted recipient, if set

	mu       sync.Mutex
	conns    map[*smtp.Conn]bool // connections seen (STARTTLS starts a second session on one)
	mails    int                 // MAIL FROM commands accepted
	messages int
	sizes    []int
	subjects map[string]bool
	rcpts    map[string]int
	problems []string // invalid or duplicate messages
}

type fakeSMTPOptions struct {
	auth     *Account
	tls      bool // offer STARTTLS
	implicit bool // listen with TLS from the first byte
	onto     func(rcpt string, msg []byte)
}

func newFakeSMTP(t testing.TB, o fakeSMTPOptions) *fakeSMTP {
	f := &fakeSMTP{t: t, auth: o.auth, onto: o.onto, subjects: map[string]bool{}, rcpts: map[string]int{}, conns: map[*smtp.Conn]bool{}}
	s := smtp.NewServer(f)
	s.Domain = "fake.test"
	s.AllowInsecureAuth = true
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	ln := listen(t)
	if o.tls || o.implicit {
		f.tls = testTLSConfig(t)
		s.TLSConfig = f.tls
	}
	if o.implicit {
		ln = tls.NewListener(ln, f.tls)
	}
	f.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return f
}

func (f *fakeSMTP) NewSession(c *smtp.Conn) (smtp.Session, error) {
	f.mu.Lock()
	f.conns[c] = true
	f.mu.Unlock()
	return &fakeSession{f: f}, nil
}

// connsAndMails returns how many connections were opened and how many
// transactions were started on them.
func (f *fakeSMTP) connsAndMails() (conns, mails int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns), f.mails
}

func (f *fakeSMTP) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.messages
}

func (f *fakeSMTP) check() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		f.t.Error("server saw:", p)
	}
}

type fakeSession struct {
	f      *fakeSMTP
	authed bool
	rcpts  []string
}

func (s *fakeSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *fakeSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if s.f.auth == nil || user != s.f.auth.User || pass != s.f.auth.Pass {
			return errors.New("bad login")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.f.auth != nil && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.f.mu.Lock()
	s.f.mails++
	s.f.mu.Unlock()
	return nil
}

// Rcpt refuses every address whose local part starts with "reject".
func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "reject") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	msg, err := mail.ReadMessage(bytes.NewReader(body))
	switch {
	case err != nil:
		f.problems = append(f.problems, fmt.Sprintf("unparsable message: %v", err))
	case msg.Header.Get("Message-ID") == "" || msg.Header.Get("Date") == "":
		f.problems = append(f.problems, "message without Message-ID or Date")
	case f.subjects[msg.Header.Get("Subject")]:
		f.problems = append(f.problems, "duplicate subject "+msg.Header.Get("Subject"))
	default:
		f.subjects[msg.Header.Get("Subject")] = true
	}
	f.messages++
	f.sizes = append(f.sizes, len(body))
	for _, to := range s.rcpts {
		f.rcpts[to]++
		if f.onto != nil {
			f.onto(to, body)
		}
	}
	return nil
}

func (s *fakeSession) Reset()        { s.rcpts = nil }
func (s *fakeSession) Logout() error { return nil }

// fakePOP3 is a minimal POP3 server (RFC 1939) holding messages in memory,
// with the per-maildrop lock of RFC 1939 §8.
type fakePOP3 struct {
	t        testing.TB
	addr     string
	pass     string
	tls      *tls.Config // STLS; with implicit, the listener's
	implicit bool
	lieSize  bool          // LIST announces one octet more than RETR sends
	bareLF   bool          // serve message lines ending in LF only
	idle     time.Duration // close connections idle this long
	dropAt   int64         // drop every connection when this many have done STLS

	mu     sync.Mutex
	conns  map[net.Conn]bool
	boxes  map[string][][]byte
	locked map[string]bool
	logins int

	open    atomic.Int64 // connections open now
	secured atomic.Int64 // connections that completed STLS
}

type fakePOP3Options struct {
	pass     string
	tls      bool // offer STLS
	implicit bool
	lieSize  bool
	bareLF   bool
	dropAt   int64
}

func newFakePOP3(t testing.TB, o fakePOP3Options) *fakePOP3 {
	f := &fakePOP3{t: t, pass: o.pass, implicit: o.implicit, lieSize: o.lieSize, bareLF: o.bareLF, dropAt: o.dropAt,
		idle: 10 * time.Second, conns: map[net.Conn]bool{}, boxes: map[string][][]byte{}, locked: map[string]bool{}}
	ln := listen(t)
	if o.tls || o.implicit {
		f.tls = testTLSConfig(t)
	}
	if o.implicit {
		ln = tls.NewListener(ln, f.tls)
	}
	f.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		f.closeAll()
		wg.Wait()
	})
	return f
}

// add puts a message in user's maildrop, creating it.
func (f *fakePOP3) add(user string, msg []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boxes[user] = append(f.boxes[user], msg)
}

// closeAll drops every open connection, as a server restart would.
func (f *fakePOP3) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

func (f *fakePOP3) count(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.boxes[user])
}

func (f *fakePOP3) serve(conn net.Conn) {
	f.open.Add(1)
	defer f.open.Add(-1)
	raw := conn // conn becomes the TLS connection after STLS
	defer func() {
		f.mu.Lock()
		delete(f.conns, raw)
		f.mu.Unlock()
		raw.Close()
	}()
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	reply := func(format string, args ...any) {
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(w, format+"\r\n", args...)
		w.Flush()
	}
	var (
		user     string
		maildrop [][]byte // snapshot at login
		deleted  map[int]bool
		secure   = f.implicit
	)
	defer func() {
		if maildrop != nil {
			f.mu.Lock()
			delete(f.locked, user)
			f.mu.Unlock()
		}
	}()
	message := func(arg string) (int, []byte, bool) {
		var n int
		if _, err := fmt.Sscan(arg, &n); err != nil || n < 1 || n > len(maildrop) || deleted[n] {
			reply("-ERR no such message")
			return 0, nil, false
		}
		return n, maildrop[n-1], true
	}
	reply("+OK fake POP3 ready")
	for {
		conn.SetReadDeadline(time.Now().Add(f.idle))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "STLS":
			if f.tls == nil || secure || maildrop != nil {
				reply("-ERR not now")
				continue
			}
			reply("+OK begin TLS")
			tc := tls.Server(conn, f.tls)
			conn.SetDeadline(time.Now().Add(10 * time.Second)) // f.idle bounds waiting for commands only
			if tc.Handshake() != nil {
				return
			}
			conn, secure = tc, true
			// The server's side of a TLS handshake ends after the client's,
			// so the clients have all seen their connection open by now.
			if f.secured.Add(1) == f.dropAt {
				f.closeAll()
			}
			r, w = bufio.NewReader(conn), bufio.NewWriter(conn)
		case "USER":
			user = arg
			reply("+OK")
		case "PASS":
			f.mu.Lock()
			switch {
			case arg != f.pass:
				reply("-ERR [AUTH] bad login")
			case f.locked[user]:
				reply("-ERR [IN-USE] maildrop locked")
			default:
				f.locked[user] = true
				f.logins++
				maildrop = append([][]byte{}, f.boxes[user]...)
				if maildrop == nil {
					maildrop = [][]byte{}
				}
				deleted = map[int]bool{}
				reply("+OK logged in")
			}
			f.mu.Unlock()
		case "STAT":
			if maildrop == nil {
				reply("-ERR log in first")
				continue
			}
			n, size := 0, 0
			for i, m := range maildrop {
				if !deleted[i+1] {
					n++
					size += len(m)
				}
			}
			reply("+OK %d %d", n, size)
		case "LIST":
			if maildrop == nil {
				reply("-ERR log in first")
				continue
			}
			fmt.Fprintf(w, "+OK\r\n")
			for i, m := range maildrop {
				if !deleted[i+1] {
					size := len(m)
					if f.lieSize {
						size++
					}
					fmt.Fprintf(w, "%d %d\r\n", i+1, size)
				}
			}
			reply(".")
		case "RETR":
			_, m, ok := message(arg)
			if !ok {
				continue
			}
			fmt.Fprintf(w, "+OK %d octets\r\n", len(m))
			for _, l := range strings.SplitAfter(string(m), "\r\n") {
				if l == "" {
					continue
				}
				if strings.HasPrefix(l, ".") {
					w.WriteString(".")
				}
				if f.bareLF {
					l = strings.TrimSuffix(l, "\r\n") + "\n"
				}
				w.WriteString(l)
			}
			reply(".")
		case "DELE":
			n, _, ok := message(arg)
			if !ok {
				continue
			}
			deleted[n] = true
			reply("+OK deleted")
		case "NOOP":
			if maildrop == nil {
				reply("-ERR log in first")
				continue
			}
			reply("+OK")
		case "QUIT":
			if maildrop != nil {
				// RFC 1939 §6: deletions happen in the UPDATE state, and the
				// lock goes with them, before the reply.
				f.mu.Lock()
				var keep [][]byte
				for i, m := range f.boxes[user] {
					if i >= len(maildrop) || !deleted[i+1] {
						keep = append(keep, m)
					}
				}
				f.boxes[user] = keep
				delete(f.locked, user)
				maildrop = nil
				f.mu.Unlock()
			}
			reply("+OK bye")
			return
		default:
			reply("-ERR unknown command")
		}
	}
}
