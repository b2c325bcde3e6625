package imapd

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseAll reads commands from in until it is exhausted, the way the session does: after an
// error the rest of the command is skipped, and a BYE stops. It returns one line of outcome
// per command and the number of continuation requests sent.
type outcome struct {
	cmd *Command
	err *Error
}

func readAll(t *testing.T, in string, lim Limits) (outs []outcome, conts int) {
	t.Helper()
	br := bufio.NewReaderSize(strings.NewReader(in), 64)
	r := newReader(br, lim, func() error { conts++; return nil })
	for {
		cmd, err := r.readCommand()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return outs, conts
		}
		if err == nil && cmd.Name == "APPEND" {
			// Play the session: take the message, then the end of the command.
			for more := true; more && err == nil; {
				r.takeAppendLiteral()
				if _, err := io.CopyN(io.Discard, br, cmd.Literal.size); err != nil {
					return outs, conts
				}
				more, err = r.appendNext(cmd)
			}
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("non-protocol error %v", err)
		}
		outs = append(outs, outcome{cmd, e})
		if e != nil {
			if e.Kind == BYE {
				return outs, conts
			}
			if err := r.skipRest(); err != nil {
				if errors.As(err, &e) && e.Kind == BYE {
					outs = append(outs, outcome{nil, e})
					return outs, conts
				}
				return outs, conts
			}
		}
	}
}

func parseOne(t *testing.T, line string) (*Command, *Error) {
	t.Helper()
	outs, _ := readAll(t, line, Limits{})
	if len(outs) != 1 {
		t.Fatalf("%q: %d commands, want 1", line, len(outs))
	}
	return outs[0].cmd, outs[0].err
}

func TestParseCommands(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Command
	}{
		{"a1 CAPABILITY\r\n", Command{Tag: "a1", Name: "CAPABILITY"}},
		{"a1 noop\r\n", Command{Tag: "a1", Name: "NOOP"}},
		{`t LOGIN alice "pass \"word\" \\"` + "\r\n", Command{Tag: "t", Name: "LOGIN", User: "alice", Password: `pass "word" \`}},
		{"t LOGIN {5}\r\nalice {3+}\r\nx y\r\n", Command{Tag: "t", Name: "LOGIN", User: "alice", Password: "x y"}},
		{"t AUTHENTICATE plain AGEAYg==\r\n", Command{Tag: "t", Name: "AUTHENTICATE", Mechanism: "PLAIN", InitialResponse: "AGEAYg==", HasInitial: true}},
		{"t AUTHENTICATE SCRAM-SHA-256\r\n", Command{Tag: "t", Name: "AUTHENTICATE", Mechanism: "SCRAM-SHA-256"}},
		{"t select inbox\r\n", Command{Tag: "t", Name: "SELECT", Mailbox: "INBOX"}},
		{"t EXAMINE \"Sent Items\"\r\n", Command{Tag: "t", Name: "EXAMINE", Mailbox: "Sent Items"}},
		{"t RENAME a/b c\r\n", Command{Tag: "t", Name: "RENAME", Mailbox: "a/b", NewName: "c"}},
		{"t LIST \"\" *\r\n", Command{Tag: "t", Name: "LIST", Patterns: []string{"*"}}},
		{"t LIST \"\" %/]x\r\n", Command{Tag: "t", Name: "LIST", Patterns: []string{"%/]x"}}},
		{"t LIST (SUBSCRIBED) \"\" (INBOX* Sent) RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n", Command{
			Tag: "t", Name: "LIST", ListSelect: []string{"SUBSCRIBED"}, Patterns: []string{"INBOX*", "Sent"},
			ListReturn: []string{"SPECIAL-USE", "STATUS"}, StatusItems: []string{"MESSAGES", "UNSEEN"}}},
		{"t LSUB \"\" *\r\n", Command{Tag: "t", Name: "LSUB", Patterns: []string{"*"}}},
		{"t STATUS INBOX (messages uidnext)\r\n", Command{Tag: "t", Name: "STATUS", Mailbox: "INBOX", StatusItems: []string{"MESSAGES", "UIDNEXT"}}},
		{"t EXPUNGE\r\n", Command{Tag: "t", Name: "EXPUNGE"}},
		{"t UID EXPUNGE 3:5\r\n", Command{Tag: "t", Name: "EXPUNGE", UID: true, Seq: SeqSet{Ranges: []SeqRange{{3, 5}}}}},
		{"t COPY 1:* Trash\r\n", Command{Tag: "t", Name: "COPY", Seq: SeqSet{Ranges: []SeqRange{{1, 0}}}, Mailbox: "Trash"}},
		{"t uid move $ Archive\r\n", Command{Tag: "t", Name: "MOVE", UID: true, Seq: SeqSet{SearchRes: true}, Mailbox: "Archive"}},
		{"t STORE 1,3 +FLAGS.SILENT (\\seen $Junk)\r\n", Command{Tag: "t", Name: "STORE", Seq: SeqSet{Ranges: []SeqRange{{1, 1}, {3, 3}}}, StoreMode: 1, StoreSilent: true, Flags: []string{`\Seen`, "$Junk"}}},
		{"t STORE 2 -FLAGS \\Deleted \\Flagged\r\n", Command{Tag: "t", Name: "STORE", Seq: SeqSet{Ranges: []SeqRange{{2, 2}}}, StoreMode: -1, Flags: []string{`\Deleted`, `\Flagged`}}},
		{"t STORE 2 FLAGS ()\r\n", Command{Tag: "t", Name: "STORE", Seq: SeqSet{Ranges: []SeqRange{{2, 2}}}}},
		{"t ENABLE utf8=accept CONDSTORE\r\n", Command{Tag: "t", Name: "ENABLE", Atoms: []string{"UTF8=ACCEPT", "CONDSTORE"}}},
		{"t ID NIL\r\n", Command{Tag: "t", Name: "ID", IDNil: true}},
		{"t ID (\"name\" \"mutt\" \"version\" NIL)\r\n", Command{Tag: "t", Name: "ID", ID: []string{"name", "mutt", "version", ""}}},
		{"t APPEND Drafts (\\Draft) \" 7-Feb-1994 21:52:25 -0800\" {3}\r\nabc\r\n", Command{
			Tag: "t", Name: "APPEND", Mailbox: "Drafts", Flags: []string{`\Draft`},
			Date:    time.Date(1994, 2, 7, 21, 52, 25, 0, time.FixedZone("", -8*3600)),
			Literal: literalInfo{size: 3, sync: true}}},
		{"t APPEND INBOX {2+}\r\nab\r\n", Command{Tag: "t", Name: "APPEND", Mailbox: "INBOX", Literal: literalInfo{size: 2}}},
	} {
		got, err := parseOne(t, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !got.Date.Equal(tc.want.Date) {
			t.Errorf("%q: date %v, want %v", tc.in, got.Date, tc.want.Date)
		}
		got.Date, tc.want.Date = time.Time{}, time.Time{}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, *got, tc.want)
		}
	}
}

func TestParseFetch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []FetchAtt
	}{
		{"fast", []FetchAtt{{Name: "FLAGS"}, {Name: "INTERNALDATE"}, {Name: "RFC822.SIZE"}}},
		{"(UID FLAGS)", []FetchAtt{{Name: "UID"}, {Name: "FLAGS"}}},
		{"BODY", []FetchAtt{{Name: "BODY"}}},
		{"body[]", []FetchAtt{{Name: "BODY", HasSection: true}}},
		{"BODY.PEEK[]<0.100>", []FetchAtt{{Name: "BODY", HasSection: true, Peek: true, Partial: true, Count: 100}}},
		{"BODY[1.2.MIME]", []FetchAtt{{Name: "BODY", HasSection: true, Section: Section{Part: []uint32{1, 2}, Specifier: "MIME"}}}},
		{"BODY[3]", []FetchAtt{{Name: "BODY", HasSection: true, Section: Section{Part: []uint32{3}}}}},
		{"(BODY.PEEK[HEADER.FIELDS (From Subject)] RFC822.SIZE)", []FetchAtt{
			{Name: "BODY", HasSection: true, Peek: true, Section: Section{Specifier: "HEADER.FIELDS", Fields: []string{"From", "Subject"}}},
			{Name: "RFC822.SIZE"}}},
		{"BODY[2.HEADER.FIELDS.NOT (X-Spam)]", []FetchAtt{{Name: "BODY", HasSection: true, Section: Section{Part: []uint32{2}, Specifier: "HEADER.FIELDS.NOT", Fields: []string{"X-Spam"}}}}},
		{"(BINARY.PEEK[1]<5.10> BINARY.SIZE[])", []FetchAtt{
			{Name: "BINARY", HasSection: true, Peek: true, Section: Section{Part: []uint32{1}}, Partial: true, Offset: 5, Count: 10},
			{Name: "BINARY.SIZE", HasSection: true}}},
	} {
		cmd, err := parseOne(t, "t UID FETCH 1:* "+tc.in+"\r\n")
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(cmd.Fetch, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, cmd.Fetch, tc.want)
		}
	}
	if got := (Section{Part: []uint32{1, 2}, Specifier: "HEADER.FIELDS", Fields: []string{"From", "To"}}).String(); got != "1.2.HEADER.FIELDS (From To)" {
		t.Errorf("Section.String = %q", got)
	}
}

func TestParseSearch(t *testing.T) {
	cmd, err := parseOne(t, `t UID SEARCH RETURN (SAVE) CHARSET utf-8 OR (SEEN FROM "a b") NOT 1:3,5 HEADER X-Id {3}`+"\r\nabc SINCE 1-Feb-2024 larger 100 UID $\r\n")
	if err != nil {
		t.Fatal(err)
	}
	want := SearchKey{Op: SearchAnd, Keys: []SearchKey{
		{Op: SearchOr, Keys: []SearchKey{
			{Op: SearchAnd, Keys: []SearchKey{{Op: "SEEN"}, {Op: "FROM", Text: "a b"}}},
			{Op: SearchNot, Keys: []SearchKey{{Op: SearchSeqSet, Seq: SeqSet{Ranges: []SeqRange{{1, 3}, {5, 5}}}}}},
		}},
		{Op: "HEADER", Field: "X-Id", Text: "abc"},
		{Op: "SINCE", Date: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)},
		{Op: "LARGER", Size: 100},
		{Op: SearchUID, Seq: SeqSet{SearchRes: true}},
	}}
	if !reflect.DeepEqual(cmd.Search, want) || cmd.Charset != "UTF-8" || !reflect.DeepEqual(cmd.SearchReturn, []string{"SAVE"}) {
		t.Errorf("got %+v %q %q", cmd.Search, cmd.Charset, cmd.SearchReturn)
	}
	// One key is not wrapped in AND.
	cmd, err = parseOne(t, "t SEARCH unseen\r\n")
	if err != nil || !reflect.DeepEqual(cmd.Search, SearchKey{Op: "UNSEEN"}) {
		t.Errorf("got %+v, %v", cmd.Search, err)
	}
}

// Bad input is a BAD for that command, and the next command on the wire is read normally.
func TestSyntaxErrorsKeepSession(t *testing.T) {
	for _, bad := range []string{
		"t FOO\r\n", "t\r\n", "+x NOOP\r\n", "\r\n", "t NOOP extra\r\n", "t LOGIN a\r\n",
		"t LOGIN \"a b\r\n", "t SELECT\r\n", "t FETCH 0 FLAGS\r\n", "t FETCH 1:x FLAGS\r\n",
		"t FETCH 1 BODY[4.TEXT.X]\r\n", "t FETCH 1 BODY[MIME]\r\n", "t FETCH 1 BODY[]<1.0>\r\n",
		"t FETCH 1 (FLAGS\r\n", "t FETCH 1 ()\r\n", "t FETCH 1 BODY[HEADER.FIELDS (a:b)]\r\n",
		"t SEARCH\r\n", "t SEARCH FROM\r\n", "t SEARCH SINCE 31-Feb-2024\r\n", "t SEARCH OR SEEN\r\n",
		"t SEARCH BOGUS\r\n", "t SEARCH ()\r\n", "t STORE 1 FLAGS.LOUD (x)\r\n", "t UID CAPABILITY\r\n",
		"t APPEND INBOX \"1-Jan-2024 00:00:00 +0000\" abc\r\n", "t FETCH 4294967296 FLAGS\r\n",
		"t NOOP\n", "t NO\x00OP\r\n", "t LOGIN {3}x\r\n", "t STATUS INBOX ()\r\n",
		"t SEARCH LARGER 99999999999999999999\r\n", "t ID (\"a\")\r\n",
	} {
		outs, _ := readAll(t, bad+"z NOOP\r\n", Limits{})
		if len(outs) != 2 || outs[0].err == nil || outs[0].err.Kind == BYE || outs[1].err != nil || outs[1].cmd.Tag != "z" {
			t.Errorf("%q: %+v", bad, outs)
			continue
		}
		readable := strings.HasSuffix(bad, "\r\n") && !strings.Contains(bad, "\x00")
		if tag := outs[0].cmd.Tag; readable && strings.HasPrefix(bad, "t ") && tag != "t" {
			t.Errorf("%q: tag %q", bad, tag)
		}
	}
}

// The literal rules of RFC 7888 §4 and docs/architecture.md: sizes are checked before
// reading, a refused synchronizing literal gets no continuation, a refused non-synchronizing
// one ends the connection, and literal octets after an error are never read as commands.
func TestLiterals(t *testing.T) {
	lim := Limits{MaxCommand: 100}

	// Accepted: one continuation per synchronizing literal, none for "+" and "-".
	outs, conts := readAll(t, "a LOGIN {1}\r\nx {2-}\r\nyz\r\n", lim)
	if len(outs) != 1 || outs[0].err != nil || conts != 1 || outs[0].cmd.Password != "yz" {
		t.Errorf("accepted literals: %+v conts %d", outs, conts)
	}

	// {4294967295} is refused at once: NO [TOOBIG], no continuation, and the next command
	// is read. Nothing of that size is allocated (the test would run out of memory).
	outs, conts = readAll(t, "a LOGIN {4294967295}\r\nb NOOP\r\n", lim)
	if len(outs) != 2 || outs[0].err == nil || outs[0].err.Kind != NO || outs[0].err.Code != "TOOBIG" || conts != 0 || outs[1].cmd.Name != "NOOP" {
		t.Errorf("huge synchronizing literal: %+v conts %d", outs, conts)
	}
	outs, _ = readAll(t, "a LOGIN {99999999999999999999}\r\nb NOOP\r\n", lim)
	if len(outs) != 2 || outs[0].err == nil || outs[0].err.Kind != NO {
		t.Errorf("unparseable synchronizing literal: %+v", outs)
	}

	// A refused non-synchronizing literal: BYE, and nothing after it is read as a command.
	outs, _ = readAll(t, "a LOGIN {200+}\r\nx CAPABILITY\r\n", lim)
	if len(outs) != 1 || outs[0].err == nil || outs[0].err.Kind != BYE {
		t.Errorf("refused non-synchronizing literal: %+v", outs)
	}

	// The limit counts the whole command: two literals that fit alone do not fit together.
	outs, _ = readAll(t, "a LOGIN {40+}\r\n"+strings.Repeat("u", 40)+" {40+}\r\n"+strings.Repeat("p", 40)+"\r\n", lim)
	if len(outs) != 1 || outs[0].err == nil || outs[0].err.Kind != BYE {
		t.Errorf("command over its limit: %+v", outs)
	}

	// A syntax error before a non-synchronizing literal: the literal's octets (which look
	// like a command) are skipped, not run.
	outs, _ = readAll(t, "a LOGIN ( {13+}\r\nx CAPABILITY\r\r\nb NOOP\r\n", lim)
	if len(outs) != 2 || outs[0].err == nil || outs[0].err.Kind != BAD || outs[1].cmd.Tag != "b" {
		t.Errorf("error before a non-synchronizing literal: %+v", outs)
	}
	// ... and a synchronizing one ends the command: the client waits for "+".
	outs, conts = readAll(t, "a LOGIN ( {13}\r\nb NOOP\r\n", lim)
	if len(outs) != 2 || outs[0].err == nil || outs[1].cmd.Tag != "b" || conts != 0 {
		t.Errorf("error before a synchronizing literal: %+v", outs)
	}

	// A line over the limit ends the connection.
	outs, _ = readAll(t, "a LOGIN "+strings.Repeat("x", 200)+" y\r\nb NOOP\r\n", lim)
	if len(outs) != 1 || outs[0].err == nil || outs[0].err.Kind != BYE {
		t.Errorf("long line: %+v", outs)
	}

	// APPEND's message does not count against the command limit: the session streams it.
	outs, _ = readAll(t, "a APPEND INBOX {500+}\r\n"+strings.Repeat("m", 500)+"\r\nb NOOP\r\n", lim)
	if len(outs) != 2 || outs[0].err != nil || outs[0].cmd.Literal.size != 500 || outs[1].cmd.Tag != "b" {
		t.Errorf("APPEND: %+v", outs)
	}
	// RFC 6855 UTF8 APPEND: a literal8 in parentheses.
	outs, _ = readAll(t, "a APPEND INBOX UTF8 (~{3+}\r\nabc)\r\nb NOOP\r\n", lim)
	if len(outs) != 2 || outs[0].err != nil || outs[0].cmd.Literal.size != 3 || outs[1].cmd.Tag != "b" {
		t.Errorf("UTF8 APPEND: %+v", outs)
	}
	// UTF8 needs a literal8; the refused literal's octets are skipped.
	outs, _ = readAll(t, "a APPEND INBOX UTF8 ({10+}\r\nb LOGOUT\r\n)\r\nc NOOP\r\n", lim)
	if len(outs) != 2 || outs[0].err == nil || outs[0].err.Kind != BAD || outs[1].cmd.Tag != "c" {
		t.Errorf("APPEND UTF8 without literal8: %+v", outs)
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{MaxDepth: 5, MaxListItems: 4, MaxSeqRanges: 3}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"t SEARCH (((((SEEN)))))", false},
		{"t SEARCH ((((SEEN))))", true},
		{"t SEARCH NOT NOT NOT NOT NOT SEEN", false},
		{"t SEARCH NOT NOT NOT SEEN", true},
		{"t FETCH 1,2,3 FLAGS", true},
		{"t FETCH 1,2,3,4 FLAGS", false},
		{"t STORE 1 FLAGS (a b c d)", true},
		{"t STORE 1 FLAGS (a b c d e)", false},
		{"t SEARCH SEEN SEEN SEEN SEEN SEEN", false},
	} {
		outs, _ := readAll(t, tc.in+"\r\n", lim)
		if len(outs) != 1 || (outs[0].err == nil) != tc.ok || (outs[0].err != nil && outs[0].err.Kind != BAD) {
			t.Errorf("%q: %+v, want ok=%v", tc.in, outs, tc.ok)
		}
	}
	// Deep nesting with the default limit: refused without a deep recursion.
	outs, _ := readAll(t, "t SEARCH "+strings.Repeat("(", 10000)+"SEEN"+strings.Repeat(")", 10000)+"\r\n", Limits{})
	if len(outs) != 1 || outs[0].err == nil {
		t.Errorf("deep nesting: %+v", outs)
	}
}

func TestSeqSet(t *testing.T) {
	s := SeqSet{Ranges: []SeqRange{{5, 2}, {9, 0}}}
	for n, want := range map[uint32]bool{1: false, 2: true, 5: true, 6: false, 9: true, 12: true} {
		if s.Contains(n, 12) != want {
			t.Errorf("Contains(%d) != %v", n, want)
		}
	}
	if s.String() != "5:2,9:*" {
		t.Errorf("String = %q", s.String())
	}
	// "*" past the end: 9:* with 4 messages is 4:9.
	if lo, hi := (SeqRange{9, 0}).Bounds(4); lo != 4 || hi != 9 {
		t.Errorf("Bounds = %d, %d", lo, hi)
	}
}

func TestMUTF7(t *testing.T) {
	for utf, enc := range map[string]string{
		"INBOX":              "INBOX",
		"a&b":                "a&-b",
		"Entwürfe":           "Entw&APw-rfe",
		"日本語":                "&ZeVnLIqe-",
		"~peter/mail/台北/日本語": "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
		"😀":                  "&2D3eAA-",
	} {
		if got := EncodeMUTF7(utf); got != enc {
			t.Errorf("Encode(%q) = %q, want %q", utf, got, enc)
		}
		if got, ok := DecodeMUTF7(enc); !ok || got != utf {
			t.Errorf("Decode(%q) = %q, %v", enc, got, ok)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&Jjo!-", "&AGE-", "&ZeVnLIqe-&ZeVnLIqe-", "caf\xc3\xa9", "&2D0-", "&AOl-", "a\x01"} {
		if got, ok := DecodeMUTF7(bad); ok {
			t.Errorf("Decode(%q) = %q, want refusal", bad, got)
		}
	}
}
