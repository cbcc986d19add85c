package cloudhsmlocal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// ---- raw HTTP helpers (wire-level cases the SDK cannot produce) ----

const jsonContentType = testkit.AWSJSONContentType

// rawResponse is what came back from a raw HTTP request.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// rawRequest describes a raw HTTP request to the endpoint. Requests are
// signed with SigV4 (service cloudhsm) as Account in Region unless Unsigned;
// an empty Account/Region means the package defaults.
type rawRequest struct {
	Method      string // default POST
	Path        string // default "/"
	Target      string // X-Amz-Target; omitted when empty
	ContentType string // omitted when empty
	Body        io.Reader
	Chunked     bool // send the body without a Content-Length
	Account     string
	Region      string
	Unsigned    bool
}

func httpClientOf(srv *cloudhsmlocal.Server) *http.Client {
	if c, ok := srv.AWSConfig().HTTPClient.(*http.Client); ok {
		return c
	}
	return http.DefaultClient
}

func doRaw(t *testing.T, srv *cloudhsmlocal.Server, rr rawRequest) rawResponse {
	t.Helper()
	if rr.Method == "" {
		rr.Method = http.MethodPost
	}
	if rr.Path == "" {
		rr.Path = "/"
	}
	if rr.Account == "" {
		rr.Account = cloudhsmlocal.DefaultAccount
	}
	if rr.Region == "" {
		rr.Region = cloudhsmlocal.DefaultRegion
	}
	var payload []byte
	if rr.Body != nil && !rr.Chunked {
		b, err := io.ReadAll(rr.Body)
		if err != nil {
			t.Fatal(err)
		}
		payload = b
	}
	var body io.Reader
	switch {
	case rr.Chunked:
		body = io.MultiReader(rr.Body) // unknown length: sent chunked
	case payload != nil:
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequest(rr.Method, srv.URL+rr.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Chunked {
		req.ContentLength = -1
	}
	if rr.Target != "" {
		req.Header.Set("X-Amz-Target", rr.Target)
	}
	if rr.ContentType != "" {
		req.Header.Set("Content-Type", rr.ContentType)
	}
	if !rr.Unsigned {
		hash := "UNSIGNED-PAYLOAD"
		if !rr.Chunked {
			hash = testkit.PayloadSHA256(payload)
		}
		if err := testkit.SignAsAccount(req, hash, rr.Account, rr.Region); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := httpClientOf(srv).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rr.Method, rr.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// rawCall POSTs body to operation op, as the SDK would, in the default tenant.
func rawCall(t *testing.T, srv *cloudhsmlocal.Server, op, body string) rawResponse {
	t.Helper()
	return doRaw(t, srv, rawRequest{Target: "BaldrApiService." + op, ContentType: jsonContentType, Body: strings.NewReader(body)})
}

// wantEnvelope checks an error response: status, content type, request id,
// x-amzn-ErrorType agreeing with __type, and a body that is exactly
// {"__type": code, "Message": "<non-empty>"}. It returns the message.
func wantEnvelope(t *testing.T, r rawResponse, status int, code string) string {
	t.Helper()
	if r.Status != status {
		t.Errorf("status %d, want %d (body %s)", r.Status, status, truncateForLog(r.Body))
	}
	if ct := r.Header.Get("Content-Type"); ct != jsonContentType {
		t.Errorf("Content-Type %q, want %q", ct, jsonContentType)
	}
	if r.Header.Get("x-amzn-RequestId") == "" {
		t.Errorf("no x-amzn-RequestId header")
	}
	if got := r.Header.Get("x-amzn-ErrorType"); got != code {
		t.Errorf("x-amzn-ErrorType %q, want %q", got, code)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("error body is not a JSON object: %v: %s", err, truncateForLog(r.Body))
	}
	if len(m) != 2 {
		t.Errorf("error body has members %v, want exactly __type and Message", keysOf(m))
	}
	if got, _ := m["__type"].(string); got != code {
		t.Errorf("__type %v, want %q", m["__type"], code)
	}
	msg, ok := m["Message"].(string)
	if !ok || msg == "" {
		t.Errorf("Message %v is not a non-empty string", m["Message"])
	}
	return msg
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func truncateForLog(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// decodeObject parses a JSON object keeping numbers as json.Number.
func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, truncateForLog(b))
	}
	return m
}

// ---- tests ----

// TestWireErrors covers the protocol-level refusals: every one is a JSON
// error envelope with the right code and status, never HTML.
func TestWireErrors(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	big := `{"Pad":"` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name   string
		req    rawRequest
		status int
		code   string
	}{
		{"unknown operation", rawRequest{Target: "BaldrApiService.DescribeEverything", ContentType: jsonContentType, Body: strings.NewReader(`{}`)}, 400, "UnknownOperationException"},
		{"operation name in wrong case", rawRequest{Target: "BaldrApiService.describeclusters", ContentType: jsonContentType, Body: strings.NewReader(`{}`)}, 400, "UnknownOperationException"},
		{"wrong target prefix", rawRequest{Target: "TrentService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`{}`)}, 400, "UnknownOperationException"},
		{"prefix without operation", rawRequest{Target: "BaldrApiService.", ContentType: jsonContentType, Body: strings.NewReader(`{}`)}, 400, "UnknownOperationException"},
		{"missing X-Amz-Target", rawRequest{ContentType: jsonContentType, Body: strings.NewReader(`{}`)}, 400, "UnknownOperationException"},
		{"missing X-Amz-Target unsigned", rawRequest{ContentType: jsonContentType, Body: strings.NewReader(`{}`), Unsigned: true}, 400, "UnknownOperationException"},
		{"POST to another path", rawRequest{Path: "/clusters", Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`{}`)}, 400, "UnknownOperationException"},
		{"GET /", rawRequest{Method: http.MethodGet}, 405, "MethodNotAllowedException"},
		{"GET / with target", rawRequest{Method: http.MethodGet, Target: "BaldrApiService.DescribeClusters"}, 405, "MethodNotAllowedException"},
		{"PUT /", rawRequest{Method: http.MethodPut, Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`{}`)}, 405, "MethodNotAllowedException"},
		{"truncated JSON", rawRequest{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`{"MaxResults": 5`)}, 400, "SerializationException"},
		{"not JSON at all", rawRequest{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`MaxResults=5`)}, 400, "SerializationException"},
		{"trailing garbage", rawRequest{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`{} {}`)}, 400, "SerializationException"},
		{"body is an array", rawRequest{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`[]`)}, 400, "SerializationException"},
		{"body is a string", rawRequest{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`"{}"`)}, 400, "SerializationException"},
		{"body is a number", rawRequest{Target: "BaldrApiService.ListTags", ContentType: jsonContentType, Body: strings.NewReader(`42`)}, 400, "SerializationException"},
		{"body is true", rawRequest{Target: "BaldrApiService.CreateCluster", ContentType: jsonContentType, Body: strings.NewReader(`true`)}, 400, "SerializationException"},
		{"body over 1 MiB with Content-Length", rawRequest{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(big)}, 413, "RequestEntityTooLargeException"},
		{"body over 1 MiB chunked", rawRequest{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(big), Chunked: true}, 413, "RequestEntityTooLargeException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := doRaw(t, srv, tc.req)
			if bytes.HasPrefix(bytes.TrimSpace(r.Body), []byte("<")) {
				t.Fatalf("HTML answer: %s", truncateForLog(r.Body))
			}
			wantEnvelope(t, r, tc.status, tc.code)
		})
	}
}

// TestWireStrictDecoding: a member of the wrong JSON type is a
// SerializationException, for top-level and nested members alike, and no
// state changes.
func TestWireStrictDecoding(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	sn := subnets(1)[0]
	cases := []struct{ op, body string }{
		{"DescribeClusters", `{"MaxResults":"5"}`},
		{"DescribeClusters", `{"MaxResults":5.5}`},
		{"DescribeClusters", `{"MaxResults":true}`},
		{"DescribeClusters", `{"NextToken":7}`},
		{"DescribeClusters", `{"Filters":[]}`},
		{"DescribeClusters", `{"Filters":"clusterIds"}`},
		{"DescribeClusters", `{"Filters":{"states":"ACTIVE"}}`},
		{"DescribeClusters", `{"Filters":{"states":[1]}}`},
		{"DescribeBackups", `{"SortAscending":"true"}`},
		{"CreateCluster", `{"HsmType":1,"SubnetIds":["` + sn + `"]}`},
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":"` + sn + `"}`},
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":[{"Id":"` + sn + `"}]}`},
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + sn + `"],"BackupRetentionPolicy":{"Type":"DAYS","Value":90}}`},
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + sn + `"],"BackupRetentionPolicy":"90"}`},
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + sn + `"],"TagList":{"Key":"a","Value":"b"}}`},
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + sn + `"],"TagList":[{"Key":"a","Value":5}]}`},
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["` + sn + `"],"Mode":["FIPS"]}`},
		{"DeleteCluster", `{"ClusterId":["cluster-abcdefghijk"]}`},
		{"TagResource", `{"ResourceId":"cluster-abcdefghijk","TagList":["a=b"]}`},
		{"UntagResource", `{"ResourceId":"cluster-abcdefghijk","TagKeyList":"a"}`},
		{"ListTags", `{"ResourceId":"cluster-abcdefghijk","MaxResults":"10"}`},
		{"ModifyCluster", `{"ClusterId":"cluster-abcdefghijk","BackupRetentionPolicy":{"Type":["DAYS"],"Value":"30"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.op+" "+tc.body, func(t *testing.T) {
			wantEnvelope(t, rawCall(t, srv, tc.op, tc.body), 400, "SerializationException")
		})
	}
	// None of the refused CreateCluster calls created anything.
	out, err := client(srv).DescribeClusters(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 0 {
		t.Fatalf("refused requests created %d clusters", len(out.Clusters))
	}
}

// TestWireBodyLimit: exactly 1 MiB is accepted, one byte more is refused.
func TestWireBodyLimit(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	body := func(n int) string {
		const head, tail = `{"Pad":"`, `"}`
		return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
	}
	r := rawCall(t, srv, "DescribeClusters", body(1<<20))
	if r.Status != 200 {
		t.Fatalf("a body of exactly 1 MiB: status %d %s", r.Status, truncateForLog(r.Body))
	}
	wantEnvelope(t, rawCall(t, srv, "DescribeClusters", body(1<<20+1)), 413, "RequestEntityTooLargeException")
	// The server still works after refusing a large body.
	if r := rawCall(t, srv, "DescribeClusters", `{}`); r.Status != 200 {
		t.Fatalf("after a refused body: status %d", r.Status)
	}
}

// TestWireRequestIDs: every response, success or error, carries a distinct
// x-amzn-RequestId; successes are application/x-amz-json-1.1.
func TestWireRequestIDs(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	reqs := []rawRequest{
		{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`{}`)},
		{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType},
		{Target: "BaldrApiService.DescribeBackups", ContentType: jsonContentType, Body: strings.NewReader(`{}`)},
		{Target: "BaldrApiService.ListTags", ContentType: jsonContentType, Body: strings.NewReader(`{"ResourceId":"cluster-abcdefghijk"}`)},
		{Target: "BaldrApiService.DeleteCluster", ContentType: jsonContentType, Body: strings.NewReader(`{"ClusterId":"abc"}`)},
		{Target: "BaldrApiService.Nope", ContentType: jsonContentType, Body: strings.NewReader(`{}`)},
		{Method: http.MethodGet},
		{Target: "BaldrApiService.DescribeClusters", ContentType: jsonContentType, Body: strings.NewReader(`{`)},
	}
	seen := map[string]bool{}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for i, rr := range reqs {
		r := doRaw(t, srv, rr)
		id := r.Header.Get("x-amzn-RequestId")
		if id == "" {
			t.Errorf("request %d (status %d): no x-amzn-RequestId", i, r.Status)
			continue
		}
		if !uuid.MatchString(id) {
			t.Errorf("request %d: x-amzn-RequestId %q is not a UUID", i, id)
		}
		if seen[id] {
			t.Errorf("request %d: x-amzn-RequestId %q repeated", i, id)
		}
		seen[id] = true
		if ct := r.Header.Get("Content-Type"); ct != jsonContentType {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		if r.Status == 200 && r.Header.Get("x-amzn-ErrorType") != "" {
			t.Errorf("request %d: success carries x-amzn-ErrorType %q", i, r.Header.Get("x-amzn-ErrorType"))
		}
	}
	// A successful call with an absent body (no Content-Length, no bytes) is {}.
	if r := doRaw(t, srv, reqs[1]); r.Status != 200 {
		t.Errorf("DescribeClusters with an empty body: %d %s", r.Status, r.Body)
	}
}

// TestWireErrorStatusFromSDKOperations: errors raised by operations (not the
// protocol layer) use the same envelope, with HTTP 400.
func TestWireErrorStatusFromSDKOperations(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	cases := []struct{ op, body, code string }{
		{"DeleteCluster", `{"ClusterId":"cluster-abcdefghijk"}`, "CloudHsmResourceNotFoundException"},
		{"DeleteCluster", `{"ClusterId":"abc"}`, "CloudHsmInvalidRequestException"},
		{"ListTags", `{"ResourceId":"cluster-abcdefghijk"}`, "CloudHsmResourceNotFoundException"},
		{"DescribeClusters", `{"Filters":{"colour":["blue"]}}`, "CloudHsmInvalidRequestException"},
		{"CreateCluster", `{"HsmType":"hsm3.medium","SubnetIds":["` + subnets(1)[0] + `"]}`, "CloudHsmInvalidRequestException"},
	}
	for _, tc := range cases {
		t.Run(tc.op, func(t *testing.T) {
			wantEnvelope(t, rawCall(t, srv, tc.op, tc.body), 400, tc.code)
		})
	}
}

// TestWireCreateAndDescribeJSON checks the raw JSON of CreateCluster and
// DescribeClusters: no null anywhere, absent members omitted, Certificates
// {}, the retention value a JSON string, timestamps JSON numbers.
func TestWireCreateAndDescribeJSON(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithStartTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	sns := subnets(2)

	// An empty account: Clusters is [], not null or absent.
	r := rawCall(t, srv, "DescribeClusters", `{}`)
	if r.Status != 200 {
		t.Fatalf("DescribeClusters: %d %s", r.Status, r.Body)
	}
	if bytes.Contains(r.Body, []byte("null")) {
		t.Errorf("empty DescribeClusters contains null: %s", r.Body)
	}
	if cl, ok := decodeObject(t, r.Body)["Clusters"].([]any); !ok || len(cl) != 0 {
		t.Errorf("empty DescribeClusters: Clusters = %v, want []", decodeObject(t, r.Body)["Clusters"])
	}
	if _, ok := decodeObject(t, r.Body)["NextToken"]; ok {
		t.Errorf("empty DescribeClusters has a NextToken: %s", r.Body)
	}

	// Create at a time with milliseconds: 2026-01-01T00:00:01.234Z.
	srv.Advance(1234 * time.Millisecond)
	r = rawCall(t, srv, "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["`+sns[0]+`","`+sns[1]+`"]}`)
	if r.Status != 200 {
		t.Fatalf("CreateCluster: %d %s", r.Status, r.Body)
	}
	if bytes.Contains(r.Body, []byte("null")) {
		t.Errorf("CreateCluster response contains null: %s", r.Body)
	}
	top := decodeObject(t, r.Body)
	cl, ok := top["Cluster"].(map[string]any)
	if !ok {
		t.Fatalf("CreateCluster response has no Cluster object: %s", r.Body)
	}
	for _, absent := range []string{"SecurityGroup", "SourceBackupId", "StateMessage", "TagList", "HsmTypeRollbackExpiration", "PreCoPassword"} {
		if _, ok := cl[absent]; ok {
			t.Errorf("fresh cluster has %s: %v", absent, cl[absent])
		}
	}
	id, _ := cl["ClusterId"].(string)
	checkClusterJSON(t, "CreateCluster", cl, "CREATE_IN_PROGRESS")
	if ts, ok := cl["CreateTimestamp"].(json.Number); ok && ts.String() != "1767225601.234" {
		t.Errorf("CreateTimestamp %s, want 1767225601.234 (the server clock, epoch seconds with millis)", ts)
	}

	srv.Advance(500 * time.Millisecond)
	r = rawCall(t, srv, "DescribeClusters", `{"Filters":{"clusterIds":["`+id+`"]}}`)
	if r.Status != 200 {
		t.Fatalf("DescribeClusters: %d %s", r.Status, r.Body)
	}
	if bytes.Contains(r.Body, []byte("null")) {
		t.Errorf("DescribeClusters response contains null: %s", r.Body)
	}
	list, _ := decodeObject(t, r.Body)["Clusters"].([]any)
	if len(list) != 1 {
		t.Fatalf("DescribeClusters: %d clusters", len(list))
	}
	dc := list[0].(map[string]any)
	checkClusterJSON(t, "DescribeClusters", dc, "UNINITIALIZED")
	sg, _ := dc["SecurityGroup"].(string)
	if !regexp.MustCompile(`^sg-[0-9a-f]{17}$`).MatchString(sg) {
		t.Errorf("SecurityGroup %q after CREATE_IN_PROGRESS, want ^sg-[0-9a-f]{17}$", sg)
	}
	for _, absent := range []string{"SourceBackupId", "StateMessage", "TagList"} {
		if _, ok := dc[absent]; ok {
			t.Errorf("UNINITIALIZED cluster has %s: %v", absent, dc[absent])
		}
	}
	if dc["CreateTimestamp"] != cl["CreateTimestamp"] {
		t.Errorf("CreateTimestamp changed: %v then %v", cl["CreateTimestamp"], dc["CreateTimestamp"])
	}

	// ListTags of an untagged cluster: TagList present as [].
	r = rawCall(t, srv, "ListTags", `{"ResourceId":"`+id+`"}`)
	if r.Status != 200 {
		t.Fatalf("ListTags: %d %s", r.Status, r.Body)
	}
	if bytes.Contains(r.Body, []byte("null")) {
		t.Errorf("ListTags response contains null: %s", r.Body)
	}
	if tl, ok := decodeObject(t, r.Body)["TagList"].([]any); !ok || len(tl) != 0 {
		t.Errorf("ListTags of an untagged cluster: %s, want TagList []", r.Body)
	}
	// TagResource and UntagResource answer {}.
	for _, c := range []struct{ op, body string }{
		{"TagResource", `{"ResourceId":"` + id + `","TagList":[{"Key":"k","Value":""}]}`},
		{"UntagResource", `{"ResourceId":"` + id + `","TagKeyList":["k"]}`},
	} {
		r = rawCall(t, srv, c.op, c.body)
		if r.Status != 200 || len(decodeObject(t, r.Body)) != 0 {
			t.Errorf("%s: %d %s, want 200 {}", c.op, r.Status, r.Body)
		}
	}

	// DeleteCluster: StateMessage appears; DELETED: no null either.
	r = rawCall(t, srv, "DeleteCluster", `{"ClusterId":"`+id+`"}`)
	if r.Status != 200 || bytes.Contains(r.Body, []byte("null")) {
		t.Fatalf("DeleteCluster: %d %s", r.Status, r.Body)
	}
	del := decodeObject(t, r.Body)["Cluster"].(map[string]any)
	if del["State"] != "DELETE_IN_PROGRESS" || del["StateMessage"] != "The cluster is being deleted." {
		t.Errorf("DeleteCluster: State %v StateMessage %v", del["State"], del["StateMessage"])
	}
	srv.Advance(500 * time.Millisecond)
	r = rawCall(t, srv, "DescribeClusters", `{}`)
	if bytes.Contains(r.Body, []byte("null")) {
		t.Errorf("DescribeClusters with a DELETED cluster contains null: %s", r.Body)
	}
}

// checkClusterJSON checks the members every cluster object carries.
func checkClusterJSON(t *testing.T, where string, cl map[string]any, state string) {
	t.Helper()
	if cl["State"] != state {
		t.Errorf("%s: State %v, want %s", where, cl["State"], state)
	}
	if id, _ := cl["ClusterId"].(string); !regexp.MustCompile(`^cluster-[2-7a-z]{11}$`).MatchString(id) {
		t.Errorf("%s: ClusterId %q", where, id)
	}
	if cl["BackupPolicy"] != "DEFAULT" {
		t.Errorf("%s: BackupPolicy %v", where, cl["BackupPolicy"])
	}
	brp, _ := cl["BackupRetentionPolicy"].(map[string]any)
	if brp["Type"] != "DAYS" {
		t.Errorf("%s: BackupRetentionPolicy.Type %v", where, brp["Type"])
	}
	if v, ok := brp["Value"].(string); !ok || v != "90" {
		t.Errorf("%s: BackupRetentionPolicy.Value %#v, want the JSON string \"90\"", where, brp["Value"])
	}
	if _, ok := cl["CreateTimestamp"].(json.Number); !ok {
		t.Errorf("%s: CreateTimestamp %#v is not a JSON number", where, cl["CreateTimestamp"])
	}
	if c, ok := cl["Certificates"].(map[string]any); !ok || len(c) != 0 {
		t.Errorf("%s: Certificates %#v, want {}", where, cl["Certificates"])
	}
	if h, ok := cl["Hsms"].([]any); !ok || len(h) != 0 {
		t.Errorf("%s: Hsms %#v, want []", where, cl["Hsms"])
	}
	if cl["HsmType"] != "hsm2m.medium" || cl["Mode"] != "FIPS" || cl["NetworkType"] != "IPV4" {
		t.Errorf("%s: HsmType %v Mode %v NetworkType %v", where, cl["HsmType"], cl["Mode"], cl["NetworkType"])
	}
	if v, _ := cl["VpcId"].(string); !regexp.MustCompile(`^vpc-[0-9a-f]{17}$`).MatchString(v) {
		t.Errorf("%s: VpcId %q", where, v)
	}
	if m, ok := cl["SubnetMapping"].(map[string]any); !ok || len(m) != 2 {
		t.Errorf("%s: SubnetMapping %#v", where, cl["SubnetMapping"])
	}
}
