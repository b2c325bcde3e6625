package e2e

import (
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWebmailPhone: the webmail on a phone-sized screen (390 × 844 CSS pixels, touch,
// mobile): one pane at a time, nothing wider than the screen, touch targets of at least
// 44 pixels, and the main flows: open a message and go back, read a conversation, change
// folders through the menu, write and send.
func TestWebmailPhone(t *testing.T) {
	requireTools(t, "chromium")
	in := startInstance(t, options{"http": {"redirect_https = false"}})
	in.addAccount("alice@example.test", "alice-password")
	_, httpPort, _ := net.SplitHostPort(in.HTTP)
	base := "http://localhost:" + httpPort

	// A conversation of three (the replies name the first in References) and one other.
	deliverSMTP(t, in.SMTP, "carol@elsewhere.example", "alice@example.test", "Message-ID: <walk-1@elsewhere.example>\r\nSubject: harbour walk\r\nFrom: carol@elsewhere.example\r\nTo: alice@example.test\r\n\r\nShall we walk to the harbour?\r\n")
	deliverSMTP(t, in.SMTP, "dave@elsewhere.example", "alice@example.test", "Message-ID: <other@elsewhere.example>\r\nSubject: guillemot census\r\nFrom: dave@elsewhere.example\r\nTo: alice@example.test\r\n\r\nCounts attached soon.\r\n")
	deliverSMTP(t, in.SMTP, "erin@elsewhere.example", "alice@example.test", "Message-ID: <walk-2@elsewhere.example>\r\nIn-Reply-To: <walk-1@elsewhere.example>\r\nReferences: <walk-1@elsewhere.example>\r\nSubject: Re: harbour walk\r\nFrom: erin@elsewhere.example\r\nTo: alice@example.test\r\n\r\nYes, at four.\r\n")
	deliverSMTP(t, in.SMTP, "carol@elsewhere.example", "alice@example.test", "Message-ID: <walk-3@elsewhere.example>\r\nIn-Reply-To: <walk-2@elsewhere.example>\r\nReferences: <walk-1@elsewhere.example> <walk-2@elsewhere.example>\r\nSubject: Re: harbour walk\r\nFrom: carol@elsewhere.example\r\nTo: alice@example.test\r\n\r\nFour it is.\r\n")

	bp := startBrowser(t, base, chromedp.WindowSize(390, 844))
	bp.must("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2)))
	bp.login("alice@example.test", "alice-password")
	bp.waitText("inbox", "#messages", "guillemot census")
	bp.must("inbox screenshot", bp.shot("phone-inbox"))

	// One pane: the list, with the menu button instead of the folder pane.
	visible := func(sel string) bool {
		return evalTo[bool](bp, `(() => { const e = document.querySelector('`+sel+`'); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; })()`)
	}
	fits := func(where string) {
		t.Helper()
		if w := evalTo[int](bp, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
			t.Errorf("%s: the page is %d pixels wider than the screen", where, w)
		}
	}
	if !visible("#list") || visible("#folders") || visible("#view") || !visible("#menu") {
		t.Errorf("list pane: list %v folders %v view %v menu %v; want the list and the menu only", visible("#list"), visible("#folders"), visible("#view"), visible("#menu"))
	}
	if w := evalTo[int](bp, `window.innerWidth`); w != 390 {
		t.Errorf("viewport %d pixels wide, want 390", w)
	}
	fits("list")
	// Touch targets: every visible button, select and message row is at least 44 pixels
	// high (WCAG 2.5.5).
	small := evalTo[[]string](bp, `[...document.querySelectorAll('button, select, #messages li')]
		.filter(e => e.getClientRects().length > 0)
		.filter(e => e.getBoundingClientRect().height < 44)
		.map(e => (e.id || e.tagName) + ':' + Math.round(e.getBoundingClientRect().height))`)
	if len(small) > 0 {
		t.Errorf("touch targets under 44 pixels: %v", small)
	}

	// Open a message: the reading pane replaces the list; Back returns.
	bp.must("open", bp.clickItem("#messages li", "guillemot census"))
	bp.waitText("message text", "#m-text", "Counts attached soon.")
	if visible("#list") || !visible("#view") || !visible("#back") {
		t.Errorf("reading pane: list %v view %v back %v", visible("#list"), visible("#view"), visible("#back"))
	}
	fits("message")
	bp.must("message screenshot", bp.shot("phone-message"))
	bp.must("back", bp.eval(`document.getElementById('back').click()`),
		bp.poll(`document.getElementById('app').className === 'show-list'`))

	// Conversations: the three messages of the walk come together, the newest first with
	// the count; opening one lists the conversation.
	bp.must("conversations on", bp.eval(`(() => { const c = document.getElementById('threads'); if (!c.checked) c.click(); })()`),
		bp.poll(`!!document.querySelector('#messages .thread-count')`))
	rows := evalTo[[]string](bp, `[...document.querySelectorAll('#messages li')].map(li => (li.classList.contains('in-thread') ? '  ' : '') + li.querySelector('.subject').textContent)`)
	want := []string{"Re: harbour walk", "  Re: harbour walk", "  harbour walk", "guillemot census"}
	if strings.Join(rows, "|") != strings.Join(want, "|") {
		t.Errorf("conversation rows %q, want %q", rows, want)
	}
	if n := evalTo[string](bp, `document.querySelector('#messages .thread-count').textContent`); n != "3" {
		t.Errorf("conversation count %q, want 3", n)
	}
	bp.must("conversations screenshot", bp.shot("phone-conversations"))
	bp.must("open the conversation", bp.clickItem("#messages li", "Re: harbour walk"))
	bp.waitText("newest of the walk", "#m-text", "Four it is.")
	if n := evalTo[int](bp, `document.querySelectorAll('#m-thread li').length`); n != 3 || !visible("#m-conversation") {
		t.Errorf("the conversation lists %d messages (shown %v), want 3", n, visible("#m-conversation"))
	}
	bp.must("earlier message of the conversation", bp.clickItem("#m-thread li", "erin@"))
	bp.waitText("erin's answer", "#m-text", "Yes, at four.")
	bp.must("conversation screenshot", bp.shot("phone-conversation-open"))
	bp.must("back again", bp.eval(`document.getElementById('back').click()`),
		bp.poll(`document.getElementById('app').className === 'show-list'`))

	// Folders through the menu.
	bp.must("menu", bp.eval(`document.getElementById('menu').click()`), bp.poll(`document.getElementById('app').className === 'show-folders'`))
	if !visible("#folders") || visible("#list") {
		t.Errorf("folder pane: folders %v list %v", visible("#folders"), visible("#list"))
	}
	bp.must("folders screenshot", bp.shot("phone-folders"))
	bp.must("open Sent", bp.clickItem("#folder-list li", "Sent"), bp.poll(`document.getElementById('app').className === 'show-list'`))
	bp.waitText("Sent listed", "#list-title", "Sent")

	// Write and send: the dialog fits the screen, and the message arrives.
	bp.must("compose", bp.eval(`document.getElementById('compose-btn').click()`), chromedp.WaitVisible(chromedp.CSS(`#c-to`)),
		chromedp.SendKeys(chromedp.CSS(`#c-to`), "alice@example.test"),
		chromedp.SendKeys(chromedp.CSS(`#c-subject`), "note to self"),
		chromedp.SendKeys(chromedp.CSS(`#c-body`), "Bring binoculars."))
	if w := evalTo[int](bp, `Math.ceil(document.getElementById('compose').getBoundingClientRect().right)`); w > 390 {
		t.Errorf("the compose dialog reaches %d pixels on a 390-pixel screen", w)
	}
	bp.must("compose screenshot", bp.shot("phone-compose"), bp.eval(`document.getElementById('c-send').click()`))
	bp.waitText("sent", "#status", "Sent")
	bp.must("inbox again", bp.eval(`document.getElementById('menu').click()`), bp.clickItem("#folder-list li", "INBOX"))
	bp.waitText("the note arrived", "#messages", "note to self")
	if d := bp.dialogs(); len(d) > 0 {
		t.Errorf("dialogs opened: %q", d)
	}
}
