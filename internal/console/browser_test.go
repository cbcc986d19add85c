package console_test

// The console in a real browser: headless Chromium from Debian's chromium
// package, driven with chromedp. One browser serves every test of the
// package; each test has its own tabs in browser contexts of their own
// (cookies apart), and fails on any script error its pages log.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// rebindName resolves to 127.0.0.1 in the test browser: a page reached by
// it is what a DNS rebinding attack looks like to the server.
const rebindName = "rebound.test"

var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel []context.CancelFunc
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(browser.cancel) - 1; i >= 0; i-- {
		browser.cancel[i]()
	}
	os.Exit(code)
}

// sharedBrowser starts Chromium once for the package.
func sharedBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testkit.MissingTool(t, "chromium is not installed (Debian's chromium package; .ci/run installs it): the console's browser tests did not run")
	}
	browser.once.Do(func() {
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("host-resolver-rules", "MAP "+rebindName+" 127.0.0.1"),
			chromedp.WindowSize(1280, 800),
		}
		dir, err := os.MkdirTemp("", "console-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		opts = append(opts, chromedp.UserDataDir(dir))
		actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancelB := chromedp.NewContext(actx)
		browser.cancel = append(browser.cancel, func() { os.RemoveAll(dir) }, cancelA, cancelB)
		if err := chromedp.Do(bctx); err != nil {
			browser.err = fmt.Errorf("start chromium: %w", err)
			return
		}
		browser.ctx = bctx
	})
	if browser.err != nil {
		t.Fatal(browser.err)
	}
	return browser.ctx
}

// tab is a browser tab of one test.
type tab struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	// errs are the script errors and uncaught exceptions its pages logged.
	errs []string
	// allowErrors is set for tabs that load refused pages on purpose (the
	// browser logs a 403 as an error).
	allowErrors bool
}

// newTab opens a tab in a browser context of its own.
func newTab(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(sharedBrowser(t), chromedp.WithNewBrowserContext())
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	tb := &tab{t: t, ctx: ctx}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.errs = append(tb.errs, m.String()+" at "+m.URL)
				tb.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		tb.mu.Lock()
		errs := tb.errs
		tb.mu.Unlock()
		cancelT()
		cancel()
		<-done
		if len(errs) > 0 && !tb.allowErrors {
			t.Errorf("script errors in the console's pages:\n%s", strings.Join(errs, "\n"))
		}
	})
	return tb
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// open loads url and waits until its live stream is connected.
func (tb *tab) open(url string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(url))
	tb.waitFor(10*time.Second, `document.getElementById('live-status').textContent === 'live'`, "the page's live stream to connect")
}

// load loads url and waits until it is loaded (pages without a stream).
func (tb *tab) load(url string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(url))
	tb.waitFor(10*time.Second, `document.readyState === 'complete'`, "the page to load")
}

// eval evaluates a JavaScript expression.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// await evaluates a JavaScript expression whose value is a promise.
func await[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until expr is true in the page, at most d.
func (tb *tab) waitFor(d time.Duration, expr, what string) {
	tb.t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		// A navigation ends a poll early: poll again until the deadline.
		_, err = chromedp.Run(tb.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil || errors.Is(err, chromedp.ErrPollingTimeout) || tb.ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		<-time.After(20 * time.Millisecond)
	}
	if err != nil {
		main, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`(document.getElementById('notice')||{}).textContent + '\n' + (document.querySelector('main')||document.body).innerText`))
		tb.t.Fatalf("waited %v for %s: %v\npage:\n%s", d, what, err, main)
	}
}

// live is how soon a change must show on an open page.
const live = time.Second

func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// text is an expression: the text of the element selector names ("" if none).
func text(selector string) string {
	return `((document.querySelector(` + js(selector) + `)||{}).textContent||'')`
}

// act clicks a button and waits for the notice to say how the action went;
// it returns the notice's text.
func (tb *tab) act(button string, wantOK bool) string {
	tb.t.Helper()
	tb.waitFor(10*time.Second, `(b => b && !b.disabled)(document.querySelector(`+js(button)+`))`, button+" to be there and enabled")
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('notice').textContent = ''`), chromedp.Click(chromedp.CSS(button)))
	tb.waitFor(30*time.Second, `(n => !n.hidden && n.textContent !== '' && n.textContent !== 'Working…')(document.getElementById('notice'))`, "the answer to "+button)
	got := eval[string](tb, text("#notice"))
	ok := eval[bool](tb, `document.getElementById('notice').classList.contains('ok')`)
	if ok != wantOK {
		tb.t.Fatalf("%s: notice %q (ok=%v), want ok=%v", button, got, ok, wantOK)
	}
	return got
}

// setField sets a form field's value as typing would.
func (tb *tab) setField(selector, value string) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](`(el => { el.value = ` + js(value) + `; el.dispatchEvent(new Event('input', {bubbles: true})); })(document.querySelector(` + js(selector) + `))`))
}

// checkAccessible checks that every control on the page has an accessible
// name, and that Tab reaches every visible control (axe is not available:
// this is the part of it that matters most for this console).
func (tb *tab) checkAccessible() {
	tb.t.Helper()
	tree, err := chromedp.Call(tb.ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		tb.t.Fatal(err)
	}
	interactive := map[string]bool{"button": true, "link": true, "textbox": true, "combobox": true, "checkbox": true, "searchbox": true,
		"spinbutton": true, "listbox": true, "radio": true, "DisclosureTriangle": true}
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		var role, name string
		_ = json.Unmarshal(n.Role.Value, &role)
		if n.Name != nil {
			_ = json.Unmarshal(n.Name.Value, &name)
		}
		if interactive[role] && strings.TrimSpace(name) == "" {
			tb.t.Errorf("a %s has no accessible name (DOM node %d)", role, n.BackendDOMNodeID)
		}
	}
	// Labels point at one element each: ids are unique.
	if dup := eval[[]string](tb, `(() => { const seen = {}, dup = []; document.querySelectorAll('[id]').forEach(el => { if (seen[el.id]) dup.push(el.id); seen[el.id] = true; }); return dup; })()`); len(dup) > 0 {
		tb.t.Errorf("ids used more than once: %v", dup)
	}
	// Walk the page with Tab and note every control focused.
	controls := eval[[]string](tb, `(() => {
		const els = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary')]
			.filter(el => el.checkVisibility() && !el.disabled && !el.closest('[hidden]'));
		els.forEach((el, i) => el.dataset.tabcheck = String(i));
		return els.map(el => el.dataset.tabcheck);
	})()`)
	tb.do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`))
	reached := map[string]bool{}
	for i := 0; i < len(controls)+5; i++ {
		tb.do(chromedp.KeyEvent(kb.Tab))
		if id := eval[string](tb, `(document.activeElement && document.activeElement.dataset.tabcheck) || ''`); id != "" {
			reached[id] = true
		}
	}
	for _, id := range controls {
		if !reached[id] {
			desc := eval[string](tb, `(el => el.outerHTML.slice(0, 160))(document.querySelector('[data-tabcheck="`+id+`"]'))`)
			tb.t.Errorf("Tab never reaches %s", desc)
		}
	}
}
