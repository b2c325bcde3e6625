// Package sieve parses and runs Sieve mail filtering scripts (RFC 5228) with the
// extensions Petrel offers: fileinto, reject and ereject (RFC 5429), envelope, body (RFC
// 5173), variables (RFC 5229), imap4flags (RFC 5232), copy (RFC 3894), vacation (RFC
// 5230), regex (draft-ietf-sieve-regex, with Go's linear-time RE2 syntax), subaddress
// (RFC 5233) and mailbox's fileinto :create (RFC 5490), with the comparators i;octet and
// i;ascii-casemap (RFC 4790).
//
// The package knows Sieve, not the store or SMTP: Run takes an envelope and a Message and
// returns a Result (mailboxes with flags, redirects, a rejection, a vacation reply) that
// delivery carries out. Actions take effect only if the whole script succeeds; a script
// that fails at run time yields an error and the caller keeps the message in INBOX
// (RFC 5228 §2.10.6).
//
// Invariants: a script can never loop (Sieve has no loops) and every resource it can
// consume is bounded by Limits: its size and nesting depth at parse time, its actions,
// redirects and evaluation work (steps, counted in bytes compared) at run time, and the
// length of every variable. Parse errors carry the line and the reason (*Error).
package sieve

import (
	"errors"
	"strings"
)

// Limits bound what one script may cost.
type Limits struct {
	MaxScriptSize int   // bytes of source
	MaxDepth      int   // nesting of blocks and tests
	MaxActions    int   // actions (keep, fileinto, redirect, reject, vacation) per run
	MaxRedirects  int   // redirects per message
	MaxSteps      int64 // work units per run: one per command and test, plus bytes compared
	MaxVariable   int   // bytes of one variable's value
}

// DefaultLimits are generous for people and tight for abuse (Dovecot's Pigeonhole uses
// comparable ones: 32 actions and 4 redirects).
func DefaultLimits() Limits {
	return Limits{
		MaxScriptSize: 256 << 10,
		MaxDepth:      32,
		MaxActions:    32,
		MaxRedirects:  4,
		MaxSteps:      20 << 20,
		MaxVariable:   4096,
	}
}

// Script is a parsed script, safe to run many times and concurrently.
type Script struct {
	cmds []command
	exts map[string]bool
}

// Parse parses and checks a script. An error is an *Error with the line and reason.
func Parse(src string, lim Limits) (*Script, error) {
	if len(src) > lim.MaxScriptSize {
		return nil, errorf(1, "script is %d bytes, more than the limit of %d", len(src), lim.MaxScriptSize)
	}
	p := &parser{lx: lexer{src: src, line: 1}, limits: lim}
	if err := p.advance(); err != nil {
		return nil, err
	}
	raw, err := p.commands(false)
	if err != nil {
		return nil, err
	}
	c := &compiler{exts: map[string]bool{}}
	cmds, err := c.block(raw)
	if err != nil {
		return nil, err
	}
	return &Script{cmds: cmds, exts: c.exts}, nil
}

// Envelope is the SMTP envelope of the message being filtered.
type Envelope struct {
	From string // reverse-path, "" for the null sender
	To   string // the recipient address this run is for
}

// Body transforms of the body test (RFC 5173 §5).
const (
	BodyRaw     = "raw"     // the undecoded body after the header
	BodyText    = "text"    // the decoded text of the text parts
	BodyContent = "content" // the decoded parts of the given types
)

// Message is the message being filtered.
type Message interface {
	// Header returns the values of every field of that name (any case), in order,
	// unfolded and still encoded (RFC 2047 words are decoded by the tests).
	Header(name string) []string
	Size() int64
	// Body returns the body as the transform sees it; types are the content types of
	// BodyContent ("text", "text/plain", "" for all).
	Body(transform string, types []string) string
}

// Delivery is one mailbox the message goes to.
type Delivery struct {
	Mailbox string   // "INBOX" for keep
	Flags   []string // IMAP flags the message gets there
	Create  bool     // fileinto :create: create the mailbox if missing (RFC 5490)
}

// Vacation is a reply a vacation action asks for (RFC 5230). Whether it may go out
// (VacationAllowed) and whether it went out already in its period is delivery's question.
type Vacation struct {
	Handle    string // identifies the reply for "once per period" (§4.2)
	Days      int    // the period in days (§4.1, already limited)
	Subject   string // "" means "Auto: " + the original subject (§4.3)
	From      string // the From of the reply, "" for the recipient
	Addresses []string
	Mime      bool // Reason is a MIME part with its own header (§4.4)
	Reason    string
}

// Result is what a script decided.
type Result struct {
	Deliveries []Delivery // in order; empty with Discarded or Reject
	Redirects  []string   // addresses the message is sent on to
	Reject     bool       // refuse the message (RFC 5429)
	Extended   bool       // ereject: the reason is for the SMTP reply
	Reason     string
	Vacation   *Vacation
	// ImplicitKeep reports that the INBOX delivery comes from the implicit keep.
	ImplicitKeep bool
}

// ErrLimit is wrapped by the *Error of a run that hit a limit.
var ErrLimit = errors.New("sieve: limit reached")

// Vacation periods (RFC 5230 §4.1: the default is 7 days, and the minimum SHOULD be one).
const (
	vacationDefaultDays = 7
	vacationMaxDays     = 90
)

// Run runs the script for one recipient of a message. On error (a limit hit, a rejection
// combined with a delivery) the result is empty and the caller keeps the message in INBOX.
func (s *Script) Run(env Envelope, msg Message, lim Limits) (Result, error) {
	r := &run{script: s, env: env, msg: msg, lim: lim, implicitKeep: true}
	err := r.block(s.cmds)
	if err == errStop {
		err = nil
	}
	if err != nil {
		return Result{}, err
	}
	if r.res.Reject && (len(r.res.Deliveries) > 0 || len(r.res.Redirects) > 0 || r.res.Vacation != nil) {
		// RFC 5429 §2.1 (reject with keep, fileinto or redirect) and RFC 5230 §4.7.
		return Result{}, errorf(r.rejectLine, "reject cannot be combined with keep, fileinto, redirect or vacation")
	}
	if r.implicitKeep && !r.res.Reject {
		r.deliver(Delivery{Mailbox: "INBOX", Flags: r.internalFlags()})
		r.res.ImplicitKeep = true
	}
	return r.res, nil
}

// Has reports whether the script requires an extension.
func (s *Script) Has(ext string) bool { return s.exts[ext] }

// flagList splits flag strings at spaces and removes duplicates (RFC 5232 §3: the flags
// are a space-separated list; system flags compare without case).
func flagList(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		for _, f := range strings.Fields(s) {
			key := strings.ToLower(f)
			if !seen[key] {
				seen[key] = true
				out = append(out, canonicalFlag(f))
			}
		}
	}
	return out
}

func canonicalFlag(f string) string {
	for _, sys := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`} {
		if strings.EqualFold(f, sys) {
			return sys
		}
	}
	return f
}
