package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
	"github.com/cloudhsm-local/cloudhsm-local/internal/metrics"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		found := false
		for got := range strings.SplitSeq(body, "\n") {
			if got == l {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("metrics lack %q", l)
		}
	}
}

func wantPrefixes(t *testing.T, body string, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		if !strings.Contains(body, "\n"+p) {
			t.Errorf("metrics lack a line starting with %q", p)
		}
	}
}

func TestUnit(t *testing.T) {
	stats := cloudhsm.Stats{
		Clusters: map[string]int{cloudhsm.ClusterActive: 2, "SOMETHING_NEW": 1},
		Hsms:     map[string]int{cloudhsm.HsmActive: 3},
		Backups:  map[string]int{cloudhsm.BackupReady: 4},
	}
	m := metrics.New(func() cloudhsm.Stats { return stats })
	// A second instance must not clash: each has its own registry.
	other := metrics.New(nil)
	other.Observe("DescribeClusters", 200, "", time.Millisecond)

	m.Observe("DescribeClusters", 200, "", 2*time.Millisecond)
	m.Observe("DescribeClusters", 200, "", 3*time.Millisecond)
	m.Observe("CreateCluster", 400, awsjson.CodeInvalidRequest, time.Millisecond)
	m.Observe("", 400, awsjson.CodeUnknownOperation, time.Millisecond)
	m.InjectedFault("DescribeClusters", awsjson.CodeThrottling)
	m.InjectedFault("DescribeClusters", faults.LatencyOnly)

	body := scrape(t, m.Handler())
	wantLines(t, body,
		`cloudhsm_local_requests_total{code="OK",operation="DescribeClusters"} 2`,
		`cloudhsm_local_requests_total{code="CloudHsmInvalidRequestException",operation="CreateCluster"} 1`,
		`cloudhsm_local_requests_total{code="UnknownOperationException",operation="unknown"} 1`,
		`cloudhsm_local_request_duration_seconds_count{operation="DescribeClusters"} 2`,
		`cloudhsm_local_request_duration_seconds_sum{operation="DescribeClusters"} 0.005`,
		`cloudhsm_local_injected_faults_total{error="ThrottlingException",operation="DescribeClusters"} 1`,
		`cloudhsm_local_injected_faults_total{error="latency",operation="DescribeClusters"} 1`,
		`cloudhsm_local_resources{state="ACTIVE",type="cluster"} 2`,
		`cloudhsm_local_resources{state="SOMETHING_NEW",type="cluster"} 1`,
		`cloudhsm_local_resources{state="DELETE_IN_PROGRESS",type="cluster"} 0`,
		`cloudhsm_local_resources{state="ACTIVE",type="hsm"} 3`,
		`cloudhsm_local_resources{state="READY",type="backup"} 4`,
		`cloudhsm_local_resources{state="PENDING_DELETION",type="backup"} 0`,
	)
	wantPrefixes(t, body, "go_goroutines ", "go_memstats_alloc_bytes ")

	// The resources gauge reads the stats at scrape time.
	stats.Clusters[cloudhsm.ClusterActive] = 5
	wantLines(t, scrape(t, m.Handler()), `cloudhsm_local_resources{state="ACTIVE",type="cluster"} 5`)

	if strings.Contains(scrape(t, other.Handler()), "cloudhsm_local_resources") {
		t.Error("metrics without stats export the resources gauge")
	}
}

// TestServer drives the real server with aws-sdk-go-v2 and scrapes /metrics.
func TestServer(t *testing.T) {
	srv, err := server.New(server.Config{InMemory: true, Clock: clock.NewFrozen(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	client := cloudhsmv2.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("111122223333", "secret", ""),
		BaseEndpoint: aws.String(hs.URL),
		HTTPClient:   sdkhttp.PrivateBodies{Client: hs.Client()},
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 1
				o.RateLimiter = ratelimit.None
			})
		},
	})
	ctx := context.Background()
	for range 3 {
		if _, err := client.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0123456789abcdef0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(0)}); err == nil {
		t.Fatal("MaxResults 0 should be refused")
	}
	if _, err := srv.Faults().Add(faults.Rule{Operation: "ListTags", Error: awsjson.CodeThrottling, Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = client.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String("cluster-aaaaaaaaaaa")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != awsjson.CodeThrottling {
		t.Fatalf("ListTags = %v; want the injected ThrottlingException", err)
	}

	resp, err := hs.Client().Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	body := string(b)
	wantLines(t, body,
		`cloudhsm_local_requests_total{code="OK",operation="DescribeClusters"} 3`,
		`cloudhsm_local_requests_total{code="OK",operation="CreateCluster"} 1`,
		`cloudhsm_local_requests_total{code="ThrottlingException",operation="ListTags"} 1`,
		`cloudhsm_local_request_duration_seconds_count{operation="DescribeClusters"} 3`,
		`cloudhsm_local_injected_faults_total{error="ThrottlingException",operation="ListTags"} 1`,
		`cloudhsm_local_resources{state="CREATE_IN_PROGRESS",type="cluster"} 1`,
	)
	wantPrefixes(t, body, `cloudhsm_local_requests_total{code="CloudHsmInvalidRequestException",operation="DescribeBackups"} `,
		"go_goroutines ", "process_cpu_seconds_total ")
}
