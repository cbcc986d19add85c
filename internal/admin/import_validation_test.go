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

var subnetA = map[string]string{"subnetId": "subnet-0f1e2d3c4b5a69781", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "us-east-1a", "cidr": "10.0.1.0/24"}

// with returns m with the fields of extra added.
func with(m, extra map[string]any) map[string]any {
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// vCluster is a valid cluster of acctA in us-east-1 with extra fields.
func vCluster(id string, extra map[string]any) map[string]any {
	return with(map[string]any{"account": acctA, "region": "us-east-1", "clusterId": id, "subnets": []any{subnetA}}, extra)
}

// vHsm is an HSM in us-east-1a with a placeholder identity (no key generation).
func vHsm(id string, extra map[string]any) map[string]any {
	return with(map[string]any{"hsmId": id, "availabilityZone": "us-east-1a", "identity": map[string]string{"serial": "RCN0000000001"}}, extra)
}

// vBackup is a backup of account in region with extra fields.
func vBackup(account, region, id string, extra map[string]any) map[string]any {
	return with(map[string]any{"account": account, "region": region, "backupId": id}, extra)
}

// importDoc imports a version 2 document of these clusters and backups.
func importDoc(e *env, clusters, backups []any) error {
	doc, _ := json.Marshal(map[string]any{"version": 2, "clusters": clusters, "backups": backups})
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
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"createdAt": "1969-12-31T23:59:58.5Z"})}, nil)
	if err == nil {
		if _, derr := e.sdk(acctA, "us-east-1", 1).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); derr != nil {
			t.Fatalf("import accepted Created 1969-12-31T23:59:58.5Z; DescribeClusters now fails: %v", derr)
		}
		return
	}
	refused(t, err, "clusters[0]", "createdAt")
}

// A time after 2262 does not fit the Unix nanoseconds the scheduler keeps
// (its markers and next-due time); refused, like times before 1970.
func TestImportTimeBeyond2262(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"state": "DELETE_IN_PROGRESS", "transitionDueAt": "2300-01-01T00:00:00Z"})}, nil)
	refused(t, err, "clusters[0]", "transitionDueAt")
}

// Duplicate tag keys make ListTags pagination endless.
func TestImportDuplicateTagKeysMakeListTagsEndless(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	tags := []any{map[string]string{"key": "a", "value": "1"}, map[string]string{"key": "a", "value": "2"}, map[string]string{"key": "a", "value": "3"}}
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"tags": tags})}, nil)
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
	refused(t, err, "clusters[0]", "tags", "Duplicate tag key")
}

// Tags the model forbids (more than 50, reserved prefix, key too long,
// characters outside the pattern) are refused.
func TestImportTagConstraints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	many := []any{}
	for i := 0; i < 51; i++ {
		many = append(many, map[string]string{"key": "k" + strings.Repeat("x", i), "value": "v"})
	}
	for name, tags := range map[string][]any{
		"51 tags":     many,
		"aws: prefix": {map[string]string{"key": "aws:owner", "value": "me"}},
		"long key":    {map[string]string{"key": strings.Repeat("k", 129), "value": "v"}},
		"empty key":   {map[string]string{"key": "", "value": "v"}},
		"bad value":   {map[string]string{"key": "k", "value": "semi;colon"}},
		"long value":  {map[string]string{"key": "k", "value": strings.Repeat("v", 257)}},
	} {
		err := importDoc(e, nil, []any{vBackup(acctA, "us-east-1", "backup-aaaaaaaaaaa", map[string]any{"clusterId": "cluster-aaaaaaaaaaa", "tags": tags})})
		if err == nil {
			t.Errorf("%s: import accepted tags the model forbids", name)
			continue
		}
		refused(t, err, "backups[0]", "tags")
	}
}

// A DEGRADED cluster whose stateBeforeDegraded is DEGRADED recurses without
// end when its transition falls due: the process dies of a stack overflow.
func TestImportDegradedUnderDegradedKillsTheServer(t *testing.T) {
	if os.Getenv("CLOUDHSM_LOCAL_TEST_CHILD") == "1" {
		e := newEnv(t, server.Config{})
		err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{
			"state": "DEGRADED", "stateBeforeDegraded": "DEGRADED", "transitionDueAt": start.Add(time.Second),
			"hsms": []any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"state": "DEGRADED"})}})}, nil)
		if err != nil {
			refused(t, err, "clusters[0]", "stateBeforeDegraded")
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
		t.Fatalf("the server process died after importing stateBeforeDegraded DEGRADED: %v\n%.600s", err, first)
	}
}

// A DEGRADED cluster with no degraded HSM cannot be healed: heal wants a
// DEGRADED HSM, so the cluster stays DEGRADED.
func TestImportDegradedClusterWithoutDegradedHsm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"state": "DEGRADED", "hsms": []any{vHsm("hsm-aaaaaaaaaaa", nil)}})}, nil)
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
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"state": "ACTIVE", "hsms": []any{
		vHsm("hsm-aaaaaaaaaaa", map[string]any{"state": "CREATE_IN_PROGRESS"}),
		vHsm("hsm-aaaaaaaaaaa", map[string]any{"state": "CREATE_IN_PROGRESS"})}})}, nil)
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
	refused(t, err, "clusters[0]", "hsms[1]", "hsmId", "hsm-aaaaaaaaaaa")
}

// Ids of one kind appear once per snapshot: otherwise the answer counts
// what was not imported.
func TestImportDuplicateIDsInOneSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", nil), vCluster("cluster-aaaaaaaaaaa", nil)},
		[]any{vBackup(acctA, "us-east-1", "backup-aaaaaaaaaaa", nil)})
	refused(t, err, "clusters[1]", "clusterId", "cluster-aaaaaaaaaaa")
	err = importDoc(e, nil, []any{vBackup(acctA, "us-east-1", "backup-aaaaaaaaaaa", nil), vBackup(acctA, "us-east-1", "backup-aaaaaaaaaaa", nil)})
	refused(t, err, "backups[1]", "backupId", "backup-aaaaaaaaaaa")
}

// A tenant the API cannot address (not a 12-digit account, not a region)
// is stored where no CloudHSM call reaches it, and reset ?account= cannot
// name it.
func TestImportTenantMustBeAddressable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	err := importDoc(e, []any{map[string]any{"account": acctA, "region": "mars-1", "clusterId": "cluster-aaaaaaaaaaa"}}, nil)
	refused(t, err, "clusters[0]", "region", "mars-1")
	err = importDoc(e, nil, []any{vBackup("alice", "us-east-1", "backup-aaaaaaaaaaa", nil)})
	refused(t, err, "backups[0]", "account", "alice")
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
	refused(t, err, "clusters[0]", "clusterId", "cluster-1")
	err = importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"hsms": []any{vHsm("my-hsm", nil)}})}, nil)
	refused(t, err, "clusters[0]", "hsms[0]", "hsmId", "my-hsm")
	err = importDoc(e, nil, []any{vBackup(acctA, "us-east-1", "backup_1", nil)})
	refused(t, err, "backups[0]", "backupId", "backup_1")
}

// Values outside the model's enums and ranges are refused.
func TestImportEnumsAndRanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	for _, c := range []struct {
		cluster map[string]any
		want    string
	}{
		{map[string]any{"hsmType": "hsm9.huge"}, "hsmType"},
		{map[string]any{"mode": "fips"}, "mode"},
		{map[string]any{"networkType": "IPV6"}, "networkType"},
		{map[string]any{"hsmType": "hsm1.medium", "mode": "NON_FIPS"}, "NON_FIPS"},
		{map[string]any{"backupRetentionDays": -3}, "backupRetentionDays"},
		{map[string]any{"backupRetentionDays": 1000}, "backupRetentionDays"},
		{map[string]any{"state": "DEGRADED", "stateBeforeDegraded": "NAPPING", "hsms": []any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"state": "DEGRADED"})}}, "stateBeforeDegraded"},
		{map[string]any{"hsms": []any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"state": "SLEEPING"})}}, "hsms[0]: state"},
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
		{map[string]any{"hsmType": "hsm9.huge"}, "hsmType"},
		{map[string]any{"backupRetentionDays": 3}, "backupRetentionDays"},
		{map[string]any{"sourceRegion": "mars-1", "sourceBackupId": "backup-bbbbbbbbbbb"}, "sourceRegion"},
		{map[string]any{"sourceBackupId": "backup-bbbbbbbbbbb"}, "sourceRegion"},
	} {
		b := vBackup(acctA, "eu-west-1", "backup-aaaaaaaaaaa", with(map[string]any{"clusterId": "cluster-aaaaaaaaaaa"}, c.backup))
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
		"zone without subnet": {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"availabilityZone": "us-east-1c", "eniIp": "10.0.3.9"})}, "us-east-1c"},
		"not an address":      {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"eniIp": "not-an-ip"})}, "eniIp"},
		"outside the subnet":  {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"eniIp": "192.168.0.9"})}, "eniIp"},
		"same address twice":  {[]any{vHsm("hsm-aaaaaaaaaaa", map[string]any{"eniIp": "10.0.1.9"}), vHsm("hsm-aaaaaaaaaab", map[string]any{"eniIp": "10.0.1.9"})}, "hsms[1] (hsm-aaaaaaaaaab): eniIp"},
	} {
		err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", map[string]any{"hsms": c.hsms})}, nil)
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
	err := importDoc(e, []any{vCluster("cluster-aaaaaaaaaaa", nil), vCluster("cluster-aaaaaaaaaab", map[string]any{"state": "NAPPING"})},
		[]any{vBackup(acctA, "us-east-1", "backup-aaaaaaaaaaa", nil)})
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
	doc := `{"version": 2, "clusters": [{"account": "111122223333", "region": "us-east-1", "clusterId": "cluster-aaaaaaaaaaa", "backupRetentionDays": 5}]}`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := server.New(server.Config{InMemory: true, SeedFile: p})
	if err == nil || !strings.Contains(err.Error(), "seed "+p) || !strings.Contains(err.Error(), "clusters[0] (cluster-aaaaaaaaaaa): backupRetentionDays") {
		t.Fatalf("want a seed error naming clusters[0] and backupRetentionDays, got %v", err)
	}
}
