package cloudhsmlocal_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

const day = 24 * time.Hour

// activeCluster walks a new cluster to ACTIVE with one HSM and returns it
// with the AZ of its HSM. The activation backup is READY afterwards.
func activeCluster(t *testing.T, srv *cloudhsmlocal.Server, c *cloudhsmv2.Client, tags ...types.Tag) (*types.Cluster, string) {
	t.Helper()
	in := &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(2)}
	if len(tags) > 0 {
		in.TagList = tags
	}
	out, err := c.CreateCluster(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id := out.Cluster.ClusterId
	srv.Advance(time.Second)
	cl := describe(t, c, *id)
	var az string
	for k := range cl.SubnetMapping {
		az = k
		break
	}
	if _, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: id, AvailabilityZone: aws.String(az)}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	cl = describe(t, c, *id)
	ca := newTestCA(t)
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: id, SignedCert: aws.String(ca.MustSign(t, *cl.Certificates.ClusterCsr)), TrustAnchor: aws.String(ca.PEM)}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(2 * time.Second) // INITIALIZED, ACTIVE, activation backup READY
	cl = describe(t, c, *id)
	if cl.State != types.ClusterStateActive {
		t.Fatalf("cluster %s is %s, want ACTIVE", *id, cl.State)
	}
	return cl, az
}

func backupsOf(t *testing.T, c *cloudhsmv2.Client, clusterID string) []types.Backup {
	t.Helper()
	var out []types.Backup
	p := cloudhsmv2.NewDescribeBackupsPaginator(c, &cloudhsmv2.DescribeBackupsInput{
		Filters: map[string][]string{"clusterIds": {clusterID}}, SortAscending: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Backups...)
	}
	return out
}

func states(bs []types.Backup) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b.BackupState)
	}
	return out
}

func TestBackupOnActivationCarriesClusterAttributes(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c, types.Tag{Key: aws.String("team"), Value: aws.String("payments")})
	bs := backupsOf(t, c, *cl.ClusterId)
	if len(bs) != 1 {
		t.Fatalf("want 1 backup after activation, got %d", len(bs))
	}
	b := bs[0]
	if b.BackupState != types.BackupStateReady || aws.ToString(b.HsmType) != "hsm2m.medium" || b.Mode != types.ClusterModeFips {
		t.Fatalf("backup %+v", b)
	}
	wantARN := fmt.Sprintf("arn:aws:cloudhsm:us-east-1:%s:backup/%s", cloudhsmlocal.DefaultAccount, *b.BackupId)
	if aws.ToString(b.BackupArn) != wantARN {
		t.Fatalf("ARN %s, want %s", aws.ToString(b.BackupArn), wantARN)
	}
	if len(b.TagList) != 1 || *b.TagList[0].Key != "team" {
		t.Fatalf("backup tags %+v", b.TagList)
	}
	if b.DeleteTimestamp != nil || b.CopyTimestamp != nil {
		t.Fatalf("fresh backup has delete/copy timestamps")
	}
}

func TestScheduledBackupsAndRetention(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	id := *cl.ClusterId
	// Retention 7 days, then 10 days of clock: one backup a day.
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id, BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("7")}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		srv.Advance(day)
	}
	bs := backupsOf(t, c, id)
	if len(bs) != 11 {
		t.Fatalf("want 11 backups (activation + 10 daily), got %d: %v", len(bs), states(bs))
	}
	// Backups older than 7 days are purged into PENDING_DELETION with a
	// DeleteTimestamp 7 days after the purge.
	now := srv.Now()
	for _, b := range bs {
		age := now.Sub(*b.CreateTimestamp)
		purged := b.BackupState == types.BackupStatePendingDeletion
		if age > 7*day+time.Minute && !purged {
			t.Errorf("backup aged %v is %s, want PENDING_DELETION", age, b.BackupState)
		}
		if age < 7*day && purged {
			t.Errorf("backup aged %v was purged", age)
		}
		if purged && (b.DeleteTimestamp == nil || b.DeleteTimestamp.Before(now.Add(3*day))) {
			t.Errorf("purged backup DeleteTimestamp %v", b.DeleteTimestamp)
		}
	}
	// Seven more days: the purged ones are gone for good (DELETED, then absent).
	srv.Advance(7 * day)
	srv.Advance(2 * time.Hour)
	for _, b := range backupsOf(t, c, id) {
		if b.BackupState == types.BackupStateDeleted {
			t.Errorf("DELETED backup %s still listed after the deleted retention", *b.BackupId)
		}
	}
}

func TestRetentionNeverDeletesTheLastBackup(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, az := activeCluster(t, srv, c)
	id := *cl.ClusterId
	// Remove the only HSM: a backup is taken on removal, and afterwards no
	// scheduled backups happen (no HSM).
	hsmID := cl.Hsms[0].HsmId
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: hsmID}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	_ = az
	srv.Advance(200 * day)
	bs := backupsOf(t, c, id)
	ready := 0
	for _, b := range bs {
		if b.BackupState == types.BackupStateReady {
			ready++
		}
	}
	if ready != 1 {
		t.Fatalf("want exactly the last backup kept READY after 200 days, got %v", states(bs))
	}
	if last := bs[len(bs)-1]; last.BackupState != types.BackupStateReady {
		t.Fatalf("the most recent backup is %s", last.BackupState)
	}
}

func TestNeverExpiresExemptsFromRetention(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	first := backupsOf(t, c, *cl.ClusterId)[0]
	out, err := c.ModifyBackupAttributes(ctx, &cloudhsmv2.ModifyBackupAttributesInput{BackupId: first.BackupId, NeverExpires: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(out.Backup.NeverExpires) {
		t.Fatal("NeverExpires not set")
	}
	for i := 0; i < 100; i++ {
		srv.Advance(day)
	}
	for _, b := range backupsOf(t, c, *cl.ClusterId) {
		if *b.BackupId == *first.BackupId && b.BackupState != types.BackupStateReady {
			t.Fatalf("NeverExpires backup is %s after 100 days", b.BackupState)
		}
	}
	ne, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"neverExpires": {"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ne.Backups) != 1 || *ne.Backups[0].BackupId != *first.BackupId {
		t.Fatalf("neverExpires filter returned %d backups", len(ne.Backups))
	}
	_, err = c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"neverExpires": {"yes"}}})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "neverExpires")
}

func TestDeleteAndRestoreBackup(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	b := backupsOf(t, c, *cl.ClusterId)[0]
	del, err := c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: b.BackupId})
	if err != nil {
		t.Fatal(err)
	}
	if del.Backup.BackupState != types.BackupStatePendingDeletion || !del.Backup.DeleteTimestamp.Equal(srv.Now().Add(7*day)) {
		t.Fatalf("after delete: %s %v (now %v)", del.Backup.BackupState, del.Backup.DeleteTimestamp, srv.Now())
	}
	_, err = c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: b.BackupId})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "PENDING_DELETION")
	res, err := c.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: b.BackupId})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backup.BackupState != types.BackupStateReady || res.Backup.DeleteTimestamp != nil {
		t.Fatalf("after restore: %s %v", res.Backup.BackupState, res.Backup.DeleteTimestamp)
	}
	_, err = c.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: b.BackupId})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "PENDING_DELETION")
	// Delete again and let the 7-day window pass: DELETED, then gone.
	if _, err := c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: b.BackupId}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(7 * day)
	got, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"backupIds": {*b.BackupId}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Backups) != 1 || got.Backups[0].BackupState != types.BackupStateDeleted {
		t.Fatalf("after 7 days want DELETED, got %v", states(got.Backups))
	}
	_, err = c.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: b.BackupId})
	wantAPIError(t, err, "CloudHsmInvalidRequestException")
	srv.Advance(2 * time.Hour)
	got, _ = c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"backupIds": {*b.BackupId}}})
	if len(got.Backups) != 0 {
		t.Fatalf("DELETED backup still visible after the retention: %v", states(got.Backups))
	}
	// Unknown ids.
	for _, call := range []func() error{
		func() error {
			_, e := c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: aws.String("backup-aaaaaaaaaaa")})
			return e
		},
		func() error {
			_, e := c.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: aws.String("backup-aaaaaaaaaaa")})
			return e
		},
		func() error {
			_, e := c.ModifyBackupAttributes(ctx, &cloudhsmv2.ModifyBackupAttributesInput{BackupId: aws.String("backup-aaaaaaaaaaa"), NeverExpires: aws.Bool(true)})
			return e
		},
	} {
		wantAPIError(t, call(), "CloudHsmResourceNotFoundException", "backup-aaaaaaaaaaa")
	}
}

func TestCopyBackupToRegion(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c, types.Tag{Key: aws.String("k"), Value: aws.String("v")})
	src := backupsOf(t, c, *cl.ClusterId)[0]
	out, err := c.CopyBackupToRegion(ctx, &cloudhsmv2.CopyBackupToRegionInput{BackupId: src.BackupId, DestinationRegion: aws.String("eu-west-1")})
	if err != nil {
		t.Fatal(err)
	}
	d := out.DestinationBackup
	if aws.ToString(d.SourceBackup) != *src.BackupId || aws.ToString(d.SourceRegion) != "us-east-1" || aws.ToString(d.SourceCluster) != *cl.ClusterId || !d.CreateTimestamp.Equal(*src.CreateTimestamp) {
		t.Fatalf("DestinationBackup %+v", d)
	}
	eu := clientFor(srv, cloudhsmlocal.DefaultAccount, "eu-west-1")
	find := func() types.Backup {
		got, err := eu.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"sourceBackupIds": {*src.BackupId}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Backups) != 1 {
			t.Fatalf("want 1 copy in eu-west-1, got %d", len(got.Backups))
		}
		return got.Backups[0]
	}
	cp := find()
	if cp.BackupState != types.BackupStateCreateInProgress || *cp.BackupId == *src.BackupId || cp.CopyTimestamp == nil {
		t.Fatalf("copy %+v", cp)
	}
	if len(cp.TagList) != 1 || *cp.TagList[0].Key != "k" {
		t.Fatalf("copy should carry the source's tags: %+v", cp.TagList)
	}
	srv.Advance(time.Second)
	if cp = find(); cp.BackupState != types.BackupStateReady {
		t.Fatalf("copy is %s", cp.BackupState)
	}
	// Tags given replace the source's.
	if _, err := c.CopyBackupToRegion(ctx, &cloudhsmv2.CopyBackupToRegionInput{BackupId: src.BackupId, DestinationRegion: aws.String("us-west-2"),
		TagList: []types.Tag{{Key: aws.String("only"), Value: aws.String("this")}}}); err != nil {
		t.Fatal(err)
	}
	w2, _ := clientFor(srv, cloudhsmlocal.DefaultAccount, "us-west-2").DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{})
	if len(w2.Backups) != 1 || len(w2.Backups[0].TagList) != 1 || *w2.Backups[0].TagList[0].Key != "only" {
		t.Fatalf("copy with tags: %+v", w2.Backups)
	}
	// Copies have no retention.
	srv.Advance(400 * day)
	if cp = find(); cp.BackupState != types.BackupStateReady {
		t.Fatalf("copy after 400 days is %s", cp.BackupState)
	}
	all := backupsOf(t, c, *cl.ClusterId)
	for _, tc := range []struct {
		name, region, backup, code string
	}{
		{"same region", "us-east-1", *all[len(all)-1].BackupId, "CloudHsmInvalidRequestException"},
		{"unknown region", "xx-east-9", *all[len(all)-1].BackupId, "CloudHsmInvalidRequestException"},
		{"govcloud", "us-gov-west-1", *all[len(all)-1].BackupId, "CloudHsmInvalidRequestException"},
		{"unknown backup", "eu-west-1", "backup-aaaaaaaaaaa", "CloudHsmResourceNotFoundException"},
	} {
		_, err := c.CopyBackupToRegion(ctx, &cloudhsmv2.CopyBackupToRegionInput{BackupId: aws.String(tc.backup), DestinationRegion: aws.String(tc.region)})
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		wantAPIError(t, err, tc.code)
	}
}

func TestCreateClusterFromBackup(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	b := backupsOf(t, c, *cl.ClusterId)[0]
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: b.BackupId})
	if err != nil {
		t.Fatal(err)
	}
	nc := out.Cluster
	if nc.State != types.ClusterStateCreateInProgress || aws.ToString(nc.SourceBackupId) != *b.BackupId || aws.ToString(nc.Certificates.ClusterCertificate) != aws.ToString(cl.Certificates.ClusterCertificate) {
		t.Fatalf("restored cluster %+v", nc)
	}
	srv.Advance(time.Second)
	got := describe(t, c, *nc.ClusterId)
	if got.State != types.ClusterStateActive || len(got.Hsms) != 0 {
		t.Fatalf("restored cluster %s with %d HSMs", got.State, len(got.Hsms))
	}
	var az string
	for k := range got.SubnetMapping {
		az = k
	}
	if _, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: nc.ClusterId, AvailabilityZone: aws.String(az)}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	if got = describe(t, c, *nc.ClusterId); got.State != types.ClusterStateActive || got.Hsms[0].State != types.HsmStateActive {
		t.Fatalf("after HSM: %s", got.State)
	}
	// Mode mismatch, unknown backup, backup not READY.
	_, err = c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: b.BackupId, Mode: types.ClusterModeNonFips})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "FIPS")
	_, err = c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: aws.String("backup-aaaaaaaaaaa")})
	wantAPIError(t, err, "CloudHsmResourceNotFoundException")
	if _, err := c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: b.BackupId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: b.BackupId})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "READY")
}

func TestSharingThroughResourcePolicy(t *testing.T) {
	t.Parallel()
	const owner, consumer, stranger = "111111111111", "222222222222", "333333333333"
	srv := cloudhsmlocal.Start(t)
	oc := clientFor(srv, owner, "us-east-1")
	cc := clientFor(srv, consumer, "us-east-1")
	sc := clientFor(srv, stranger, "us-east-1")
	cl, _ := activeCluster(t, srv, oc)
	b := backupsOf(t, oc, *cl.ClusterId)[0]
	arn := *b.BackupArn
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":["cloudhsm:DescribeBackups","cloudhsm:CreateCluster"],"Resource":"%s"}]}`, consumer, arn)

	shared := func(c *cloudhsmv2.Client) int {
		out, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Shared: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Backups)
	}
	if shared(cc) != 0 {
		t.Fatal("shared before any policy")
	}
	put, err := oc.PutResourcePolicy(ctx, &cloudhsmv2.PutResourcePolicyInput{ResourceArn: &arn, Policy: &policy})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(put.ResourceArn) != arn || aws.ToString(put.Policy) != policy {
		t.Fatalf("put answered %+v", put)
	}
	get, err := oc.GetResourcePolicy(ctx, &cloudhsmv2.GetResourcePolicyInput{ResourceArn: &arn})
	if err != nil || aws.ToString(get.Policy) != policy {
		t.Fatalf("get: %v %v", err, get)
	}
	if shared(cc) != 1 || shared(sc) != 0 || shared(oc) != 0 {
		t.Fatalf("shared listings: consumer %d stranger %d owner %d", shared(cc), shared(sc), shared(oc))
	}
	// The consumer's own listing does not include it.
	own, _ := cc.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{})
	if len(own.Backups) != 0 {
		t.Fatal("shared backup appears among the consumer's own backups")
	}
	// Restore by ARN in the consumer's account; a stranger cannot.
	restored, err := cc.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: &arn})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(restored.Cluster.SourceBackupId) != arn {
		t.Fatalf("SourceBackupId echoed as %q", aws.ToString(restored.Cluster.SourceBackupId))
	}
	_, err = sc.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: &arn})
	wantAPIError(t, err, "CloudHsmResourceNotFoundException")
	// Only the owner reads or changes the policy.
	_, err = cc.GetResourcePolicy(ctx, &cloudhsmv2.GetResourcePolicyInput{ResourceArn: &arn})
	wantAPIError(t, err, "CloudHsmAccessDeniedException")
	del, err := oc.DeleteResourcePolicy(ctx, &cloudhsmv2.DeleteResourcePolicyInput{ResourceArn: &arn})
	if err != nil || aws.ToString(del.Policy) != policy {
		t.Fatalf("delete: %v %+v", err, del)
	}
	if shared(cc) != 0 {
		t.Fatal("still shared after DeleteResourcePolicy")
	}
	_, err = cc.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: &arn})
	wantAPIError(t, err, "CloudHsmResourceNotFoundException")
	// The cluster restored while shared is unaffected.
	if got := describe(t, cc, *restored.Cluster.ClusterId); got.State == "" {
		t.Fatal("restored cluster vanished")
	}
}

func TestResourcePolicyRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	b := backupsOf(t, c, *cl.ClusterId)[0]
	arn := *b.BackupArn
	good := func(principal, resource string) string {
		return fmt.Sprintf(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":%s},"Action":"cloudhsm:DescribeBackups","Resource":"%s"}}`, principal, resource)
	}
	clusterARN := fmt.Sprintf("arn:aws:cloudhsm:us-east-1:%s:cluster/%s", cloudhsmlocal.DefaultAccount, *cl.ClusterId)
	for _, tc := range []struct {
		name, arn, policy, code, contains string
	}{
		{"not json", arn, "{", "CloudHsmInvalidRequestException", "JSON"},
		{"no version", arn, `{"Statement":[]}`, "CloudHsmInvalidRequestException", "Version"},
		{"no statement", arn, `{"Version":"2012-10-17"}`, "CloudHsmInvalidRequestException", "Statement"},
		{"bad effect", arn, `{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Principal":{"AWS":"111122223333"},"Action":"cloudhsm:DescribeBackups","Resource":"` + arn + `"}]}`, "CloudHsmInvalidRequestException", "Effect"},
		{"wildcard principal", arn, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"cloudhsm:DescribeBackups","Resource":"` + arn + `"}]}`, "CloudHsmInvalidRequestException", "Principal"},
		{"bad principal", arn, good(`"bob"`, arn), "CloudHsmInvalidRequestException", "bob"},
		{"other resource", arn, good(`"111122223333"`, "arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-aaaaaaaaaaa"), "CloudHsmInvalidRequestException", "resource"},
		{"non-cloudhsm action", arn, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"s3:GetObject","Resource":"` + arn + `"}]}`, "CloudHsmInvalidRequestException", "s3:GetObject"},
		{"cluster arn", clusterARN, good(`"111122223333"`, arn), "CloudHsmInvalidRequestException", "only for backups"},
		{"unknown backup", "arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-aaaaaaaaaaa", good(`"111122223333"`, "arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-aaaaaaaaaaa"), "CloudHsmResourceNotFoundException", ""},
		{"missing arn", "", good(`"111122223333"`, arn), "CloudHsmInvalidRequestException", "ResourceArn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &cloudhsmv2.PutResourcePolicyInput{Policy: aws.String(tc.policy)}
			if tc.arn != "" {
				in.ResourceArn = aws.String(tc.arn)
			}
			_, err := c.PutResourcePolicy(ctx, in)
			wantAPIError(t, err, tc.code, tc.contains)
		})
	}
}

func TestBackupTagsAndPagination(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	for i := 0; i < 6; i++ {
		srv.Advance(day)
	}
	all := backupsOf(t, c, *cl.ClusterId)
	if len(all) != 7 {
		t.Fatalf("want 7 backups, got %d", len(all))
	}
	b := all[0]
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: b.BackupId, TagList: []types.Tag{{Key: aws.String("x"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	lt, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: b.BackupId})
	if err != nil || len(lt.TagList) != 1 {
		t.Fatalf("ListTags on backup: %v %+v", err, lt)
	}
	if _, err := c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: b.BackupId, TagKeyList: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	// Pages of 2, newest first by default, ascending when asked; no duplicates.
	for _, asc := range []bool{false, true} {
		var ids []string
		p := cloudhsmv2.NewDescribeBackupsPaginator(c, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(2), SortAscending: aws.Bool(asc)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range page.Backups {
				ids = append(ids, *x.BackupId)
			}
		}
		if len(ids) != 7 {
			t.Fatalf("asc=%v: %d backups", asc, len(ids))
		}
		first, last := *all[0].BackupId, *all[6].BackupId
		if asc && (ids[0] != first || ids[6] != last) || !asc && (ids[0] != last || ids[6] != first) {
			t.Fatalf("asc=%v order %v", asc, ids)
		}
	}
	// A token is bound to its query.
	page, _ := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(2)})
	_, err = c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(2), NextToken: page.NextToken, SortAscending: aws.Bool(true)})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "NextToken")
	_, err = c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"bogus": {"x"}}})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "bogus")
}

// TestSharingSurvivesRestart: a policy read back from the store shares the
// backup as the one put does, and deleting it after the restart unshares.
func TestSharingSurvivesRestart(t *testing.T) {
	t.Parallel()
	const owner, consumer = "111111111111", "222222222222"
	dir := t.TempDir()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart))
	oc := clientFor(srv, owner, "us-east-1")
	cl, _ := activeCluster(t, srv, oc)
	arn := *backupsOf(t, oc, *cl.ClusterId)[0].BackupArn
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":["cloudhsm:DescribeBackups","cloudhsm:CreateCluster"],"Resource":"%s"}]}`, consumer, arn)
	if _, err := oc.PutResourcePolicy(ctx, &cloudhsmv2.PutResourcePolicyInput{ResourceArn: &arn, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	srv = cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(srv.Now()))
	oc = clientFor(srv, owner, "us-east-1")
	cc := clientFor(srv, consumer, "us-east-1")
	shared := func() []types.Backup {
		out, err := cc.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Shared: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Backups
	}
	if got := shared(); len(got) != 1 || aws.ToString(got[0].BackupArn) != arn {
		t.Fatalf("after the restart the consumer sees %d shared backups, want %s", len(got), arn)
	}
	if _, err := cc.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), SourceBackupId: &arn}); err != nil {
		t.Fatalf("restore by ARN after the restart: %v", err)
	}
	if _, err := oc.DeleteResourcePolicy(ctx, &cloudhsmv2.DeleteResourcePolicyInput{ResourceArn: &arn}); err != nil {
		t.Fatal(err)
	}
	if got := shared(); len(got) != 0 {
		t.Fatalf("still %d shared after DeleteResourcePolicy", len(got))
	}
}

// TestDescribeBackupsIDFiltersPage: backupIds and clusterIds filters (which
// the service answers by lookups) page in both orders exactly as the same
// filter applied to the whole listing.
func TestDescribeBackupsIDFiltersPage(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	var ids []string
	for range 3 {
		cl, _ := activeCluster(t, srv, c)
		ids = append(ids, *cl.ClusterId)
	}
	srv.Advance(24 * time.Hour)
	srv.Advance(24 * time.Hour) // three backups per cluster
	list := func(filters map[string][]string, asc bool) []string {
		t.Helper()
		var out []string
		p := cloudhsmv2.NewDescribeBackupsPaginator(c, &cloudhsmv2.DescribeBackupsInput{Filters: filters, SortAscending: aws.Bool(asc), MaxResults: aws.Int32(2)})
		for pages := 0; p.HasMorePages(); pages++ {
			if pages == 10 {
				t.Fatalf("filters %v: still paging after 10 pages of 2 (9 backups in all): %v", filters, out)
			}
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range page.Backups {
				out = append(out, *b.BackupId+"/"+*b.ClusterId)
			}
		}
		return out
	}
	all := list(nil, true)
	if len(all) != 9 {
		t.Fatalf("%d backups, want 9: %v", len(all), all)
	}
	byID := strings.Split(all[1], "/")[0]
	byID2 := strings.Split(all[7], "/")[0]
	for _, tc := range []struct {
		name    string
		filters map[string][]string
		keep    func(backup, cluster string) bool
	}{
		{"clusterIds", map[string][]string{"clusterIds": {ids[2], ids[0]}},
			func(_, cl string) bool { return cl == ids[0] || cl == ids[2] }},
		{"clusterIds repeated and unknown", map[string][]string{"clusterIds": {ids[1], "cluster-aaaaaaaaaaa", ids[1]}},
			func(_, cl string) bool { return cl == ids[1] }},
		{"backupIds", map[string][]string{"backupIds": {byID2, "backup-aaaaaaaaaaa", byID, byID2}},
			func(b, _ string) bool { return b == byID || b == byID2 }},
		{"backupIds and clusterIds", map[string][]string{"backupIds": {byID, byID2, strings.Split(all[0], "/")[0]}, "clusterIds": {strings.Split(all[1], "/")[1]}},
			func(b, cl string) bool { return (b == byID || b == byID2) && cl == strings.Split(all[1], "/")[1] }},
	} {
		for _, asc := range []bool{true, false} {
			var want []string
			for _, x := range all {
				if parts := strings.Split(x, "/"); tc.keep(parts[0], parts[1]) {
					want = append(want, x)
				}
			}
			if !asc {
				slices.Reverse(want)
			}
			if got := list(tc.filters, asc); !slices.Equal(got, want) {
				t.Errorf("%s, ascending %v: got %v, want %v", tc.name, asc, got, want)
			}
		}
	}
}

// parkedClusterWithDeletedNewest makes an ACTIVE cluster with 7 days'
// retention, removes its only HSM (a second backup, and no scheduled ones
// after), and deletes that newest backup: the older one is the last usable
// backup. It returns the client, the cluster id and the two backups.
func parkedClusterWithDeletedNewest(t *testing.T, srv *cloudhsmlocal.Server) (*cloudhsmv2.Client, string, []types.Backup) {
	t.Helper()
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	id := *cl.ClusterId
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id,
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("7")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: cl.Hsms[0].HsmId}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Minute)
	bs := backupsOf(t, c, id)
	if len(bs) != 2 {
		t.Fatalf("want 2 backups, got %v", states(bs))
	}
	if _, err := c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: bs[1].BackupId}); err != nil {
		t.Fatal(err)
	}
	return c, id, bs
}

// Retention must not delete a cluster's last usable backup just because
// a newer one is PENDING_DELETION.
func TestRetentionSparesLastBackupWhenNewestIsPendingDeletion(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c, id, _ := parkedClusterWithDeletedNewest(t, srv)
	srv.Advance(8 * day)
	if bs := backupsOf(t, c, id); len(bs) == 0 || bs[0].BackupState != types.BackupStateReady {
		t.Fatalf("retention purged the cluster's last remaining backup: %v", states(bs))
	}
}

// A backup that retention spared as the last usable one goes once a newer
// backup is usable again: here the newest, restored from PENDING_DELETION.
func TestRetentionTakesSparedBackupWhenNewestIsRestored(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c, id, _ := parkedClusterWithDeletedNewest(t, srv)
	// Past the older backup's retention, inside the newest's 7-day window.
	srv.Advance(7*day - 30*time.Second)
	bs := backupsOf(t, c, id)
	if bs[0].BackupState != types.BackupStateReady || bs[1].BackupState != types.BackupStatePendingDeletion {
		t.Fatalf("before the restore: %v, want the older READY (spared) and the newest PENDING_DELETION", states(bs))
	}
	if _, err := c.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: bs[1].BackupId}); err != nil {
		t.Fatal(err)
	}
	if bs = backupsOf(t, c, id); bs[0].BackupState != types.BackupStatePendingDeletion || bs[1].BackupState != types.BackupStateReady {
		t.Fatalf("after restoring the newest backup: %v, want the older PENDING_DELETION and the newest READY", states(bs))
	}
}

// GovCloud resources live in the aws-us-gov partition.
func TestGovCloudBackupARNPartition(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := clientFor(srv, cloudhsmlocal.DefaultAccount, "us-gov-west-1")
	cl, _ := activeCluster(t, srv, c)
	b := backupsOf(t, c, *cl.ClusterId)[0]
	want := fmt.Sprintf("arn:aws-us-gov:cloudhsm:us-gov-west-1:%s:backup/%s", cloudhsmlocal.DefaultAccount, *b.BackupId)
	if got := aws.ToString(b.BackupArn); got != want {
		t.Errorf("BackupArn %s, want %s", got, want)
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws-us-gov:iam::222222222222:root"},"Action":["cloudhsm:DescribeBackups","cloudhsm:CreateCluster"],"Resource":%q}]}`, want)
	if _, err := c.PutResourcePolicy(ctx, &cloudhsmv2.PutResourcePolicyInput{ResourceArn: aws.String(want), Policy: aws.String(policy)}); err != nil {
		t.Errorf("PutResourcePolicy naming the backup by its GovCloud ARN: %v", err)
	}
	// The commercial partition does not hold GovCloud regions.
	wrong := strings.Replace(want, "arn:aws-us-gov:", "arn:aws:", 1)
	_, err := c.GetResourcePolicy(ctx, &cloudhsmv2.GetResourcePolicyInput{ResourceArn: aws.String(wrong)})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "not a backup ARN")
}

// NON_FIPS exists only for hsm2m.medium, also for a cluster restored from a backup.
func TestRestoreNonFipsBackupIntoHsm1Refused(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1), Mode: types.ClusterModeNonFips})
	if err != nil {
		t.Fatal(err)
	}
	id := out.Cluster.ClusterId
	srv.Advance(time.Second)
	var az string
	for k := range describe(t, c, *id).SubnetMapping {
		az = k
	}
	if _, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: id, AvailabilityZone: aws.String(az)}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	ca := newTestCA(t)
	csr := *describe(t, c, *id).Certificates.ClusterCsr
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: id, SignedCert: aws.String(ca.MustSign(t, csr)), TrustAnchor: aws.String(ca.PEM)}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(2 * time.Second)
	b := backupsOf(t, c, *id)[0]
	if b.Mode != types.ClusterModeNonFips {
		t.Fatalf("backup mode %s", b.Mode)
	}
	r, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium"), SubnetIds: subnets(1), SourceBackupId: b.BackupId})
	if err == nil {
		t.Fatalf("restored a NON_FIPS backup into an %s cluster with Mode %s", aws.ToString(r.Cluster.HsmType), r.Cluster.Mode)
	}
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "NON_FIPS")
}

// A DEGRADED cluster gets scheduled backups like an ACTIVE one, so adding
// or removing an HSM should back it up too.
func TestDegradedClusterBacksUpOnHsmChanges(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, az := activeCluster(t, srv, c)
	id := *cl.ClusterId
	degradeHsm(t, srv, id, *cl.Hsms[0].HsmId)
	if got := describe(t, c, id); got.State != types.ClusterStateDegraded {
		t.Fatalf("cluster is %s", got.State)
	}
	before := len(backupsOf(t, c, id))
	if _, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: &id, AvailabilityZone: aws.String(az)}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: cl.Hsms[0].HsmId}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Second)
	if n := len(backupsOf(t, c, id)) - before; n != 2 {
		t.Fatalf("adding and removing an HSM of a DEGRADED cluster made %d backups, want 2", n)
	}
}
