package console_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/console"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

var (
	bg    = context.Background()
	start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
)

const (
	acctA = "111122223333"
	acctB = "444455556666"
)

// env is a server behind an httptest listener on 127.0.0.1, clock frozen
// at start, request log on.
type env struct {
	srv *server.Server
	hs  *httptest.Server
}

func newEnv(t testing.TB, cfg server.Config) *env {
	t.Helper()
	cfg.InMemory = cfg.DataDir == ""
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFrozen(start)
	}
	if cfg.RequestLog == 0 {
		cfg.RequestLog = 200
	}
	if cfg.Domain == (cloudhsm.Config{}) {
		cfg.Domain = cloudhsm.DefaultConfig()
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
	return &env{srv: srv, hs: hs}
}

func (e *env) url(path string) string { return e.hs.URL + console.Prefix + path }

func (e *env) sdk(account, region string) *cloudhsmv2.Client {
	return cloudhsmv2.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(account, "cloudhsm-local-secret", ""),
		BaseEndpoint: aws.String(e.hs.URL),
		HTTPClient:   sdkhttp.PrivateBodies{Client: e.hs.Client()},
		Retryer:      func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 1) },
	})
}

func (e *env) advance(t testing.TB, d time.Duration) {
	t.Helper()
	if _, err := e.srv.Service().AdvanceClock(d); err != nil {
		t.Fatal(err)
	}
}

// get fetches a console path and returns the status and body.
func (e *env) get(t testing.TB, path string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url(path), nil)
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

func newSubnets(n int) []string {
	out := make([]string, n)
	for i := range out {
		b := make([]byte, 9)
		_, _ = rand.Read(b)
		out[i] = "subnet-" + hex.EncodeToString(b)[:17]
	}
	return out
}

func createCluster(t testing.TB, c *cloudhsmv2.Client) *types.Cluster {
	t.Helper()
	out, err := c.CreateCluster(bg, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: newSubnets(2)})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	return out.Cluster
}

func mustContain(t testing.TB, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Fatalf("page lacks %q:\n%s", w, body)
		}
	}
}
