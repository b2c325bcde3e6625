// Package milter makes Petrel an MTA that consults milters (Sendmail's mail filter
// protocol, version 6) such as rspamd's proxy, spamass-milter, OpenDKIM or clamav-milter:
// a door.Filter over emersion/go-milter's client.
//
// One milter connection serves one SMTP transaction: Begin dials, negotiates and passes
// the connect and helo stages; Mail and Rcpt pass the envelope as the SMTP commands come;
// Data passes the header fields, end of header, the body in chunks and end of message,
// and returns the milter's last word with its modifications. Close aborts what is
// unfinished and quits.
//
// Deadlines: go-milter sets a fresh deadline before each packet it reads or writes, so a
// milter that keeps sending "progress" could hold a stage for ever. The connection is
// therefore wrapped so that no deadline it is given goes past the deadline of the stage's
// context, and a cancelled context expires it at once. A milter that is down, slow or
// talking nonsense ends as an error within the stage's time; the session applies the
// policy.
//
// What we take from the milter: accept, continue, reject, tempfail, discard, reply codes,
// quarantine, and header changes (add, insert, change, delete). We do not offer body
// replacement, recipient or sender changes: the body is stored once, immutable, and the
// envelope has already been resolved and checked, so the negotiation masks those actions
// out and the milter knows not to ask.
package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-milter"

	"petrel/internal/mail/door"
)

// Filter is one configured milter.
type Filter struct {
	name    string
	network string // "tcp" or "unix"
	address string
}

var _ door.Filter = (*Filter)(nil)

// New returns a filter for the milter at address on network ("tcp" or "unix"); name is
// for the log.
func New(name, network, address string) *Filter {
	return &Filter{name: name, network: network, address: address}
}

// Name implements door.Filter.
func (f *Filter) Name() string { return "milter:" + f.name }

// actions are the modifications we accept from a milter.
const actions = milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine

// Begin implements door.Filter: dial, negotiate, connect and helo.
func (f *Filter) Begin(ctx context.Context, c door.ConnInfo) (door.FilterSession, error) {
	d := &dialer{ctx: ctx}
	cl := milter.NewClientWithOptions(f.network, f.address, milter.ClientOptions{
		Dialer: d,
		// Per packet; the stage's context bounds the whole (boundConn).
		ReadTimeout: time.Hour, WriteTimeout: time.Hour,
		// No protocol steps are offered for leaving out: go-milter's client refuses to talk
		// to a milter of a version before 6 when any flag of version 6 is offered. What a
		// milter asks for anyway (SMFIP_NODATA, ...) is honoured.
		ActionMask: actions,
	})
	cs, err := cl.Session()
	if err != nil {
		if d.conn != nil {
			d.conn.Close()
		}
		return nil, err
	}
	s := &session{cs: cs, conn: d.conn}
	v, err := s.stage(ctx, func() (*milter.Action, error) {
		host := c.Hostname
		if host == "" {
			host = "[" + c.IP.String() + "]" // Postfix's convention for an unknown name
		}
		family := milter.FamilyInet
		if c.IP.Is6() {
			family = milter.FamilyInet6
		}
		if !c.IP.IsValid() {
			family = milter.FamilyUnknown
		}
		if err := cs.Macros(milter.CodeConn, "j", c.Ours, "{daemon_name}", "petrel", "i", c.QueueID); err != nil {
			return nil, err
		}
		act, err := cs.Conn(host, family, c.Port, c.IP.String())
		if err != nil || act.Code != milter.ActContinue {
			return act, err
		}
		return cs.Helo(c.Helo)
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	if v.Action != door.FilterContinue {
		// Refused (or accepted) at connect: later stages answer the same.
		s.final = &v
	}
	return s, nil
}

// session is one transaction's milter conversation.
type session struct {
	cs    *milter.ClientSession
	conn  *boundConn
	final *door.Verdict // the milter decided before this stage
	once  sync.Once
}

// stage runs one exchange under ctx's deadline and turns its action into a verdict.
func (s *session) stage(ctx context.Context, run func() (*milter.Action, error)) (door.Verdict, error) {
	if s.final != nil {
		return *s.final, nil
	}
	stop := s.conn.bind(ctx)
	defer stop()
	act, err := run()
	if err != nil {
		if ctx.Err() != nil {
			return door.Verdict{}, fmt.Errorf("milter: %w", ctx.Err())
		}
		return door.Verdict{}, err
	}
	return verdict(act)
}

// Mail implements door.FilterSession.
func (s *session) Mail(ctx context.Context, from string) (door.Verdict, error) {
	return s.stage(ctx, func() (*milter.Action, error) {
		if err := s.cs.Macros(milter.CodeMail, "{mail_addr}", from); err != nil {
			return nil, err
		}
		return s.cs.Mail(from, nil) // go-milter adds the angle brackets
	})
}

// Rcpt implements door.FilterSession.
func (s *session) Rcpt(ctx context.Context, rcpt string) (door.Verdict, error) {
	return s.stage(ctx, func() (*milter.Action, error) {
		if err := s.cs.Macros(milter.CodeRcpt, "{rcpt_addr}", rcpt); err != nil {
			return nil, err
		}
		return s.cs.Rcpt(rcpt, nil)
	})
}

// Data implements door.FilterSession: header fields as they are (folding kept, CRLF
// turned into the LF milters expect), end of header, the body, end of message.
func (s *session) Data(ctx context.Context, header []byte, body io.Reader) (door.Verdict, error) {
	if s.final != nil {
		return *s.final, nil
	}
	var mods []milter.ModifyAction
	v, err := s.stage(ctx, func() (*milter.Action, error) {
		act, err := s.dataEvent()
		if err != nil || act.Code != milter.ActContinue {
			return act, err
		}
		for _, f := range fields(header) {
			act, err := s.cs.HeaderField(f[0], f[1])
			if err != nil || act.Code != milter.ActContinue {
				return act, err
			}
		}
		act, err = s.cs.HeaderEnd()
		if err != nil || act.Code != milter.ActContinue {
			return act, err
		}
		m, act, err := s.cs.BodyReadFrom(body)
		mods = m
		return act, err
	})
	if err != nil {
		return v, err
	}
	return withMods(v, mods), nil
}

// codeUnknown is SMFIC_UNKNOWN (protocol version 3 on), which go-milter does not name.
const codeUnknown = 'U'

var _ door.UnknownCommander = (*session)(nil)

// Unknown implements door.UnknownCommander: SMFIC_UNKNOWN with the command line as the
// client sent it. go-milter's client has no call for it (see dataEvent). A milter that
// asked for none (SMFIP_NOUNKNOWN) gets none; one that answers none (SMFIP_NR_UNKN) is not
// waited for.
func (s *session) Unknown(ctx context.Context, line string) (door.Verdict, error) {
	return s.stage(ctx, func() (*milter.Action, error) {
		if s.cs.ProtocolOption(milter.OptNoUnknown) {
			return &milter.Action{Code: milter.ActContinue}, nil
		}
		line = strings.Map(func(r rune) rune {
			if r == 0 {
				return ' ' // a NUL would end the milter's C string early
			}
			return r
		}, line)
		pkt := binary.BigEndian.AppendUint32(nil, uint32(len(line)+2))
		pkt = append(append(append(pkt, codeUnknown), line...), 0)
		if _, err := s.conn.Write(pkt); err != nil {
			return nil, fmt.Errorf("milter: unknown: %w", err)
		}
		if s.cs.ProtocolOption(milter.OptNoUnknownReply) {
			return &milter.Action{Code: milter.ActContinue}, nil
		}
		return readAction(s.conn)
	})
}

// dataEvent sends SMFIC_DATA, the DATA command (protocol version 4 on): the recipients are
// complete, the header comes next. go-milter's client has no call for it, so the packet is
// written and its answer read here, on the connection go-milter uses (it buffers nothing
// between packets). go-smtp answers 354 before the session sees the body, so a milter's
// refusal here refuses the message at the end of DATA, which is when every later stage's
// refusal counts too. A milter that asked for no DATA event (SMFIP_NODATA) does not get it;
// one that asked to send no reply to it (SMFIP_NR_DATA) is not waited for.
func (s *session) dataEvent() (*milter.Action, error) {
	if s.cs.ProtocolOption(milter.OptNoData) {
		return &milter.Action{Code: milter.ActContinue}, nil
	}
	if _, err := s.conn.Write([]byte{0, 0, 0, 1, byte(milter.CodeData)}); err != nil {
		return nil, fmt.Errorf("milter: data: %w", err)
	}
	if s.cs.ProtocolOption(milter.OptNoDataReply) {
		return &milter.Action{Code: milter.ActContinue}, nil
	}
	return readAction(s.conn)
}

// maxReply bounds a reply packet we read ourselves; a reply is a code and an SMTP line.
const maxReply = 64 << 10

// readAction reads a milter's reply to an event (skipping progress packets, SMFIR_PROGRESS)
// as go-milter's client does for the events it sends.
func readAction(r io.Reader) (*milter.Action, error) {
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("milter: reading reply: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > maxReply {
			return nil, fmt.Errorf("milter: reply packet of %d bytes", n)
		}
		pkt := make([]byte, n)
		if _, err := io.ReadFull(r, pkt); err != nil {
			return nil, fmt.Errorf("milter: reading reply: %w", err)
		}
		switch code := milter.ActionCode(pkt[0]); code {
		case 'p': // progress: the milter is still working
			continue
		case milter.ActAccept, milter.ActContinue, milter.ActDiscard, milter.ActReject, milter.ActTempFail:
			return &milter.Action{Code: code}, nil
		case milter.ActReplyCode:
			// "nnn text" and a NUL (SMFIR_REPLYCODE).
			line := strings.TrimRight(string(pkt[1:]), "\x00")
			c, text, _ := strings.Cut(line, " ")
			smtpCode, err := strconv.Atoi(c)
			if err != nil || len(c) != 3 {
				return nil, fmt.Errorf("milter: malformed reply code %q", c)
			}
			return &milter.Action{Code: code, SMTPCode: smtpCode, SMTPText: text}, nil
		default:
			return nil, fmt.Errorf("milter: unexpected reply %q", rune(code))
		}
	}
}

// Close implements door.FilterSession.
func (s *session) Close() error {
	var err error
	s.once.Do(func() {
		// A milter that stopped answering must not hold the session up here either.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		stop := s.conn.bind(ctx)
		err = s.cs.Close() // aborts an unfinished message, quits, closes the connection
		stop()
		s.conn.Close()
	})
	return err
}

// verdict turns a milter action into a verdict.
func verdict(act *milter.Action) (door.Verdict, error) {
	if act == nil {
		return door.Verdict{}, errors.New("milter: no action")
	}
	switch act.Code {
	case milter.ActContinue, milter.ActSkip:
		return door.Verdict{Action: door.FilterContinue}, nil
	case milter.ActAccept:
		return door.Verdict{Action: door.FilterAccept}, nil
	case milter.ActReject:
		return door.Verdict{Action: door.FilterReject, Result: "reject"}, nil
	case milter.ActTempFail:
		return door.Verdict{Action: door.FilterTempFail, Result: "tempfail"}, nil
	case milter.ActDiscard:
		return door.Verdict{Action: door.FilterDiscard, Result: "discard"}, nil
	case milter.ActReplyCode:
		// SMFIR_REPLYCODE: a 4xx or 5xx reply of the milter's choosing; anything else is
		// a broken milter (libmilter refuses to send other codes).
		v := door.Verdict{Code: act.SMTPCode, Text: act.SMTPText, Result: strconv.Itoa(act.SMTPCode)}
		switch act.SMTPCode / 100 {
		case 4:
			v.Action = door.FilterTempFail
		case 5:
			v.Action = door.FilterReject
		default:
			return door.Verdict{}, fmt.Errorf("milter: reply code %d is not 4xx or 5xx", act.SMTPCode)
		}
		return v, nil
	}
	return door.Verdict{}, fmt.Errorf("milter: unexpected action %q", rune(act.Code))
}

// withMods adds the modifications of end of message to v.
func withMods(v door.Verdict, mods []milter.ModifyAction) door.Verdict {
	for _, m := range mods {
		switch m.Code {
		case milter.ActAddHeader:
			v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderAdd, Name: m.HeaderName, Value: m.HeaderValue})
		case milter.ActInsertHeader:
			v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderInsert, Name: m.HeaderName, Value: m.HeaderValue, Index: int(min(m.HeaderIndex, 1<<20))})
		case milter.ActChangeHeader:
			v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderChange, Name: m.HeaderName, Value: m.HeaderValue, Index: int(min(m.HeaderIndex, 1<<20))})
		case milter.ActQuarantine:
			if v.Action == door.FilterContinue || v.Action == door.FilterAccept {
				v.Action = door.FilterQuarantine
				v.Result = "quarantine"
				if m.Reason != "" {
					v.Result += ":" + m.Reason
				}
			}
		}
		// Body, sender and recipient changes were not negotiated; a milter that sends
		// them anyway is ignored rather than obeyed.
	}
	return v
}

// fields splits a header section (CRLF line ends, with or without the final empty line)
// into name and value as a milter expects them: the value without the space after the
// colon, continuation lines kept, joined with LF (Sendmail's and Postfix's form).
func fields(hdr []byte) [][2]string {
	var out [][2]string
	for _, line := range bytes.SplitAfter(hdr, []byte("\r\n")) {
		l := strings.TrimSuffix(string(line), "\r\n")
		switch {
		case l == "":
			continue
		case (l[0] == ' ' || l[0] == '\t') && len(out) > 0:
			out[len(out)-1][1] += "\n" + l
		default:
			name, value, ok := strings.Cut(l, ":")
			if !ok {
				continue // not a field; the message parser of the store sees it as body
			}
			out = append(out, [2]string{strings.TrimRight(name, " \t"), strings.TrimPrefix(value, " ")})
		}
	}
	return out
}

// dialer dials under the context of Begin and keeps the connection.
type dialer struct {
	ctx  context.Context
	conn *boundConn
}

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(d.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.conn = &boundConn{Conn: c}
	d.conn.bind(d.ctx)
	return d.conn, nil
}

// boundConn caps every deadline set on it at the current stage's deadline.
type boundConn struct {
	net.Conn
	mu    sync.Mutex
	limit time.Time // zero: none
}

// bind makes ctx the current stage: its deadline caps every deadline, and its
// cancellation expires the connection. stop ends the binding.
func (c *boundConn) bind(ctx context.Context) (stop func()) {
	dl, _ := ctx.Deadline()
	c.mu.Lock()
	c.limit = dl
	c.mu.Unlock()
	c.Conn.SetDeadline(dl)
	unhook := context.AfterFunc(ctx, func() { c.Conn.SetDeadline(time.Unix(1, 0)) })
	return func() { unhook() }
}

func (c *boundConn) capped(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.limit.IsZero() && (t.IsZero() || t.After(c.limit)) {
		return c.limit
	}
	return t
}

func (c *boundConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.capped(t)) }
func (c *boundConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.capped(t)) }
func (c *boundConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.capped(t)) }
