package imapd

// Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS and
// APPEND. Names go to the store in UTF-8; its CanonicalMailboxName refuses anything that
// could reach outside the account (RFC 9051 §5.1, store package comment).

import (
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// maxPattern bounds a LIST pattern.
const maxPattern = 1024

// appendMinRate is the slowest an APPEND's message may arrive, in octets per second.
const appendMinRate = 16 << 10

// mailboxName converts a name as the client sent it to the store's UTF-8 form. Names in
// modified UTF-7 (RFC 3501 §5.1.3) are decoded; a name of raw UTF-8, which some IMAP4rev1
// clients send, is taken as it is.
func (s *session) mailboxName(name string) (string, error) {
	if strings.Contains(name, "&") && !s.ext.utf8 { // RFC 6855 §3: UTF-8 only once enabled
		dec, ok := DecodeMUTF7(name)
		if !ok {
			return "", &Error{Kind: NO, Code: "CANNOT", Text: "Invalid mailbox name (modified UTF-7)"}
		}
		name = dec
	}
	if !utf8.ValidString(name) {
		return "", &Error{Kind: NO, Code: "CANNOT", Text: "Invalid mailbox name"}
	}
	return store.LookupMailboxName(name), nil
}

// storeError turns the store's errors into replies (RFC 5530 response codes). Anything
// else is returned as it is, and ends the session: the store failing is not the client's
// business beyond "try later", which the BYE says.
func (s *session) storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: NO, Code: "NONEXISTENT", Text: "No such mailbox"}
	case errors.Is(err, store.ErrExists):
		return &Error{Kind: NO, Code: "ALREADYEXISTS", Text: "Mailbox exists"}
	case errors.Is(err, store.ErrInvalid):
		return &Error{Kind: NO, Code: "CANNOT", Text: "Invalid mailbox name or operation"}
	case errors.Is(err, store.ErrHasChildren):
		return &Error{Kind: NO, Code: "HASCHILDREN", Text: "Mailbox has inferior mailboxes"}
	case errors.Is(err, store.ErrOverQuota):
		return errOverQuota
	}
	s.log.Error("imap: store", "account", s.account.Address, "err", err)
	return &Error{Kind: BYE, Code: "UNAVAILABLE", Text: "Internal error, try again later", Cause: err}
}

func (s *session) cmdCreate(c *Command) (done, error) {
	// RFC 9051 §6.3.4: a trailing separator says the client means to create inferiors; the
	// name created is without it.
	name, err := s.mailboxName(strings.TrimSuffix(c.Mailbox, store.Separator))
	if err != nil {
		return done{}, err
	}
	if _, err := s.srv.store.CreateMailbox(s.ctx, s.account.ID, name); err != nil {
		return done{}, s.storeError(err)
	}
	return done{}, nil
}

func (s *session) cmdDelete(c *Command) (done, error) {
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	if err := s.srv.store.DeleteMailbox(s.ctx, s.account.ID, name); err != nil {
		return done{}, s.storeError(err)
	}
	if s.sel != nil && s.sel.mb.Name == name {
		// Deleting the selected mailbox deselects it rather than ending the session.
		s.sel, s.state = nil, stateAuth
	}
	return done{}, nil
}

func (s *session) cmdRename(c *Command) (done, error) {
	from, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	to, err := s.mailboxName(c.NewName)
	if err != nil {
		return done{}, err
	}
	if err := s.srv.store.RenameMailbox(s.ctx, s.account.ID, from, to); err != nil {
		return done{}, s.storeError(err)
	}
	return done{}, nil
}

func (s *session) cmdSubscribe(c *Command) (done, error) {
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	if err := s.srv.store.SetSubscribed(s.ctx, s.account.ID, name, c.Name == "SUBSCRIBE"); err != nil {
		return done{}, s.storeError(err)
	}
	return done{}, nil
}

// patternRegexp compiles LIST patterns: "*" matches anything, "%" anything but the
// hierarchy separator (RFC 9051 §6.3.9), and a leading INBOX matches in any case. Go's
// regexp runs in linear time, so no pattern makes matching blow up.
func patternRegexp(patterns []string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^(?:")
	for i, p := range patterns {
		if i > 0 {
			b.WriteByte('|')
		}
		if len(p) >= 5 && strings.EqualFold(p[:5], store.Inbox) && (len(p) == 5 || strings.ContainsRune("/*%", rune(p[5]))) {
			p = store.Inbox + p[5:]
		}
		for len(p) > 0 {
			i := strings.IndexAny(p, "*%")
			if i < 0 {
				b.WriteString(regexp.QuoteMeta(p))
				break
			}
			b.WriteString(regexp.QuoteMeta(p[:i]))
			if p[i] == '*' {
				b.WriteString(".*")
			} else {
				b.WriteString("[^/]*")
			}
			p = p[i+1:]
		}
	}
	b.WriteString(")$")
	return regexp.Compile(b.String())
}

// cmdStatus serves the STATUS data items of RFC 9051 §6.3.11 (and RFC 8438 SIZE) from the
// counts the store keeps.
func (s *session) cmdStatus(c *Command) (done, error) {
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.account.ID, name)
	if err != nil {
		return done{}, s.storeError(err)
	}
	if err := s.statusItemsValid(c.StatusItems); err != nil {
		return done{}, err
	}
	return done{}, s.writeStatus(mb, c.StatusItems)
}

// writeStatus writes "* STATUS name (items)" for items checked by statusItemsValid.
func (s *session) writeStatus(mb store.Mailbox, items []string) error {
	var deleted int64
	if slices.Contains(items, "DELETED-STORAGE") {
		var err error
		if deleted, err = s.deletedStorage(mb); err != nil {
			return err
		}
	}
	w := s.out()
	w.str("* STATUS ")
	w.mailbox(mb.Name)
	w.str(" (")
	for i, item := range items {
		if i > 0 {
			w.sp()
		}
		w.str(item)
		w.sp()
		switch item {
		case "MESSAGES":
			w.num(uint32(mb.Messages))
		case "UIDNEXT":
			w.num(mb.UIDNext)
		case "UIDVALIDITY":
			w.num(mb.UIDValidity)
		case "UNSEEN":
			w.num(uint32(mb.Unseen))
		case "DELETED":
			w.num(uint32(mb.Deleted))
		case "RECENT":
			w.num(0)
		case "SIZE":
			w.num64(mb.Size)
		case "HIGHESTMODSEQ":
			w.num64u(mb.HighestModSeq)
		case "DELETED-STORAGE":
			w.num64(deleted)
		}
	}
	w.str(")\r\n")
	return nil
}

// cmdAppend adds a message (RFC 9051 §6.3.12). Its literal was announced but not read: its
// size is checked against APPENDLIMIT first (RFC 7889: NO [TOOBIG] for a synchronizing
// literal, which the client then does not send; a non-synchronizing one we refuse cannot
// be skipped cheaply and ends the connection, RFC 7888 §4). The body is spooled (memory up
// to 1 MiB, then an unlinked file) and parsed once for the cached parse.
func (s *session) cmdAppend(c *Command) (done, error) {
	var msgs []*store.AppendMessage
	var total int64
	defer func() {
		for _, m := range msgs {
			m.Body.(*appendBody).spool.Close()
		}
	}()
	for {
		li := c.Literal
		total += li.size
		if li.size > s.srv.cfg.AppendLimit || len(msgs) > 0 && (total > s.srv.cfg.AppendLimit || len(msgs) == maxMultiAppend) {
			if li.sync {
				return done{}, &Error{Kind: NO, Code: "TOOBIG", Text: "Message too large"}
			}
			return done{}, &Error{Kind: BYE, Code: "TOOBIG", Text: "Message too large"}
		}
		m, err := s.appendMessage(c)
		if err != nil {
			return done{}, err
		}
		msgs = append(msgs, m)
		binary := li.binary && !s.r.utf8Append
		more, err := s.r.appendNext(c)
		if err != nil {
			return done{}, err
		}
		if binary && hasNUL(m.Body.(*appendBody).spool) { // binary.go
			// RFC 3516 §4.4: bodies are served as stored, and a literal may not carry NUL.
			return done{}, &Error{Kind: NO, Code: "UNKNOWN-CTE", Text: "Binary content with NUL octets cannot be stored"}
		}
		if !more {
			break
		}
		if _, ok := s.srv.store.(store.MultiAppender); !ok {
			return done{}, badf("MULTIAPPEND is not supported")
		}
	}
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	for _, m := range msgs {
		if m.Flags, err = store.NormalizeFlags(m.Flags); err != nil {
			return done{}, badf("Invalid flag")
		}
		if m.Parsed, err = message.ParseAt(m.Body.(*appendBody).spool, m.Size); err != nil {
			return done{}, err
		}
	}
	var validity uint32
	var uids []uint32
	if len(msgs) == 1 {
		var res store.Appended
		res, err = s.srv.store.Append(s.ctx, s.account.ID, name, msgs[0])
		validity, uids = res.UIDValidity, []uint32{res.Message.UID}
	} else {
		// RFC 3502 §6.3.11: all of them or none.
		var res store.AppendedMany
		res, err = s.srv.store.(store.MultiAppender).AppendMany(s.ctx, s.account.ID, name, msgs)
		validity = res.UIDValidity
		for _, m := range res.Messages {
			uids = append(uids, m.UID)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return done{}, &Error{Kind: NO, Code: "TRYCREATE", Text: "No such mailbox"} // RFC 9051 §6.3.12
	}
	if err != nil {
		return done{}, s.storeError(err)
	}
	// APPENDUID (RFC 4315 §3), with a UID set for MULTIAPPEND.
	return done{code: "APPENDUID " + utoa(validity) + " " + uidSet(uids), text: "APPEND completed"}, nil
}

// maxMultiAppend bounds the messages of one MULTIAPPEND (their sum is bounded by
// APPENDLIMIT as well: they are committed together).
const maxMultiAppend = 1000

// appendBody is an appended message's spool, read by the store through a section reader.
type appendBody struct {
	*io.SectionReader
	spool *deliver.Spool
}

// appendMessage reads the literal of one message of APPEND, announced in c.Literal, and
// returns it with c's flags and date (normalized and parsed by the caller).
func (s *session) appendMessage(c *Command) (*store.AppendMessage, error) {
	li := c.Literal
	s.r.takeAppendLiteral()
	if li.sync {
		if err := s.continuation(); err != nil {
			return nil, err
		}
	}
	// The message must arrive at appendMinRate at least, besides CommandTimeout: a client
	// dripping it cannot hold the connection for longer than its size justifies.
	if err := s.setReadDeadline(s.srv.cfg.CommandTimeout + time.Duration(li.size/appendMinRate)*time.Second); err != nil {
		return nil, err
	}
	spool := deliver.NewSpool(s.srv.cfg.SpoolDir, deliver.DefaultSpoolMemory)
	if _, err := spool.ReadFrom(io.LimitReader(s.r.br, li.size)); err != nil {
		spool.Close()
		return nil, err
	}
	if spool.Size() != li.size {
		spool.Close()
		return nil, io.ErrUnexpectedEOF
	}
	return &store.AppendMessage{
		Body:         &appendBody{io.NewSectionReader(spool, 0, spool.Size()), spool},
		Size:         spool.Size(),
		Flags:        c.Flags,
		InternalDate: c.Date,
	}, nil
}
