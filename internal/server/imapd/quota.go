package imapd

// QUOTA (RFC 9208, compatible with RFC 2087). Each account has one quota root, named ""
// (the empty string), which every mailbox of the account belongs to; its resources are
// STORAGE (in units of 1024 octets, rounded up) and MESSAGE, each reported only when the
// account has a limit on it (an account with neither has no quota root). The limits are
// enforced by the store inside the commit of APPEND and COPY ([OVERQUOTA], RFC 9208 §4.3);
// MOVE within an account changes no usage and is never refused. SETQUOTA is refused: the
// administrator sets quotas (`petrel account quota`), not the user (RFC 9208 §3.3 lets a
// server refuse).

import (
	"strconv"

	"petrel/internal/store"
)

// quotaRoot is the name of an account's one quota root.
const quotaRoot = ""

// quotaCapabilities are the capabilities of this extension.
const quotaCapabilities = " QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"

// errOverQuota is the answer to an APPEND or COPY the quota refuses.
var errOverQuota = &Error{Kind: NO, Code: "OVERQUOTA", Text: "Quota exceeded"}

// parseQuotaRoot reads GETQUOTA's quota root.
func parseQuotaRoot(r *reader, c *Command) (err error) {
	c.QuotaRoot, err = r.astring()
	return err
}

// parseSetQuota reads SETQUOTA quota-root SP "(" [resource SP limit *(SP resource SP
// limit)] ")", so that a well-formed command gets its NO and a malformed one BAD.
func parseSetQuota(r *reader, c *Command) (err error) {
	if c.QuotaRoot, err = r.astring(); err != nil {
		return err
	}
	if err = r.sp(); err != nil {
		return err
	}
	return r.list(true, func() error {
		if _, err := r.atom(); err != nil {
			return err
		}
		if err := r.sp(); err != nil {
			return err
		}
		_, err := r.number64()
		return err
	})
}

// quotaResources renders the resources of a QUOTA response, "" when the account has no
// limit at all.
func quotaResources(q store.Quota) string {
	var b []byte
	add := func(name string, usage, limit int64) {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, name...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, usage, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, limit, 10)
	}
	kib := func(n int64) int64 { return (n + 1023) / 1024 }
	if q.Limits.Storage > 0 {
		add("STORAGE", kib(q.Usage.Size), kib(q.Limits.Storage))
	}
	if q.Limits.Messages > 0 {
		add("MESSAGE", q.Usage.Messages, q.Limits.Messages)
	}
	return string(b)
}

// writeQuota writes "* QUOTA "" (...)" if the account has a quota root, and reports
// whether it has.
func (s *session) writeQuota() (bool, error) {
	q, err := s.srv.store.Quota(s.ctx, s.account.ID)
	if err != nil {
		return false, s.storeError(err)
	}
	res := quotaResources(q)
	if res == "" {
		return false, nil
	}
	w := s.out()
	w.str("* QUOTA ")
	w.string(quotaRoot)
	w.str(" (")
	w.str(res)
	w.str(")\r\n")
	return true, nil
}

// cmdGetQuota answers GETQUOTA (RFC 9208 §3.1).
func (s *session) cmdGetQuota(c *Command) (done, error) {
	if c.QuotaRoot == quotaRoot {
		ok, err := s.writeQuota()
		if ok || err != nil {
			return done{}, err
		}
	}
	return done{}, &Error{Kind: NO, Code: "NONEXISTENT", Text: "No such quota root"}
}

// cmdGetQuotaRoot answers GETQUOTAROOT (RFC 9208 §3.2): the mailbox's quota roots (the
// account's, if it has one), then each root's QUOTA.
func (s *session) cmdGetQuotaRoot(c *Command) (done, error) {
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.account.ID, name)
	if err != nil {
		return done{}, s.storeError(err)
	}
	q, err := s.srv.store.Quota(s.ctx, s.account.ID)
	if err != nil {
		return done{}, s.storeError(err)
	}
	w := s.out()
	w.str("* QUOTAROOT ")
	w.mailbox(mb.Name)
	if quotaResources(q) != "" {
		w.sp()
		w.string(quotaRoot)
	}
	w.crlf()
	_, err = s.writeQuota()
	return done{}, err
}

// cmdSetQuota refuses SETQUOTA (RFC 9208 §3.3): quotas are the administrator's.
func (s *session) cmdSetQuota(c *Command) (done, error) {
	return done{}, &Error{Kind: NO, Code: "NOPERM", Text: "Quotas are set by the administrator"}
}

// deletedStorage is STATUS DELETED-STORAGE (RFC 9208 §4.2): the octets an EXPUNGE would
// free, from the message rows (no body is read).
func (s *session) deletedStorage(mb store.Mailbox) (int64, error) {
	if mb.Deleted == 0 {
		return 0, nil
	}
	msgs, err := s.srv.store.Messages(s.ctx, mb.ID, store.Filter{})
	if err != nil {
		return 0, s.storeError(err)
	}
	var n int64
	for _, m := range msgs {
		if hasFlag(m, store.FlagDeleted) {
			n += m.Size
		}
	}
	return n, nil
}
