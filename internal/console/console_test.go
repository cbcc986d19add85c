package console_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/console"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// TestBrowsersGetTheConsole: a browser's GET / goes to the console; AWS
// clients and curl get the API as before.
func TestBrowsersGetTheConsole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	noFollow := *e.hs.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cases := []struct {
		method, accept string
		console        bool
	}{
		{"GET", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"GET", "text/html", true},
		{"HEAD", "text/html", true},
		{"GET", "*/*", false},
		{"GET", "", false},
		{"GET", "application/json, text/html;q=0.5", false},
		{"GET", "text/html;q=0", false},
		{"POST", "text/html", false},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, e.hs.URL+"/", nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == console.Prefix
		if got != tc.console {
			t.Errorf("%s / Accept %q: %d %s, console %v", tc.method, tc.accept, resp.StatusCode, resp.Header.Get("Location"), tc.console)
		}
	}
	if server.ConsoleURL != console.Prefix {
		t.Fatal("the banner's URL is not the console's")
	}
}

// TestPagesShowTheEstate renders every page over HTTP (the browser tests
// check them in Chromium): the estate across accounts and regions, a
// cluster, a backup, the request log, and the choice between two tenants
// holding one imported id.
func TestPagesShowTheEstate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	a := e.sdk(acctA, "us-east-1")
	b := e.sdk(acctB, "eu-west-1")
	ca := createCluster(t, a)
	cb := createCluster(t, b)
	e.advance(t, time.Hour)
	if _, err := a.TagResource(bg, &cloudhsmv2.TagResourceInput{ResourceId: ca.ClusterId, TagList: []types.Tag{{Key: aws.String("k"), Value: aws.String("<b>bold</b>")}}}); err == nil {
		t.Fatal("a tag value with < was accepted")
	}
	status, body := e.get(t, "")
	if status != 200 {
		t.Fatalf("estate: %d", status)
	}
	mustContain(t, body, *ca.ClusterId, *cb.ClusterId, acctA, acctB, "eu-west-1", "UNINITIALIZED 1", "2 of 2 clusters")
	_, body = e.get(t, "?account="+acctB)
	mustContain(t, body, *cb.ClusterId, "1 of 2 clusters match")
	if strings.Contains(body, `data-cluster="`+*ca.ClusterId) {
		t.Fatal("the account filter let another account's cluster through")
	}
	status, body = e.get(t, "clusters/"+*ca.ClusterId)
	if status != 200 {
		t.Fatalf("cluster: %d %s", status, body)
	}
	mustContain(t, body, "Cluster "+*ca.ClusterId, "UNINITIALIZED", "CREATE_IN_PROGRESS", "by CreateCluster", "by clock")
	status, body = e.get(t, "requests")
	mustContain(t, body, "This log is per process", "CreateCluster", "TagResource", "CloudHsmInvalidRequestException", "&lt;b&gt;bold&lt;/b&gt;")
	if strings.Contains(body, "<b>bold") {
		t.Fatal("a request body was rendered as markup")
	}
	if status, _ := e.get(t, "clusters/cluster-aaaaaaaaaaa"); status != 404 {
		t.Fatalf("unknown cluster: %d", status)
	}
	if status, body := e.get(t, "backups/backup-aaaaaaaaaaa"); status != 404 || !strings.Contains(body, "No account or region holds a backup backup-aaaaaaaaaaa") {
		t.Fatalf("unknown backup: %d %s", status, body)
	}
	// One id in two tenants (an import can make that): the page offers each.
	snap := &cloudhsm.Snapshot{}
	for _, tn := range []cloudhsm.Tenant{{Account: acctA, Region: "us-west-2"}, {Account: acctB, Region: "us-west-2"}} {
		snap.Clusters = append(snap.Clusters, &cloudhsm.Cluster{Tenant: tn, ID: "cluster-twinstwinstw", HsmType: "hsm2m.medium", State: cloudhsm.ClusterUninitialized})
	}
	if err := e.srv.Service().Import(snap); err != nil {
		t.Fatal(err)
	}
	_, body = e.get(t, "clusters/cluster-twinstwinstw")
	mustContain(t, body, "More than one account or region", "account="+acctA+"&amp;region=us-west-2", "account="+acctB+"&amp;region=us-west-2")
	_, body = e.get(t, "clusters/cluster-twinstwinstw?account="+acctB+"&region=us-west-2")
	mustContain(t, body, "Cluster cluster-twinstwinstw", acctB+" / us-west-2")
}

// TestClusterListPages pages through clusters of three tenants newest
// first, older then newer, with and without filters.
func TestClusterListPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	var want []string // newest first
	for i := 0; i < 30; i++ {
		acct := []string{acctA, acctB, acctA}[i%3]
		region := []string{"us-east-1", "us-east-1", "eu-west-1"}[i%3]
		c := createCluster(t, e.sdk(acct, region))
		want = append([]string{*c.ClusterId}, want...)
	}
	ids := func(body string) []string {
		var out []string
		for _, part := range strings.Split(body, `data-cluster="`)[1:] {
			out = append(out, part[:strings.IndexByte(part, '"')])
		}
		return out
	}
	link := func(body, id string) string {
		i := strings.Index(body, `id="`+id+`"`)
		if i < 0 {
			return ""
		}
		j := strings.LastIndex(body[:i], `href="`)
		href := body[j+6:]
		href = strings.ReplaceAll(href[:strings.IndexByte(href, '"')], "&amp;", "&")
		return strings.TrimPrefix(href, console.Prefix)
	}
	_, first := e.get(t, "")
	if got := ids(first); fmt.Sprint(got) != fmt.Sprint(want[:25]) {
		t.Fatalf("first page %v, want %v", got, want[:25])
	}
	_, second := e.get(t, link(first, "page-older"))
	if got := ids(second); fmt.Sprint(got) != fmt.Sprint(want[25:]) || link(second, "page-older") != "" {
		t.Fatalf("second page %v, want %v", got, want[25:])
	}
	_, back := e.get(t, link(second, "page-newer"))
	if got := ids(back); fmt.Sprint(got) != fmt.Sprint(want[:25]) {
		t.Fatalf("back to the first page %v, want %v", got, want[:25])
	}
	_, filtered := e.get(t, "?account="+acctA+"&region=eu-west-1")
	var wantA []string
	for i, id := range want {
		if (29-i)%3 == 2 {
			wantA = append(wantA, id)
		}
	}
	if got := ids(filtered); fmt.Sprint(got) != fmt.Sprint(wantA) {
		t.Fatalf("filtered %v, want %v", got, wantA)
	}
	_, none := e.get(t, "?state=ACTIVE")
	if got := ids(none); len(got) != 0 {
		t.Fatalf("state filter: %v", got)
	}
}

// openStream opens a console live stream on a raw connection and returns
// a reader of its events.
func openStream(t *testing.T, addr, query string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %sevents?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", console.Prefix, query, addr)
	return conn, bufio.NewReader(conn)
}

// nextEvent reads the stream up to the next event of the given name and
// returns its data.
func nextEvent(t *testing.T, conn net.Conn, r *bufio.Reader, name string) console.Batch {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream for %q: %v", name, err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == name:
			var b console.Batch
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &b); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// TestStreamTellsWhatChanged: a change made by the API, then by the clock,
// reaches a stream as an event naming what it touched.
func TestStreamTellsWhatChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	addr := strings.TrimPrefix(e.hs.URL, "http://")
	conn, r := openStream(t, addr, "page=estate")
	resp, _ := r.Peek(12)
	if string(resp) != "HTTP/1.1 200" {
		t.Fatalf("stream answered %q", resp)
	}
	hello := nextEvent(t, conn, r, "hello")
	if hello.Clock == nil || hello.Clock.Frozen != true || hello.Clock.Now != start.UnixMilli() {
		t.Fatalf("hello %+v", hello)
	}
	c := createCluster(t, e.sdk(acctA, "us-east-1"))
	b := nextEvent(t, conn, r, "change")
	if !b.Estate || !contains(b.Clusters, *c.ClusterId) || !contains(b.Tenants, acctA+"/us-east-1") {
		t.Fatalf("after CreateCluster: %+v", b)
	}
	e.advance(t, time.Hour)
	b = nextEvent(t, conn, r, "change")
	if b.Clock == nil || b.Clock.Now != start.Add(time.Hour).UnixMilli() {
		t.Fatalf("after an advance: %+v", b)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestStreamsOutliveTheWriteTimeoutAndLeaveTheConnectionCap: a live stream
// is not cut by the server's write timeout, and does not hold one of the
// listener's --max-connections places: with a cap of one connection and a
// stream open, API clients are still served. Beyond --console-streams, a
// stream is refused with 503.
func TestStreamsOutliveTheWriteTimeoutAndLeaveTheConnectionCap(t *testing.T) {
	t.Parallel()
	srv, err := server.New(server.Config{InMemory: true, RequestLog: 10, ConsoleStreams: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const writeTimeout = 300 * time.Millisecond
	hs := &http.Server{Handler: srv.Handler(), WriteTimeout: writeTimeout, ReadTimeout: writeTimeout}
	go func() { _ = hs.Serve(server.LimitListener(ln, 1)) }()
	defer hs.Close()
	addr := ln.Addr().String()
	conn, r := openStream(t, addr, "page=estate")
	nextEvent(t, conn, r, "hello")

	// The only place of the cap went back when the stream took the
	// connection over: an API call is served (it would wait forever).
	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	post := func(op, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+addr+"/", bytes.NewReader([]byte(body)))
		req.Header.Set("X-Amz-Target", "BaldrApiService."+op)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := api.Do(req)
		if err != nil {
			t.Fatalf("%s with a stream open and --max-connections 1: %v", op, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", op, resp.StatusCode)
		}
	}
	post("DescribeClusters", "{}")

	// Past the write timeout, the stream still carries events.
	<-time.After(3 * writeTimeout)
	post("CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["`+newSubnets(1)[0]+`"]}`)
	if b := nextEvent(t, conn, r, "change"); !b.Estate {
		t.Fatalf("event %+v", b)
	}

	// A second stream is over --console-streams (1).
	resp, err := api.Get("http://" + addr + console.Prefix + "events?page=estate")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream beyond the cap: %d", resp.StatusCode)
	}
}

// TestConsoleFollowsTheAdminRules: the console answers only to the
// server's names, refuses actions from another origin, and with a token
// asks for it.
func TestConsoleFollowsTheAdminRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	port := e.hs.URL[strings.LastIndexByte(e.hs.URL, ':')+1:]
	do := func(method, path, host string, header ...string) int {
		req, _ := http.NewRequest(method, e.url(path), strings.NewReader("duration=1h"))
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := e.hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		method, path, host string
		header             []string
		want               int
	}{
		{"GET", "", "localhost:" + port, nil, 200},
		{"GET", "", "rebound.example:" + port, nil, 403},
		{"GET", "events?page=estate", "rebound.example:" + port, nil, 403},
		{"GET", "requests", "rebound.example:" + port, nil, 403},
		{"POST", "actions/clock-advance", "127.0.0.1:" + port, []string{"Origin", "http://127.0.0.1:1", "Sec-Fetch-Site", "same-site"}, 403},
	} {
		if got := do(tc.method, tc.path, tc.host, tc.header...); got != tc.want {
			t.Errorf("%s %s Host %s: %d, want %d", tc.method, tc.path, tc.host, got, tc.want)
		}
	}
	if now := e.srv.Service().Clock().Now(); !now.Equal(start) {
		t.Fatalf("a refused action moved the clock to %v", now)
	}
	if got := do("POST", "actions/clock-advance", "127.0.0.1:"+port, "Origin", e.hs.URL, "Sec-Fetch-Site", "same-origin"); got != 200 || !e.srv.Service().Clock().Now().Equal(start.Add(time.Hour)) {
		t.Fatalf("own-origin action: %d, clock %v", got, e.srv.Service().Clock().Now())
	}

	tok := newEnv(t, server.Config{AdminToken: "s3cret"})
	status, body := tok.get(t, "")
	if status != 401 || !strings.Contains(body, `name="token"`) {
		t.Fatalf("console without the token: %d", status)
	}
	_ = aws.String
}

// TestTestCAOnAClusterWithoutCSR: the one-click initialization of a
// cluster that has nothing to sign answers what InitializeCluster answers.
func TestTestCAOnAClusterWithoutCSR(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	c := createCluster(t, e.sdk(acctA, "us-east-1"))
	act := func(cluster string) console.ActionResult {
		req, _ := http.NewRequest("POST", e.url("actions/initialize-test-ca"), strings.NewReader("account="+acctA+"&region=us-east-1&cluster="+cluster))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := e.hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r console.ActionResult
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, id := range []string{*c.ClusterId, "cluster-aaaaaaaaaaa"} {
		got := act(id)
		_, err := e.sdk(acctA, "us-east-1").InitializeCluster(bg, &cloudhsmv2.InitializeClusterInput{ClusterId: aws.String(id), SignedCert: aws.String("-"), TrustAnchor: aws.String("-")})
		if got.OK || err == nil || !strings.Contains(err.Error(), got.Message) || got.Message == "" {
			t.Fatalf("%s: console %+v, SDK %v", id, got, err)
		}
	}
}

// TestInitializeFormsOnlyWhereInitializable: the cluster page offers the
// initialize forms to an UNINITIALIZED cluster with its CSR, and not once
// the cluster is DEGRADED (it still has the CSR, but InitializeCluster
// would refuse it).
func TestInitializeFormsOnlyWhereInitializable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	c := createCluster(t, e.sdk(acctA, "us-east-1"))
	e.advance(t, time.Second)
	hsm, err := e.sdk(acctA, "us-east-1").CreateHsm(bg, &cloudhsmv2.CreateHsmInput{ClusterId: c.ClusterId, AvailabilityZone: aws.String(firstAZ(c))})
	if err != nil {
		t.Fatal(err)
	}
	e.advance(t, time.Second)
	page := "clusters/" + *c.ClusterId
	_, body := e.get(t, page)
	mustContain(t, body, "UNINITIALIZED", `id="init-test-ca"`)
	tn := cloudhsm.Tenant{Account: acctA, Region: "us-east-1"}
	if _, err := e.srv.Service().DegradeHsm(tn, *c.ClusterId, *hsm.Hsm.HsmId); err != nil {
		t.Fatal(err)
	}
	_, body = e.get(t, page)
	mustContain(t, body, "DEGRADED")
	if strings.Contains(body, `id="init-test-ca"`) || strings.Contains(body, `id="h-init"`) {
		t.Fatal("a DEGRADED cluster's page offers to initialize it")
	}
}
