package admin_test

// Hand-written snapshots (POST import, --seed): values the real API could
// never return must be refused with a message naming the item and field,
// not accepted and left to break clients or the server later.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

func tenantOf(account, region string) map[string]string {
	return map[string]string{"Account": account, "Region": region}
}

var subnetA = map[string]string{"ID": "subnet-0f1e2d3c4b5a69781", "VpcID": "vpc-0a1b2c3d4e5f60718", "AZ": "us-east-1a", "CIDR": "10.0.1.0/24"}

// vCluster is a valid cluster of acctA in us-east-1 with extra fields.
func vCluster(id string, extra map[string]any) map[string]any {
	c := map[string]any{"Tenant": tenantOf(acctA, "us-east-1"), "ID": id, "Subnets": []any{subnetA}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// vHsm is an HSM in us-east-1a with a placeholder identity (no key generation).
func vHsm(id string, extra map[string]any) map[string]any {
	h := map[string]any{"ID": id, "AZ": "us-east-1a", "Identity": map[string]string{"Serial": "RCN0000000001"}}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

func importDoc(e *env, clusters, backups []any) error {
	doc, _ := json.Marshal(map[string]any{"version": 1, "clusters": clusters, "backups": backups})
	_, err := e.admin.Import(ctx, bytes.NewReader(doc))
	return err
}

// refused checks that err is the admin API's 400 naming every substring.
func refused(t *testing.T, err error, contains ...string) {
	t.Helper()
	var ae *admin.StatusError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Fatalf("want a 400 refusal, got %v", err)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("refusal %q does not name %q", err, c)
		}
	}
}

// A creation time before 1970 with a fraction of a second makes every
// DescribeClusters of the tenant answer 500: the epoch encoder writes
// invalid JSON for negative milliseconds.
func TestImportPreEpochTimeBreaksDescribeClusters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"Created": "1969-12-31T23:59:58.5Z"})}, nil)
	if err == nil {
		if _, derr := e.sdk(acctA, "us-east-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); derr != nil {
			t.Fatalf("import accepted Created 1969-12-31T23:59:58.5Z; DescribeClusters now fails: %v", derr)
		}
		return
	}
	refused(t, err, "clusters[0]", "Created")
}

// A time after 2262 does not fit the Unix nanoseconds the scheduler keeps
// (its markers and next-due time); refused, like times before 1970.
func TestImportTimeBeyond2262(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"State": "DELETE_IN_PROGRESS", "Due": "2300-01-01T00:00:00Z"})}, nil)
	refused(t, err, "clusters[0]", "Due")
}

// Duplicate tag keys make ListTags pagination endless.
func TestImportDuplicateTagKeysMakeListTagsEndless(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	tags := []any{map[string]string{"Key": "a", "Value": "1"}, map[string]string{"Key": "a", "Value": "2"}, map[string]string{"Key": "a", "Value": "3"}}
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"Tags": tags})}, nil)
	if err == nil {
		p := cloudhsmv2.NewListTagsPaginator(e.sdk(acctA, "us-east-1", 1), &cloudhsmv2.ListTagsInput{ResourceId: aws.String("cluster-aaaaaaaaaaa"), MaxResults: aws.Int32(1)})
		for pages := 0; p.HasMorePages(); pages++ {
			if pages > 10 {
				t.Fatal("import accepted duplicate tag keys; ListTags pagination never ends (more than 10 pages for 3 tags)")
			}
			if _, err := p.NextPage(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	refused(t, err, "clusters[0]", "Tags", "Duplicate tag key")
}

// Tags the model forbids (more than 50, reserved prefix, key too long,
// characters outside the pattern) are refused.
func TestImportTagConstraints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	many := []any{}
	for i := 0; i < 51; i++ {
		many = append(many, map[string]string{"Key": "k" + strings.Repeat("x", i), "Value": "v"})
	}
	for name, tags := range map[string][]any{
		"51 tags":     many,
		"aws: prefix": {map[string]string{"Key": "aws:owner", "Value": "me"}},
		"long key":    {map[string]string{"Key": strings.Repeat("k", 129), "Value": "v"}},
		"empty key":   {map[string]string{"Key": "", "Value": "v"}},
		"bad value":   {map[string]string{"Key": "k", "Value": "semi;colon"}},
		"long value":  {map[string]string{"Key": "k", "Value": strings.Repeat("v", 257)}},
	} {
		err := importDoc(e, nil, []any{map[string]any{"Tenant": tenantOf(acctA, "us-east-1"), "ID": "backup-aaaaaaaaaaa", "ClusterID": "cluster-aaaaaaaaaaa", "Tags": tags}})
		if err == nil {
			t.Errorf("%s: import accepted tags the model forbids", name)
			continue
		}
		refused(t, err, "backups[0]", "Tags")
	}
}

// A DEGRADED cluster whose StateBeforeDegraded is DEGRADED recurses without
// end when its transition falls due: the process dies of a stack overflow.
func TestImportDegradedUnderDegradedKillsTheServer(t *testing.T) {
	if os.Getenv("CLOUDHSM_LOCAL_TEST_CHILD") == "1" {
		e := newEnv(t, server.Config{})
		err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{
			"State": "DEGRADED", "StateBeforeDegraded": "DEGRADED", "Due": start.Add(time.Second),
			"Hsms": []any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"State": "DEGRADED"})}})}, nil)
		if err != nil {
			refused(t, err, "clusters[0]", "StateBeforeDegraded")
			return
		}
		_, _ = e.admin.Advance(ctx, 2*time.Second)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestImportDegradedUnderDegradedKillsTheServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CLOUDHSM_LOCAL_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		first, _, _ := strings.Cut(string(out), "\n\n")
		t.Fatalf("the server process died after importing StateBeforeDegraded DEGRADED: %v\n%.600s", err, first)
	}
}

// A DEGRADED cluster with no degraded HSM cannot be healed: heal wants a
// DEGRADED HSM, so the cluster stays DEGRADED.
func TestImportDegradedClusterWithoutDegradedHsm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"State": "DEGRADED", "Hsms": []any{vHsm("hsm-aaaaaaaaaaa", nil)}})}, nil)
	if err == nil {
		_, herr := e.admin.Heal(ctx, admin.HsmTarget{Account: acctA, ClusterID: "cluster-aaaaaaaaaaa", HsmID: "hsm-aaaaaaaaaaa"})
		t.Fatalf("import accepted a DEGRADED cluster whose HSMs are all ACTIVE; heal answers %v and the cluster stays DEGRADED", herr)
	}
	refused(t, err, "clusters[0]", "DEGRADED")
}

// Two HSMs with one id in a cluster: the second never leaves
// CREATE_IN_PROGRESS (its event finds the first).
func TestImportDuplicateHsmIDsNeverFinishCreating(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"State": "ACTIVE", "Hsms": []any{
		vHsm("hsm-aaaaaaaaaaa", map[string]any{"State": "CREATE_IN_PROGRESS"}),
		vHsm("hsm-aaaaaaaaaaa", map[string]any{"State": "CREATE_IN_PROGRESS"})}})}, nil)
	if err == nil {
		if _, err := e.admin.Advance(ctx, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		c := clusterState(t, e.sdk(acctA, "us-east-1", 1), "cluster-aaaaaaaaaaa")
		for _, h := range c.Hsms {
			if h.State != types.HsmStateActive {
				t.Fatalf("import accepted two HSMs with id hsm-aaaaaaaaaaa; a day later one is still %s", h.State)
			}
		}
		return
	}
	refused(t, err, "clusters[0]", "Hsms[1]", "hsm-aaaaaaaaaaa")
}

// Ids of one kind appear once per snapshot: otherwise the answer counts
// what was not imported.
func TestImportDuplicateIDsInOneSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", nil), vCluster("cluster-aaaaaaaaaaa", nil)},
		[]any{map[string]any{"Tenant": tenantOf(acctA, "us-east-1"), "ID": "backup-aaaaaaaaaaa"}})
	refused(t, err, "clusters[1]", "cluster-aaaaaaaaaaa")
	err = importDoc(e, nil, []any{map[string]any{"Tenant": tenantOf(acctA, "us-east-1"), "ID": "backup-aaaaaaaaaaa"}, map[string]any{"Tenant": tenantOf(acctA, "us-east-1"), "ID": "backup-aaaaaaaaaaa"}})
	refused(t, err, "backups[1]", "backup-aaaaaaaaaaa")
}

// A tenant the API cannot address (not a 12-digit account, not a region)
// is stored where no CloudHSM call reaches it, and reset ?account= cannot
// name it.
func TestImportTenantMustBeAddressable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{map[string]any{"Tenant": tenantOf(acctA, "mars-1"), "ID": "cluster-aaaaaaaaaaa"}}, nil)
	refused(t, err, "clusters[0]", "Tenant.Region", "mars-1")
	err = importDoc(e, nil, []any{map[string]any{"Tenant": tenantOf("alice", "us-east-1"), "ID": "backup-aaaaaaaaaaa"}})
	refused(t, err, "backups[0]", "Tenant.Account", "alice")
}

// An id outside the model's pattern is listed, but every call naming it is
// refused by the model's validation: the cluster cannot be deleted.
func TestImportIDsMustMatchTheModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-1", nil)}, nil)
	if err == nil {
		_, derr := e.sdk(acctA, "us-east-1", 1).DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String("cluster-1")})
		t.Fatalf("import accepted cluster id cluster-1; DeleteCluster of it: %v", derr)
	}
	refused(t, err, "clusters[0]", "ID", "cluster-1")
	err = importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"Hsms": []any{vHsm("my-hsm", nil)}})}, nil)
	refused(t, err, "clusters[0]", "Hsms[0]", "my-hsm")
	err = importDoc(e, nil, []any{map[string]any{"Tenant": tenantOf(acctA, "us-east-1"), "ID": "backup_1"}})
	refused(t, err, "backups[0]", "backup_1")
}

// Values outside the model's enums and ranges are refused.
func TestImportEnumsAndRanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	for _, c := range []struct {
		cluster map[string]any
		want    string
	}{
		{map[string]any{"HsmType": "hsm9.huge"}, "HsmType"},
		{map[string]any{"Mode": "fips"}, "Mode"},
		{map[string]any{"NetworkType": "IPV6"}, "NetworkType"},
		{map[string]any{"HsmType": "hsm1.medium", "Mode": "NON_FIPS"}, "NON_FIPS"},
		{map[string]any{"RetentionDays": -3}, "RetentionDays"},
		{map[string]any{"RetentionDays": 1000}, "RetentionDays"},
		{map[string]any{"State": "DEGRADED", "StateBeforeDegraded": "NAPPING", "Hsms": []any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"State": "DEGRADED"})}}, "StateBeforeDegraded"},
		{map[string]any{"Hsms": []any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"State": "SLEEPING"})}}, "Hsms[0]: State"},
	} {
		err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", c.cluster)}, nil)
		if err == nil {
			t.Errorf("import accepted %v", c.cluster)
			continue
		}
		refused(t, err, "clusters[0]", c.want)
	}
	for _, c := range []struct {
		backup map[string]any
		want   string
	}{
		{map[string]any{"HsmType": "hsm9.huge"}, "HsmType"},
		{map[string]any{"RetentionDays": 3}, "RetentionDays"},
		{map[string]any{"SourceRegion": "mars-1", "SourceBackup": "backup-bbbbbbbbbbb", "IsCopy": true}, "SourceRegion"},
		{map[string]any{"SourceBackup": "backup-bbbbbbbbbbb", "IsCopy": true}, "SourceRegion"},
	} {
		b := map[string]any{"Tenant": tenantOf(acctA, "eu-west-1"), "ID": "backup-aaaaaaaaaaa", "ClusterID": "cluster-aaaaaaaaaaa"}
		for k, v := range c.backup {
			b[k] = v
		}
		err := importDoc(e, nil, []any{b})
		if err == nil {
			t.Errorf("import accepted backup %v", c.backup)
			continue
		}
		refused(t, err, "backups[0]", c.want)
	}
}

// An HSM's place must exist: its zone has a subnet of the cluster, its
// address is an IPv4 address of that subnet, and no other HSM has it.
func TestImportHsmPlacement(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	for name, c := range map[string]struct {
		hsms []any
		want string
	}{
		"zone without subnet": {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"AZ": "us-east-1c", "EniIP": "10.0.3.9"})}, "us-east-1c"},
		"not an address":      {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"EniIP": "not-an-ip"})}, "EniIP"},
		"outside the subnet":  {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"EniIP": "192.168.0.9"})}, "EniIP"},
		"same address twice":  {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"EniIP": "10.0.1.9"}), vHsm("hsm-aaaaaaaaaab", map[string]any{"EniIP": "10.0.1.9"})}, "Hsms[1] (hsm-aaaaaaaaaab): EniIP"},
	} {
		err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"Hsms": c.hsms})}, nil)
		if err == nil {
			t.Errorf("%s: import accepted %v", name, c.hsms)
			continue
		}
		refused(t, err, "clusters[0]", c.want)
	}
}

// One refused item leaves the server as it was.
func TestImportIsAtomic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", nil), vCluster("cluster-aaaaaaaaaab", map[string]any{"State": "NAPPING"})},
		[]any{map[string]any{"Tenant": tenantOf(acctA, "us-east-1"), "ID": "backup-aaaaaaaaaaa"}})
	refused(t, err, "NAPPING")
	if n := countClusters(t, e.sdk(acctA, "us-east-1", 1)); n != 0 {
		t.Fatalf("a refused import left %d clusters", n)
	}
	if b := backupStates(t, e.sdk(acctA, "us-east-1", 1)); len(b) != 0 {
		t.Fatalf("a refused import left backups %v", b)
	}
}

// A seed file that import refuses stops the start with the item and field.
func TestSeedRefusedNamesTheItem(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "seed.json")
	doc := `{"clusters": [{"Tenant": {"Account": "111122223333", "Region": "us-east-1"}, "ID": "cluster-aaaaaaaaaaa", "RetentionDays": 5}]}`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := server.New(server.Config{InMemory: true, SeedFile: p})
	if err == nil || !strings.Contains(err.Error(), "seed "+p) || !strings.Contains(err.Error(), "RetentionDays") {
		t.Fatalf("want a seed error naming RetentionDays, got %v", err)
	}
}
