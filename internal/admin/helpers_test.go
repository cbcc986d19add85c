package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

var (
	ctx   = context.Background()
	start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	acctA = "111122223333"
	acctB = "444455556666"
)

type env struct {
	srv   *server.Server
	hs    *httptest.Server
	admin *admin.Client
}

// newEnv starts a server (in memory, clock frozen at start unless cfg says
// otherwise) behind an httptest server on 127.0.0.1.
func newEnv(t *testing.T, cfg server.Config) *env {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.InMemory = true
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFrozen(start)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
	})
	return &env{srv: srv, hs: hs, admin: &admin.Client{Endpoint: hs.URL, Token: cfg.AdminToken, HTTP: hs.Client()}}
}

// sdk returns a CloudHSM v2 client for account and region that makes at
// most attempts attempts per call, without backoff or client-side rate limit.
func (e *env) sdk(account, region string, attempts int) *cloudhsmv2.Client {
	return cloudhsmv2.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(account, "cloudhsm-local-secret", ""),
		BaseEndpoint: aws.String(e.hs.URL),
		HTTPClient:   sdkhttp.PrivateBodies{Client: e.hs.Client()},
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
	})
}

// do sends a raw admin request (path relative to the admin prefix).
func (e *env) do(t *testing.T, method, path, body string, header ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.hs.URL+admin.Prefix+path, rd)
	if err != nil {
		t.Fatal(err)
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
	return resp.StatusCode, b
}

// wantStatus asserts a raw admin answer's status and, for errors, that the
// body is the JSON error envelope containing each substring.
func wantStatus(t *testing.T, gotStatus int, body []byte, want int, contains ...string) {
	t.Helper()
	if gotStatus != want {
		t.Fatalf("status %d, want %d: %s", gotStatus, want, body)
	}
	if want >= 400 {
		var eb admin.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
			t.Fatalf("error body is not {\"error\": ...}: %s", body)
		}
	}
	for _, c := range contains {
		if !strings.Contains(string(body), c) {
			t.Fatalf("body lacks %q: %s", c, body)
		}
	}
}

// awsCall sends one CloudHSM v2 request with plain net/http, signed with
// SigV4 as account in region, and decodes the JSON answer.
func (e *env) awsCall(t *testing.T, account, region, op string, in any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(in)
	req, err := testkit.NewAWSJSONRequest(e.hs.URL, op, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := testkit.SignAsAccount(req, testkit.PayloadSHA256(body), account, region); err != nil {
		t.Fatal(err)
	}
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: decode answer: %v", op, err)
	}
	return resp.StatusCode, out
}

// clusterStates returns cluster id -> state from a DescribeClusters answer.
func clusterStates(out map[string]any) map[string]string {
	states := map[string]string{}
	list, _ := out["Clusters"].([]any)
	for _, c := range list {
		m := c.(map[string]any)
		states[m["ClusterId"].(string)] = m["State"].(string)
	}
	return states
}

// fixture is a small snapshot that imports fast: its HSMs carry a
// placeholder identity, so Import generates no keys.
func fixture(account, region, clusterID, state string, hsms map[string]string) *cloudhsm.Snapshot {
	sn := network.Subnet{ID: "subnet-0a1b2c3d4e5f60718", VpcID: "vpc-0a1b2c3d4e5f60718", AZ: region + "a", CIDR: netip.MustParsePrefix("10.0.1.0/24")}
	c := &cloudhsm.Cluster{
		Tenant:        cloudhsm.Tenant{Account: account, Region: region},
		ID:            clusterID,
		State:         state,
		VpcID:         sn.VpcID,
		SecurityGroup: "sg-0c3f1a9b8e7d6c5b4",
		Subnets:       []network.Subnet{sn},
		Tags:          []cloudhsm.Tag{{Key: "env", Value: "test"}},
	}
	i := 10
	for id, st := range hsms {
		i++
		c.Hsms = append(c.Hsms, &cloudhsm.Hsm{ID: id, AZ: sn.AZ, State: st, EniID: "eni-0a9f8e7d6c5b4a39" + string(rune('0'+i%10)), EniIP: "10.0.1." + string(rune('0'+i/10)) + string(rune('0'+i%10)), Identity: &pki.HSMIdentity{Serial: "RCN000000000" + string(rune('0'+i%10))}})
	}
	return &cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{c}}
}

// importSnapshot imports snap through the admin API, as a document of the
// version Encode writes.
func (e *env) importSnapshot(t *testing.T, snap *cloudhsm.Snapshot) admin.ImportResult {
	t.Helper()
	var b bytes.Buffer
	if err := snapshot.Encode(&b, snap); err != nil {
		t.Fatal(err)
	}
	res, err := e.admin.Import(ctx, &b)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return res
}
