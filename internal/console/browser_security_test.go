package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// seenRequests wraps a handler and notes the status of every state change
// that reaches it.
type seenRequests struct {
	mu   sync.Mutex
	seen map[string]int // "METHOD path" -> status
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (sr *seenRequests) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if r.Method != http.MethodGet {
			sr.mu.Lock()
			sr.seen[r.Method+" "+r.URL.Path] = rec.status
			sr.mu.Unlock()
		}
	})
}

func (sr *seenRequests) status(key string) (int, bool) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	s, ok := sr.seen[key]
	return s, ok
}

// attackerPage is a page of another origin (another port of 127.0.0.1)
// that tries what any web page a developer visits could: "simple"
// cross-origin requests (text/plain fetches, a form), which browsers send
// without asking the server first.
const attackerPage = `<!doctype html><title>attacker</title>
<iframe name="sink"></iframe>
<form id="f" method="post" action="TARGET/_cloudhsm-local/console/actions/reset" target="sink"><input name="confirm" value="yes"></form>
<script>
(async () => {
  const target = 'TARGET';
  const send = (path, body, type) => fetch(target + path, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': type}, body}).catch(() => {});
  await send('/_cloudhsm-local/clock/advance', '{"duration":"24h"}', 'text/plain');
  await send('/_cloudhsm-local/reset', '', 'text/plain');
  await send('/_cloudhsm-local/console/actions/clock-advance', 'duration=24h', 'application/x-www-form-urlencoded');
  document.getElementById('f').submit();
})();
</script>`

// TestBrowserRefusesOtherOrigins: a page served from another port, in the
// real browser, cannot move the clock or reset the estate through the
// admin API or the console; the console's own page can.
func TestBrowserRefusesOtherOrigins(t *testing.T) {
	t.Parallel()
	srv, err := server.New(server.Config{InMemory: true, Clock: clock.NewFrozen(start), RequestLog: 50})
	if err != nil {
		t.Fatal(err)
	}
	seen := &seenRequests{seen: map[string]int{}}
	hs := httptest.NewServer(seen.wrap(srv.Handler()))
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	e := &env{srv: srv, hs: hs}
	c := createCluster(t, e.sdk(acctA, "us-east-1"))

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, strings.ReplaceAll(attackerPage, "TARGET", hs.URL))
	}))
	t.Cleanup(evil.Close)
	attacker := newTab(t)
	attacker.allowErrors = true // its refused requests are logged
	attacker.load(evil.URL)
	want := []string{"POST /_cloudhsm-local/clock/advance", "POST /_cloudhsm-local/reset", "POST /_cloudhsm-local/console/actions/clock-advance", "POST /_cloudhsm-local/console/actions/reset"}
	deadline := time.Now().Add(10 * time.Second)
	for _, key := range want {
		for {
			status, ok := seen.status(key)
			if ok {
				if status != http.StatusForbidden {
					t.Errorf("%s from another origin: %d, want 403", key, status)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the attacker page's %s never arrived", key)
			}
			<-time.After(20 * time.Millisecond)
		}
	}
	if now := srv.Service().Clock().Now(); !now.Equal(start) {
		t.Fatalf("another origin moved the clock to %v", now)
	}
	if got := len(e.srv.Service().Stats().Clusters); got == 0 {
		t.Fatal("another origin reset the estate")
	}

	// The console's own page is the server's origin: it may.
	own := newTab(t)
	own.open(e.url("clusters/" + *c.ClusterId))
	own.act("#advance-submit", true)
	if now := srv.Service().Clock().Now(); !now.Equal(start.Add(time.Hour)) {
		t.Fatalf("the console's own advance left the clock at %v", now)
	}
}

// TestBrowserRefusesReboundNames: a name rebound to 127.0.0.1 (DNS
// rebinding) reaches the listener, but not the console nor the admin API.
func TestBrowserRefusesReboundNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	createCluster(t, e.sdk(acctA, "us-east-1"))
	port := e.hs.URL[strings.LastIndexByte(e.hs.URL, ':')+1:]
	tb := newTab(t)
	tb.allowErrors = true // the browser logs the 403s
	for _, path := range []string{"/_cloudhsm-local/console/", "/_cloudhsm-local/export"} {
		tb.load("http://" + rebindName + ":" + port + path)
		got := eval[string](tb, `document.body.innerText`)
		if !strings.Contains(got, "is not a name of this server") || strings.Contains(got, "cluster-") {
			t.Fatalf("%s by a rebound name shows:\n%.400s", path, got)
		}
	}
	// By its own name, it answers.
	tb.open(e.url(""))
}

// TestBrowserAsksForTheToken: with an admin token, the console asks for it
// once and keeps it in an HttpOnly, SameSite=Strict cookie named for the
// port, which the admin API accepts too.
func TestBrowserAsksForTheToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{AdminToken: "s3cret-token", Domain: cloudhsm.DefaultConfig()})
	port := e.hs.URL[strings.LastIndexByte(e.hs.URL, ':')+1:]
	tb := newTab(t)
	tb.allowErrors = true // the 401 of the first load is logged
	tb.load(e.url(""))
	tb.waitFor(live, `!!document.getElementById('login-token')`, "the console to ask for the token")
	tb.setField("#login-token", "wrong")
	tb.do(chromedp.Click(chromedp.CSS("#login-submit")))
	tb.waitFor(10*time.Second, `document.readyState === 'complete' && document.body.innerText.includes('That is not the admin token.')`, "the wrong token to be refused")
	tb.setField("#login-token", "s3cret-token")
	tb.do(chromedp.Click(chromedp.CSS("#login-submit")))
	tb.waitFor(10*time.Second, `document.readyState === 'complete' && document.title.startsWith('Estate')`, "the estate after the token")
	tb.waitFor(10*time.Second, `document.getElementById('live-status').textContent === 'live'`, "the live stream with the cookie")
	if got := eval[string](tb, `document.cookie`); strings.Contains(got, "s3cret") {
		t.Fatalf("a script can read the token: %q", got)
	}
	cookies, err := chromedp.Call(tb.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{e.hs.URL}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ck := range cookies.Cookies {
		if ck.Name == "cloudhsm_local_admin_"+port {
			found = ck.HTTPOnly && ck.SameSite == network.CookieSameSiteStrict && ck.Value == "s3cret-token"
		}
	}
	if !found {
		t.Fatalf("no HttpOnly SameSite=Strict cookie cloudhsm_local_admin_%s: %+v", port, cookies.Cookies)
	}
	// The admin API takes the cookie.
	status := await[int](tb, `fetch('/_cloudhsm-local/clock').then(r => r.status)`)
	if status != 200 {
		t.Fatalf("the admin API with the console's cookie: %d", status)
	}
	tb.act("#advance-submit", true)
}
