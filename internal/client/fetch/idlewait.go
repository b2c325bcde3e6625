package fetch

// The IDLE wait without go-imap. go-imap's client keeps a reader goroutine, a 4 KB reader and
// a 4 KB writer for as long as it lives, and its IDLE command a goroutine and a timer more:
// three goroutines per account at rest, about half of what an account costs an idle run. So
// between syncs Idle takes the connection back from the client and waits on it in the
// account's own goroutine, with a small buffer, then makes a new client on the same session
// for the next sync.
//
// Nothing the server sends is lost in the handover. Before the client lets go, the
// connection goes into line mode (imapConn) and a NOOP makes a round trip, so that the client
// has handled every line up to its tagged answer and holds no more; what the server sends
// after it, the wait reads (an EXISTS there wakes the wait at once). Lines the wait has read
// past DONE's answer are replayed to the new client after its greeting. The wait only decides
// when to sync: a sync lists the whole folder, so a line misread here costs at most a sync or
// a reconnect, never a message.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2/imapclient"

	"petrel/internal/client/oauth"
	"petrel/internal/client/wire"
)

// idleBuffer is the read buffer of the wait: lines in IDLE are short ("* 12 EXISTS").
const idleBuffer = 512

// maxIdleLine bounds a response line read by the wait (literals are skipped, not counted).
const maxIdleLine = 64 << 10

// waitAlone is wait for a server with IDLE, on the account's goroutine alone.
func (r *imapRun) waitAlone(ctx context.Context, opt IdleOptions) error {
	caps := r.capsText()
	if err := r.detach(); err != nil {
		return err
	}
	select { // an EXISTS the client handled before it let go
	case <-r.wake:
		return r.attach(caps)
	default:
	}
	for round := 1; ; round++ {
		news, err := r.idleOnce(ctx, opt, "PI"+strconv.Itoa(round))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("IDLE: %w", r.conn.explain(err))
		}
		if news {
			return r.attach(caps)
		}
		// A re-arm: keep a stored token fresh for the next login (a refresh if it is due).
		// Not token_command: it runs at each login anyway, and it may prompt.
		if _, stored := r.o.Tokens.(*oauth.FileTokens); stored {
			if _, err := r.o.Tokens.Token(ctx); err != nil {
				return err
			}
		}
	}
}

// capsText is the client's capabilities as a CAPABILITY response code's list.
func (r *imapRun) capsText() string {
	var b strings.Builder
	for c := range r.c.Caps() {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(c))
	}
	return b.String()
}

// detach ends the client's reader and leaves the session to the wait (see the top).
func (r *imapRun) detach() error {
	r.ic.lineMode.Store(true)
	if err := r.do(func() error { return r.c.Noop().Wait() }); err != nil {
		return fmt.Errorf("NOOP: %w", err)
	}
	r.ic.detached.Store(true)
	r.conn.interrupt()
	<-r.c.Closed()
	r.conn.resume()
	if r.ic.lr == nil {
		r.ic.lr = bufio.NewReaderSize(r.ic.Conn, idleBuffer)
	}
	return nil
}

// attach makes a new client on the session, which is authenticated: it starts with a
// PREAUTH greeting carrying the capabilities the server announced, then reads what the
// wait has read past its last line. The sync selects the folder again.
func (r *imapRun) attach(caps string) error {
	r.ic.prefix = []byte("* PREAUTH [CAPABILITY " + caps + "] session kept from before IDLE\r\n")
	r.ic.lineMode.Store(false)
	r.ic.detached.Store(false)
	r.c = imapclient.New(r.ic, r.copts)
	return r.do(func() error { return r.c.WaitGreeting() })
}

// idleOnce is one IDLE command: it returns true when the server announced messages, false
// at the re-arm.
func (r *imapRun) idleOnce(ctx context.Context, opt IdleOptions, tag string) (news bool, err error) {
	br := r.ic.lr
	if _, err := io.WriteString(r.ic.Conn, tag+" IDLE\r\n"); err != nil {
		return false, err
	}
	// Until the continuation, with the command's timeout.
	err = r.do(func() error {
		for {
			line, err := readResponse(br)
			if err != nil {
				return err
			}
			switch kind, _ := classify(line, tag); kind {
			case respContinue:
				return nil
			case respExists:
				news = true
			case respBye:
				return fmt.Errorf("%w: server closed the session: %s", wire.ErrProtocol, line)
			case respTagged:
				return fmt.Errorf("IDLE refused: %s", line)
			}
		}
	})
	if err != nil {
		return false, err
	}
	// Wait without a deadline but the re-arm's, which interrupts the read.
	fired := make(chan struct{})
	stop := opt.Timer(opt.Rearm, func() {
		r.conn.interrupt()
		close(fired)
	})
wait:
	for !news {
		line, rerr := readResponse(br)
		if rerr != nil {
			select {
			case <-fired:
				break wait // the re-arm
			default:
				stop()
				return false, rerr
			}
		}
		switch kind, _ := classify(line, tag); kind {
		case respExists:
			news = true
		case respBye:
			stop()
			return false, fmt.Errorf("%w: server closed the session: %s", wire.ErrProtocol, line)
		case respTagged:
			stop()
			return false, fmt.Errorf("%w: IDLE ended by the server: %s", wire.ErrProtocol, line)
		}
	}
	if !stop() {
		<-fired // it ran or runs: let it finish before reads work again
	}
	r.conn.resume()
	// DONE, and its tagged answer (RFC 2177 §3).
	if _, err := io.WriteString(r.ic.Conn, "DONE\r\n"); err != nil {
		return false, err
	}
	err = r.do(func() error {
		for {
			line, err := readResponse(br)
			if err != nil {
				return err
			}
			switch kind, ok := classify(line, tag); kind {
			case respExists:
				news = true
			case respTagged:
				if !ok {
					return fmt.Errorf("IDLE failed: %s", line)
				}
				return nil
			}
		}
	})
	return news, err
}

// Kinds of response line, for the wait.
const (
	respOther    = iota
	respContinue // "+ ..."
	respExists   // "* n EXISTS"
	respBye      // "* BYE ..."
	respTagged   // "TAG ..."; ok if its status is OK
)

// classify names a response line; ok is true for a tagged OK. Other untagged responses
// (EXPUNGE, FETCH, "* OK still here") and lines that are none of these are ignored.
func classify(line, tag string) (kind int, ok bool) {
	if rest, found := strings.CutPrefix(line, tag+" "); found {
		return respTagged, len(rest) >= 2 && strings.EqualFold(rest[:2], "OK")
	}
	if line == "+" || strings.HasPrefix(line, "+ ") {
		return respContinue, false
	}
	f := strings.Fields(line)
	switch {
	case len(f) >= 2 && f[0] == "*" && strings.EqualFold(f[1], "BYE"):
		return respBye, false
	case len(f) >= 3 && f[0] == "*" && strings.EqualFold(f[2], "EXISTS"):
		if _, err := strconv.ParseUint(f[1], 10, 32); err == nil {
			return respExists, false
		}
	}
	return respOther, false
}

// readResponse reads one response line without its CRLF; the contents of literals in it
// ({n} at a line's end, RFC 9051 §4.3) are skipped.
func readResponse(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxIdleLine {
			return "", fmt.Errorf("%w: response line longer than %d bytes", wire.ErrProtocol, maxIdleLine)
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		text := bytes.TrimRight(line, "\r\n")
		if n, ok := literalSize(text); ok {
			if _, err := br.Discard(int(n)); err != nil {
				return "", err
			}
			line = append(text, "{…}"...)
			continue
		}
		return string(text), nil
	}
}

// literalSize reads "{n}" or "{n+}" at the end of a line.
func literalSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	digits := bytes.TrimSuffix(line[open+1:len(line)-1], []byte("+"))
	n, err := strconv.ParseInt(string(digits), 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
