package cloudhsmlocal_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

var firstStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// durableFixture is the state the first server leaves behind.
type durableFixture struct {
	clusters   map[string]types.Cluster // id -> as DescribeClusters showed it before Close
	order      []string                 // creation order
	pending    string                   // left in CREATE_IN_PROGRESS
	deleting   string                   // left in DELETE_IN_PROGRESS
	otherID    string                   // a cluster of another tenant
	subnet     string                   // a learned subnet of the first cluster
	subnetAZ   string
	subnetVPC  string
	token      string // NextToken of a first page of 2
	tokenAfter []string
}

// buildDurableState runs a first server on dir and closes it.
func buildDurableState(t *testing.T, dir string) durableFixture {
	t.Helper()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart))
	c := client(srv)
	var f durableFixture

	sns := subnets(3)
	in := hsm2m(sns...)
	in.TagList = []types.Tag{tagKV("app", "payments"), tagKV("env", "prod")}
	c1 := mustCreate(t, c, in)
	in = &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium"), SubnetIds: subnets(1),
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")},
		TagList:               tagRange("k", 0, 20)}
	c2 := mustCreate(t, c, in)
	in = hsm2m(subnets(2)...)
	in.Mode, in.NetworkType = types.ClusterModeNonFips, types.NetworkTypeDualstack
	c3 := mustCreate(t, c, in)
	srv.Advance(500 * time.Millisecond) // c1..c3 UNINITIALIZED

	// Tag changes after creation, a retention change.
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: c1.ClusterId, TagList: []types.Tag{tagKV("env", "staging"), tagKV("owner", "team-a")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: c2.ClusterId, TagKeyList: []string{"k003", "k017"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: c3.ClusterId,
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("200")}}); err != nil {
		t.Fatal(err)
	}
	// c4 is deleting, c5 is being created, when the server stops.
	c4 := mustCreate(t, c, hsm2m(subnets(1)...))
	srv.Advance(500 * time.Millisecond)
	if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: c4.ClusterId}); err != nil {
		t.Fatal(err)
	}
	in = hsm2m(subnets(1)...)
	in.TagList = []types.Tag{tagKV("state", "pending")}
	c5 := mustCreate(t, c, in)
	// Another tenant.
	other := mustCreate(t, clientFor(srv, "555566667777", "eu-central-1"), hsm2m(subnets(1)...))

	f.pending, f.deleting, f.otherID = aws.ToString(c5.ClusterId), aws.ToString(c4.ClusterId), aws.ToString(other.ClusterId)
	f.clusters = map[string]types.Cluster{}
	for _, cl := range describeAll(t, c, nil) {
		f.clusters[aws.ToString(cl.ClusterId)] = cl
		f.order = append(f.order, aws.ToString(cl.ClusterId))
	}
	if len(f.order) != 5 {
		t.Fatalf("%d clusters before restart", len(f.order))
	}
	if f.clusters[f.pending].State != types.ClusterStateCreateInProgress || f.clusters[f.deleting].State != types.ClusterStateDeleteInProgress {
		t.Fatalf("setup: pending %s, deleting %s", f.clusters[f.pending].State, f.clusters[f.deleting].State)
	}
	f.subnet, f.subnetAZ, f.subnetVPC = sns[1], azOf(c1.SubnetMapping, sns[1]), aws.ToString(c1.VpcId)
	page, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(2)})
	if err != nil || page.NextToken == nil {
		t.Fatalf("first page: %v", err)
	}
	f.token, f.tokenAfter = *page.NextToken, f.order[2:4]

	srv.Close()
	srv.Close() // idempotent; Start's cleanup closes it a third time
	return f
}

// compareCluster asserts that after equals before except for the state.
func compareCluster(t *testing.T, before, after types.Cluster) {
	t.Helper()
	id := aws.ToString(before.ClusterId)
	if aws.ToString(after.ClusterId) != id ||
		aws.ToString(after.HsmType) != aws.ToString(before.HsmType) ||
		after.Mode != before.Mode || after.NetworkType != before.NetworkType ||
		aws.ToString(after.VpcId) != aws.ToString(before.VpcId) ||
		!maps.Equal(after.SubnetMapping, before.SubnetMapping) ||
		!after.CreateTimestamp.Equal(*before.CreateTimestamp) ||
		after.BackupRetentionPolicy == nil ||
		aws.ToString(after.BackupRetentionPolicy.Value) != aws.ToString(before.BackupRetentionPolicy.Value) ||
		after.BackupRetentionPolicy.Type != before.BackupRetentionPolicy.Type ||
		after.BackupPolicy != before.BackupPolicy {
		t.Errorf("cluster %s changed across the restart:\nbefore %+v\nafter  %+v", id, before, after)
	}
	if before.SecurityGroup != nil && aws.ToString(after.SecurityGroup) != aws.ToString(before.SecurityGroup) {
		t.Errorf("cluster %s: SecurityGroup %q, was %q", id, aws.ToString(after.SecurityGroup), aws.ToString(before.SecurityGroup))
	}
	if !tagsEqual(after.TagList, before.TagList) {
		t.Errorf("cluster %s: tags %s, were %s", id, tagString(after.TagList), tagString(before.TagList))
	}
}

// checkRestored checks every cluster and tag of f on srv.
func checkRestored(t *testing.T, srv *cloudhsmlocal.Server, f durableFixture, wantState map[string]types.ClusterState) {
	t.Helper()
	c := client(srv)
	all := describeAll(t, c, nil)
	if got := clusterIDs(all); !slices.Equal(got, f.order) {
		t.Fatalf("after restart: clusters %v, want %v", got, f.order)
	}
	for _, cl := range all {
		id := aws.ToString(cl.ClusterId)
		compareCluster(t, f.clusters[id], cl)
		if want, ok := wantState[id]; ok && cl.State != want {
			t.Errorf("cluster %s: state %s, want %s", id, cl.State, want)
		}
		if cl.State == types.ClusterStateDeleted {
			continue // a DELETED cluster can no longer be tagged or listed
		}
		lt := listAllTags(t, c, id, 7)
		if !tagsEqual(lt, f.clusters[id].TagList) {
			t.Errorf("cluster %s: ListTags %s, want %s", id, tagString(lt), tagString(f.clusters[id].TagList))
		}
	}
	if got := describe(t, clientFor(srv, "555566667777", "eu-central-1"), f.otherID); aws.ToString(got.ClusterId) != f.otherID {
		t.Errorf("the other tenant's cluster is gone")
	}
}

// TestDurabilityRestartKeepsTheClock: a restarted server whose clock would
// start at the first server's start time again comes back at the time the
// first server's clock had reached (a simulated time never goes back), finds
// every cluster and tag, and completes the pending transitions when its
// clock reaches them.
func TestDurabilityRestartKeepsTheClock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := buildDurableState(t, dir)

	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart))
	// The first server's clock was at +1s when it stopped; c5 is due at
	// +1.5s and c4's deletion at +1.5s.
	if now := srv.Now(); !now.Equal(firstStart.Add(time.Second)) {
		t.Fatalf("restarted clock at %s, want %s (where the first server's clock was)", now, firstStart.Add(time.Second))
	}
	checkRestored(t, srv, f, map[string]types.ClusterState{
		f.pending:  types.ClusterStateCreateInProgress,
		f.deleting: types.ClusterStateDeleteInProgress,
		f.order[0]: types.ClusterStateUninitialized,
	})
	srv.Advance(499 * time.Millisecond)
	c := client(srv)
	if got := describe(t, c, f.pending); got.State != types.ClusterStateCreateInProgress {
		t.Errorf("pending cluster %s before its due time", got.State)
	}
	srv.Advance(time.Millisecond)
	got := describe(t, c, f.pending)
	if got.State != types.ClusterStateUninitialized {
		t.Errorf("pending cluster %s after its due time, want UNINITIALIZED", got.State)
	}
	if !tagsEqual(got.TagList, []types.Tag{tagKV("state", "pending")}) {
		t.Errorf("pending cluster tags %s", tagString(got.TagList))
	}
	if got := describe(t, c, f.deleting); got.State != types.ClusterStateDeleted {
		t.Errorf("deleting cluster %s, want DELETED", got.State)
	}
	srv.Advance(time.Hour)
	if out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {f.deleting}}}); err != nil || len(out.Clusters) != 0 {
		t.Errorf("deleted cluster still listed an hour later: %v %v", err, out)
	}
}

// TestDurabilityRestartLater: restarted an hour later, the pending
// transitions have happened by the first read.
func TestDurabilityRestartLater(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := buildDurableState(t, dir)

	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart.Add(time.Hour)))
	c := client(srv)
	// c4 went DELETED at +1.5s and stays visible until +1h+1.5s.
	checkRestored(t, srv, f, map[string]types.ClusterState{
		f.pending:  types.ClusterStateUninitialized,
		f.deleting: types.ClusterStateDeleted,
	})
	srv.Advance(0)
	if got := describe(t, c, f.pending); got.State != types.ClusterStateUninitialized || !sgIDRe.MatchString(aws.ToString(got.SecurityGroup)) {
		t.Errorf("pending cluster after restart: %s, SecurityGroup %q", got.State, aws.ToString(got.SecurityGroup))
	}
	srv.Advance(1500 * time.Millisecond)
	if out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {f.deleting}}}); err != nil || len(out.Clusters) != 0 {
		t.Errorf("deleted cluster still listed after its retention: %v %v", err, out)
	}

	// Learned subnets survive: the same subnet is in the same VPC and AZ.
	cl := mustCreate(t, c, hsm2m(f.subnet))
	if aws.ToString(cl.VpcId) != f.subnetVPC || azOf(cl.SubnetMapping, f.subnet) != f.subnetAZ {
		t.Errorf("subnet %s after restart: VPC %s AZ %s, was %s %s", f.subnet, aws.ToString(cl.VpcId), azOf(cl.SubnetMapping, f.subnet), f.subnetVPC, f.subnetAZ)
	}
	// New clusters come after the old ones.
	ids := clusterIDs(describeAll(t, c, nil))
	if len(ids) == 0 || ids[len(ids)-1] != aws.ToString(cl.ClusterId) {
		t.Errorf("a cluster created after the restart is not last: %v", ids)
	}
	// Writes after the restart are durable too.
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: cl.ClusterId, TagList: []types.Tag{tagKV("after", "restart")}}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	srv3 := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart.Add(2*time.Hour)))
	got := describe(t, client(srv3), aws.ToString(cl.ClusterId))
	if !tagsEqual(got.TagList, []types.Tag{tagKV("after", "restart")}) || got.State != types.ClusterStateUninitialized {
		t.Errorf("second restart: %s %s", got.State, tagString(got.TagList))
	}
}

// TestDurabilityNextTokenAcrossRestart: a NextToken issued before a restart
// still pages from where it was.
func TestDurabilityNextTokenAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := buildDurableState(t, dir)
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart))
	out, err := client(srv).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(2), NextToken: aws.String(f.token)})
	if err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	if got := clusterIDs(out.Clusters); !slices.Equal(got, f.tokenAfter) {
		t.Errorf("page after the token: %v, want %v", got, f.tokenAfter)
	}
}

// TestManyServersSideBySide: 20 servers in parallel subtests, all in the
// default tenant and with the same subnet ids, see only their own clusters
// and run on their own clocks.
func TestManyServersSideBySide(t *testing.T) {
	t.Parallel()
	shared := subnets(3)
	for i := range 20 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			var opts []cloudhsmlocal.Option
			if i%2 == 1 {
				opts = append(opts, cloudhsmlocal.WithDataDir(t.TempDir()))
			}
			srv := cloudhsmlocal.Start(t, opts...)
			started := srv.Now()
			c := client(srv)
			n := i%4 + 1
			var want []string
			for k := range n {
				in := hsm2m(shared[k%3])
				in.TagList = []types.Tag{tagKV("server", fmt.Sprint(i))}
				want = append(want, aws.ToString(mustCreate(t, c, in).ClusterId))
			}
			// Even servers move their clock; odd ones do not.
			if i%2 == 0 {
				srv.Advance(time.Duration(i+1) * time.Second)
			}
			all := describeAll(t, c, nil)
			if got := clusterIDs(all); !slices.Equal(got, want) {
				t.Fatalf("server %d lists %v, want its own %v", i, got, want)
			}
			wantState := types.ClusterStateCreateInProgress
			if i%2 == 0 {
				wantState = types.ClusterStateUninitialized
			}
			for _, cl := range all {
				if cl.State != wantState {
					t.Errorf("server %d: cluster in %s, want %s", i, cl.State, wantState)
				}
				if !tagsEqual(cl.TagList, []types.Tag{tagKV("server", fmt.Sprint(i))}) {
					t.Errorf("server %d: tags %s", i, tagString(cl.TagList))
				}
			}
			wantNow := started
			if i%2 == 0 {
				wantNow = started.Add(time.Duration(i+1) * time.Second)
			}
			if !srv.Now().Equal(wantNow) {
				t.Errorf("server %d clock %v, want %v", i, srv.Now(), wantNow)
			}
		})
	}
}
