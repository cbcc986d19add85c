package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
)

const seedFile = "../../examples/seed-estate.json"

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	status, body := e.do(t, http.MethodGet, "health", "")
	wantStatus(t, status, body, http.StatusOK, `"status": "ok"`)
	h, err := e.admin.Health(ctx)
	if err != nil || h.Status != "ok" || h.Time != "2026-01-01T00:00:00Z" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	h := e.srv.Handler()
	serve := func(method, path, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = remote
		r.Host = "localhost" // no listener: any port
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, path := range []string{"export", "clock", "faults", "roots/aws.pem"} {
		w := serve(http.MethodGet, admin.Prefix+path, "10.0.0.1:1234")
		wantStatus(t, w.Code, w.Body.Bytes(), http.StatusForbidden, "loopback")
	}
	w := serve(http.MethodPost, admin.Prefix+"reset", "10.0.0.1:1234")
	wantStatus(t, w.Code, w.Body.Bytes(), http.StatusForbidden)
	// Readiness probes come from anywhere.
	w = serve(http.MethodGet, admin.Prefix+"health", "10.0.0.1:1234")
	wantStatus(t, w.Code, w.Body.Bytes(), http.StatusOK)
	for _, remote := range []string{"127.0.0.1:5555", "[::1]:5555", "127.0.0.2:1", "[::ffff:127.0.0.1]:80"} {
		w := serve(http.MethodGet, admin.Prefix+"clock", remote)
		wantStatus(t, w.Code, w.Body.Bytes(), http.StatusOK)
	}
	// The CloudHSM API and /metrics are not behind the admin rules.
	w = serve(http.MethodGet, "/metrics", "10.0.0.1:1234")
	wantStatus(t, w.Code, w.Body.Bytes(), http.StatusOK)
}

func TestToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{AdminToken: "s3cret"})
	for _, path := range []string{"health", "export"} {
		status, body := e.do(t, http.MethodGet, path, "")
		wantStatus(t, status, body, http.StatusUnauthorized, "admin token")
		status, body = e.do(t, http.MethodGet, path, "", "Authorization", "Bearer wrong")
		wantStatus(t, status, body, http.StatusUnauthorized)
		status, body = e.do(t, http.MethodGet, path, "", "Authorization", "Bearer s3cret")
		wantStatus(t, status, body, http.StatusOK)
	}
	// With the token, non-loopback callers are let in.
	r := httptest.NewRequest(http.MethodGet, admin.Prefix+"clock", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	r.Header.Set("Authorization", "Bearer s3cret")
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	wantStatus(t, w.Code, w.Body.Bytes(), http.StatusOK)
	r.Header.Del("Authorization")
	w = httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	wantStatus(t, w.Code, w.Body.Bytes(), http.StatusUnauthorized)
	if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Fatalf("WWW-Authenticate = %q", got)
	}
	// The client sends it.
	if _, err := e.admin.Health(ctx); err != nil {
		t.Fatal(err)
	}
	var se *admin.StatusError
	if _, err := (&admin.Client{Endpoint: e.hs.URL, HTTP: e.hs.Client()}).Health(ctx); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("client without token: %v", err)
	}
}

func TestUnknownEndpointAndMethod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	status, body := e.do(t, http.MethodGet, "nope", "")
	wantStatus(t, status, body, http.StatusNotFound, "no admin endpoint GET /_cloudhsm-local/nope")
	status, body = e.do(t, http.MethodGet, "reset", "")
	wantStatus(t, status, body, http.StatusNotFound)
}

func TestRoots(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	for _, p := range []string{"roots/manufacturer.pem", "roots/aws.pem"} {
		status, body := e.do(t, http.MethodGet, p, "")
		if status != http.StatusOK || !bytes.HasPrefix(body, []byte("-----BEGIN CERTIFICATE-----")) {
			t.Fatalf("%s: %d %.40s", p, status, body)
		}
	}
}

func createClusters(t *testing.T, c *cloudhsmv2.Client, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0123456789abcdef" + string(rune('0'+i))}})
		if err != nil {
			t.Fatalf("CreateCluster: %v", err)
		}
		ids = append(ids, *out.Cluster.ClusterId)
	}
	return ids
}

func countClusters(t *testing.T, c *cloudhsmv2.Client) int {
	t.Helper()
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Clusters)
}

func TestReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	a, b := e.sdk(acctA, "us-east-1", 1), e.sdk(acctB, "eu-west-1", 1)
	createClusters(t, a, 2)
	createClusters(t, b, 1)

	status, body := e.do(t, http.MethodPost, "reset?account=12", "")
	wantStatus(t, status, body, http.StatusBadRequest, "12-digit")

	status, body = e.do(t, http.MethodPost, "reset?account="+acctA, "")
	wantStatus(t, status, body, http.StatusOK, acctA)
	if n, m := countClusters(t, a), countClusters(t, b); n != 0 || m != 1 {
		t.Fatalf("after reset of %s: %d and %d clusters, want 0 and 1", acctA, n, m)
	}
	// The account can also come in the body.
	createClusters(t, a, 1)
	status, body = e.do(t, http.MethodPost, "reset", `{"account": "`+acctB+`"}`)
	wantStatus(t, status, body, http.StatusOK)
	if n, m := countClusters(t, a), countClusters(t, b); n != 1 || m != 0 {
		t.Fatalf("after reset of %s: %d and %d clusters, want 1 and 0", acctB, n, m)
	}
	createClusters(t, b, 1)
	if _, err := e.admin.Reset(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if n, m := countClusters(t, a), countClusters(t, b); n != 0 || m != 0 {
		t.Fatalf("after reset: %d and %d clusters", n, m)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	src := newEnv(t, server.Config{})
	c := src.sdk(acctA, "eu-west-1", 1)
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0123456789abcdef0"},
		TagList: []types.Tag{{Key: aws.String("env"), Value: aws.String("ci")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := *out.Cluster.ClusterId
	if _, err := src.admin.Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	var az string
	for k := range out.Cluster.SubnetMapping {
		az = k
	}
	hsm, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: &id, AvailabilityZone: &az})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.admin.Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	before, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil || len(before.Clusters) != 1 || before.Clusters[0].State != types.ClusterStateUninitialized {
		t.Fatalf("source cluster: %+v, %v", before, err)
	}

	doc, err := src.admin.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var head struct{ Version int }
	if err := json.Unmarshal(doc, &head); err != nil || head.Version != snapshot.Version {
		t.Fatalf("export is not a version %d document: version %d, %v", snapshot.Version, head.Version, err)
	}
	snap, err := snapshot.Decode(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("export does not read back: %v", err)
	}
	if len(snap.Clusters) != 1 || snap.Clusters[0].ID != id {
		t.Fatalf("export = %d clusters", len(snap.Clusters))
	}

	dst := newEnv(t, server.Config{})
	res, err := dst.admin.Import(ctx, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if res != (admin.ImportResult{Clusters: 1, Hsms: 1, Backups: 0}) {
		t.Fatalf("import answered %+v", res)
	}
	after, err := dst.sdk(acctA, "eu-west-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil || len(after.Clusters) != 1 {
		t.Fatalf("imported: %+v, %v", after, err)
	}
	got, want := after.Clusters[0], before.Clusters[0]
	if *got.ClusterId != id || got.State != want.State || *got.Hsms[0].HsmId != *hsm.Hsm.HsmId ||
		*got.Certificates.ClusterCsr != *want.Certificates.ClusterCsr || *got.Hsms[0].EniIp != *want.Hsms[0].EniIp {
		t.Fatalf("imported cluster differs:\n got %+v\nwant %+v", got, want)
	}
	// Importing again replaces instead of duplicating.
	if _, err := dst.admin.Import(ctx, bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	if n := countClusters(t, dst.sdk(acctA, "eu-west-1", 1)); n != 1 {
		t.Fatalf("after a second import: %d clusters", n)
	}
}

// TestImportGivesDistinctAddresses: HSMs imported without an address get
// distinct ones, also when two clusters of one snapshot share a subnet.
func TestImportGivesDistinctAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	cluster := func(id string) map[string]any {
		return map[string]any{
			"account": acctA, "region": "us-east-1", "clusterId": id, "state": "ACTIVE",
			"subnets": []map[string]string{
				{"subnetId": "subnet-0f1e2d3c4b5a69781", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "us-east-1a", "cidr": "10.0.1.0/24"},
				{"subnetId": "subnet-0123abcd4567ef890", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "us-east-1b", "cidr": "10.0.2.0/24"},
			},
			"hsms": []map[string]string{{"availabilityZone": "us-east-1a"}},
		}
	}
	doc, _ := json.Marshal(map[string]any{"version": 2, "clusters": []any{cluster("cluster-aaaaaaaaaa2"), cluster("cluster-aaaaaaaaaa3")}})
	if _, err := e.admin.Import(ctx, bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	out, err := e.sdk(acctA, "us-east-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil || len(out.Clusters) != 2 {
		t.Fatalf("imported: %+v, %v", out, err)
	}
	a, b := aws.ToString(out.Clusters[0].Hsms[0].EniIp), aws.ToString(out.Clusters[1].Hsms[0].EniIp)
	if a == "" || a == b {
		t.Fatalf("the two imported HSMs in subnet-0f1e2d3c4b5a69781 have addresses %q and %q", a, b)
	}

	// Importing the first cluster again replaces it: its old HSM's address
	// (the lowest, taken first) is free for the new one, and the second
	// cluster's stays taken.
	id := aws.ToString(out.Clusters[0].ClusterId)
	doc, _ = json.Marshal(map[string]any{"version": 2, "clusters": []any{cluster(id)}})
	if _, err := e.admin.Import(ctx, bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	again, err := e.sdk(acctA, "us-east-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil || len(again.Clusters) != 1 || len(again.Clusters[0].Hsms) != 1 {
		t.Fatalf("re-imported: %+v, %v", again, err)
	}
	t.Logf("a=%s b=%s got=%s", a, b, aws.ToString(again.Clusters[0].Hsms[0].EniIp))
	if got := aws.ToString(again.Clusters[0].Hsms[0].EniIp); got != a {
		t.Errorf("re-imported %s: HSM address %s, want %s (the replaced HSM's; the other cluster holds %s)", id, got, a, b)
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	for _, c := range []struct{ body, want string }{
		{``, "the snapshot is empty"},
		{`{`, "invalid JSON"},
		{`{"version": 2, "clusterz": []}`, `unknown field \"clusterz\"`},
		{`{"version": 1, "clusterz": []}`, `unknown field \"clusterz\"`},
		{`{"version": 9}`, "version: 9 is not a snapshot version"},
		{`{"version": 2, "clusters": [null]}`, "clusters[0] is null"},
		{`{"clusters": [null]}`, "clusters[0] is null"},
		{`{"version": 2, "clusters": [{"clusterId": "cluster-aaaaaaaaaaa"}]}`, "clusters[0] (cluster-aaaaaaaaaaa): account and region are required"},
		{`{"clusters": [{"ID": "cluster-aaaaaaaaaaa"}]}`, "clusters[0] (cluster-aaaaaaaaaaa): account and region are required"},
		{`{"version": 2, "clusters": [{"account": "111122223333", "region": "us-east-1", "state": "SLEEPING"}]}`, `clusters[0]: state \"SLEEPING\"`},
		{`{"clusters": [{"Tenant": {"Account": "111122223333", "Region": "us-east-1"}, "State": "SLEEPING"}]}`, `clusters[0]: state \"SLEEPING\"`},
		{`{} {}`, "more than one JSON value"},
	} {
		status, body := e.do(t, http.MethodPost, "import", c.body)
		wantStatus(t, status, body, http.StatusBadRequest, c.want)
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	st, err := e.admin.Clock(ctx)
	if err != nil || !st.Frozen || st.Now != "2026-01-01T00:00:00Z" || st.Epoch != float64(start.Unix()) {
		t.Fatalf("clock = %+v, %v", st, err)
	}
	status, body := e.do(t, http.MethodPost, "clock/advance", `{"duration": "24h"}`)
	wantStatus(t, status, body, http.StatusOK, `"now": "2026-01-02T00:00:00Z"`)
	status, body = e.do(t, http.MethodPost, "clock/advance?duration=1h", "")
	wantStatus(t, status, body, http.StatusOK, `"now": "2026-01-02T01:00:00Z"`)
	for _, bad := range []string{`{"duration": "-1h"}`, `{"duration": "soon"}`, `{}`, `{"seconds": 5}`} {
		status, body = e.do(t, http.MethodPost, "clock/advance", bad)
		wantStatus(t, status, body, http.StatusBadRequest)
	}
	if st, err = e.admin.Resume(ctx); err != nil || st.Frozen {
		t.Fatalf("resume = %+v, %v", st, err)
	}
	if st, err = e.admin.Freeze(ctx); err != nil || !st.Frozen {
		t.Fatalf("freeze = %+v, %v", st, err)
	}
	// Advancing applies due transitions.
	c := e.sdk(acctA, "us-east-1", 1)
	id := createClusters(t, c, 1)[0]
	if _, err := e.admin.Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	_, out := e.awsCall(t, acctA, "us-east-1", "DescribeClusters", map[string]any{})
	if s := clusterStates(out)[id]; s != "UNINITIALIZED" {
		t.Fatalf("after advance the cluster is %s", s)
	}
}

func TestActivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{DefaultAccount: acctA, DefaultRegion: "eu-west-1"})
	e.importSnapshot(t, fixture(acctA, "eu-west-1", "cluster-aaaaaaaaaaa", cloudhsm.ClusterInitialized, map[string]string{"hsm-aaaaaaaaaaa": "ACTIVE"}))
	e.importSnapshot(t, fixture(acctB, "us-east-1", "cluster-bbbbbbbbbbb", cloudhsm.ClusterInitialized, map[string]string{"hsm-bbbbbbbbbbb": "ACTIVE"}))

	// The server's defaults are the tenant when none is named.
	status, body := e.do(t, http.MethodPost, "clusters/cluster-aaaaaaaaaaa/activate", "")
	wantStatus(t, status, body, http.StatusOK, `"State": "ACTIVE"`)
	status, body = e.do(t, http.MethodPost, "clusters/cluster-aaaaaaaaaaa/activate", "")
	wantStatus(t, status, body, http.StatusConflict, "only an INITIALIZED cluster")
	// Another tenant's cluster is not found under the defaults.
	status, body = e.do(t, http.MethodPost, "clusters/cluster-bbbbbbbbbbb/activate", "")
	wantStatus(t, status, body, http.StatusNotFound)
	status, body = e.do(t, http.MethodPost, "clusters/cluster-bbbbbbbbbbb/activate?region=mars-1", "")
	wantStatus(t, status, body, http.StatusBadRequest, "not an AWS region")
	res, err := e.admin.Activate(ctx, "cluster-bbbbbbbbbbb", acctB, "us-east-1")
	if err != nil || res.State != "ACTIVE" || res.ClusterID != "cluster-bbbbbbbbbbb" {
		t.Fatalf("activate = %+v, %v", res, err)
	}
	// Activation takes a backup, as on AWS.
	_, out := e.awsCall(t, acctB, "us-east-1", "DescribeBackups", map[string]any{})
	if list, _ := out["Backups"].([]any); len(list) != 1 {
		t.Fatalf("backups after activation: %v", out)
	}
}

func TestDegradeHeal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	e.importSnapshot(t, fixture(acctA, "us-east-1", "cluster-aaaaaaaaaaa", cloudhsm.ClusterActive,
		map[string]string{"hsm-aaaaaaaaaaa": "ACTIVE", "hsm-bbbbbbbbbbb": "ACTIVE"}))
	c := e.sdk(acctA, "us-east-1", 1)
	state := func() (types.ClusterState, map[string]types.HsmState) {
		out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		if err != nil {
			t.Fatal(err)
		}
		hs := map[string]types.HsmState{}
		for _, h := range out.Clusters[0].Hsms {
			hs[*h.HsmId] = h.State
		}
		return out.Clusters[0].State, hs
	}
	target := `{"account": "` + acctA + `", "region": "us-east-1", "clusterId": "cluster-aaaaaaaaaaa", "hsmId": "hsm-aaaaaaaaaaa"}`
	status, body := e.do(t, http.MethodPost, "hsms/degrade", target)
	wantStatus(t, status, body, http.StatusOK, `"State": "DEGRADED"`)
	if cs, hs := state(); cs != types.ClusterStateDegraded || hs["hsm-aaaaaaaaaaa"] != types.HsmStateDegraded || hs["hsm-bbbbbbbbbbb"] != types.HsmStateActive {
		t.Fatalf("after degrade: %s %v", cs, hs)
	}
	status, body = e.do(t, http.MethodPost, "hsms/degrade", target)
	wantStatus(t, status, body, http.StatusConflict, "only an ACTIVE HSM")
	status, body = e.do(t, http.MethodPost, "hsms/degrade", `{"account": "`+acctA+`", "clusterId": "cluster-aaaaaaaaaaa", "hsmId": "hsm-zzzzzzzzzzz"}`)
	wantStatus(t, status, body, http.StatusNotFound, "HSM hsm-zzzzzzzzzzz not found")
	status, body = e.do(t, http.MethodPost, "hsms/degrade", `{"clusterId": "cluster-aaaaaaaaaaa"}`)
	wantStatus(t, status, body, http.StatusBadRequest, "hsmId")
	status, body = e.do(t, http.MethodPost, "hsms/degrade", `{"cluster": "cluster-aaaaaaaaaaa"}`)
	wantStatus(t, status, body, http.StatusBadRequest, "unknown field", "cluster")

	res, err := e.admin.Heal(ctx, admin.HsmTarget{Account: acctA, ClusterID: "cluster-aaaaaaaaaaa", HsmID: "hsm-aaaaaaaaaaa"})
	if err != nil || res.State != "ACTIVE" {
		t.Fatalf("heal = %+v, %v", res, err)
	}
	if cs, hs := state(); cs != types.ClusterStateActive || hs["hsm-aaaaaaaaaaa"] != types.HsmStateActive {
		t.Fatalf("after heal: %s %v", cs, hs)
	}
	var se *admin.StatusError
	if _, err := e.admin.Heal(ctx, admin.HsmTarget{Account: acctA, ClusterID: "cluster-aaaaaaaaaaa", HsmID: "hsm-aaaaaaaaaaa"}); !errors.As(err, &se) || se.Status != http.StatusConflict {
		t.Fatalf("healing an ACTIVE HSM: %v", err)
	}
}

func TestFaultEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	for _, c := range []struct{ body, want string }{
		{``, "JSON body is required"},
		{`{"operation": "DescribeCluster", "error": "ThrottlingException"}`, "unknown operation"},
		{`{"operation": "DescribeClusters", "error": "ThrottlingException", "probabilty": 0.5}`, `unknown field \"probabilty\"`},
		{`{"operation": "DescribeClusters", "latency": "fast"}`, "Go duration"},
		{`{"operation": "DescribeClusters"}`, "needs an error, a latency, or both"},
	} {
		status, body := e.do(t, http.MethodPost, "faults", c.body)
		wantStatus(t, status, body, http.StatusBadRequest, c.want)
	}
	status, body := e.do(t, http.MethodPost, "faults", `{"operation": "DescribeClusters", "error": "ThrottlingException", "latency": "200ms", "probability": 0.5, "account": "`+acctA+`"}`)
	wantStatus(t, status, body, http.StatusCreated, `"latency": "200ms"`, `"probability": 0.5`, `"hits": 0`)
	var r1 faults.Rule
	if err := json.Unmarshal(body, &r1); err != nil || r1.ID == "" || r1.Account != acctA {
		t.Fatalf("added rule %s: %v", body, err)
	}
	r2, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "*", Error: awsjson.CodeService, Count: 3})
	if err != nil || r2.Remaining != 3 {
		t.Fatalf("AddFault = %+v, %v", r2, err)
	}
	rules, err := e.admin.Faults(ctx)
	if err != nil || len(rules) != 2 || rules[0].ID != r1.ID || rules[1].ID != r2.ID {
		t.Fatalf("Faults = %+v, %v", rules, err)
	}
	status, body = e.do(t, http.MethodGet, "faults/"+r2.ID, "")
	wantStatus(t, status, body, http.StatusOK, `"count": 3`)
	status, body = e.do(t, http.MethodDelete, "faults/"+r1.ID, "")
	wantStatus(t, status, body, http.StatusOK, `"deleted": 1`)
	status, body = e.do(t, http.MethodDelete, "faults/"+r1.ID, "")
	wantStatus(t, status, body, http.StatusNotFound)
	status, body = e.do(t, http.MethodGet, "faults/"+r1.ID, "")
	wantStatus(t, status, body, http.StatusNotFound)
	n, err := e.admin.ClearFaults(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ClearFaults = %d, %v", n, err)
	}
	status, body = e.do(t, http.MethodGet, "faults", "")
	wantStatus(t, status, body, http.StatusOK, `"rules": []`)
}

func TestFaultInjectionThroughSDK(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})

	t.Run("throttling is retried by the standard retryer", func(t *testing.T) {
		r, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer e.admin.DeleteFault(ctx, r.ID)
		if _, err := e.sdk(acctA, "us-east-1", 3).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil {
			t.Fatalf("3 attempts against 2 throttles: %v", err)
		}
		rules, _ := e.admin.Faults(ctx)
		if rules[0].Hits != 2 || !rules[0].Spent {
			t.Fatalf("rule after retries: %+v", rules[0])
		}
	})

	t.Run("one attempt sees the ThrottlingException", func(t *testing.T) {
		r, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.admin.DeleteFault(ctx, r.ID)
		_, err = e.sdk(acctA, "us-east-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != awsjson.CodeThrottling || ae.ErrorMessage() != "Rate exceeded" {
			t.Fatalf("want ThrottlingException: Rate exceeded, got %v", err)
		}
		if !retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
			t.Fatalf("the SDK does not classify %v as throttling", err)
		}
	})

	t.Run("modelled exceptions are typed", func(t *testing.T) {
		r, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "DescribeBackups", Error: awsjson.CodeService, Message: "Try later."})
		if err != nil {
			t.Fatal(err)
		}
		defer e.admin.DeleteFault(ctx, r.ID)
		_, err = e.sdk(acctA, "us-east-1", 1).DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{})
		var se *types.CloudHsmServiceException
		if !errors.As(err, &se) || se.ErrorMessage() != "Try later." {
			t.Fatalf("want *types.CloudHsmServiceException, got %v", err)
		}
		r2, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "ListTags", Error: awsjson.CodeInternalFailure, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.admin.DeleteFault(ctx, r2.ID)
		_, err = e.sdk(acctA, "us-east-1", 1).ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String("cluster-aaaaaaaaaaa")})
		var ie *types.CloudHsmInternalFailureException
		if !errors.As(err, &ie) {
			t.Fatalf("want *types.CloudHsmInternalFailureException, got %v", err)
		}
	})

	t.Run("a per-account rule hits only that account", func(t *testing.T) {
		r, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "DescribeClusters", Account: acctB, Error: awsjson.CodeThrottling})
		if err != nil {
			t.Fatal(err)
		}
		defer e.admin.DeleteFault(ctx, r.ID)
		for range 3 {
			if _, err := e.sdk(acctA, "us-east-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil {
				t.Fatalf("account A was hit: %v", err)
			}
		}
		if _, err := e.sdk(acctB, "eu-west-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err == nil {
			t.Fatal("account B was not hit")
		}
		status, body := e.do(t, http.MethodGet, "faults/"+r.ID, "")
		wantStatus(t, status, body, http.StatusOK, `"hits": 1`)
	})

	t.Run("latency is honoured", func(t *testing.T) {
		const lat = 80 * time.Millisecond
		r, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "DescribeClusters", Latency: faults.Duration(lat)})
		if err != nil {
			t.Fatal(err)
		}
		defer e.admin.DeleteFault(ctx, r.ID)
		began := time.Now()
		if _, err := e.sdk(acctA, "us-east-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(began); d < lat {
			t.Fatalf("call took %v, want at least %v", d, lat)
		}
	})

	t.Run("latency stops when the client gives up", func(t *testing.T) {
		r, err := e.admin.AddFault(ctx, admin.FaultRule{Operation: "DescribeClusters", Latency: faults.Duration(faults.MaxLatency)})
		if err != nil {
			t.Fatal(err)
		}
		defer e.admin.DeleteFault(ctx, r.ID)
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		began := time.Now()
		if _, err := e.sdk(acctA, "us-east-1", 1).DescribeClusters(cctx, &cloudhsmv2.DescribeClustersInput{}); err == nil {
			t.Fatal("a call with a 10m latency and a 50ms deadline succeeded")
		}
		if d := time.Since(began); d > 30*time.Second {
			t.Fatalf("call took %v", d)
		}
	})
}

func TestSeed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{SeedFile: seedFile})
	if res := e.srv.Seeded(); res == nil || *res != (admin.ImportResult{Clusters: 4, Hsms: 5, Backups: 6}) {
		t.Fatalf("Seeded() = %+v", res)
	}
	doc, err := e.admin.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Decode(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Clusters) != 4 || len(snap.Backups) != 6 {
		t.Fatalf("export after seed: %d clusters, %d backups", len(snap.Clusters), len(snap.Backups))
	}
	for _, c := range snap.Clusters {
		for _, h := range c.Hsms {
			if h.Identity == nil || !strings.Contains(h.Identity.HsmCertificate, "BEGIN CERTIFICATE") {
				t.Fatalf("HSM %s of %s has no generated identity", h.ID, c.ID)
			}
		}
	}

	want := []struct {
		account, region string
		states          map[string]string
		backups         map[string]string
	}{
		{acctA, "us-east-1", map[string]string{"cluster-k7fq2wbmzxa": "ACTIVE", "cluster-p2ne7hcwu4s": "UNINITIALIZED"},
			map[string]string{"backup-r4dz6kq2hwn": "READY", "backup-y7hb3nw5ufc": "READY"}},
		{acctA, "eu-west-1", map[string]string{}, map[string]string{"backup-c2kv5tm7jqa": "READY"}},
		{acctB, "eu-west-1", map[string]string{"cluster-t3ho6ylrvqe": "DEGRADED"},
			map[string]string{"backup-e6wu2ya5pkx": "READY", "backup-f3sj7go4lbv": "PENDING_DELETION"}},
		{acctB, "us-east-1", map[string]string{"cluster-m5ga3rxjt7o": "DELETE_IN_PROGRESS"}, map[string]string{"backup-h5ni4ct6mrz": "READY"}},
	}
	for _, w := range want {
		status, out := e.awsCall(t, w.account, w.region, "DescribeClusters", map[string]any{})
		if status != http.StatusOK {
			t.Fatalf("DescribeClusters as %s/%s: %d %v", w.account, w.region, status, out)
		}
		got := clusterStates(out)
		if len(got) != len(w.states) {
			t.Fatalf("%s/%s clusters = %v, want %v", w.account, w.region, got, w.states)
		}
		for id, st := range w.states {
			if got[id] != st {
				t.Fatalf("%s/%s: %s is %q, want %s", w.account, w.region, id, got[id], st)
			}
		}
		_, bout := e.awsCall(t, w.account, w.region, "DescribeBackups", map[string]any{})
		gotB := map[string]string{}
		list, _ := bout["Backups"].([]any)
		for _, b := range list {
			m := b.(map[string]any)
			gotB[m["BackupId"].(string)] = m["BackupState"].(string)
		}
		if len(gotB) != len(w.backups) {
			t.Fatalf("%s/%s backups = %v, want %v", w.account, w.region, gotB, w.backups)
		}
		for id, st := range w.backups {
			if gotB[id] != st {
				t.Fatalf("%s/%s: %s is %q, want %s", w.account, w.region, id, gotB[id], st)
			}
		}
	}

	// The UNINITIALIZED cluster got its CSR from its ACTIVE HSM; the ACTIVE
	// one shows its cluster certificate; tags made it through.
	_, out := e.awsCall(t, acctA, "us-east-1", "DescribeClusters", map[string]any{"Filters": map[string][]string{"clusterIds": {"cluster-p2ne7hcwu4s"}}})
	c := out["Clusters"].([]any)[0].(map[string]any)
	if csr, _ := c["Certificates"].(map[string]any)["ClusterCsr"].(string); !strings.Contains(csr, "BEGIN CERTIFICATE REQUEST") {
		t.Fatalf("UNINITIALIZED cluster has no CSR: %v", c["Certificates"])
	}
	_, out = e.awsCall(t, acctA, "us-east-1", "ListTags", map[string]any{"ResourceId": "cluster-k7fq2wbmzxa"})
	if tags, _ := out["TagList"].([]any); len(tags) != 3 {
		t.Fatalf("ListTags = %v", out)
	}
	// The degraded HSM heals back to an ACTIVE cluster.
	res, err := e.admin.Heal(ctx, admin.HsmTarget{Account: acctB, Region: "eu-west-1", ClusterID: "cluster-t3ho6ylrvqe", HsmID: "hsm-x2dl6ru4kgm"})
	if err != nil || res.State != "ACTIVE" {
		t.Fatalf("heal seeded HSM: %+v, %v", res, err)
	}
}

func TestSeedOnlyIntoAnEmptyStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.json")
	var b bytes.Buffer
	if err := snapshot.Encode(&b, fixture(acctA, "us-east-1", "cluster-aaaaaaaaaaa", cloudhsm.ClusterActive, map[string]string{"hsm-aaaaaaaaaaa": "ACTIVE"})); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seed, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	first := newEnv(t, server.Config{DataDir: data, SeedFile: seed})
	if first.srv.Seeded() == nil {
		t.Fatal("first start did not seed")
	}
	if _, err := first.admin.Degrade(ctx, admin.HsmTarget{Account: acctA, ClusterID: "cluster-aaaaaaaaaaa", HsmID: "hsm-aaaaaaaaaaa"}); err != nil {
		t.Fatal(err)
	}
	first.hs.Close()
	if err := first.srv.Close(); err != nil {
		t.Fatal(err)
	}
	second := newEnv(t, server.Config{DataDir: data, SeedFile: seed})
	if second.srv.Seeded() != nil {
		t.Fatal("second start seeded a store that holds state")
	}
	_, out := second.awsCall(t, acctA, "us-east-1", "DescribeClusters", map[string]any{})
	if s := clusterStates(out)["cluster-aaaaaaaaaaa"]; s != "DEGRADED" {
		t.Fatalf("after restart the cluster is %q, want the DEGRADED state it was left in", s)
	}
}

func TestSeedErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"typo.json":  `{"version": 1, "clusters": [{"Tennant": {}}]}`,
		"state.json": `{"clusters": [{"Tenant": {"Account": "111122223333", "Region": "us-east-1"}, "State": "NAPPING"}]}`,
		"two.json":   `{} {}`,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := server.New(server.Config{InMemory: true, SeedFile: p}); err == nil || !strings.Contains(err.Error(), "seed "+p) {
			t.Fatalf("%s: want a seed error, got %v", name, err)
		}
	}
	if _, err := server.New(server.Config{InMemory: true, SeedFile: filepath.Join(dir, "missing.json")}); err == nil {
		t.Fatal("a missing seed file should fail the start")
	}
}

func TestPprof(t *testing.T) {
	t.Parallel()
	off := newEnv(t, server.Config{})
	resp, err := off.hs.Client().Get(off.hs.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("pprof answered without --pprof")
	}
	on := newEnv(t, server.Config{Pprof: true})
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		resp, err := on.hs.Client().Get(on.hs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/debug/pprof/cmdline", nil)
	r.RemoteAddr = "10.0.0.1:1234"
	w := httptest.NewRecorder()
	on.srv.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("pprof from a remote caller: %d", w.Code)
	}
}

// TestReimportIsDescribedAnew resets the server and imports clusters with
// the ids of the ones before, as a suite that re-seeds between tests does:
// DescribeClusters must show the new clusters, never a view kept from the
// old ones.
func TestReimportIsDescribedAnew(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	c := e.sdk(acctA, "us-east-1", 1)
	seed := func(state, tag string) {
		t.Helper()
		doc, _ := json.Marshal(map[string]any{"version": 2, "clusters": []any{map[string]any{
			"account": acctA, "region": "us-east-1", "clusterId": "cluster-aaaaaaaaab2", "state": state,
			"subnets": []map[string]string{{"subnetId": "subnet-0f1e2d3c4b5a69782", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "us-east-1a", "cidr": "10.0.1.0/24"}},
			"tags":    []map[string]string{{"key": "seed", "value": tag}},
		}}})
		if _, err := e.admin.Import(ctx, bytes.NewReader(doc)); err != nil {
			t.Fatal(err)
		}
	}
	describe := func() types.Cluster {
		t.Helper()
		out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		if err != nil || len(out.Clusters) != 1 {
			t.Fatalf("DescribeClusters: %+v, %v", out, err)
		}
		return out.Clusters[0]
	}
	seed("ACTIVE", "first")
	if got := describe(); got.State != types.ClusterStateActive {
		t.Fatalf("first seed: state %s", got.State)
	}
	for _, reset := range []bool{true, false} {
		if reset {
			if _, err := e.admin.Reset(ctx, ""); err != nil {
				t.Fatal(err)
			}
		}
		seed("UNINITIALIZED", "second")
		got := describe()
		if got.State != types.ClusterStateUninitialized || len(got.TagList) != 1 || aws.ToString(got.TagList[0].Value) != "second" {
			t.Errorf("after re-seeding (reset first: %v): state %s, tags %+v; want UNINITIALIZED and seed=second", reset, got.State, got.TagList)
		}
		seed("ACTIVE", "first")
		if got := describe(); got.State != types.ClusterStateActive {
			t.Errorf("after seeding the first again (reset first: %v): state %s", reset, got.State)
		}
	}
}
