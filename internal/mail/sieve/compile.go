package sieve

import (
	"fmt"
	"regexp"
	"strings"
)

// Capabilities lists the extensions a script may require, in the order ManageSieve's
// SIEVE capability announces them (RFC 5804 §1.7).
var Capabilities = []string{
	"fileinto", "reject", "ereject", "envelope", "body", "variables", "imap4flags", "copy",
	"vacation", "regex", "subaddress", "mailbox",
	"comparator-i;octet", "comparator-i;ascii-casemap",
}

func supported(ext string) bool {
	for _, c := range Capabilities {
		if c == ext {
			return true
		}
	}
	return false
}

// compiler turns the generic syntax tree into typed commands and tests, checking every
// argument, so that running a script that parsed never meets a malformed command.
type compiler struct {
	exts    map[string]bool
	started bool // a command other than require was seen
}

func (c *compiler) need(ext string, line int, what string) error {
	if !c.exts[ext] {
		return errorf(line, `%s needs require "%s"`, what, ext)
	}
	return nil
}

func (c *compiler) block(raw []*rawCommand) ([]command, error) {
	var out []command
	for i := 0; i < len(raw); i++ {
		rc := raw[i]
		if rc.name == "if" {
			ic := &ifCommand{}
			j := i
			for ; j < len(raw); j++ {
				r := raw[j]
				if j > i && (r.name != "elsif" && r.name != "else" || ic.hasElse) {
					break
				}
				if !r.hasBlock {
					return nil, errorf(r.line, "%s needs a block", r.name)
				}
				if len(r.args) > 0 {
					return nil, errorf(r.line, "%s takes no arguments besides its test", r.name)
				}
				body, err := c.block(r.block)
				if err != nil {
					return nil, err
				}
				if r.name == "else" {
					if len(r.tests) > 0 {
						return nil, errorf(r.line, "else takes no test")
					}
					ic.elseBlock, ic.hasElse = body, true
					continue
				}
				if len(r.tests) != 1 || r.list {
					return nil, errorf(r.line, "%s needs exactly one test", r.name)
				}
				t, err := c.test(r.tests[0])
				if err != nil {
					return nil, err
				}
				ic.tests = append(ic.tests, t)
				ic.blocks = append(ic.blocks, body)
			}
			i = j - 1
			c.started = true
			out = append(out, ic)
			continue
		}
		cmd, err := c.command(rc)
		if err != nil {
			return nil, err
		}
		if cmd != nil {
			out = append(out, cmd)
		}
	}
	return out, nil
}

func (c *compiler) command(rc *rawCommand) (command, error) {
	if rc.name == "elsif" || rc.name == "else" {
		return nil, errorf(rc.line, "%s without if", rc.name)
	}
	if rc.hasBlock {
		return nil, errorf(rc.line, "%s takes no block", rc.name)
	}
	if len(rc.tests) > 0 {
		return nil, errorf(rc.line, "%s takes no test", rc.name)
	}
	if rc.name == "require" {
		if c.started {
			return nil, errorf(rc.line, "require must come before any other command")
		}
		a, err := parseArgs(rc.name, rc.line, rc.args, nil, argStrings)
		if err != nil {
			return nil, err
		}
		for _, ext := range a.pos[0].strs {
			if !supported(ext) {
				return nil, errorf(rc.line, "unsupported extension %q", ext)
			}
			c.exts[ext] = true
		}
		return nil, nil
	}
	c.started = true
	line := rc.line
	switch rc.name {
	case "stop":
		_, err := parseArgs(rc.name, line, rc.args, nil)
		return stopCommand{}, err
	case "discard":
		_, err := parseArgs(rc.name, line, rc.args, nil)
		return discardCommand{line: line}, err
	case "keep":
		a, err := parseArgs(rc.name, line, rc.args, c.flagsTag())
		if err != nil {
			return nil, err
		}
		k := keepCommand{line: line}
		k.flags, k.hasFlags = a.strings("flags")
		return k, nil
	case "fileinto":
		if err := c.need("fileinto", line, "fileinto"); err != nil {
			return nil, err
		}
		specs := c.flagsTag()
		c.copyTag(specs)
		if c.exts["mailbox"] {
			specs["create"] = tagSpec{}
		}
		a, err := parseArgs(rc.name, line, rc.args, specs, argString)
		if err != nil {
			return nil, err
		}
		f := fileintoCommand{line: line, mailbox: a.pos[0].strs[0], copy: a.has("copy"), create: a.has("create")}
		f.flags, f.hasFlags = a.strings("flags")
		return f, nil
	case "redirect":
		specs := map[string]tagSpec{}
		c.copyTag(specs)
		a, err := parseArgs(rc.name, line, rc.args, specs, argString)
		if err != nil {
			return nil, err
		}
		return redirectCommand{line: line, addr: a.pos[0].strs[0], copy: a.has("copy")}, nil
	case "reject", "ereject":
		if err := c.need(rc.name, line, rc.name); err != nil {
			return nil, err
		}
		a, err := parseArgs(rc.name, line, rc.args, nil, argString)
		if err != nil {
			return nil, err
		}
		return rejectCommand{line: line, reason: a.pos[0].strs[0], extended: rc.name == "ereject"}, nil
	case "vacation":
		return c.vacation(rc)
	case "setflag", "addflag", "removeflag":
		if err := c.need("imap4flags", line, rc.name); err != nil {
			return nil, err
		}
		fc := flagCommand{op: rc.name}
		args := rc.args
		if len(args) == 2 {
			if err := c.need("variables", line, rc.name+" with a variable name"); err != nil {
				return nil, err
			}
			if args[0].kind != argStrings || len(args[0].strs) != 1 || !validVarName(args[0].strs[0]) {
				return nil, errorf(line, "%s: bad variable name", rc.name)
			}
			fc.variable = strings.ToLower(args[0].strs[0])
			args = args[1:]
		}
		a, err := parseArgs(rc.name, line, args, nil, argStrings)
		if err != nil {
			return nil, err
		}
		fc.flags = a.pos[0].strs
		return fc, nil
	case "set":
		if err := c.need("variables", line, "set"); err != nil {
			return nil, err
		}
		specs := map[string]tagSpec{}
		for _, m := range []string{"lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "length"} {
			specs[m] = tagSpec{}
		}
		a, err := parseArgs(rc.name, line, rc.args, specs, argString, argString)
		if err != nil {
			return nil, err
		}
		name := a.pos[0].strs[0]
		if !validVarName(name) || isDigits(name) {
			return nil, errorf(line, "set: bad variable name %q", name)
		}
		s := setCommand{name: strings.ToLower(name), value: a.pos[1].strs[0]}
		// RFC 5229 §4.1: modifiers apply by precedence, whatever order they were written in.
		for _, m := range []string{"lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "length"} {
			if a.has(m) {
				s.modifiers = append(s.modifiers, m)
			}
		}
		if a.has("lower") && a.has("upper") || a.has("lowerfirst") && a.has("upperfirst") {
			return nil, errorf(line, "set: conflicting modifiers")
		}
		return s, nil
	}
	return nil, errorf(line, "unknown command %s", rc.name)
}

func (c *compiler) flagsTag() map[string]tagSpec {
	if c.exts["imap4flags"] {
		return map[string]tagSpec{"flags": {value: argStrings}}
	}
	return map[string]tagSpec{}
}

func (c *compiler) copyTag(specs map[string]tagSpec) {
	if c.exts["copy"] {
		specs["copy"] = tagSpec{}
	}
}

func (c *compiler) vacation(rc *rawCommand) (command, error) {
	line := rc.line
	if err := c.need("vacation", line, "vacation"); err != nil {
		return nil, err
	}
	a, err := parseArgs(rc.name, line, rc.args, map[string]tagSpec{
		"days":      {value: argNumber},
		"subject":   {value: argString},
		"from":      {value: argString},
		"addresses": {value: argStrings},
		"mime":      {},
		"handle":    {value: argString},
	}, argString)
	if err != nil {
		return nil, err
	}
	v := vacationCommand{line: line, reason: a.pos[0].strs[0], mime: a.has("mime"), days: -1}
	if d, ok := a.tags["days"]; ok {
		v.days = d.num
	}
	if s, ok := a.tags["subject"]; ok {
		v.subject, v.hasSubject = s.strs[0], true
	}
	if s, ok := a.tags["from"]; ok {
		v.from = s.strs[0]
	}
	if s, ok := a.tags["handle"]; ok {
		v.handle = s.strs[0]
	}
	v.addresses, _ = a.strings("addresses")
	return v, nil
}

var matchTags = []string{"is", "contains", "matches", "regex"}

// matchSpecs adds the comparator and match-type tags every matching test takes.
func (c *compiler) matchSpecs(specs map[string]tagSpec) map[string]tagSpec {
	if specs == nil {
		specs = map[string]tagSpec{}
	}
	specs["comparator"] = tagSpec{value: argString}
	for _, m := range matchTags {
		specs[m] = tagSpec{group: "match type"}
	}
	return specs
}

// matchArgs parses the arguments of a matching test: its own tags (specs), the comparator
// and match type, then the positional arguments pos, of which the last is the key list.
func (c *compiler) matchArgs(name string, line int, args []arg, specs map[string]tagSpec, pos ...argKind) (parsedArgs, matcher, []string, error) {
	a, err := parseArgs(name, line, args, c.matchSpecs(specs), pos...)
	if err != nil {
		return a, matcher{}, nil, err
	}
	m, err := c.matcher(a, line)
	if err != nil {
		return a, m, nil, err
	}
	keys := a.pos[len(a.pos)-1].strs
	m, err = c.keys(m, keys, line)
	return a, m, keys, err
}

func (c *compiler) matcher(a parsedArgs, line int) (matcher, error) {
	m := matcher{kind: "is", comparator: "i;ascii-casemap"}
	for _, t := range matchTags {
		if a.has(t) {
			m.kind = t
		}
	}
	if m.kind == "regex" {
		if err := c.need("regex", line, ":regex"); err != nil {
			return m, err
		}
	}
	if cmp, ok := a.tags["comparator"]; ok {
		m.comparator = cmp.strs[0]
		if m.comparator != "i;octet" && m.comparator != "i;ascii-casemap" {
			return m, errorf(line, "unsupported comparator %q", m.comparator)
		}
		if !c.exts["comparator-"+m.comparator] && m.comparator != "i;octet" && m.comparator != "i;ascii-casemap" {
			return m, errorf(line, "comparator %q needs require", m.comparator)
		}
	}
	return m, nil
}

// keys checks the keys of a regex match at compile time when they hold no variable.
func (c *compiler) keys(m matcher, keys []string, line int) (matcher, error) {
	if m.kind != "regex" {
		return m, nil
	}
	m.regexps = make([]*regexp.Regexp, len(keys))
	for i, k := range keys {
		if c.exts["variables"] && strings.Contains(k, "${") {
			continue // compiled when it runs
		}
		re, err := compileRegex(k, m.comparator)
		if err != nil {
			return m, errorf(line, "bad regular expression %q", k)
		}
		m.regexps[i] = re
	}
	return m, nil
}

func (c *compiler) test(rt *rawTest) (test, error) {
	line := rt.line
	noTests := func() error {
		if len(rt.tests) > 0 {
			return errorf(line, "%s takes no nested test", rt.name)
		}
		return nil
	}
	switch rt.name {
	case "true", "false":
		if _, err := parseArgs(rt.name, line, rt.args, nil); err != nil {
			return nil, err
		}
		return constTest(rt.name == "true"), noTests()
	case "not":
		if len(rt.tests) != 1 || rt.list || len(rt.args) > 0 {
			return nil, errorf(line, "not needs exactly one test")
		}
		t, err := c.test(rt.tests[0])
		return notTest{t}, err
	case "allof", "anyof":
		if !rt.list || len(rt.args) > 0 {
			return nil, errorf(line, "%s needs a list of tests in parentheses", rt.name)
		}
		lt := listTest{all: rt.name == "allof"}
		for _, sub := range rt.tests {
			t, err := c.test(sub)
			if err != nil {
				return nil, err
			}
			lt.tests = append(lt.tests, t)
		}
		return lt, nil
	case "exists":
		a, err := parseArgs(rt.name, line, rt.args, nil, argStrings)
		if err != nil {
			return nil, err
		}
		return existsTest{names: a.pos[0].strs}, noTests()
	case "size":
		a, err := parseArgs(rt.name, line, rt.args, map[string]tagSpec{
			"over": {group: "size comparison"}, "under": {group: "size comparison"},
		}, argNumber)
		if err != nil {
			return nil, err
		}
		if !a.has("over") && !a.has("under") {
			return nil, errorf(line, "size needs :over or :under")
		}
		return sizeTest{over: a.has("over"), limit: a.pos[0].num}, noTests()
	case "header", "address", "envelope":
		if rt.name == "envelope" {
			if err := c.need("envelope", line, "envelope"); err != nil {
				return nil, err
			}
		}
		specs := map[string]tagSpec{}
		if rt.name != "header" {
			for _, p := range []string{"all", "localpart", "domain"} {
				specs[p] = tagSpec{group: "address part"}
			}
			if c.exts["subaddress"] {
				specs["user"] = tagSpec{group: "address part"}
				specs["detail"] = tagSpec{group: "address part"}
			}
		}
		a, m, keys, err := c.matchArgs(rt.name, line, rt.args, specs, argStrings, argStrings)
		if err != nil {
			return nil, err
		}
		names := a.pos[0].strs
		if rt.name == "header" {
			return headerTest{m: m, names: names, keys: keys}, noTests()
		}
		part := "all"
		for _, p := range []string{"localpart", "domain", "user", "detail"} {
			if a.has(p) {
				part = p
			}
		}
		if rt.name == "envelope" {
			for _, n := range names {
				if l := strings.ToLower(n); l != "from" && l != "to" {
					return nil, errorf(line, "envelope knows only \"from\" and \"to\", not %q", n)
				}
			}
		}
		return addressTest{m: m, part: part, names: names, keys: keys, envelope: rt.name == "envelope"}, noTests()
	case "body":
		if err := c.need("body", line, "body"); err != nil {
			return nil, err
		}
		a, m, keys, err := c.matchArgs(rt.name, line, rt.args, map[string]tagSpec{
			"raw": {group: "body transform"}, "text": {group: "body transform"},
			"content": {group: "body transform", value: argStrings},
		}, argStrings)
		if err != nil {
			return nil, err
		}
		bt := bodyTest{m: m, keys: keys, transform: BodyText}
		if a.has("raw") {
			bt.transform = BodyRaw
		}
		if types, ok := a.strings("content"); ok {
			bt.transform, bt.types = BodyContent, types
		}
		return bt, noTests()
	case "string":
		if err := c.need("variables", line, "string"); err != nil {
			return nil, err
		}
		a, m, keys, err := c.matchArgs(rt.name, line, rt.args, nil, argStrings, argStrings)
		if err != nil {
			return nil, err
		}
		return stringTest{m: m, sources: a.pos[0].strs, keys: keys}, noTests()
	case "hasflag":
		if err := c.need("imap4flags", line, "hasflag"); err != nil {
			return nil, err
		}
		var vars []string
		args := rt.args
		// The optional variable list is the first of two trailing string lists.
		if n := len(args); n >= 2 && args[n-1].kind == argStrings && args[n-2].kind == argStrings {
			if err := c.need("variables", line, "hasflag with variable names"); err != nil {
				return nil, err
			}
			for _, v := range args[n-2].strs {
				if !validVarName(v) {
					return nil, errorf(line, "hasflag: bad variable name %q", v)
				}
				vars = append(vars, strings.ToLower(v))
			}
			args = append(args[:n-2:n-2], args[n-1])
		}
		_, m, keys, err := c.matchArgs(rt.name, line, args, nil, argStrings)
		if err != nil {
			return nil, err
		}
		return hasflagTest{m: m, vars: vars, keys: keys}, noTests()
	}
	return nil, errorf(line, "unknown test %s", rt.name)
}

// tagSpec says what a tagged argument takes.
type tagSpec struct {
	value argKind // 0: nothing; argString means a single string
	group string  // tags of one group exclude each other
}

// argString is a positional or tag value that must be a single string (not a list).
const argString argKind = 100

type parsedArgs struct {
	tags map[string]arg // a tag's value (or an empty arg for a tag without one)
	pos  []arg
}

func (a parsedArgs) has(tag string) bool { _, ok := a.tags[tag]; return ok }

func (a parsedArgs) strings(tag string) ([]string, bool) {
	v, ok := a.tags[tag]
	return v.strs, ok
}

// parseArgs checks a command's or test's arguments: tags first (each at most once, one
// per group, with its value), then exactly the positional arguments pos.
func parseArgs(name string, line int, args []arg, specs map[string]tagSpec, pos ...argKind) (parsedArgs, error) {
	out := parsedArgs{tags: map[string]arg{}}
	groups := map[string]string{}
	i := 0
	for ; i < len(args) && args[i].kind == argTag; i++ {
		t := args[i]
		spec, ok := specs[t.tag]
		if !ok {
			return out, errorf(t.line, "%s does not take :%s", name, t.tag)
		}
		if _, dup := out.tags[t.tag]; dup {
			return out, errorf(t.line, "%s: :%s given twice", name, t.tag)
		}
		if spec.group != "" {
			if other, dup := groups[spec.group]; dup {
				return out, errorf(t.line, "%s: :%s and :%s are both a %s", name, other, t.tag, spec.group)
			}
			groups[spec.group] = t.tag
		}
		var v arg
		if spec.value != 0 {
			if i+1 >= len(args) || !fits(args[i+1], spec.value) {
				return out, errorf(t.line, "%s: :%s needs %s", name, t.tag, kindName(spec.value))
			}
			i++
			v = args[i]
		}
		out.tags[t.tag] = v
	}
	rest := args[i:]
	if len(rest) != len(pos) {
		for _, r := range rest {
			if r.kind == argTag {
				return out, errorf(r.line, "%s: tag :%s must come before the other arguments", name, r.tag)
			}
		}
		return out, errorf(line, "%s needs %s after its tags, found %d", name, count(len(pos), "argument"), len(rest))
	}
	for j, k := range pos {
		if !fits(rest[j], k) {
			return out, errorf(rest[j].line, "%s: argument %d must be %s", name, j+1, kindName(k))
		}
	}
	out.pos = rest
	return out, nil
}

// count says "1 argument", "2 arguments".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func fits(a arg, k argKind) bool {
	if k == argString {
		return a.kind == argStrings && len(a.strs) == 1 && !a.list
	}
	return a.kind == k
}

func kindName(k argKind) string {
	switch k {
	case argNumber:
		return "a number"
	case argString:
		return "a string"
	}
	return "a string list"
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	if isDigits(s) {
		return len(s) <= 2
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isIdentStart(c) && !(i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func compileRegex(expr, comparator string) (*regexp.Regexp, error) {
	if comparator == "i;ascii-casemap" {
		expr = "(?i)" + expr
	}
	return regexp.Compile(expr)
}
