package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The webmail in a real browser: headless Chromium from Debian, driven by chromedp, against
// the built binary. One scenario, in the order a user would go: log in, read, search, send
// to another local account, answer with an attachment, file a message, see a flag set over
// IMAP appear without a reload; and the security checks that need a browser to mean
// anything (a hostile message does nothing, a cross-site form is refused, the session
// cookie is out of the page's reach).

// pyIMAPFlag: host port cafile user password subject-word — sets \Flagged on the INBOX messages
// whose subject has the word, as another mail client would.
const pyIMAPFlag = `
import imaplib, ssl, sys
host, port, cafile, user, password, word = sys.argv[1:7]
c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ssl.create_default_context(cafile=cafile))
c.login(user, password)
c.select('INBOX')
typ, data = c.uid('SEARCH', None, 'SUBJECT', word)
uids = data[0].split()
assert uids, 'no message with ' + word
for u in uids:
    c.uid('STORE', u, '+FLAGS', '(\\Flagged)')
c.logout()
print(len(uids))
`

// screenshots is where the screens of the scenario are kept (PETREL_ARTEFACTS, or a
// directory under the system's temporary directory that outlives the test).
func screenshots(t *testing.T) string {
	dir := os.Getenv("PETREL_ARTEFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "petrel-artefacts")
	}
	dir = filepath.Join(dir, "webmail")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// evilServer counts the requests a hostile message manages to make.
type evilServer struct {
	mu   sync.Mutex
	hits []string
	url  string
}

func startEvil(t *testing.T, body string) *evilServer {
	e := &evilServer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.hits = append(e.hits, r.URL.Path)
		e.mu.Unlock()
		if r.URL.Path == "/attack.html" {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, body)
			return
		}
		w.Header().Set("Content-Type", "image/gif")
		w.Write([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	e.url = "http://" + l.Addr().String()
	return e
}

func (e *evilServer) got() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.hits...)
}

func TestWebmailBrowser(t *testing.T) {
	requireTools(t, "chromium", "python3")
	in := startInstance(t, options{"http": {"redirect_https = false"}})
	in.addAccount("alice@example.test", "alice-password")
	in.addAccount("bob@example.test", "bob-password")
	_, httpPort, _ := net.SplitHostPort(in.HTTP)
	// The page is opened as localhost and the attacker's page as 127.0.0.1: two sites, so
	// the browser treats a form from one to the other as cross-site, as it would on the net.
	base := "http://localhost:" + httpPort

	evil := startEvil(t, "")
	hostile := fmt.Sprintf(`From: Mallory <mallory@evil.example>
To: alice@example.test
Subject: hostile offer
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><style>body { background: url(%[1]s/css-style) }</style>
<script>fetch('%[1]s/script'); alert('script')</script></head>
<body><p>Dear Alice, <b>hello</b>.</p>
<img src="%[1]s/pixel.gif" width="20" height="20" alt="pixel">
<img src="x" onerror="fetch('%[1]s/onerror'); alert('onerror')">
<div style="background-image: url(%[1]s/css-attr)">styled</div>
<a id="js" href="javascript:fetch('%[1]s/javascript')">click me</a>
</body></html>
`, evil.url)
	deliverSMTP(t, in.SMTP, "carol@elsewhere.example", "alice@example.test", "Subject: albatross plans\r\nFrom: carol@elsewhere.example\r\nTo: alice@example.test\r\n\r\nThe albatross sails at noon.\r\n")
	deliverSMTP(t, in.SMTP, "dave@elsewhere.example", "alice@example.test", "Subject: lunch\r\nFrom: dave@elsewhere.example\r\nTo: alice@example.test\r\n\r\nSoup today.\r\n")
	deliverSMTP(t, in.SMTP, "mallory@evil.example", "alice@example.test", strings.ReplaceAll(hostile, "\n", "\r\n"))

	bp := startBrowser(t, base, chromedp.WindowSize(1280, 860))
	ctx, dir := bp.ctx, bp.dir
	must, eval, poll, shot, login, clickItem, waitText := bp.must, bp.eval, bp.poll, bp.shot, bp.login, bp.clickItem, bp.waitText

	must("login page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)), shot("login"))
	login("alice@example.test", "alice-password")
	waitText("inbox lists the messages", "#messages", "albatross plans")
	must("inbox screenshot", shot("inbox"))

	// The session cookie is HttpOnly: the page's script cannot read it.
	cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cookies, "petrel-session") {
		t.Errorf("the page can read the session cookie: %q", cookies)
	}

	// Open a message.
	must("open", clickItem("#messages li", "albatross plans"))
	waitText("message text", "#m-text", "The albatross sails at noon.")
	must("message screenshot", shot("message"))

	// Search a word: only the matching message stays.
	must("search", chromedp.SendKeys(chromedp.CSS(`#q`), "albatross\n"))
	waitText("search title", "#list-title", "Search: albatross")
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#messages li').length`))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("search for albatross lists %d messages", n)
	}
	must("search screenshot", shot("search"))

	// A hostile message does nothing: no script, no handler, no CSS or remote load, no dialog.
	must("clear search", eval(`document.querySelector('#folder-list li').click()`))
	waitText("inbox again", "#messages", "hostile offer")
	must("open hostile", clickItem("#messages li", "hostile offer"), chromedp.WaitVisible(chromedp.CSS(`#m-images`)))
	// Allowing remote images loads the pixel, and only it: proof that the frame loaded and
	// that the blocking, not chance, kept the rest out.
	// The button is clicked from a script: a mouse click at coordinates taken a moment
	// earlier can land beside the button when the view shifts as the list re-renders on a
	// live update. The same script listens for the load event of the frame that the click
	// put in place: an image holds its document's load event until it has loaded or failed,
	// so once the frame has loaded, the pixel's request has reached the server or never
	// will. Waiting on that event, not on a clock, keeps a loaded machine from failing the
	// test.
	must("show images", poll(`(() => {
		const b = document.querySelector('#load-images');
		if (!b || b.offsetParent === null) return false;
		b.click();
		const f = document.querySelector('#m-html');
		f.addEventListener('load', () => { window.imagesFrameLoaded = f.src; }, { once: true });
		return f.src.includes('images=1');
	})()`))
	must("frame with images loaded", poll(`(window.imagesFrameLoaded || '').includes('images=1')`))
	if !slices.Contains(evil.got(), "/pixel.gif") {
		src, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#m-html').src + ' hidden=' + document.querySelector('#m-html').hidden`))
		t.Errorf("the frame with images allowed loaded without asking for the image; requests: %q; frame: %s", evil.got(), src)
	}
	must("hostile screenshot", shot("hostile-images-allowed"))
	for _, p := range evil.got() {
		if p != "/pixel.gif" {
			t.Errorf("the hostile message made a request to %s", p)
		}
	}
	if d := bp.dialogs(); len(d) > 0 {
		t.Errorf("the hostile message opened dialogs: %q", d)
	}

	// Compose and send to bob.
	must("compose", chromedp.Click(chromedp.CSS(`#compose-btn`)), chromedp.WaitVisible(chromedp.CSS(`#c-to`)),
		chromedp.SendKeys(chromedp.CSS(`#c-to`), "bob@example.test"),
		chromedp.SendKeys(chromedp.CSS(`#c-subject`), "kittiwake meeting"),
		chromedp.SendKeys(chromedp.CSS(`#c-body`), "Shall we meet on Tuesday?"),
		shot("compose"),
		chromedp.Click(chromedp.CSS(`#c-send`)))
	waitText("sent", "#status", "Sent")

	// Bob sees it in his inbox, and answers with an attachment.
	must("logout", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)))
	login("bob@example.test", "bob-password")
	waitText("bob's inbox", "#messages", "kittiwake meeting")
	attachment := filepath.Join(t.TempDir(), "agenda.txt")
	writeFile(t, attachment, "1. gulls\n2. terns\n", 0o644)
	must("reply", clickItem("#messages li", "kittiwake meeting"),
		chromedp.WaitVisible(chromedp.CSS(`#m-text`)),
		chromedp.Click(chromedp.CSS(`button[data-view=reply]`)), chromedp.WaitVisible(chromedp.CSS(`#c-body`)),
		chromedp.SendKeys(chromedp.CSS(`#c-body`), "Tuesday is fine, agenda attached."),
		chromedp.SetUploadFiles(chromedp.CSS(`#c-files`), []string{attachment}),
		chromedp.Click(chromedp.CSS(`#c-send`)))
	waitText("reply sent", "#status", "Sent")

	// Alice gets the reply with its attachment and files it in Archive.
	must("logout bob", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)))
	login("alice@example.test", "alice-password")
	waitText("the reply arrived", "#messages", "Re: kittiwake meeting")
	must("open reply", clickItem("#messages li", "Re: kittiwake meeting"))
	waitText("attachment listed", "#m-attachments", "agenda.txt")
	// Choose Archive in the message's "Move to" list, as a user would.
	must("move to Archive", eval(`(() => { const s = document.getElementById('view-move');
		s.value = [...s.options].find(o => o.textContent === 'Archive').value;
		s.dispatchEvent(new Event('change')); })()`))
	waitText("moved", "#status", "Moved 1")
	must("open Archive", clickItem("#folder-list li", "Archive"))
	waitText("in Archive", "#messages", "Re: kittiwake meeting")
	must("archive screenshot", shot("archive"))

	// A flag set over IMAP appears in the open page without a reload.
	must("back to inbox", eval(`document.querySelector('#folder-list li').click()`))
	waitText("inbox", "#messages", "lunch")
	must("mark the page", eval(`window.notReloaded = true`))
	host, port := splitAddr(t, in.IMAPS)
	run(t, nil, nil, "python3", "-c", pyIMAPFlag, host, port, ca.File, "alice@example.test", "alice-password", "lunch")
	must("flag shows", poll(`!!(document.querySelector('#messages li.flagged') && document.querySelector('#messages li.flagged').textContent.includes('lunch'))`))
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded === true`))
	if err != nil || !same {
		t.Errorf("the page was reloaded (%v)", err)
	}
	must("flag screenshot", shot("flagged-over-imap"))

	// A form on another site that posts to the webmail is refused, and changes nothing.
	inboxID, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.querySelector('#folder-list li').dataset.id)`))
	if err != nil {
		t.Fatal(err)
	}
	attack := startEvil(t, fmt.Sprintf(`<form id=f method=post action="%s/api/mailboxes/%d/delete"><input name=uids value=1></form><script>document.getElementById('f').submit()</script>`, base, inboxID))
	must("cross-site post", chromedp.Navigate(attack.url+"/attack.html"),
		poll(`!!(document.body && document.body.innerText.includes('error'))`))
	answer, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "not logged in") && !strings.Contains(answer, "refused") {
		t.Errorf("cross-site POST answered %q", answer)
	}
	must("the message is still there", chromedp.Navigate(base+"/"))
	waitText("still there", "#messages", "albatross plans")

	// An admin URL with a user's session is refused.
	must("admin as a user", chromedp.Navigate(base+"/admin/"), poll(`!!(document.body && document.body.innerText.includes('403'))`))

	// The operator makes bob an admin from the shell; bob's web admin adds an account, and
	// the CLI sees it: one code path for both.
	in.mustPetrel("", "account", "admin", "bob@example.test", "on")
	must("logout alice", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#logout`)), chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)))
	login("bob@example.test", "bob-password")
	must("admin page", chromedp.Navigate(base+"/admin/"), chromedp.WaitReady(chromedp.CSS(`input[value=account-add]`)),
		eval(`(() => { const f = document.querySelector('input[name=action][value=account-add]').form;
			f.address.value = 'erin@example.test'; f.password.value = 'erin-password'; f.submit(); })()`))
	waitText("account added", "#result", "added account erin@example.test")
	must("admin screenshot", shot("admin"))
	if out := in.mustPetrel("", "account", "list"); !strings.Contains(out, "erin@example.test") {
		t.Errorf("the CLI does not list the account the web admin added:\n%s", out)
	}
	t.Logf("screenshots in %s", dir)
}

// deliverSMTP hands a message to the MX port, as another server would.
func deliverSMTP(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	pySend(t, addr, "plain", "", "", from, []string{to}, []byte(msg))
}

// browserPage is one headless Chromium with one tab on the webmail, and the steps the
// browser tests are written in.
type browserPage struct {
	t    *testing.T
	ctx  context.Context
	base string // the webmail's URL
	dir  string // where screenshots go

	mu   sync.Mutex
	seen []string // messages of the JavaScript dialogs the page opened
}

// startBrowser starts Chromium (stopped when the test ends) with extra allocator options
// (the window size).
func startBrowser(t *testing.T, base string, extra ...chromedp.ExecAllocatorOption) *browserPage {
	chromium, _ := exec.LookPath("chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true))
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	bp := &browserPage{t: t, ctx: ctx, base: base, dir: screenshots(t)}
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			bp.mu.Lock()
			bp.seen = append(bp.seen, d.Message)
			bp.mu.Unlock()
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bp
}

func (bp *browserPage) dialogs() []string {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	return append([]string(nil), bp.seen...)
}

// shot saves a screenshot of the page as name.png.
func (bp *browserPage) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.CaptureScreenshot()(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(bp.dir, name+".png"), buf, 0o644)
	})
}

// stepTimeout bounds one step of a browser test. A step takes well under a second on a
// quiet machine; the bound only stops a hang, and must hold at a load average of 30, where
// Chromium's processes wait long for a CPU.
const stepTimeout = 2 * time.Minute

// must runs the steps or fails the test with what the page showed.
func (bp *browserPage) must(what string, actions ...chromedp.Action[chromedp.Void]) {
	bp.t.Helper()
	// Each step has its own bound (the browser's context must have none: it would stop
	// the browser).
	sctx, cancel := context.WithTimeout(bp.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		// What the page showed, for the log: a failed step is otherwise a bare timeout.
		sctx, cancel := context.WithTimeout(bp.ctx, time.Minute)
		defer cancel()
		loc, _ := chromedp.Run(sctx, chromedp.Location())
		text, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		chromedp.Do(sctx, bp.shot("failed"))
		bp.t.Fatalf("%s: %v\npage %s:\n%s", what, err, loc, tail(text, 40))
	}
}

// eval runs a script for its effect.
func (bp *browserPage) eval(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](js)(ctx, tg)
		return err
	})
}

// value returns a script's value.
func evalTo[T any](bp *browserPage, js string) T {
	bp.t.Helper()
	sctx, cancel := context.WithTimeout(bp.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js))
	if err != nil {
		bp.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// poll waits until a script's value is true (the page updates itself). A poll that a
// navigation interrupts (a form just submitted) starts again on the new page. The poll has
// no bound of its own: the step's context (stepTimeout) bounds it.
func (bp *browserPage) poll(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(0))(ctx, tg)
			if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "navigated") && !strings.Contains(err.Error(), "Cannot find context") {
				return err
			}
		}
	})
}

func (bp *browserPage) login(user, pass string) {
	bp.t.Helper()
	bp.must("log in as "+user,
		chromedp.Navigate(bp.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), pass),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		// Ready, not visible: on a phone-sized screen the folder pane is hidden.
		chromedp.WaitReady(chromedp.CSS(`#folder-list li`)),
	)
}

// clickItem clicks the first element of sel whose text has text, in one script: the page
// re-renders its lists on live updates, so a node found by one protocol call may be gone
// by the next.
func (bp *browserPage) clickItem(sel, text string) chromedp.Action[chromedp.Void] {
	return bp.poll(fmt.Sprintf(`(() => { const el = [...document.querySelectorAll(%q)].find(e => e.textContent.includes(%q)); if (!el) return false; el.click(); return true; })()`, sel, text))
}

// waitText polls the page's text of sel until it contains want.
func (bp *browserPage) waitText(what, sel, want string) {
	bp.t.Helper()
	bp.must(what, bp.poll(fmt.Sprintf(`!!(document.querySelector(%q) && document.querySelector(%q).textContent.includes(%q))`, sel, sel, want)))
}
