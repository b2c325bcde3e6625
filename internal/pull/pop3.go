package pull

import (
	"bufio"
	"bytes"
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
	"petrel/internal/store"
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
		return r.pop3Derived(ctx, c, sizes)
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
	rs, err := r.uidlsChanged(ctx, onServer)
	if err != nil {
		return err
	}
	if rs == nil {
		if err := r.pop3Backfill(ctx, c, sizes, byNum); err != nil {
			return err
		}
	}
	if err := r.forget(ctx, onServer); err != nil {
		return err
	}
	var dele []int
	for _, s := range sizes {
		uid := byNum[s.Num]
		if _, ok := r.seen[uid]; !ok {
			if err := r.pop3New(ctx, c, rs, s.Num, uid); err != nil {
				return err
			}
		}
		// Delivered now or before (a poll stopped before its QUIT): it may go.
		if !r.src.Keep {
			dele = append(dele, s.Num)
		}
	}
	if rs != nil {
		if err := rs.finish(ctx); err != nil {
			return err
		}
	}
	return r.pop3Finish(c, dele)
}

// uidlsChanged looks for a server that renamed its messages: most of the UIDLs recorded are
// no longer listed, while the listing has UIDLs that are not recorded (a server migrated to
// another that makes its UIDLs otherwise, a rebuilt index). UIDLs are the server's only
// names for messages (RFC 1939 §7), so without a look at the messages themselves, keeping
// mail would pull the whole mailbox again. Then it returns a resync that recognizes the
// messages pulled before by their header blocks, and adds the recorded UIDLs to onServer:
// they are dropped once every message listed has been looked at, not before. A mailbox
// from which most mail was deleted and little came is not taken for one (the look costs a
// TOP per new message, a download where TOP is missing); nil when nothing changed.
func (r *run) uidlsChanged(ctx context.Context, onServer map[string]bool) (*resync, error) {
	kept, fresh := 0, 0
	for uid := range onServer {
		if _, ok := r.seen[uid]; ok {
			kept++
		} else {
			fresh++
		}
	}
	lost := len(r.seen) - kept
	if lost == 0 || kept*2 >= len(r.seen) || fresh*2 < lost {
		return nil, nil
	}
	var earlier []string
	for uid := range r.seen {
		if !onServer[uid] {
			earlier = append(earlier, uid)
			onServer[uid] = true
		}
	}
	event := fmt.Sprintf("the server's UIDLs changed (%d of %d recorded still listed, %d listed not recorded)", kept, len(r.seen), fresh)
	rs, err := r.newResync(ctx, earlier, "the UIDLs of the server may have changed", event)
	if rs != nil {
		rs.guess = true
	}
	return rs, err
}

// pop3Backfill reads the headers (TOP n 0) of the listed messages recorded without a
// fingerprint, and records their fingerprints (unfingerprinted). A server without TOP
// leaves them to the account's copies.
func (r *run) pop3Backfill(ctx context.Context, c *pop3client.Client, sizes []pop3client.MessageSize, byNum map[int]string) error {
	listed := map[string]int{}
	for _, s := range sizes {
		listed[byNum[s.Num]] = s.Num
	}
	missing, err := r.unfingerprinted(ctx, func(uid string) bool { return listed[uid] != 0 })
	if err != nil {
		return err
	}
	var found []store.PulledMessage
	for _, uid := range missing {
		var head bytes.Buffer
		_, err := c.Top(listed[uid], 0, &head)
		if pe := (*pop3client.Error)(nil); errors.As(err, &pe) {
			break // no TOP (RFC 1939 §7)
		}
		if err != nil {
			return err
		}
		fp, err := headerDigest(&head)
		if err != nil {
			return err
		}
		found = append(found, store.PulledMessage{SourceID: r.src.ID, UID: uid, Fingerprint: fp})
	}
	return r.storeFingerprints(ctx, found)
}

// pop3New brings in message n, whose UIDL uid is not recorded. During a resync (rs not
// nil), its header (TOP n 0, else the whole message) is looked at first, and a message
// pulled before under another UIDL is only recorded under this one.
func (r *run) pop3New(ctx context.Context, c *pop3client.Client, rs *resync, n int, uid string) error {
	fp := ""
	if rs != nil && !rs.noTOP {
		var head bytes.Buffer
		_, err := c.Top(n, 0, &head)
		if pe := (*pop3client.Error)(nil); errors.As(err, &pe) {
			rs.noTOP = true // optional (RFC 1939 §7): the whole message tells as well
		} else if err != nil {
			return err
		} else if fp, err = headerDigest(&head); err != nil {
			return err
		}
	}
	if fp != "" {
		if matched, err := rs.match(ctx, fp, uid); err != nil || matched {
			return err
		}
	}
	return r.retr(ctx, c, n, func(body deliver.Body) error {
		if rs != nil && fp == "" {
			var err error
			if fp, err = bodyDigest(body); err != nil {
				return err
			}
			if matched, err := rs.match(ctx, fp, uid); err != nil || matched {
				return err
			}
		}
		return r.deliver(ctx, uid, fp, body)
	})
}

// retr downloads message n into a spool and hands it to f.
func (r *run) retr(ctx context.Context, c *pop3client.Client, n int, f func(deliver.Body) error) error {
	spool := deliver.NewSpool(r.p.o.SpoolDir, r.p.o.SpoolMemory)
	defer spool.Close()
	if _, err := c.Retr(n, spool); err != nil {
		return err
	}
	return f(spool)
}

// pop3Finish deletes the messages dele (delivered, in a source that does not keep mail) and
// ends the session with QUIT, which is when the server removes them (RFC 1939 §6).
func (r *run) pop3Finish(c *pop3client.Client, dele []int) error {
	if err := c.DeleMany(dele); err != nil {
		return err
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT (messages marked for deletion may still be on the server): %w", err)
	}
	r.res.Deleted = len(dele)
	return nil
}

// errNoTOP refuses to keep mail on a server with neither UIDL nor TOP.
var errNoTOP = errors.New("the server has neither UIDL nor TOP (both optional, RFC 1939 §7): with mail kept there, " +
	"a new message cannot be told from an old one without downloading the whole mailbox at every poll; " +
	"pull with --delete (`petrel account pull edit ADDRESS ID --delete`)")

// pop3Derived polls a POP3 mailbox whose server has no UIDL: a message's unique-id is derived
// from its header block (derivedUIDs; identity.go says why that is a sound identity).
//
// Deleting mail (the default), each message is downloaded, named by the digest of its header,
// delivered unless it was before, and deleted; the delivery commits with its unique-id before
// the DELE, and DELE takes effect only at QUIT, so a poll cut short leaves a delivered message
// on the server, and the next poll recognizes it by its header and deletes it without
// delivering it again. After a QUIT that removed them, the names are forgotten, since a later
// copy of a message would get the same name. Keeping mail, only the headers are downloaded at
// each poll (TOP n 0) and the new messages in full; a server without TOP is refused
// (errNoTOP). The one case it cannot see: between two polls, a copy of a message leaves and
// a new byte-identical copy comes; the count of copies is the same, and the new one is taken
// for the old one.
func (r *run) pop3Derived(ctx context.Context, c *pop3client.Client, sizes []pop3client.MessageSize) error {
	r.res.OnServer = len(sizes)
	names := derivedUIDs{}
	onServer := map[string]bool{}
	if !r.src.Keep {
		var dele []int
		for _, s := range sizes {
			err := r.retr(ctx, c, s.Num, func(body deliver.Body) error {
				fp, err := bodyDigest(body)
				if err != nil {
					return err
				}
				uid := names.next(fp)
				onServer[uid] = true
				if _, ok := r.seen[uid]; ok {
					return nil
				}
				return r.deliver(ctx, uid, fp, body)
			})
			if err != nil {
				return err
			}
			dele = append(dele, s.Num)
		}
		if err := r.forget(ctx, onServer); err != nil {
			return err
		}
		if err := r.pop3Finish(c, dele); err != nil {
			return err
		}
		// QUIT removed every message: their names are free again, and must be, since a
		// later copy of one of them gets the same name and must not be taken for it.
		return r.forget(ctx, nil)
	}
	uids := make([]string, len(sizes))
	fps := make([]string, len(sizes))
	for i, s := range sizes {
		var head bytes.Buffer
		if _, err := c.Top(s.Num, 0, &head); err != nil {
			if pe := (*pop3client.Error)(nil); errors.As(err, &pe) {
				return fmt.Errorf("%w (%v)", errNoTOP, err)
			}
			return err
		}
		fp, err := headerDigest(&head)
		if err != nil {
			return err
		}
		uids[i], fps[i] = names.next(fp), fp
		onServer[uids[i]] = true
	}
	if err := r.forget(ctx, onServer); err != nil {
		return err
	}
	for i, s := range sizes {
		if _, ok := r.seen[uids[i]]; ok {
			continue
		}
		if err := r.retr(ctx, c, s.Num, func(body deliver.Body) error { return r.deliver(ctx, uids[i], fps[i], body) }); err != nil {
			return err
		}
	}
	return r.pop3Finish(c, nil)
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
