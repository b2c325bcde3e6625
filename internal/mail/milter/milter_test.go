package milter_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"petrel/internal/mail/door"
	"petrel/internal/mail/milter"
)

// spamMilter is a milter written with go-milter's server side: it refuses a message whose
// body holds "SPAM", tempfails the recipient "later@", quarantines "QUARANTINE", and adds
// a header with what it saw.
type spamMilter struct {
	gomilter.NoOpMilter
	mu   *sync.Mutex
	log  *[]string
	body bytes.Buffer
	from string
}

func (m *spamMilter) record(s string) {
	m.mu.Lock()
	*m.log = append(*m.log, s)
	m.mu.Unlock()
}

func (m *spamMilter) Connect(host, family string, port uint16, addr net.IP, _ *gomilter.Modifier) (gomilter.Response, error) {
	m.record("connect " + host + " " + family + " " + addr.String())
	return gomilter.RespContinue, nil
}

func (m *spamMilter) Helo(name string, _ *gomilter.Modifier) (gomilter.Response, error) {
	m.record("helo " + name)
	return gomilter.RespContinue, nil
}

func (m *spamMilter) MailFrom(from string, _ *gomilter.Modifier) (gomilter.Response, error) {
	m.from = from
	m.record("mail " + from)
	return gomilter.RespContinue, nil
}

func (m *spamMilter) RcptTo(rcpt string, _ *gomilter.Modifier) (gomilter.Response, error) {
	m.record("rcpt " + rcpt)
	if strings.HasPrefix(rcpt, "later@") {
		return gomilter.NewResponseStr('y', "451 4.7.1 come back later"), nil
	}
	return gomilter.RespContinue, nil
}

func (m *spamMilter) Header(name, value string, _ *gomilter.Modifier) (gomilter.Response, error) {
	m.record("header " + name + "=" + value)
	return gomilter.RespContinue, nil
}

func (m *spamMilter) Headers(textproto.MIMEHeader, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (m *spamMilter) BodyChunk(chunk []byte, _ *gomilter.Modifier) (gomilter.Response, error) {
	m.body.Write(chunk)
	return gomilter.RespContinue, nil
}

func (m *spamMilter) Body(mod *gomilter.Modifier) (gomilter.Response, error) {
	body := m.body.String()
	m.body.Reset()
	m.record("body " + strings.TrimSpace(body))
	switch {
	case strings.Contains(body, "SPAM"):
		return gomilter.NewResponseStr('y', "550 5.7.1 spam detected"), nil
	case strings.Contains(body, "QUARANTINE"):
		mod.Quarantine("looks odd")
	}
	mod.AddHeader("X-Milter", "seen "+m.from)
	mod.ChangeHeader(1, "Subject", "[milter] hello")
	return gomilter.RespAccept, nil
}

func startMilter(t *testing.T, log *[]string, mu *sync.Mutex) (network, addr string) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "milter.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return &spamMilter{mu: mu, log: log} },
		Actions:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix", l.Addr().String()
}

const header = "From: <a@example.org>\r\nSubject: hello\r\n\tfolded\r\n\r\n"

func conn() door.ConnInfo {
	return door.ConnInfo{IP: netip.MustParseAddr("192.0.2.7"), Port: 4321, Helo: "client.example.org", QueueID: "q1", Ours: "mx.example.test"}
}

func run(t *testing.T, f door.Filter, rcpt, body string) (door.Verdict, door.Verdict, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := f.Begin(ctx, conn())
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	defer s.Close()
	if v, err := s.Mail(ctx, "a@example.org"); err != nil || v.Action != door.FilterContinue {
		t.Fatalf("Mail: %+v %v", v, err)
	}
	rv, err := s.Rcpt(ctx, rcpt)
	if err != nil {
		t.Fatalf("Rcpt: %v", err)
	}
	dv, err := s.Data(ctx, []byte(header), strings.NewReader(body))
	return rv, dv, err
}

func TestMilter(t *testing.T) {
	var mu sync.Mutex
	var log []string
	network, addr := startMilter(t, &log, &mu)
	f := milter.New("test", network, addr)
	if f.Name() != "milter:test" {
		t.Errorf("Name %q", f.Name())
	}

	rv, dv, err := run(t, f, "u@example.test", "Hello.\r\n")
	if err != nil || rv.Action != door.FilterContinue || dv.Action != door.FilterAccept {
		t.Fatalf("clean message: %+v %+v %v", rv, dv, err)
	}
	hdr := string(door.ApplyHeaderMods([]byte(header), dv.Mods))
	if hdr != "From: <a@example.org>\r\nSubject: [milter] hello\r\nX-Milter: seen a@example.org\r\n\r\n" {
		t.Errorf("modified header %q", hdr)
	}
	mu.Lock()
	got := strings.Join(log, "|")
	log = nil
	mu.Unlock()
	want := "connect [192.0.2.7] tcp4 192.0.2.7|helo client.example.org|mail a@example.org|rcpt u@example.test|" +
		"header From=<a@example.org>|header Subject=hello\n\tfolded|body Hello."
	if got != want {
		t.Errorf("the milter saw\n%q\nwant\n%q", got, want)
	}

	_, dv, err = run(t, f, "u@example.test", "This is SPAM.\r\n")
	if err != nil || dv.Action != door.FilterReject || dv.Code != 550 || dv.Text != "5.7.1 spam detected" {
		t.Errorf("spam: %+v %v", dv, err)
	}
	_, dv, err = run(t, f, "u@example.test", "QUARANTINE me\r\n")
	if err != nil || dv.Action != door.FilterQuarantine || dv.Result != "quarantine:looks odd" {
		t.Errorf("quarantine: %+v %v", dv, err)
	}
	rv, _, _ = run(t, f, "later@example.test", "Hello.\r\n")
	if rv.Action != door.FilterTempFail || rv.Text != "4.7.1 come back later" {
		t.Errorf("tempfail at RCPT: %+v", rv)
	}
}

// A milter that accepts connections and never answers: every stage ends with its context.
func TestMilterSilent(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "silent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = milter.New("silent", "unix", l.Addr().String()).Begin(ctx, conn())
	if err == nil {
		t.Fatal("Begin succeeded against a milter that never answers")
	}
	// A milter that is not there at all.
	_, err = milter.New("gone", "unix", filepath.Join(t.TempDir(), "none.sock")).Begin(context.Background(), conn())
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("absent milter: %v", err)
	}
}

// recordingListener keeps the octets every accepted connection reads: what the MTA sent.
type recordingListener struct {
	net.Listener
	mu  sync.Mutex
	got bytes.Buffer
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return &recordingConn{Conn: c, l: l}, err
}

type recordingConn struct {
	net.Conn
	l *recordingListener
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.got.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// codes lists the command codes of the packets sent to the milter, macros as "D"+stage.
func (l *recordingListener) codes() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.got.Bytes()
	var out []string
	for len(b) >= 5 {
		n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		if n < 1 || 4+n > len(b) {
			break
		}
		code := string(b[4])
		if code == "D" && n > 1 {
			code += string(b[5])
		}
		out = append(out, code)
		b = b[4+n:]
	}
	return strings.Join(out, " ")
}

// TestMilterDataEvent: the milter gets every event in protocol order, the DATA event
// (SMFIC_DATA) between the last recipient and the first header field; a milter that asks
// for no DATA event (SMFIP_NODATA) gets none.
func TestMilterDataEvent(t *testing.T) {
	for _, tc := range []struct {
		protocol gomilter.OptProtocol
		want     string
	}{
		{0, "O DC C H DM M DR R T L L N B E"},
		{gomilter.OptNoData, "O DC C H DM M DR R L L N B E"},
	} {
		inner, err := net.Listen("unix", filepath.Join(t.TempDir(), "milter.sock"))
		if err != nil {
			t.Fatal(err)
		}
		l := &recordingListener{Listener: inner}
		var mu sync.Mutex
		var log []string
		srv := &gomilter.Server{
			NewMilter: func() gomilter.Milter { return &spamMilter{mu: &mu, log: &log} },
			Actions:   gomilter.OptAddHeader,
			Protocol:  tc.protocol,
		}
		go srv.Serve(l)
		rv, dv, err := run(t, milter.New("rec", "unix", inner.Addr().String()), "u@example.test", "Hello.\r\n")
		srv.Close()
		if err != nil || rv.Action != door.FilterContinue || dv.Action != door.FilterAccept {
			t.Fatalf("protocol %#x: %+v %+v %v", tc.protocol, rv, dv, err)
		}
		// Close sends abort or quit after the end of message; only the message matters here.
		if got := l.codes(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("protocol %#x: the milter got %q, want %q first", tc.protocol, got, tc.want)
		}
	}
}

// rawMilter is a milter written on the wire protocol itself, for the events go-milter's
// server side does not take (SMFIC_UNKNOWN): it negotiates protocol version 6 with the
// given protocol flags, answers every event with continue and SMFIC_UNKNOWN with the given
// reply, and records the packets it got as "code data".
func rawMilter(t *testing.T, protocol uint32, unknownReply []byte) (addr string, got func() []string) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "raw.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var seen []string
	packet := func(c net.Conn, code byte, data []byte) {
		n := uint32(len(data) + 1)
		c.Write(append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), code}, data...))
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var hdr [4]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					pkt := make([]byte, int(hdr[0])<<24|int(hdr[1])<<16|int(hdr[2])<<8|int(hdr[3]))
					if _, err := io.ReadFull(c, pkt); err != nil || len(pkt) == 0 {
						return
					}
					mu.Lock()
					seen = append(seen, string(pkt[0])+" "+string(pkt[1:]))
					mu.Unlock()
					switch pkt[0] {
					case 'O':
						packet(c, 'O', []byte{0, 0, 0, 6, 0, 0, 0, 0, byte(protocol >> 24), byte(protocol >> 16), byte(protocol >> 8), byte(protocol)})
					case 'D', 'A':
					case 'Q':
						return
					case 'U':
						if protocol&uint32(gomilter.OptNoUnknownReply) == 0 {
							packet(c, unknownReply[0], unknownReply[1:])
						}
					default:
						packet(c, 'c', nil)
					}
				}
			}()
		}
	}()
	return l.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// TestMilterUnknown: an unknown SMTP command reaches the milter as SMFIC_UNKNOWN, the line
// NUL-terminated, and its reply becomes a verdict; SMFIP_NOUNKNOWN keeps it away and
// SMFIP_NR_UNKN is not waited for.
func TestMilterUnknown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol uint32
		reply    []byte
		sent     bool
		want     door.FilterAction
	}{
		{"continue", 0, []byte("c"), true, door.FilterContinue},
		{"reply code", 0, []byte("y550 5.7.1 go away\x00"), true, door.FilterReject},
		{"progress first", 0, []byte("p"), true, -1}, // only progress, then nothing: the stage ends with its context
		{"not wanted", uint32(gomilter.OptNoUnknown), nil, false, door.FilterContinue},
		{"no reply", uint32(gomilter.OptNoUnknownReply), nil, true, door.FilterContinue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := rawMilter(t, tc.protocol, tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := milter.New("raw", "unix", addr).Begin(ctx, conn())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Mail(ctx, "a@example.org"); err != nil {
				t.Fatal(err)
			}
			uctx := ctx
			if tc.want < 0 {
				var c context.CancelFunc
				uctx, c = context.WithTimeout(ctx, 200*time.Millisecond)
				defer c()
			}
			v, err := s.(door.UnknownCommander).Unknown(uctx, "XYZZY plugh\x00")
			switch {
			case tc.want < 0 && err == nil:
				t.Errorf("a milter that only reports progress: %+v, want an error when the stage ends", v)
			case tc.want >= 0 && (err != nil || v.Action != tc.want):
				t.Errorf("Unknown = %+v, %v; want action %d", v, err, tc.want)
			}
			if tc.want >= 0 {
				// An event with a reply: once it is answered, the milter has read the one before.
				if _, err := s.Rcpt(ctx, "u@example.test"); err != nil {
					t.Fatal(err)
				}
			}
			sent := false
			for _, p := range got() {
				if p == "U XYZZY plugh \x00" {
					sent = true
				}
			}
			if sent != tc.sent {
				t.Errorf("SMFIC_UNKNOWN sent: %v, want %v (the milter got %q)", sent, tc.sent, got())
			}
		})
	}
}
