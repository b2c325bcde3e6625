package imapd

// Commands: the tag, the name and the arguments of each command of RFC 9051 §6 (with RFC
// 3501's LSUB and CHECK, RFC 2177 IDLE, RFC 3691 UNSELECT, RFC 4315 UID EXPUNGE, RFC 5161
// ENABLE, RFC 2971 ID, RFC 2342 NAMESPACE, RFC 6851 MOVE), parsed into one flat struct.
// Which command is legal in which state is the session's business (its state table); the
// parser only knows the grammar.

import (
	"strings"
	"time"
)

// Command is one parsed command. Only the fields its name uses are set.
type Command struct {
	Tag  string
	Name string // upper-case, without the UID prefix
	UID  bool   // "UID FETCH" and the like

	Mailbox string // SELECT EXAMINE CREATE DELETE RENAME(from) SUBSCRIBE UNSUBSCRIBE STATUS APPEND COPY MOVE; LIST/LSUB reference
	NewName string // RENAME

	User, Password string // LOGIN

	Mechanism       string // AUTHENTICATE, upper-case
	InitialResponse string // AUTHENTICATE with SASL-IR (RFC 4959): base64 as sent, "=" for empty
	HasInitial      bool

	Seq   SeqSet     // FETCH STORE COPY MOVE SEARCH(no) UID EXPUNGE
	Fetch []FetchAtt // FETCH

	Search       SearchKey // SEARCH SORT THREAD
	Charset      string    // SEARCH CHARSET, SORT and THREAD charset, upper-case; "" if absent
	SearchReturn []string  // SEARCH and SORT RETURN (...) options, upper-case (RFC 4731, RFC 5182, RFC 5267); nil if absent

	Sort   []SortCriterion // SORT (RFC 5256 §3, RFC 5957)
	Thread string          // THREAD algorithm, upper-case (RFC 5256 §3)

	StoreMode   int      // STORE: +1 add, -1 remove, 0 replace
	StoreSilent bool     // STORE .SILENT
	Flags       []string // STORE; APPEND

	Patterns    []string // LIST LSUB: mailbox patterns
	ListSelect  []string // LIST (select options) (RFC 5258), upper-case
	ListReturn  []string // LIST ... RETURN (options) (RFC 5258), upper-case; STATUS's items go to StatusItems
	StatusItems []string // STATUS; LIST RETURN (STATUS (...)) (RFC 5819), upper-case

	Date time.Time // APPEND date-time; zero if absent

	Literal literalInfo // APPEND: the message literal, announced and not yet read

	Atoms []string // ENABLE: capability names, upper-case

	QuotaRoot string // GETQUOTA, SETQUOTA (RFC 9208)

	ID    []string // ID: field, value pairs (a NIL value is ""); nil for "ID NIL"
	IDNil bool

	Notify *NotifySet // NOTIFY (RFC 5465, notify.go)

	SyncArgs // CONDSTORE/QRESYNC parameters and modifiers (syncargs.go)
}

// argParsers parses the arguments of each command, after its name. A parser that takes no
// arguments is nil.
var argParsers = map[string]func(r *reader, c *Command) error{
	"CAPABILITY": nil, "NOOP": nil, "LOGOUT": nil, "STARTTLS": nil, "CHECK": nil, "CLOSE": nil,
	"UNSELECT": nil, "IDLE": nil, "NAMESPACE": nil,
	"COMPRESS": compressArg, // RFC 4978 (compress.go)
	"NOTIFY":   parseNotify, // RFC 5465 (notify.go)
	"EXPUNGE": func(r *reader, c *Command) error {
		if !c.UID {
			return nil
		}
		var err error
		c.Seq, err = r.seqSet()
		return err
	},
	"LOGIN": func(r *reader, c *Command) (err error) {
		if c.User, err = r.astring(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		c.Password, err = r.astring()
		return err
	},
	"AUTHENTICATE": func(r *reader, c *Command) (err error) {
		if c.Mechanism, err = r.atom(); err != nil {
			return err
		}
		c.Mechanism = strings.ToUpper(c.Mechanism)
		if r.maybeSP() {
			// RFC 4959: (base64 / "="); checked by the session when it decodes.
			c.InitialResponse, err = r.atom()
			c.HasInitial = true
		}
		return err
	},
	"SELECT": selectArgs, "EXAMINE": selectArgs, "CREATE": mailboxArg, "DELETE": mailboxArg,
	"SUBSCRIBE": mailboxArg, "UNSUBSCRIBE": mailboxArg,
	"GETQUOTA": parseQuotaRoot, "GETQUOTAROOT": mailboxArg, "SETQUOTA": parseSetQuota, // quota.go
	"RENAME": func(r *reader, c *Command) (err error) {
		if c.Mailbox, err = r.mailbox(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		c.NewName, err = r.mailbox()
		return err
	},
	"LIST": parseList,
	"LSUB": func(r *reader, c *Command) (err error) {
		if c.Mailbox, err = r.mailbox(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		p, err := r.listMailbox()
		c.Patterns = []string{p}
		return err
	},
	"STATUS": func(r *reader, c *Command) (err error) {
		if c.Mailbox, err = r.mailbox(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		c.StatusItems, err = r.keywordList()
		return err
	},
	"APPEND": func(r *reader, c *Command) (err error) {
		if c.Mailbox, err = r.mailbox(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		return parseAppendMessage(r, c)
	},
	"SEARCH": parseSearch,
	"SORT":   parseSort, "THREAD": parseThread, // sort.go
	"FETCH": func(r *reader, c *Command) (err error) {
		if c.Seq, err = r.seqSet(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		if c.Fetch, err = r.fetchAtts(); err != nil {
			return err
		}
		return r.fetchModifiers(c)
	},
	"STORE": func(r *reader, c *Command) (err error) {
		if c.Seq, err = r.seqSet(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		if r.peek() == '(' {
			if err = r.storeModifiers(c); err != nil {
				return err
			}
		}
		switch r.peek() {
		case '+':
			c.StoreMode = 1
			r.pos++
		case '-':
			c.StoreMode = -1
			r.pos++
		}
		switch r.keyword() {
		case "FLAGS":
		case "FLAGS.SILENT":
			c.StoreSilent = true
		default:
			return badf("Expected FLAGS, +FLAGS or -FLAGS")
		}
		if err = r.sp(); err != nil {
			return err
		}
		if r.peek() == '(' {
			c.Flags, err = r.flagList()
			return err
		}
		for { // flag *(SP flag): RFC 9051 store-att-flags
			f, err := r.flag()
			if err != nil {
				return err
			}
			if len(c.Flags) >= r.lim.MaxListItems {
				return badf("Too many flags")
			}
			c.Flags = append(c.Flags, f)
			if !r.maybeSP() {
				return nil
			}
		}
	},
	"COPY": copyArgs, "MOVE": copyArgs,
	"ENABLE": func(r *reader, c *Command) error {
		for {
			a, err := r.atom()
			if err != nil {
				return err
			}
			if len(c.Atoms) >= r.lim.MaxListItems {
				return badf("Too many capabilities")
			}
			c.Atoms = append(c.Atoms, strings.ToUpper(a))
			if !r.maybeSP() {
				return nil
			}
		}
	},
	"ID": func(r *reader, c *Command) error {
		if r.peek() != '(' {
			if a, _ := r.atom(); !strings.EqualFold(a, "NIL") {
				return badf("Expected a list or NIL")
			}
			c.IDNil = true
			return nil
		}
		c.ID = []string{}
		return r.list(false, func() error {
			k, err := r.str()
			if err != nil {
				return err
			}
			if err := r.sp(); err != nil {
				return err
			}
			v, _, err := r.nstring()
			c.ID = append(c.ID, k, v)
			return err
		})
	},
}

// uidCommands may follow "UID " (RFC 9051 §6.4.9, RFC 4315 §2.1, RFC 6851 §3.2).
var uidCommands = map[string]bool{"FETCH": true, "STORE": true, "COPY": true, "MOVE": true, "SEARCH": true, "EXPUNGE": true,
	"SORT": true, "THREAD": true} // RFC 5256 §3

func mailboxArg(r *reader, c *Command) (err error) {
	c.Mailbox, err = r.mailbox()
	return err
}

func selectArgs(r *reader, c *Command) (err error) {
	if c.Mailbox, err = r.mailbox(); err != nil {
		return err
	}
	return r.selectParams(c)
}

func copyArgs(r *reader, c *Command) (err error) {
	if c.Seq, err = r.seqSet(); err != nil {
		return err
	}
	if err = r.sp(); err != nil {
		return err
	}
	c.Mailbox, err = r.mailbox()
	return err
}

// keywordList reads "(" keyword *(SP keyword) ")", upper-cased.
func (r *reader) keywordList() ([]string, error) {
	var l []string
	err := r.list(false, func() error {
		k := r.keyword()
		if k == "" {
			return badf("Expected an atom")
		}
		l = append(l, k)
		return nil
	})
	return l, err
}

// parseList reads LIST's arguments, with the RFC 5258 LIST-EXTENDED forms: LIST [SP "("
// select options ")"] mailbox SP (pattern / "(" patterns ")") [SP "RETURN" SP "(" options ")"].
func parseList(r *reader, c *Command) (err error) {
	if r.peek() == '(' {
		if err := r.list(true, func() error {
			k := r.keyword()
			if k == "" {
				return badf("Expected a selection option")
			}
			c.ListSelect = append(c.ListSelect, k)
			return nil
		}); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
	}
	if c.Mailbox, err = r.mailbox(); err != nil {
		return err
	}
	if err = r.sp(); err != nil {
		return err
	}
	if r.peek() == '(' {
		err = r.list(false, func() error {
			p, err := r.listMailbox()
			c.Patterns = append(c.Patterns, p)
			return err
		})
	} else {
		var p string
		p, err = r.listMailbox()
		c.Patterns = []string{p}
	}
	if err != nil || !r.maybeSP() {
		return err
	}
	if r.keyword() != "RETURN" {
		return badf("Expected RETURN")
	}
	if err = r.sp(); err != nil {
		return err
	}
	c.ListReturn = []string{}
	return r.list(true, func() error {
		k := r.keyword()
		if k == "" {
			return badf("Expected a return option")
		}
		c.ListReturn = append(c.ListReturn, k)
		if k == "STATUS" { // RFC 5819 LIST-STATUS
			if err := r.sp(); err != nil {
				return err
			}
			var err error
			c.StatusItems, err = r.keywordList()
			return err
		}
		return nil
	})
}

// parseSearch reads SEARCH [SP "RETURN" SP "(" options ")"] [SP "CHARSET" SP astring] SP
// search-key *(SP search-key).
func parseSearch(r *reader, c *Command) error {
	if err := r.searchReturn(c); err != nil {
		return err
	}
	save := r.pos
	if r.keyword() == "CHARSET" && r.peek() == ' ' {
		r.pos++
		cs, err := r.astring()
		if err != nil {
			return err
		}
		c.Charset = strings.ToUpper(cs)
		if err := r.sp(); err != nil {
			return err
		}
	} else {
		r.pos = save
	}
	var err error
	c.Search, err = r.searchKeys()
	return err
}

// searchReturn reads an optional "RETURN" SP "(" [option *(SP option)] ")" SP (RFC 4731
// SEARCH, RFC 5267 ESORT) into c.SearchReturn.
func (r *reader) searchReturn(c *Command) error {
	save := r.pos
	if r.keyword() != "RETURN" || r.peek() != ' ' {
		r.pos = save
		return nil
	}
	r.pos++
	c.SearchReturn = []string{}
	if err := r.list(true, func() error {
		k := r.keyword()
		if k == "" {
			return badf("Expected a return option")
		}
		c.SearchReturn = append(c.SearchReturn, k)
		return nil
	}); err != nil {
		return err
	}
	return r.sp()
}

// readCommand reads one command. On error, cmd still carries the tag when it was read (the
// reply is then tagged), and the caller must call skipRest unless the error is a BYE. An
// APPEND returns with its message literal announced but unread (see Command.Literal).
func (r *reader) readCommand() (cmd *Command, err error) {
	cmd = &Command{}
	if err := r.begin(); err != nil {
		return cmd, err
	}
	// tag = 1*<any ASTRING-CHAR except "+">
	start := r.pos
	for r.pos < len(r.line) && isAstringChar(r.line[r.pos]) && r.line[r.pos] != '+' {
		r.pos++
	}
	if r.pos == start {
		return cmd, badf("Missing tag")
	}
	tag := string(r.line[start:r.pos])
	if err := r.sp(); err != nil {
		return cmd, err
	}
	cmd.Tag = tag
	cmd.Name = r.keyword()
	if cmd.Name == "UID" {
		if err := r.sp(); err != nil {
			return cmd, err
		}
		cmd.UID = true
		cmd.Name = r.keyword()
		if !uidCommands[cmd.Name] {
			return cmd, badf("Unknown UID command")
		}
	}
	parse, ok := argParsers[cmd.Name]
	if !ok {
		return cmd, badf("Unknown command")
	}
	if cmd.Name == "EXPUNGE" && !cmd.UID {
		parse = nil
	}
	if parse != nil {
		if err := r.sp(); err != nil {
			return cmd, err
		}
		if err := parse(r, cmd); err != nil {
			return cmd, err
		}
	}
	if cmd.Name == "APPEND" {
		return cmd, nil // the line ends with the announcement, checked by appendLiteral
	}
	return cmd, r.end()
}

// parseAppendMessage parses one message of APPEND up to its literal's announcement:
// [flag-list SP] [date-time SP] literal, or UTF8 "(" literal8 (RFC 6855 §4). c.Literal
// gets the announcement; the literal itself is the session's to read.
func parseAppendMessage(r *reader, c *Command) (err error) {
	c.Flags, c.Date = nil, time.Time{}
	if r.peek() == '(' {
		if c.Flags, err = r.flagList(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
	}
	if r.peek() == '"' {
		if c.Date, err = r.dateTime(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
	}
	r.utf8Append = false
	if r.peek() != '{' && r.peek() != '~' {
		if r.keyword() != "UTF8" {
			return badf("Expected a literal")
		}
		if err = r.sp(); err != nil {
			return err
		}
		if err = r.expect('('); err != nil {
			return err
		}
		r.utf8Append = true
	}
	c.Literal, err = r.appendLiteral()
	return err
}

// appendNext reads what follows a message literal of APPEND once the session has consumed
// it: the end of the command (false), or the next message of a MULTIAPPEND (RFC 3502),
// parsed into c up to its literal's announcement (true).
func (r *reader) appendNext(c *Command) (bool, error) {
	if err := r.readLine(); err != nil {
		return false, err
	}
	if r.utf8Append {
		if err := r.expect(')'); err != nil {
			return false, err
		}
	}
	if r.atEOL() {
		return false, nil
	}
	if err := r.sp(); err != nil {
		return false, err
	}
	return true, parseAppendMessage(r, c)
}
