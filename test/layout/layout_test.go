// Package layout holds the import rules that keep internal/ a tree a newcomer can read
// (docs/architecture.md, "Layout"). The test parses every Go file's imports, so a wrong
// import fails here by name, with the rule it breaks, before review has to find it.
package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "petrel/"

// rooms are the top-level folders of internal/. A new package goes into one of them; a new
// room is a layout decision, made here and in docs/architecture.md together.
var rooms = map[string]string{
	"app":      "composition root: the only package that knows every concrete type",
	"cli":      "one file per command noun",
	"config":   "typed config: plain data, defaults, validation",
	"server":   "one package per protocol server",
	"mail":     "protocol-neutral mail logic",
	"outbound": "the outbound queue and its delivery",
	"pull":     "the server's polling of outside mailboxes into accounts",
	"store":    "the store interface, its implementations and their shared suite",
	"client":   "the client tools",
	"lib":      "small leaf helpers",
	"mailtest": "test harnesses: real Petrel, Dovecot and Postfix on loopback",
}

// file is one Go file and where it sits.
type file struct {
	path string // relative to the module root, slash-separated
	pkg  string // import path of its package
	test bool
}

func (f file) in(prefix string) bool { return within(f.pkg, prefix) }

// within reports whether import path p is prefix or below it.
func within(p, prefix string) bool {
	prefix = module + prefix
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

// rule returns why f may not import imp, or "" if it may.
func rule(f file, imp string) string {
	ours := strings.HasPrefix(imp, module)
	switch {
	case within(imp, "internal/app") && !f.in("internal/cli") && !f.in("internal/app"):
		return "only cli imports app"
	case within(imp, "internal/cli") && !f.in("cmd/petrel") && !f.in("internal/cli"):
		return "only main imports cli"
	case within(imp, "internal/mailtest") && !f.test && !f.in("internal/mailtest"):
		return "mailtest is for tests"
	}

	switch {
	case f.in("internal/lib"):
		if ours && !within(imp, strings.TrimPrefix(f.pkg, module)) {
			return "lib/ imports nothing of ours"
		}
	case f.in("internal/client"):
		if ours && !within(imp, "internal/client") && !within(imp, "internal/lib") &&
			!within(imp, "internal/config") && !(f.test && within(imp, "internal/mailtest")) {
			return "client/ imports only client/, lib/ and config (and mailtest in tests)"
		}
	case f.in("internal/server"):
		own := strings.Join(strings.SplitN(strings.TrimPrefix(f.pkg, module), "/", 4)[:3], "/")
		switch {
		case within(imp, "internal/server") && !within(imp, own):
			return "protocol servers never import each other"
		case within(imp, "internal/outbound/mx") && f.test:
			// A test may ask a test DNS server through the resolver app gives the server.
		case within(imp, "internal/config"), within(imp, "internal/client"), within(imp, "internal/outbound"):
			return "server/ gets its settings from app, and knows neither the client tools nor the queue internals"
		case isStoreBackend(imp) && !f.test:
			return "server/ talks to store.Store, never to a backend"
		case isLibrary(imp, "go-smtp") && own != "internal/server/smtpd":
			return "go-smtp types stop at server/smtpd"
		case isLibrary(imp, "go-imap") && own != "internal/server/imapd":
			return "go-imap types stop at server/imapd"
		}
	case f.in("internal/mail"):
		switch {
		case within(imp, "internal/server"), within(imp, "internal/client"), within(imp, "internal/config"):
			return "mail/ is protocol-neutral: no server/, client/ or config"
		case isStoreBackend(imp) && !f.test:
			return "mail/ talks to store.Store, never to a backend"
		case (isLibrary(imp, "go-smtp") || isLibrary(imp, "go-imap")) && !f.test:
			return "mail/ sees no protocol library types"
		}
	case f.in("internal/outbound"):
		switch {
		case within(imp, "internal/server"), within(imp, "internal/client"), within(imp, "internal/config"):
			return "outbound/ gets its settings from app and shares nothing with the servers or the client tools"
		case isStoreBackend(imp) && !f.test:
			return "outbound/ talks to store.Store, never to a backend"
		}
	case f.in("internal/pull"):
		// The one server-side user of the client tools: their POP3 and IMAP clients in, the
		// delivery path out. config only for the client tools' duration type.
		switch {
		case within(imp, "internal/server"):
			return "pull/ delivers through mail/deliver, not through a protocol server"
		case isStoreBackend(imp) && !f.test:
			return "pull/ talks to store.Pulls, never to a backend"
		}
	case f.in("internal/store"):
		switch {
		case f.pkg == module+"internal/store":
			if ours && !within(imp, "internal/lib") {
				return "the store interface imports only lib/"
			}
		case ours && !within(imp, "internal/store") && !within(imp, "internal/lib") &&
			!(f.test && (within(imp, "internal/mail") || within(imp, "internal/mailtest"))):
			return "store backends import only store and lib/"
		case isLibrary(imp, "go-smtp") || isLibrary(imp, "go-imap"):
			return "the store sees no protocol library types"
		}
	case f.in("internal/config"):
		if ours && !within(imp, "internal/lib") {
			return "config is plain data: it imports only lib/"
		}
	}
	return ""
}

func isStoreBackend(imp string) bool {
	return within(imp, "internal/store/sqlite") || within(imp, "internal/store/postgres")
}

// isLibrary reports whether imp is emersion's go-smtp or go-imap (name without version).
func isLibrary(imp, name string) bool {
	return strings.HasPrefix(imp, "github.com/emersion/"+name+"/") || imp == "github.com/emersion/"+name ||
		strings.HasPrefix(imp, "github.com/emersion/"+name+"/v")
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", dir, err)
	}
	return dir
}

// goFiles lists the Go files under cmd/ and internal/ with their imports.
func goFiles(t *testing.T, root string) map[file][]string {
	t.Helper()
	out := map[file][]string{}
	fset := token.NewFileSet()
	for _, top := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			parsed, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			f := file{path: rel, pkg: module + filepath.ToSlash(filepath.Dir(rel)), test: strings.HasSuffix(rel, "_test.go")}
			for _, spec := range parsed.Imports {
				imp, _ := strconv.Unquote(spec.Path.Value)
				out[f] = append(out[f], imp)
			}
			if out[f] == nil {
				out[f] = []string{}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	files := goFiles(t, moduleRoot(t))
	if len(files) < 50 {
		t.Fatalf("found only %d Go files: is the walk looking in the right place?", len(files))
	}
	var broken []string
	for f, imports := range files {
		if room, _, _ := strings.Cut(strings.TrimPrefix(f.path, "internal/"), "/"); strings.HasPrefix(f.path, "internal/") {
			if _, ok := rooms[room]; !ok {
				broken = append(broken, f.path+": internal/"+room+" is not a room of the layout (see rooms)")
			}
		}
		for _, imp := range imports {
			if why := rule(f, imp); why != "" {
				broken = append(broken, f.path+": imports "+imp+": "+why)
			}
		}
	}
	sort.Strings(broken)
	for _, b := range broken {
		t.Error(b)
	}
}

// TestRulesBite checks the rules on imports that must be refused, so that a rule that
// silently stopped matching (a renamed folder) does not pass unnoticed.
func TestRulesBite(t *testing.T) {
	for _, tc := range []struct {
		f   file
		imp string
	}{
		{file{pkg: module + "internal/client/fetch"}, module + "internal/server/pop3d"},
		{file{pkg: module + "internal/client/fetch"}, module + "internal/store"},
		{file{pkg: module + "internal/client/fetch"}, module + "internal/mail/auth"},
		{file{pkg: module + "internal/lib/safefile"}, module + "internal/lib/deadline"},
		{file{pkg: module + "internal/server/smtpd"}, module + "internal/server/pop3d"},
		{file{pkg: module + "internal/server/pop3d"}, module + "internal/store/sqlite"},
		{file{pkg: module + "internal/server/pop3d"}, module + "internal/config"},
		{file{pkg: module + "internal/server/pop3d"}, "github.com/emersion/go-smtp"},
		{file{pkg: module + "internal/mail/deliver"}, module + "internal/server/smtpd"},
		{file{pkg: module + "internal/mail/deliver"}, "github.com/emersion/go-imap/v2"},
		{file{pkg: module + "internal/store"}, module + "internal/mail/message"},
		{file{pkg: module + "internal/store/sqlite"}, module + "internal/mail/message"},
		{file{pkg: module + "internal/server/smtpd"}, module + "internal/app"},
		{file{pkg: module + "internal/app"}, module + "internal/cli"},
		{file{pkg: module + "internal/mail/deliver"}, module + "internal/mailtest"},
		{file{pkg: module + "internal/outbound/smtpclient"}, module + "internal/client/wire"},
		{file{pkg: module + "internal/outbound/smtpclient"}, module + "internal/server/smtpd"},
	} {
		if rule(tc.f, tc.imp) == "" {
			t.Errorf("%s importing %s passes the rules; it must not", tc.f.pkg, tc.imp)
		}
	}
	for _, tc := range []struct {
		f   file
		imp string
	}{
		{file{pkg: module + "internal/client/fetch"}, module + "internal/client/wire"},
		{file{pkg: module + "internal/client/fetch", test: true}, module + "internal/mailtest"},
		{file{pkg: module + "internal/server/smtpd"}, module + "internal/mail/deliver"},
		{file{pkg: module + "internal/server/smtpd"}, "github.com/emersion/go-smtp"},
		{file{pkg: module + "internal/app"}, module + "internal/store/sqlite"},
		{file{pkg: module + "internal/store/sqlite"}, module + "internal/store"},
	} {
		if why := rule(tc.f, tc.imp); why != "" {
			t.Errorf("%s importing %s is refused (%s); it is allowed", tc.f.pkg, tc.imp, why)
		}
	}
}
