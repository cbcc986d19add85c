package terraform

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// workspace is one scenario's directory, server and clients.
type workspace struct {
	t         *testing.T
	suite     *suiteEnv
	dir       string // the Terraform working directory
	home      string // HOME of terraform: nothing of the machine's
	emptyFile string // the AWS configuration and credentials files
	endpoint  string // the scenario's server
	trap      *trap
	env       []string
	sdk       *cloudhsmv2.Client // the README's account and region
	admin     *admin.Client
}

// newWorkspace starts the scenario's server and proxy trap and copies the
// scenario's files, with the shared versions.tf and provider.tf, into a
// fresh directory.
func newWorkspace(t *testing.T, s *suiteEnv, name string) *workspace {
	t.Helper()
	tmp := t.TempDir()
	w := &workspace{
		t: t, suite: s,
		dir:       filepath.Join(tmp, "work"),
		home:      filepath.Join(tmp, "home"),
		emptyFile: filepath.Join(tmp, "empty"),
		trap:      &trap{},
	}
	for _, d := range []string{w.dir, w.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(w.emptyFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(w.trap)
	t.Cleanup(proxy.Close)
	w.trap.url = proxy.URL
	t.Cleanup(func() {
		if seen := w.trap.requests(); len(seen) > 0 {
			t.Errorf("terraform or the provider sent %d request(s) elsewhere than the loopback (refused by the suite's proxy); "+
				"cloudhsm-local answers only CloudHSM v2:\n%s", len(seen), countLines(seen))
		}
	})

	w.endpoint = testkit.StartBinary(t, s.server) // in memory, on a free port; stopped when the test ends
	w.copyScenario(name)
	w.env = terraformEnv(w)
	w.sdk = cloudhsmv2.NewFromConfig(aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(account, "test", ""),
		BaseEndpoint:     aws.String(w.endpoint),
		HTTPClient:       sdkhttp.PrivateBodies{Client: &http.Client{Timeout: 30 * time.Second}},
		RetryMaxAttempts: 1,
	})
	w.admin = &admin.Client{Endpoint: w.endpoint}
	return w
}

// countLines lists each distinct line once, with its count.
func countLines(lines []string) string {
	n := map[string]int{}
	for _, l := range lines {
		n[l]++
	}
	var b strings.Builder
	for _, l := range slices.Sorted(maps.Keys(n)) {
		fmt.Fprintf(&b, "  %dx %s\n", n[l], l)
	}
	return b.String()
}

// copyScenario copies scenarios/<name>/* and the shared .tf files into the
// working directory, with the README's endpoint replaced by the server's.
func (w *workspace) copyScenario(name string) {
	w.t.Helper()
	files := map[string]string{
		"versions.tf": filepath.Join(w.suite.scenarios, "versions.tf"),
		"provider.tf": filepath.Join(w.suite.scenarios, "provider.tf"),
	}
	entries, err := os.ReadDir(filepath.Join(w.suite.scenarios, name))
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			files[e.Name()] = filepath.Join(w.suite.scenarios, name, e.Name())
		}
	}
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			w.t.Fatal(err)
		}
		text := string(b)
		if dst == "provider.tf" {
			if n := strings.Count(text, `"`+readmeEndpoint+`"`); n != 1 {
				w.t.Fatalf("%s names %s %d times, want once (the suite points it at its server)", src, readmeEndpoint, n)
			}
			text = strings.Replace(text, `"`+readmeEndpoint+`"`, `"`+w.endpoint+`"`, 1)
		}
		if err := os.WriteFile(filepath.Join(w.dir, dst), []byte(text), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
}

// cluster returns one cluster through DescribeClusters.
func (w *workspace) cluster(id string) types.Cluster {
	w.t.Helper()
	out, err := w.sdk.DescribeClusters(context.Background(), &cloudhsmv2.DescribeClustersInput{
		Filters: map[string][]string{"clusterIds": {id}},
	})
	if err != nil {
		w.t.Fatalf("DescribeClusters %s: %v", id, err)
	}
	if len(out.Clusters) != 1 {
		w.t.Fatalf("DescribeClusters %s: %d clusters, want 1", id, len(out.Clusters))
	}
	return out.Clusters[0]
}

// checkNothingLeft checks, through the admin API's export of every account
// and region, that every cluster the scenario made is DELETED with no HSM,
// and that all of them are in the README's account and region.
func (w *workspace) checkNothingLeft() {
	w.t.Helper()
	raw, err := w.admin.Export(context.Background())
	if err != nil {
		w.t.Fatalf("admin export: %v", err)
	}
	snap, err := snapshot.Decode(bytes.NewReader(raw))
	if err != nil {
		w.t.Fatalf("admin export: %v", err)
	}
	if len(snap.Clusters) == 0 {
		w.t.Errorf("the server holds no cluster at all: the scenario made none, or they vanished instead of being DELETED")
	}
	for _, c := range snap.Clusters {
		if c.State != string(types.ClusterStateDeleted) || len(c.Hsms) != 0 {
			w.t.Errorf("after terraform destroy, cluster %s is %s with %d HSMs, want DELETED with none", c.ID, c.State, len(c.Hsms))
		}
		if c.Tenant.Account != account || c.Tenant.Region != region {
			w.t.Errorf("cluster %s is in account %s, region %s; the provider block says %s, %s", c.ID, c.Tenant.Account, c.Tenant.Region, account, region)
		}
	}
}
