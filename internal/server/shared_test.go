package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// replicaClients starts n servers on one shared estate (in memory) and
// returns an SDK client for each, without retries.
func replicaClients(t *testing.T, n int) ([]*server.Server, []*cloudhsmv2.Client) {
	t.Helper()
	db := store.NewSharedMemory(nil)
	var srvs []*server.Server
	var clients []*cloudhsmv2.Client
	for range n {
		srv, err := server.New(server.Config{Store: db.Open()})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		t.Cleanup(func() { _ = srv.Close() })
		t.Cleanup(hs.Close)
		srvs = append(srvs, srv)
		clients = append(clients, cloudhsmv2.NewFromConfig(aws.Config{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("111122223333", "secret", ""),
			BaseEndpoint: aws.String(hs.URL),
			HTTPClient:   sdkhttp.PrivateBodies{Client: hs.Client()},
			Retryer:      func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 1) },
		}))
	}
	return srvs, clients
}

// TestSharedFaultsCountTheEstate: a fault for the next N calls, added on one
// replica, fails N calls to the whole estate, whichever replica serves them.
func TestSharedFaultsCountTheEstate(t *testing.T) {
	srvs, clients := replicaClients(t, 3)
	if _, err := srvs[0].Faults().Add(faults.Rule{Operation: "DescribeClusters", Error: "ThrottlingException", Count: 4}); err != nil {
		t.Fatal(err)
	}
	// The rule reaches the other replicas with their next refresh (every
	// RefreshInterval, or a request's).
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range srvs {
		for len(s.Faults().Rules()) != 1 {
			if time.Now().After(deadline) {
				t.Fatal("a replica did not learn of the rule within 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	failed := 0
	for i := range 12 {
		_, err := clients[i%3].DescribeClusters(context.Background(), &cloudhsmv2.DescribeClustersInput{})
		var ae smithy.APIError
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.ErrorCode() == "ThrottlingException":
			failed++
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if failed != 4 {
		t.Errorf("%d calls failed for a rule of the next 4 calls to the estate", failed)
	}
	for i, s := range srvs {
		for {
			rules := s.Faults().Rules()
			if len(rules) == 1 && rules[0].Spent && rules[0].Remaining == 0 {
				break
			}
			if time.Now().After(deadline.Add(5 * time.Second)) {
				t.Fatalf("replica %d's rules after the count: %+v, want the rule spent", i, rules)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestSharedHealth: a replica says whether it holds the lease, and is not
// ready while its store is away.
func TestSharedHealth(t *testing.T) {
	db := store.NewSharedMemory(nil)
	srv, err := server.New(server.Config{Store: db.Open()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { _ = srv.Close() })
	t.Cleanup(hs.Close)
	health := func() (int, map[string]any) {
		resp, err := hs.Client().Get(hs.URL + "/_cloudhsm-local/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, h
	}
	if code, h := health(); code != 200 || h["status"] != "ok" || h["leader"] != true {
		t.Errorf("health of the only replica: %d %v, want 200, ok, leader", code, h)
	}
	db.SetDown(true)
	if code, h := health(); code != 503 || h["status"] != "unavailable" {
		t.Errorf("health with the store away: %d %v, want 503 unavailable", code, h)
	}
	db.SetDown(false)
	if code, _ := health(); code != 200 {
		t.Errorf("health after the store came back: %d", code)
	}
}
