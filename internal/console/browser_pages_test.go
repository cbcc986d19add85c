package console_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// TestBrowserPages shows each page in Chromium: what it must say, every
// control labelled and reachable by Tab, untrusted text as text, no
// script error, and a first load under 200 KB.
func TestBrowserPages(t *testing.T) {
	t.Parallel()
	tb := newTab(t)
	e := newEnv(t, server.Config{})
	s := makeEstate(t, e)

	tb.open(e.url(""))
	for _, want := range []string{*s.active.ClusterId, *s.uninit.ClusterId, acctA, acctB, "eu-west-1", "us-west-2", "ACTIVE 1", "UNINITIALIZED 1", "READY 1", "2 of 2 clusters"} {
		tb.waitFor(live, `document.querySelector('main').innerText.includes(`+js(want)+`)`, "the estate to show "+want)
	}
	loaded := eval[float64](tb, `performance.getEntries().filter(e => 'decodedBodySize' in e).reduce((n, e) => n + e.decodedBodySize, 0)`)
	if loaded <= 0 || loaded > 200<<10 {
		t.Fatalf("first load of the estate: %.0f bytes, want under 200 KB", loaded)
	}
	t.Logf("first load of the estate: %.1f KB", loaded/1024)
	tb.checkAccessible()
	shoot(t, tb, "estate")

	tb.open(e.url("clusters/" + *s.active.ClusterId))
	for _, want := range []string{"ACTIVE", s.hsmID, s.az, "INITIALIZE_IN_PROGRESS", "by InitializeCluster", "Cluster certificate", "✓ verifies: carries the cluster CSR's key",
		"✓ verifies: chains to the simulated AWS CloudHSM root", "✓ verifies: chains to the simulated manufacturer root", "team", "payments", s.backup} {
		tb.waitFor(live, `document.querySelector('main').innerText.includes(`+js(want)+`)`, "the cluster page to show "+want)
	}
	if eval[bool](tb, `document.querySelector('main').innerText.includes('✗')`) {
		t.Fatalf("a certificate check failed: %s", eval[string](tb, `document.getElementById('live-certs').innerText`))
	}
	tb.checkAccessible()
	shoot(t, tb, "cluster")

	tb.open(e.url("backups/" + s.backup + "?account=" + acctA + "&region=us-east-1"))
	for _, want := range []string{"READY", s.copy, "us-west-2", "arn:aws:iam::" + acctB + ":root", s.arn, *s.active.ClusterId} {
		tb.waitFor(live, `document.querySelector('main').innerText.includes(`+js(want)+`)`, "the backup page to show "+want)
	}
	tb.checkAccessible()
	shoot(t, tb, "backup")
	// The copy names where it came from.
	tb.open(e.url("backups/" + s.copy))
	tb.waitFor(live, `document.querySelector('main').innerText.includes('Copied from')`, "the copy's source")
	href := eval[string](tb, `document.querySelector('a[href*="backups/`+s.backup+`"]').href`)
	if !strings.Contains(href, "region=us-east-1") {
		t.Fatalf("the copy's source links to %s", href)
	}

	tb.open(e.url("requests"))
	tb.waitFor(live, `document.querySelector('#request-table') && document.querySelector('#request-table').innerText.includes('TagResource')`, "the refused TagResource in the request log")
	if got := eval[string](tb, `document.getElementById('requests-note').textContent`); !strings.Contains(got, "per process") {
		t.Fatalf("the request log does not say it is per process: %q", got)
	}
	tb.checkAccessible()
	shoot(t, tb, "requests")
	// The refused call, whose body and error message hold markup.
	tb.load(eval[string](tb, `document.querySelector('#request-table tbody tr:first-child a').href`))
	for _, id := range []string{"call-request", "call-response"} {
		got := eval[string](tb, `document.getElementById(`+js(id)+`).textContent`)
		if !strings.Contains(got, `<script>window.pwned=1</script>`) && !strings.Contains(got, `\u003cscript\u003e`) {
			t.Fatalf("%s does not show the markup as text: %q", id, got)
		}
	}
	if n := eval[int](tb, `document.querySelectorAll('main script, main img').length`); n != 0 {
		t.Fatalf("untrusted text became %d elements", n)
	}
	if eval[bool](tb, `window.pwned !== undefined`) {
		t.Fatal("untrusted text ran as script")
	}
}

// shoot saves a screenshot of the page at 1280x800 and at 390x844 (a
// phone) in $CONSOLE_SCREENSHOTS, when set (docs/console-*.png).
func shoot(t *testing.T, tb *tab, name string) {
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	for _, size := range []struct {
		suffix string
		w, h   int64
	}{{"", 1280, 800}, {"-narrow", 390, 844}} {
		tb.do(chromedp.EmulateViewport(size.w, size.h), chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`))
		png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "console-"+name+size.suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tb.do(chromedp.EmulateViewport(1280, 800))
}
