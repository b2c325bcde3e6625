package pull

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/pop3client"
	"petrel/internal/mail/deliver"
)

// tlsConfig is the TLS client policy of a source, the client tools' own: the host name
// verified against the system roots, or against the source's CA file.
func tlsConfig(addr, caFile string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return (&clientconf.Endpoint{Host: host, CAFile: caFile}).TLSConfig()
}

// pop3 polls a POP3 mailbox (RFC 1939): LIST and UIDL, RETR and deliver what is new, DELE
// what is delivered (unless the source keeps mail), QUIT. Any failure before QUIT closes the
// connection without it, so the server deletes nothing.
func (r *run) pop3(ctx context.Context, pass string) error {
	tc, err := tlsConfig(r.src.Addr, r.src.CAFile)
	if err != nil {
		return err
	}
	mode := map[string]pop3client.TLSMode{"tls": pop3client.ImplicitTLS, "starttls": pop3client.StartTLS, "plain": pop3client.NoTLS}[r.src.TLS]
	c, err := pop3client.Dial(ctx, r.src.Addr, pop3client.Options{TLS: mode, TLSConf: tc, Timeout: r.p.o.DialTimeout, DialTimeout: r.p.o.DialTimeout})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", r.src.Addr, err)
	}
	defer c.Close()
	if err := c.Login(pop3client.MechAuto, r.src.User, pass, r.src.TLS == "plain"); err != nil {
		return fmt.Errorf("login as %s: %w", r.src.User, err)
	}
	sizes, err := c.List()
	if err != nil {
		return err
	}
	uids, err := c.UIDL()
	if errors.Is(err, pop3client.ErrNoUIDL) {
		// Without unique-ids, new and old messages cannot be told apart across polls.
		return errors.New("the server does not support UIDL (RFC 1939 §7), which pulling needs")
	}
	if err != nil {
		return err
	}
	byNum := map[int]string{}
	onServer := map[string]bool{}
	for _, u := range uids {
		byNum[u.Num] = u.UID
		onServer[u.UID] = true
	}
	r.res.OnServer = len(sizes)
	for _, s := range sizes {
		if byNum[s.Num] == "" {
			return fmt.Errorf("UIDL lacks message %d", s.Num)
		}
	}
	if err := r.forget(ctx, onServer); err != nil {
		return err
	}
	var dele []int
	for _, s := range sizes {
		uid := byNum[s.Num]
		if _, ok := r.seen[uid]; !ok {
			spool := deliver.NewSpool(r.p.o.SpoolDir, r.p.o.SpoolMemory)
			_, err := c.Retr(s.Num, spool)
			if err == nil {
				err = r.deliver(ctx, uid, spool)
			}
			spool.Close()
			if err != nil {
				return err
			}
		}
		// Delivered now or before (a poll stopped before its QUIT): it may go.
		if !r.src.Keep {
			dele = append(dele, s.Num)
		}
	}
	if err := c.DeleMany(dele); err != nil {
		return err
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT (messages marked for deletion may still be on the server): %w", err)
	}
	r.res.Deleted = len(dele)
	return nil
}

// returnPath is the address of the message's Return-Path header (RFC 5322 §3.6.7), which
// the outside server wrote at its delivery: the envelope sender for Sieve. "" without one.
func returnPath(body deliver.Body) string {
	tp := textproto.NewReader(bufio.NewReader(io.NewSectionReader(body, 0, min(body.Size(), 64<<10))))
	h, err := tp.ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	rp := strings.TrimSpace(h.Get("Return-Path"))
	rp = strings.TrimSuffix(strings.TrimPrefix(rp, "<"), ">")
	if strings.ContainsAny(rp, " \t<>") {
		return ""
	}
	return rp
}
