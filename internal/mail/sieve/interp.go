package sieve

import (
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
)

// errStop ends a run early without an error (the stop command).
var errStop = errors.New("stop")

type command interface{ exec(r *run) error }
type test interface{ eval(r *run) (bool, error) }

// run is the state of one execution.
type run struct {
	script       *Script
	env          Envelope
	msg          Message
	lim          Limits
	steps        int64
	actions      int
	vars         map[string]string
	match        []string // ${0}..${9} of the last successful :matches or :regex
	flags        []string // imap4flags' internal variable
	res          Result
	implicitKeep bool
	rejectLine   int
	addrs        map[string][]string // parsed address headers, by value: several tests read one header
}

// charge counts work and fails the run beyond MaxSteps.
func (r *run) charge(n int64, line int) error {
	r.steps += n
	if r.steps > r.lim.MaxSteps {
		return &Error{Line: line, Reason: fmt.Sprintf("%v: more than %d steps", ErrLimit, r.lim.MaxSteps)}
	}
	return nil
}

func (r *run) action(line int) error {
	r.actions++
	if r.actions > r.lim.MaxActions {
		return &Error{Line: line, Reason: fmt.Sprintf("%v: more than %d actions", ErrLimit, r.lim.MaxActions)}
	}
	return nil
}

func (r *run) block(cmds []command) error {
	for _, c := range cmds {
		if err := r.charge(1, 0); err != nil {
			return err
		}
		if err := c.exec(r); err != nil {
			return err
		}
	}
	return nil
}

// deliver adds a delivery; a second one to the same mailbox replaces the first's flags
// (RFC 5228 §2.10.3: the message is filed only once).
func (r *run) deliver(d Delivery) {
	for i, have := range r.res.Deliveries {
		if strings.EqualFold(have.Mailbox, d.Mailbox) {
			d.Create = d.Create || have.Create
			r.res.Deliveries[i] = d
			return
		}
	}
	r.res.Deliveries = append(r.res.Deliveries, d)
}

func (r *run) internalFlags() []string {
	return append([]string(nil), r.flags...)
}

// Commands.

type ifCommand struct {
	tests     []test
	blocks    [][]command
	elseBlock []command
	hasElse   bool
}

func (c *ifCommand) exec(r *run) error {
	for i, t := range c.tests {
		ok, err := t.eval(r)
		if err != nil {
			return err
		}
		if ok {
			return r.block(c.blocks[i])
		}
	}
	return r.block(c.elseBlock)
}

type stopCommand struct{}

func (stopCommand) exec(*run) error { return errStop }

type discardCommand struct{ line int }

func (c discardCommand) exec(r *run) error {
	r.implicitKeep = false
	return nil
}

type keepCommand struct {
	line     int
	flags    []string
	hasFlags bool
}

func (c keepCommand) exec(r *run) error {
	if err := r.action(c.line); err != nil {
		return err
	}
	r.implicitKeep = false
	r.deliver(Delivery{Mailbox: "INBOX", Flags: r.flagsFor(c.flags, c.hasFlags)})
	return nil
}

func (r *run) flagsFor(list []string, given bool) []string {
	if !given {
		return r.internalFlags()
	}
	return flagList(r.expandAll(list))
}

type fileintoCommand struct {
	line         int
	mailbox      string
	copy, create bool
	flags        []string
	hasFlags     bool
}

func (c fileintoCommand) exec(r *run) error {
	if err := r.action(c.line); err != nil {
		return err
	}
	mailbox := r.expand(c.mailbox)
	if mailbox == "" {
		return errorf(c.line, "fileinto: empty mailbox name")
	}
	if !c.copy {
		r.implicitKeep = false
	}
	r.deliver(Delivery{Mailbox: mailbox, Flags: r.flagsFor(c.flags, c.hasFlags), Create: c.create})
	return nil
}

type redirectCommand struct {
	line int
	addr string
	copy bool
}

func (c redirectCommand) exec(r *run) error {
	if err := r.action(c.line); err != nil {
		return err
	}
	addr := r.expand(c.addr)
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return errorf(c.line, "redirect: bad address %q", addr)
	}
	if !c.copy {
		r.implicitKeep = false
	}
	for _, have := range r.res.Redirects {
		if strings.EqualFold(have, a.Address) {
			return nil // RFC 5228 §2.10.3: once per address
		}
	}
	if len(r.res.Redirects) >= r.lim.MaxRedirects {
		return &Error{Line: c.line, Reason: fmt.Sprintf("%v: more than %d redirects", ErrLimit, r.lim.MaxRedirects)}
	}
	r.res.Redirects = append(r.res.Redirects, a.Address)
	return nil
}

type rejectCommand struct {
	line     int
	reason   string
	extended bool
}

func (c rejectCommand) exec(r *run) error {
	if err := r.action(c.line); err != nil {
		return err
	}
	if r.res.Reject {
		return errorf(c.line, "only one reject per message")
	}
	r.implicitKeep = false
	r.res.Reject, r.res.Extended, r.res.Reason = true, c.extended, r.expand(c.reason)
	r.rejectLine = c.line
	return nil
}

type vacationCommand struct {
	line          int
	days          int64
	subject, from string
	hasSubject    bool
	handle        string
	addresses     []string
	mime          bool
	reason        string
}

func (c vacationCommand) exec(r *run) error {
	if err := r.action(c.line); err != nil {
		return err
	}
	if r.res.Vacation != nil {
		return errorf(c.line, "only one vacation per message")
	}
	days := int(c.days)
	switch {
	case c.days < 0:
		days = vacationDefaultDays
	case days < 1:
		days = 1 // RFC 5230 §4.1: a minimum of one day
	case days > vacationMaxDays:
		days = vacationMaxDays
	}
	v := &Vacation{
		Days:      days,
		From:      r.expand(c.from),
		Addresses: r.expandAll(c.addresses),
		Mime:      c.mime,
		Reason:    r.expand(c.reason),
	}
	if c.hasSubject {
		v.Subject = r.expand(c.subject)
	}
	v.Handle = r.expand(c.handle)
	if c.handle == "" {
		// RFC 5230 §4.2: without :handle, replies that differ in their text are distinct.
		v.Handle = "auto:" + v.Subject + "\x00" + v.From + "\x00" + v.Reason
	}
	r.res.Vacation = v
	return nil
}

type flagCommand struct {
	op       string // setflag, addflag, removeflag
	variable string // "" for the internal variable
	flags    []string
}

func (c flagCommand) exec(r *run) error {
	cur := r.flags
	if c.variable != "" {
		cur = flagList([]string{r.getVar(c.variable)})
	}
	given := flagList(r.expandAll(c.flags))
	switch c.op {
	case "setflag":
		cur = given
	case "addflag":
		cur = flagList(append(append([]string(nil), cur...), given...))
	case "removeflag":
		var keep []string
		for _, f := range cur {
			if !containsFold(given, f) {
				keep = append(keep, f)
			}
		}
		cur = keep
	}
	if c.variable != "" {
		r.setVar(c.variable, strings.Join(cur, " "))
	} else {
		r.flags = cur
	}
	return nil
}

type setCommand struct {
	name, value string
	modifiers   []string
}

func (c setCommand) exec(r *run) error {
	v := r.expand(c.value)
	for _, m := range c.modifiers {
		switch m {
		case "lower":
			v = strings.ToLower(v)
		case "upper":
			v = strings.ToUpper(v)
		case "lowerfirst":
			if v != "" {
				v = strings.ToLower(v[:1]) + v[1:]
			}
		case "upperfirst":
			if v != "" {
				v = strings.ToUpper(v[:1]) + v[1:]
			}
		case "quotewildcard":
			v = strings.NewReplacer(`*`, `\*`, `?`, `\?`, `\`, `\\`).Replace(v)
		case "length":
			v = strconv.Itoa(len([]rune(v)))
		}
	}
	r.setVar(c.name, v)
	return nil
}

// Variables (RFC 5229).

// maxVariables bounds how many variables a run may create.
const maxVariables = 128

func (r *run) setVar(name, v string) {
	if len(v) > r.lim.MaxVariable {
		v = v[:r.lim.MaxVariable] // §3: an implementation may truncate
	}
	if r.vars == nil {
		r.vars = map[string]string{}
	}
	if _, ok := r.vars[name]; !ok && len(r.vars) >= maxVariables {
		return
	}
	r.vars[name] = v
}

func (r *run) getVar(name string) string {
	if isDigits(name) {
		n, _ := strconv.Atoi(name)
		if n < len(r.match) {
			return r.match[n]
		}
		return ""
	}
	return r.vars[strings.ToLower(name)]
}

// expand replaces ${name} references when the script uses variables (RFC 5229 §3).
// Unknown variables expand to ""; text that is not a valid reference stays as written.
func (r *run) expand(s string) string {
	if !r.script.exts["variables"] || !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s)
			break
		}
		name := s[i+2 : i+end]
		b.WriteString(s[:i])
		switch {
		case validVarName(name):
			b.WriteString(r.getVar(name))
		case validNamespaced(name):
			// A namespace Petrel does not offer (such as envelope.) expands to nothing.
		default:
			b.WriteString(s[i : i+end+1])
		}
		s = s[i+end+1:]
		if b.Len() > r.lim.MaxVariable*4 {
			break
		}
	}
	return b.String()
}

func validNamespaced(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if !validVarName(p) || isDigits(p) {
			return false
		}
	}
	return true
}

func (r *run) expandAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = r.expand(s)
	}
	return out
}

// Tests.

type constTest bool

func (t constTest) eval(*run) (bool, error) { return bool(t), nil }

type notTest struct{ t test }

func (t notTest) eval(r *run) (bool, error) {
	ok, err := t.t.eval(r)
	return !ok, err
}

type listTest struct {
	all   bool
	tests []test
}

// eval short-circuits (RFC 5228 §5.2, §5.3 do not require evaluating every test).
func (t listTest) eval(r *run) (bool, error) {
	for _, sub := range t.tests {
		ok, err := sub.eval(r)
		if err != nil {
			return false, err
		}
		if ok != t.all {
			return ok, nil
		}
	}
	return t.all, nil
}

type existsTest struct{ names []string }

func (t existsTest) eval(r *run) (bool, error) {
	for _, n := range r.expandAll(t.names) {
		if len(r.msg.Header(n)) == 0 {
			return false, nil
		}
	}
	return true, nil
}

type sizeTest struct {
	over  bool
	limit int64
}

func (t sizeTest) eval(r *run) (bool, error) {
	if t.over {
		return r.msg.Size() > t.limit, nil
	}
	return r.msg.Size() < t.limit, nil
}

type headerTest struct {
	m           matcher
	names, keys []string
}

func (t headerTest) eval(r *run) (bool, error) {
	var values []string
	for _, n := range r.expandAll(t.names) {
		for _, v := range r.msg.Header(n) {
			values = append(values, decodeHeader(v))
		}
	}
	return r.matchAny(t.m, values, t.keys)
}

var wordDecoder = mime.WordDecoder{}

// decodeHeader decodes RFC 2047 encoded words (RFC 5228 §2.7.2) and trims the value.
func decodeHeader(v string) string {
	if strings.Contains(v, "=?") {
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
	}
	return strings.TrimSpace(v)
}

type addressTest struct {
	m           matcher
	part        string
	names, keys []string
	envelope    bool
}

func (t addressTest) eval(r *run) (bool, error) {
	var values []string
	for _, n := range r.expandAll(t.names) {
		if t.envelope {
			switch strings.ToLower(n) {
			case "from":
				// RFC 5228 §5.4: the null reverse-path matches "" with :all.
				values = append(values, addressPart(r.env.From, t.part))
			case "to":
				values = append(values, addressPart(r.env.To, t.part))
			}
			continue
		}
		for _, v := range r.msg.Header(n) {
			for _, a := range r.parseAddresses(v) {
				values = append(values, addressPart(a, t.part))
			}
		}
	}
	return r.matchAny(t.m, values, t.keys)
}

func (r *run) parseAddresses(v string) []string {
	if a, ok := r.addrs[v]; ok {
		return a
	}
	if r.addrs == nil {
		r.addrs = map[string][]string{}
	}
	a := parseAddresses(v)
	r.addrs[v] = a
	return a
}

// parseAddresses returns the addresses of a header value; a value that does not parse is
// used as it is (RFC 5228 §5.1 lets an implementation match the raw value).
func parseAddresses(v string) []string {
	list, err := (&mail.AddressParser{WordDecoder: &wordDecoder}).ParseList(v)
	if err != nil {
		return []string{strings.TrimSpace(v)}
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out
}

func addressPart(a, part string) string {
	local, domain := a, ""
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		local, domain = a[:i], a[i+1:]
	}
	switch part {
	case "localpart":
		return local
	case "domain":
		return domain
	case "user":
		if i := strings.IndexByte(local, '+'); i >= 0 {
			return local[:i]
		}
		return local
	case "detail":
		if i := strings.IndexByte(local, '+'); i >= 0 {
			return local[i+1:]
		}
		return ""
	}
	return a
}

type bodyTest struct {
	m         matcher
	transform string
	types     []string
	keys      []string
}

func (t bodyTest) eval(r *run) (bool, error) {
	body := r.msg.Body(t.transform, r.expandAll(t.types))
	// RFC 5173 §4: the body test matches :contains or :is against the whole body text.
	return r.matchAny(t.m, []string{body}, t.keys)
}

type stringTest struct {
	m             matcher
	sources, keys []string
}

func (t stringTest) eval(r *run) (bool, error) {
	return r.matchAny(t.m, r.expandAll(t.sources), t.keys)
}

type hasflagTest struct {
	m          matcher
	vars, keys []string
}

func (t hasflagTest) eval(r *run) (bool, error) {
	var flags []string
	if len(t.vars) == 0 {
		flags = r.flags
	} else {
		for _, v := range t.vars {
			flags = append(flags, flagList([]string{r.getVar(v)})...)
		}
	}
	keys := flagList(r.expandAll(t.keys))
	return r.matchAny(t.m, flags, keys)
}

// matchAny reports whether any value matches any key. A successful :matches or :regex
// sets the match variables (RFC 5229 §3.2).
func (r *run) matchAny(m matcher, values, keys []string) (bool, error) {
	if err := r.charge(1, 0); err != nil {
		return false, err
	}
	for ki, key := range keys {
		key = r.expand(key)
		var re *regexp.Regexp
		if m.kind == "regex" {
			re = m.regexps[ki]
			if re == nil {
				var err error
				if re, err = compileRegex(key, m.comparator); err != nil {
					return false, nil // a bad expression from a variable matches nothing
				}
			}
		}
		for _, v := range values {
			if err := r.charge(int64(len(v)+len(key)), 0); err != nil {
				return false, err
			}
			ok, caps, cost := m.match(v, key, re, r.script.exts["variables"])
			if err := r.charge(cost, 0); err != nil {
				return false, err
			}
			if ok {
				if caps != nil {
					r.match = caps
				}
				return true, nil
			}
		}
	}
	return false, nil
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
