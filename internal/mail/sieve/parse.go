package sieve

// The generic grammar of RFC 5228 §8.2: commands with arguments, an optional test or test
// list, and a block or ";". Meaning (which commands exist, which arguments they take) is
// the compiler's business (compile.go), so that the grammar stays one screen.

type argKind int

const (
	argTag argKind = iota + 1
	argNumber
	argStrings // a string or a string list
)

type arg struct {
	kind argKind
	tag  string   // argTag: lower-case name without ':'
	num  int64    // argNumber
	strs []string // argStrings
	list bool     // argStrings written as a list "[...]"
	line int
}

type rawTest struct {
	name  string
	args  []arg
	tests []*rawTest // the test or test list after the arguments
	list  bool       // tests came as a "(...)" list
	line  int
}

type rawCommand struct {
	name     string
	args     []arg
	tests    []*rawTest
	list     bool
	block    []*rawCommand
	hasBlock bool
	line     int
}

type parser struct {
	lx     lexer
	tok    token
	depth  int
	limits Limits
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) isPunct(s string) bool { return p.tok.kind == tPunct && p.tok.text == s }

func (p *parser) enter(line int) error {
	p.depth++
	if p.depth > p.limits.MaxDepth {
		return errorf(line, "nested deeper than %d levels", p.limits.MaxDepth)
	}
	return nil
}

func (p *parser) commands(inBlock bool) ([]*rawCommand, error) {
	var cmds []*rawCommand
	for {
		switch {
		case p.tok.kind == tEOF:
			if inBlock {
				return nil, errorf(p.tok.line, `block not closed by "}"`)
			}
			return cmds, nil
		case inBlock && p.isPunct("}"):
			return cmds, nil
		case p.tok.kind != tIdent:
			return nil, errorf(p.tok.line, "expected a command, found %s", describe(p.tok))
		}
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
}

func (p *parser) command() (*rawCommand, error) {
	c := &rawCommand{name: p.tok.text, line: p.tok.line}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var err error
	if c.args, c.tests, c.list, err = p.arguments(); err != nil {
		return nil, err
	}
	switch {
	case p.isPunct(";"):
		return c, p.advance()
	case p.isPunct("{"):
		if err := p.enter(p.tok.line); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		c.hasBlock = true
		if c.block, err = p.commands(true); err != nil {
			return nil, err
		}
		p.depth--
		return c, p.advance() // the "}"
	}
	return nil, errorf(p.tok.line, `expected ";" or "{" after %s, found %s`, c.name, describe(p.tok))
}

// arguments reads *argument [test / test-list].
func (p *parser) arguments() (args []arg, tests []*rawTest, list bool, err error) {
	for {
		a, ok, err := p.argument()
		if err != nil {
			return nil, nil, false, err
		}
		if !ok {
			break
		}
		args = append(args, a)
	}
	switch {
	case p.tok.kind == tIdent:
		t, err := p.test()
		if err != nil {
			return nil, nil, false, err
		}
		return args, []*rawTest{t}, false, nil
	case p.isPunct("("):
		if err := p.enter(p.tok.line); err != nil {
			return nil, nil, false, err
		}
		for {
			if err := p.advance(); err != nil {
				return nil, nil, false, err
			}
			if p.tok.kind != tIdent {
				return nil, nil, false, errorf(p.tok.line, "expected a test, found %s", describe(p.tok))
			}
			t, err := p.test()
			if err != nil {
				return nil, nil, false, err
			}
			tests = append(tests, t)
			if p.isPunct(")") {
				break
			}
			if !p.isPunct(",") {
				return nil, nil, false, errorf(p.tok.line, `expected "," or ")" in a test list, found %s`, describe(p.tok))
			}
		}
		p.depth--
		return args, tests, true, p.advance()
	}
	return args, nil, false, nil
}

func (p *parser) argument() (arg, bool, error) {
	t := p.tok
	switch {
	case t.kind == tTag:
		return arg{kind: argTag, tag: t.text, line: t.line}, true, p.advance()
	case t.kind == tNumber:
		return arg{kind: argNumber, num: t.num, line: t.line}, true, p.advance()
	case t.kind == tString:
		return arg{kind: argStrings, strs: []string{t.text}, line: t.line}, true, p.advance()
	case p.isPunct("["):
		a := arg{kind: argStrings, list: true, line: t.line}
		for {
			if err := p.advance(); err != nil {
				return arg{}, false, err
			}
			if p.tok.kind != tString {
				return arg{}, false, errorf(p.tok.line, "expected a string in a string list, found %s", describe(p.tok))
			}
			a.strs = append(a.strs, p.tok.text)
			if err := p.advance(); err != nil {
				return arg{}, false, err
			}
			if p.isPunct("]") {
				return a, true, p.advance()
			}
			if !p.isPunct(",") {
				return arg{}, false, errorf(p.tok.line, `expected "," or "]" in a string list, found %s`, describe(p.tok))
			}
		}
	}
	return arg{}, false, nil
}

func (p *parser) test() (*rawTest, error) {
	if err := p.enter(p.tok.line); err != nil {
		return nil, err
	}
	t := &rawTest{name: p.tok.text, line: p.tok.line}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var err error
	if t.args, t.tests, t.list, err = p.arguments(); err != nil {
		return nil, err
	}
	p.depth--
	return t, nil
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "the end of the script"
	case tIdent:
		return "identifier " + t.text
	case tTag:
		return "tag :" + t.text
	case tNumber:
		return "a number"
	case tString:
		return "a string"
	}
	return `"` + t.text + `"`
}
