package admin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// send makes one request to the env's listener with the given Host and
// headers (name, value pairs) and returns the status and body.
func (e *env) send(t *testing.T, method, path, host, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.hs.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(e.hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// TestHostIsChecked: a server on a loopback address answers its admin API
// only to loopback names with its port (a page whose name is rebound to
// 127.0.0.1 must not read the export), and to --allowed-hosts; the AWS API,
// health and metrics answer whatever the Host.
func TestHostIsChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{AllowedHosts: []string{"dev.test"}})
	port := e.port(t)
	cases := []struct {
		host, path string
		want       int
	}{
		{"127.0.0.1:" + port, "export", 200},
		{"localhost:" + port, "export", 200},
		{"LOCALHOST:" + port, "clock", 200},
		{"127.0.0.1:" + port, "clock", 200},
		{"dev.test:" + port, "clock", 200},
		{"dev.test", "clock", 200},
		{"evil.example:" + port, "export", 403},
		{"evil.example", "clock", 403},
		{"localhost:1", "clock", 403},
		{"localhost", "clock", 403},
		{"127.0.0.1.nip.io:" + port, "clock", 403},
		{"evil.example:" + port, "health", 200},
	}
	for _, tc := range cases {
		status, body := e.send(t, "GET", admin.Prefix+tc.path, tc.host, "")
		if status != tc.want {
			t.Errorf("GET %s with Host %q: %d, want %d: %s", tc.path, tc.host, status, tc.want, body)
		}
		if tc.want == 403 && (!strings.Contains(body, "DNS rebinding") || !strings.Contains(body, "--allowed-hosts")) {
			t.Errorf("refusal does not say why or what to do: %s", body)
		}
	}
	// The AWS API is not Host-checked (strict mode signs the Host), nor /metrics.
	status, body := e.send(t, "POST", "/", "evil.example:"+port, "{}", "X-Amz-Target", "BaldrApiService.DescribeClusters", "Content-Type", "application/x-amz-json-1.1")
	if status != 200 {
		t.Fatalf("AWS API with another Host: %d %s", status, body)
	}
	if status, _ := e.send(t, "GET", "/metrics", "evil.example", ""); status != 200 {
		t.Fatalf("/metrics with another Host: %d", status)
	}
}

// TestHostOffLoopback: a request that arrived on another address (Docker,
// a load balancer) may name any host, unless --allowed-hosts narrows it;
// the server's own address is always a name of it.
func TestHostOffLoopback(t *testing.T) {
	t.Parallel()
	request := func(host string) *http.Request {
		r := httptest.NewRequest("GET", admin.Prefix+"clock", nil)
		r.Host = host
		r.RemoteAddr = "10.0.0.9:4000"
		return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 4599}))
	}
	open := admin.NewAccess("tok", nil)
	narrow := admin.NewAccess("tok", []string{"hsm.internal:4599"})
	cases := []struct {
		ac         *admin.Access
		host       string
		allowed    bool
		whyContain string
	}{
		{open, "anything.example:4599", true, ""},
		{open, "localhost:4599", true, ""},
		{narrow, "hsm.internal:4599", true, ""},
		{narrow, "10.0.0.5:4599", true, ""},
		{narrow, "hsm.internal:80", false, "--allowed-hosts"},
		{narrow, "anything.example:4599", false, "--allowed-hosts hsm.internal:4599"},
	}
	for _, tc := range cases {
		ref := tc.ac.CheckHost(request(tc.host))
		if (ref == nil) != tc.allowed || ref != nil && !strings.Contains(ref.Message, tc.whyContain) {
			t.Errorf("Host %q: refusal %+v, want allowed=%v", tc.host, ref, tc.allowed)
		}
	}
}

// TestCrossOriginChangesAreRefused: a web page on another origin (another
// port of the same host included) cannot change the estate with a "simple"
// request (a form, a text/plain fetch), which browsers send without asking;
// requests without the browser's headers (curl, SDKs, the admin CLI) work
// as before, whatever their content type.
func TestCrossOriginChangesAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	own := e.hs.URL
	host := strings.TrimPrefix(own, "http://")
	other := "http://127.0.0.1:1"
	cases := []struct {
		name, method, path string
		header             []string
		want               int
	}{
		{"curl, no content type", "POST", "clock/advance", nil, 200},
		{"curl, text/plain", "POST", "clock/advance", []string{"Content-Type", "text/plain"}, 200},
		{"own page", "POST", "clock/advance", []string{"Origin", own, "Sec-Fetch-Site", "same-origin"}, 200},
		{"own page, Origin only", "POST", "clock/advance", []string{"Origin", own}, 200},
		{"own page, Origin with default port spelled", "POST", "clock/advance", []string{"Origin", "http://" + host}, 200},
		{"address bar (Sec-Fetch-Site none)", "POST", "clock/advance", []string{"Sec-Fetch-Site", "none"}, 200},
		{"another port of the host", "POST", "clock/advance", []string{"Origin", other, "Sec-Fetch-Site", "same-site", "Content-Type", "text/plain"}, 403},
		{"another site", "POST", "reset", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Content-Type", "application/x-www-form-urlencoded"}, 403},
		{"Origin alone, foreign", "POST", "clock/advance", []string{"Origin", other}, 403},
		{"Sec-Fetch-Site alone, foreign", "DELETE", "faults", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"opaque origin", "POST", "clock/advance", []string{"Origin", "null"}, 403},
		{"https origin for an http server", "POST", "clock/advance", []string{"Origin", "https://" + host}, 403},
		{"a read from another origin changes nothing", "GET", "clock", []string{"Origin", other, "Sec-Fetch-Site", "same-site"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.srv.Service().Clock().Now()
			body := ""
			if tc.path == "clock/advance" {
				body = `{"duration":"1h"}`
			}
			status, got := e.send(t, tc.method, admin.Prefix+tc.path, "", body, tc.header...)
			if status != tc.want {
				t.Fatalf("%d, want %d: %s", status, tc.want, got)
			}
			moved := e.srv.Service().Clock().Now().Sub(before)
			if tc.path == "clock/advance" && (moved == time.Hour) != (tc.want == 200) {
				t.Fatalf("clock moved %v with status %d", moved, status)
			}
			if tc.want == 403 && !strings.Contains(got, "cross-origin request refused") {
				t.Fatalf("refusal does not say why: %s", got)
			}
		})
	}
}

// TestTokenCookie: the admin API accepts the console's cookie as well as
// the bearer header; the cookie's name carries the port, so that another
// server's cookie on the same host does not count.
func TestTokenCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{AdminToken: "s3cret"})
	name := "cloudhsm_local_admin_" + e.port(t)
	cases := []struct {
		cookie string
		want   int
	}{
		{name + "=s3cret", 200},
		{name + "=wrong", 401},
		{"cloudhsm_local_admin_1=s3cret", 401},
		{"", 401},
	}
	for _, tc := range cases {
		status, body := e.send(t, "GET", admin.Prefix+"clock", "", "", "Cookie", tc.cookie)
		if status != tc.want {
			t.Errorf("Cookie %q: %d, want %d: %s", tc.cookie, status, tc.want, body)
		}
	}
	// A change with the cookie still has to come from the server's origin.
	status, _ := e.send(t, "POST", admin.Prefix+"clock/advance", "", `{"duration":"1s"}`, "Cookie", name+"=s3cret", "Origin", "http://127.0.0.1:1")
	if status != 403 {
		t.Fatalf("cross-origin change with the cookie: %d", status)
	}
}
