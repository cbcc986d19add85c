package cloudhsm_test

// Rules across resources: tags, quotas, tenancy and sharing through
// resource policies.

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

func tagsN(prefix string, n int) []cloudhsm.Tag {
	out := make([]cloudhsm.Tag, n)
	for i := range out {
		out[i] = cloudhsm.Tag{Key: fmt.Sprintf("%s%02d", prefix, i), Value: "v"}
	}
	return out
}

// Tag rules of CreateCluster, TagResource and UntagResource: no duplicate
// key in a request, no key beginning with aws: (any case), at most 50 tags
// on a resource (overwriting a key adds none), kept sorted by key.
func TestTagRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		tags []cloudhsm.Tag
		want string
	}{
		{"duplicate key", []cloudhsm.Tag{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}, "Duplicate tag key 'a'"},
		{"aws: prefix", []cloudhsm.Tag{{Key: "aws:owner"}}, "reserved"},
		{"AWS: prefix", []cloudhsm.Tag{{Key: "AWS:owner"}}, "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.on(t)
			_, err := e.createClusterIn(tenantA, func(in *cloudhsm.CreateClusterInput) { in.Tags = tc.tags })
			wantErr(t, err, cloudhsm.KindTag, tc.want)
			c := e.createCluster()
			wantErr(t, e.svc.TagResource(tenantA, c.ID, tc.tags), cloudhsm.KindTag, tc.want)
		})
	}
	c := e.createCluster(func(in *cloudhsm.CreateClusterInput) { in.Tags = []cloudhsm.Tag{{Key: "b"}, {Key: "a"}, {Key: "awsx"}} })
	if got := c.Tags; !slices.Equal(got, []cloudhsm.Tag{{Key: "a"}, {Key: "awsx"}, {Key: "b"}}) {
		t.Fatalf("tags %v, want sorted by key", got)
	}
	mustOK(t, e.svc.TagResource(tenantA, c.ID, tagsN("k", 47)))
	wantErr(t, e.svc.TagResource(tenantA, c.ID, tagsN("z", 1)), cloudhsm.KindLimitExceeded, "would have 51 tags")
	mustOK(t, e.svc.TagResource(tenantA, c.ID, []cloudhsm.Tag{{Key: "a", Value: "new"}, {Key: "k00", Value: "new"}}))
	if got := e.cluster(c.ID).Tags; len(got) != 50 || got[0] != (cloudhsm.Tag{Key: "a", Value: "new"}) {
		t.Fatalf("after overwriting: %d tags, first %v", len(got), got[0])
	}
	mustOK(t, e.svc.UntagResource(tenantA, c.ID, []string{"a", "absent"}))
	mustOK(t, e.svc.TagResource(tenantA, c.ID, tagsN("z", 1)))
	page, more, err := e.svc.ListTags(tenantA, c.ID, nil, 20)
	mustOK(t, err)
	if len(page) != 20 || !more || page[0].Key != "awsx" {
		t.Fatalf("first page: %d tags, more %v, first %v", len(page), more, page[0])
	}
	last := page[19].Key
	page, more, err = e.svc.ListTags(tenantA, c.ID, &cloudhsm.TagPosition{Prefix: last, Matches: func(k string) bool { return k == last }}, 100)
	mustOK(t, err)
	if len(page) != 30 || more || page[0].Key <= last {
		t.Fatalf("second page: %d tags, more %v", len(page), more)
	}
}

// Backups take their cluster's tags and can be tagged themselves, but not
// once DELETED; an id that is neither a cluster's nor a backup's is refused.
func TestBackupTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active(func(in *cloudhsm.CreateClusterInput) { in.Tags = []cloudhsm.Tag{{Key: "team", Value: "x"}} })
	b := e.backups(c.ID)[0]
	if !slices.Equal(b.Tags, []cloudhsm.Tag{{Key: "team", Value: "x"}}) {
		t.Fatalf("backup tags %v, want the cluster's", b.Tags)
	}
	mustOK(t, e.svc.TagResource(tenantA, b.ID, []cloudhsm.Tag{{Key: "keep", Value: "yes"}}))
	if got, _, _ := e.svc.ListTags(tenantA, b.ID, nil, 100); len(got) != 2 {
		t.Fatalf("backup tags %v", got)
	}
	if got := e.cluster(c.ID).Tags; len(got) != 1 {
		t.Fatalf("tagging the backup changed the cluster's tags: %v", got)
	}
	wantErr(t, e.svc.TagResource(tenantA, "hsm-aaaaaaaaaaa", []cloudhsm.Tag{{Key: "k"}}), cloudhsm.KindInvalidRequest, "neither a cluster id nor a backup id")
	_, err := e.svc.DeleteBackup(tenantA, b.ID)
	mustOK(t, err)
	e.advance(7 * day)
	wantErr(t, e.svc.TagResource(tenantA, b.ID, []cloudhsm.Tag{{Key: "k"}}), cloudhsm.KindNotFound, b.ID)
	_, _, err = e.svc.ListTags(tenantA, b.ID, nil, 100)
	wantErr(t, err, cloudhsm.KindNotFound, b.ID)
}

// Quotas per account and region: clusters not DELETED
// (ClustersPerRegion, LimitExceeded) and HSMs, also those being deleted
// (HsmsPerRegion, InvalidRequest); 0 turns a quota off.
func TestQuotas(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *cloudhsm.Config) { c.ClustersPerRegion, c.HsmsPerRegion = 2, 2 })
	first := e.createCluster()
	e.createCluster()
	_, err := e.createClusterIn(tenantA)
	wantErr(t, err, cloudhsm.KindLimitExceeded, "quota of 2 clusters", region, acctA)
	for _, other := range []cloudhsm.Tenant{tenantB, {Account: acctA, Region: region2}} {
		if _, err := e.createClusterIn(other); err != nil {
			t.Fatalf("%v has its own quota: %v", other, err)
		}
	}
	e.advance(testDelays().ClusterCreate)
	_, err = e.svc.DeleteCluster(tenantA, first.ID)
	mustOK(t, err)
	_, err = e.createClusterIn(tenantA)
	wantErr(t, err, cloudhsm.KindLimitExceeded, "quota of 2 clusters")
	e.advance(testDelays().ClusterDelete)
	_, err = e.createClusterIn(tenantA)
	mustOK(t, err)

	one := e.importCluster(snapCluster(tenantC, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive))
	two := e.importCluster(snapCluster(tenantC, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive))
	_, err = e.svc.CreateHsm(context.Background(), tenantC, cloudhsm.CreateHsmInput{ClusterID: two, AZ: testSubnet.AZ})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "quota of 2 HSMs", acctC)
	h := e.clusterOf(tenantC, one).Hsms[0]
	_, err = e.svc.DeleteHsm(tenantC, cloudhsm.DeleteHsmInput{ClusterID: one, HsmID: h.ID})
	mustOK(t, err)
	_, err = e.svc.CreateHsm(context.Background(), tenantC, cloudhsm.CreateHsmInput{ClusterID: two, AZ: testSubnet.AZ})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "quota of 2 HSMs")
	e.advance(testDelays().HsmDelete)
	_, err = e.svc.CreateHsm(context.Background(), tenantC, cloudhsm.CreateHsmInput{ClusterID: two, AZ: testSubnet.AZ})
	mustOK(t, err)

	off := newEnv(t)
	for i := range 5 {
		if _, err := off.createClusterIn(tenantA); err != nil {
			t.Fatalf("cluster %d without a quota: %v", i+1, err)
		}
	}
}

// Nothing of one (account, region) is visible or reachable from another:
// another account in the region, or the account in another region.
func TestTenancyIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, h := e.active()
	b := e.backups(c.ID)[0]
	for _, other := range []cloudhsm.Tenant{tenantB, {Account: acctA, Region: region2}} {
		t.Run(other.Account+"/"+other.Region, func(t *testing.T) {
			if cs, _, _ := e.describe(other, cloudhsm.ClusterFilter{}, 25); len(cs) != 0 {
				t.Fatalf("%d clusters visible", len(cs))
			}
			if bs, _, _ := e.svc.DescribeBackups(other, cloudhsm.DescribeBackupsInput{Limit: 50}); len(bs) != 0 {
				t.Fatalf("%d backups visible", len(bs))
			}
			for name, err := range map[string]error{
				"CreateHsm":              second(e.svc.CreateHsm(context.Background(), other, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: az(1)})),
				"DeleteHsm":              second(e.svc.DeleteHsm(other, cloudhsm.DeleteHsmInput{ClusterID: c.ID, HsmID: h.ID})),
				"DeleteCluster":          second(e.svc.DeleteCluster(other, c.ID)),
				"ModifyCluster":          second(e.svc.ModifyCluster(other, cloudhsm.ModifyClusterInput{ClusterID: c.ID, RetentionDays: 30})),
				"InitializeCluster":      second(e.svc.InitializeCluster(other, c.ID, "x", "y")),
				"TagResource":            e.svc.TagResource(other, c.ID, []cloudhsm.Tag{{Key: "k"}}),
				"UntagResource":          e.svc.UntagResource(other, b.ID, []string{"k"}),
				"ListTags":               third(e.svc.ListTags(other, c.ID, nil, 10)),
				"DeleteBackup":           second(e.svc.DeleteBackup(other, b.ID)),
				"RestoreBackup":          second(e.svc.RestoreBackup(other, b.ID)),
				"ModifyBackupAttributes": second(e.svc.ModifyBackupAttributes(other, b.ID, true)),
				"CopyBackupToRegion":     second(e.svc.CopyBackupToRegion(other, b.ID, "eu-central-1", nil, false)),
				"CreateCluster from it":  second(e.createClusterIn(other, func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = b.ID })),
				"DegradeHsm":             second(e.svc.DegradeHsm(other, c.ID, h.ID)),
			} {
				t.Run(name, func(t *testing.T) { wantErr(t, err, cloudhsm.KindNotFound) })
			}
		})
	}
	if got := e.cluster(c.ID); got.State != cloudhsm.ClusterActive || len(got.Hsms) != 1 || len(got.Tags) != 0 {
		t.Fatalf("another tenant changed the cluster: %s, %d HSMs, tags %v", got.State, len(got.Hsms), got.Tags)
	}
}

func third[A, B any](_ A, _ B, err error) error { return err }

const sharePolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["%s"]},"Action":["cloudhsm:DescribeBackups","cloudhsm:CreateCluster"],"Resource":"%s"}]}`

// A backup's resource policy shares it with the accounts it allows in its
// region: they list it with Shared and restore it by ARN (not by bare
// id); only its owner reads or changes the policy; deleting the policy
// unshares it, leaving restored clusters alone.
func TestResourcePolicySharing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active()
	b := e.backups(c.ID)[0]
	arn := b.ARN()
	if want := "arn:aws:cloudhsm:" + region + ":" + acctA + ":backup/" + b.ID; arn != want {
		t.Fatalf("ARN %s, want %s", arn, want)
	}
	policy := fmt.Sprintf(sharePolicy, "arn:aws:iam::"+acctB+":root", arn)
	got, err := e.svc.PutResourcePolicy(tenantA, arn, policy)
	if err != nil || got != policy {
		t.Fatalf("PutResourcePolicy: %q, %v", got, err)
	}
	if got, err := e.svc.GetResourcePolicy(tenantA, arn); err != nil || got != policy {
		t.Fatalf("GetResourcePolicy: %q, %v", got, err)
	}
	for _, tc := range []struct {
		t    cloudhsm.Tenant
		want bool
	}{{tenantA, false}, {tenantB, true}, {tenantC, false}, {cloudhsm.Tenant{Account: acctB, Region: region2}, false}} {
		if got := e.shared(tc.t); slices.Contains(got, b.ID) != tc.want || len(got) > 1 {
			t.Fatalf("Shared backups of %v: %v, want shared %v", tc.t, got, tc.want)
		}
	}
	_, err = e.svc.GetResourcePolicy(tenantB, arn)
	wantErr(t, err, cloudhsm.KindAccessDenied, "owner")
	_, err = e.svc.PutResourcePolicy(tenantB, arn, fmt.Sprintf(sharePolicy, acctB, arn))
	wantErr(t, err, cloudhsm.KindAccessDenied, "owner")
	restored, err := e.createClusterIn(tenantB, func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = arn })
	if err != nil || restored.ClusterCertificate != b.ClusterCertificate || restored.SourceBackupID != arn {
		t.Fatalf("CreateCluster in the shared account: %v", err)
	}
	for name, tc := range map[string]struct {
		t   cloudhsm.Tenant
		ref string
	}{"bare id": {tenantB, b.ID}, "not shared with": {tenantC, arn}} {
		_, err := e.createClusterIn(tc.t, func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = tc.ref })
		t.Run(name, func(t *testing.T) { wantErr(t, err, cloudhsm.KindNotFound) })
	}
	old, err := e.svc.DeleteResourcePolicy(tenantA, arn)
	if err != nil || old != policy {
		t.Fatalf("DeleteResourcePolicy: %q, %v", old, err)
	}
	if got := e.shared(tenantB); len(got) != 0 {
		t.Fatalf("still shared after DeleteResourcePolicy: %v", got)
	}
	_, err = e.createClusterIn(tenantB, func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = arn })
	wantErr(t, err, cloudhsm.KindNotFound)
	e.advance(testDelays().ClusterCreate)
	if got := e.clusterOf(tenantB, restored.ID); got == nil || got.State != cloudhsm.ClusterActive {
		t.Fatalf("the cluster restored before the unsharing: %+v", got)
	}
}

// shared lists the ids of the backups shared with t.
func (e *env) shared(t cloudhsm.Tenant) []string {
	e.t.Helper()
	bs, _, err := e.svc.DescribeBackups(t, cloudhsm.DescribeBackupsInput{Shared: true, Limit: 50})
	mustOK(e.t, err)
	var ids []string
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	return ids
}

// A policy is refused unless it is a valid IAM-style policy about this
// backup with account principals and CloudHSM actions; Deny wins over
// Allow; only a READY backup is shared.
func TestResourcePolicyRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active()
	b := e.backups(c.ID)[0]
	arn := b.ARN()
	stmt := func(s string) string { return `{"Version":"2012-10-17","Statement":[` + s + `]}` }
	good := fmt.Sprintf(`{"Effect":"Allow","Principal":{"AWS":"%s"},"Action":"cloudhsm:DescribeBackups","Resource":"%s"}`, acctB, arn)
	for _, tc := range []struct{ name, policy, want string }{
		{"not JSON", "{", "not a JSON object"},
		{"no Version", `{"Statement":[` + good + `]}`, "Version element is missing"},
		{"old Version", `{"Version":"2011-01-01","Statement":[` + good + `]}`, "Version must be"},
		{"no Statement", `{"Version":"2012-10-17"}`, "Statement element is missing"},
		{"bad Effect", stmt(`{"Effect":"Maybe","Principal":{"AWS":"` + acctB + `"},"Action":"cloudhsm:X","Resource":"` + arn + `"}`), "Effect"},
		{"anyone", stmt(`{"Effect":"Allow","Principal":"*","Action":"cloudhsm:X","Resource":"` + arn + `"}`), "Principal"},
		{"bad account", stmt(`{"Effect":"Allow","Principal":{"AWS":"123"},"Action":"cloudhsm:X","Resource":"` + arn + `"}`), "12-digit"},
		{"other service", stmt(`{"Effect":"Allow","Principal":{"AWS":"` + acctB + `"},"Action":"s3:GetObject","Resource":"` + arn + `"}`), "not a CloudHSM action"},
		{"other resource", stmt(`{"Effect":"Allow","Principal":{"AWS":"` + acctB + `"},"Action":"cloudhsm:X","Resource":"` + arn + `x"}`), "not this backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.PutResourcePolicy(tenantA, arn, tc.policy)
			wantErr(t, err, cloudhsm.KindInvalidRequest, "Invalid resource policy", tc.want)
		})
	}
	for _, ref := range []string{"", "arn:aws:cloudhsm:" + region + ":" + acctA + ":cluster/" + c.ID, "arn:aws-us-gov:cloudhsm:" + region + ":" + acctA + ":backup/" + b.ID} {
		_, err := e.svc.PutResourcePolicy(tenantA, ref, stmt(good))
		wantErr(t, err, cloudhsm.KindInvalidRequest)
	}
	deny := fmt.Sprintf(`{"Effect":"Deny","Principal":{"AWS":"%s"},"Action":"cloudhsm:*","Resource":"%s"}`, acctB, arn)
	_, err := e.svc.PutResourcePolicy(tenantA, arn, stmt(good+","+deny))
	mustOK(t, err)
	if got := e.shared(tenantB); len(got) != 0 {
		t.Fatalf("shared despite a Deny: %v", got)
	}
	_, err = e.svc.PutResourcePolicy(tenantA, arn, stmt(good))
	mustOK(t, err)
	if got := e.shared(tenantB); len(got) != 1 {
		t.Fatalf("not shared by a valid policy: %v", got)
	}
	_, err = e.svc.DeleteBackup(tenantA, b.ID)
	mustOK(t, err)
	if got := e.shared(tenantB); len(got) != 0 {
		t.Fatalf("a backup pending deletion is still shared: %v", got)
	}
	_, err = e.svc.PutResourcePolicy(tenantA, arn, stmt(good))
	wantErr(t, err, cloudhsm.KindInvalidRequest, "only a READY backup can be shared")
}
