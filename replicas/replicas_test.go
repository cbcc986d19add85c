package replicas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

const acct = "111122223333"

var ctx = context.Background()

func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func create(t *testing.T, c *cloudhsmv2.Client, i int) *types.Cluster {
	t.Helper()
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(i)})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	return out.Cluster
}

func describeOne(t *testing.T, c *cloudhsmv2.Client, id string) *types.Cluster {
	t.Helper()
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil {
		t.Fatalf("DescribeClusters: %v", err)
	}
	if len(out.Clusters) != 1 {
		return nil
	}
	return &out.Clusters[0]
}

// TestReplicasActAsOne: through a round-robin balancer over three replicas,
// each answer is seen by the next request, whichever replica serves it:
// create then describe, tag then list, pages of one listing from different
// replicas; learned subnets and the clock are the estate's; ids are unique.
func TestReplicasActAsOne(t *testing.T) {
	t.Parallel()
	_, _, rs := estate(t, 3)
	c := balanced(rs, acct, 1)
	var ids []string
	for i := range 12 {
		cl := create(t, c, i)
		id := aws.ToString(cl.ClusterId)
		ids = append(ids, id)
		// The next request goes to the next replica.
		got := describeOne(t, c, id)
		if got == nil || got.State != cl.State || aws.ToString(got.VpcId) != aws.ToString(cl.VpcId) {
			t.Fatalf("cluster %s created through one replica: the next replica answers %+v", id, got)
		}
		if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: cl.ClusterId, TagList: []types.Tag{{Key: aws.String("n"), Value: aws.String(fmt.Sprint(i))}}}); err != nil {
			t.Fatal(err)
		}
		tags, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: cl.ClusterId})
		if err != nil || len(tags.TagList) != 1 {
			t.Fatalf("ListTags after TagResource on another replica: %v %v", tags, err)
		}
	}
	slices.Sort(ids)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("cluster ids repeat: %v", ids)
	}
	// Pagination: each page from the next replica, the tokens of one
	// accepted by another; the listing is whole and in order.
	var listed []string
	var token *string
	for {
		out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(5), NextToken: token})
		if err != nil {
			t.Fatalf("page %d: %v", len(listed)/5, err)
		}
		for _, cl := range out.Clusters {
			listed = append(listed, aws.ToString(cl.ClusterId))
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if got := slices.Sorted(slices.Values(listed)); !slices.Equal(got, ids) {
		t.Errorf("paged through three replicas: %v, want %v", listed, ids)
	}
	// A learned subnet is in the same VPC and zone on every replica.
	first := describeOne(t, direct(rs[0], acct), listed[0])
	for _, r := range rs[1:] {
		got := describeOne(t, direct(r, acct), listed[0])
		if aws.ToString(got.VpcId) != aws.ToString(first.VpcId) || fmt.Sprint(got.SubnetMapping) != fmt.Sprint(first.SubnetMapping) {
			t.Errorf("replica %s: %v %v, first replica: %v %v", r.URL, got.VpcId, got.SubnetMapping, first.VpcId, first.SubnetMapping)
		}
	}
	// The admin clock of one replica is every replica's, and advances made
	// through different replicas add up.
	before, err := rs[0].admin().Clock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*replica{rs[1], rs[2], rs[0]} {
		if _, err := r.admin().Advance(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		now, err := r.admin().Clock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if moved := time.Duration((now.Epoch - before.Epoch) * float64(time.Second)); moved < 3*time.Hour {
			t.Errorf("three 1h advances through three replicas: replica %s's clock moved %v", r.URL, moved)
		}
	}
	for _, r := range rs {
		got := describeOne(t, direct(r, acct), listed[0])
		if got.State != types.ClusterStateUninitialized {
			t.Errorf("after an hour on replica 1's admin clock, replica %s shows %s", r.URL, got.State)
		}
	}
}

// TestReplicasRulesUnderConcurrency: a quota, the first-HSM rule and a
// backup's deletion hold when requests race through every replica.
func TestReplicasRulesUnderConcurrency(t *testing.T) {
	t.Parallel()
	_, _, rs := estate(t, 3, "--quota-clusters", "5")
	c := balanced(rs, acct, 1)
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	for i := range 15 {
		wg.Go(func() {
			_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(i)})
			mu.Lock()
			outcomes[errCode(err)]++
			mu.Unlock()
			if err != nil && errCode(err) != "CloudHsmResourceLimitExceededException" {
				t.Errorf("CreateCluster: %v", err)
			}
		})
	}
	wg.Wait()
	if outcomes[""] != 5 || outcomes["CloudHsmResourceLimitExceededException"] != 10 {
		t.Fatalf("15 concurrent creates under a quota of 5 through 3 replicas: %v", outcomes)
	}
	// One HSM before activation, whichever replicas race.
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs[0].admin().Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	cl := out.Clusters[0]
	var az string
	for zone := range cl.SubnetMapping {
		az = zone
	}
	hsmOutcomes := map[string]int{}
	for range 4 {
		wg.Go(func() {
			_, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String(az)})
			mu.Lock()
			hsmOutcomes[errCode(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if hsmOutcomes[""] != 1 || hsmOutcomes["CloudHsmInvalidRequestException"] != 3 {
		t.Errorf("4 concurrent CreateHsm in an UNINITIALIZED cluster through 3 replicas: %v, want 1 created", hsmOutcomes)
	}
	got := describeOne(t, c, aws.ToString(cl.ClusterId))
	if len(got.Hsms) != 1 {
		t.Errorf("the cluster has %d HSMs", len(got.Hsms))
	}
}

// TestReplicaKilledUnderLoad: kill -9 of a replica while clients write
// through the balancer (retrying as the SDKs do) loses no acknowledged
// write, and the others see every one of them at once.
func TestReplicaKilledUnderLoad(t *testing.T) {
	t.Parallel()
	_, _, rs := estate(t, 3)
	c := balanced(rs, acct, 5)
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(w*1000 + i)})
				if err == nil {
					mu.Lock()
					acked = append(acked, aws.ToString(out.Cluster.ClusterId))
					mu.Unlock()
				}
			}
		})
	}
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	if !until(time.Minute, func() bool { return ackedNow() >= 30 }) {
		close(stop)
		wg.Wait()
		t.Fatalf("only %d creates acknowledged within a minute before the kill", ackedNow())
	}
	rs[1].kill(syscall.SIGKILL)
	atKill := ackedNow()
	const after = 30
	if !until(time.Minute, func() bool { return ackedNow() >= atKill+after }) {
		close(stop)
		wg.Wait()
		t.Fatalf("%d creates acknowledged at the kill, %d a minute later: want %d more after it", atKill, ackedNow(), after)
	}
	close(stop)
	wg.Wait()
	for _, r := range []*replica{rs[0], rs[2]} {
		listed := listClusters(t, direct(r, acct))
		for _, id := range acked {
			if !listed[id] {
				t.Errorf("cluster %s was acknowledged but replica %s does not list it", id, r.URL)
			}
		}
	}
	t.Logf("%d creates acknowledged, %d of them after the kill", len(acked), len(acked)-atKill)
}

// listClusters returns the ids of every cluster c lists, page by page.
func listClusters(t *testing.T, c *cloudhsmv2.Client) map[string]bool {
	t.Helper()
	listed := map[string]bool{}
	var token *string
	for {
		out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range out.Clusters {
			listed[aws.ToString(cl.ClusterId)] = true
		}
		if token = out.NextToken; token == nil {
			return listed
		}
	}
}

// TestLeaderTakenOver: when the replica holding the lease for timed work
// dies, another takes it within seconds.
func TestLeaderTakenOver(t *testing.T) {
	t.Parallel()
	_, _, rs := estate(t, 3)
	leaderOf := func(among []*replica) []*replica {
		var out []*replica
		for _, r := range among {
			if _, h, err := r.health(ctx); err == nil && h.Leader != nil && *h.Leader {
				out = append(out, r)
			}
		}
		return out
	}
	var leaders []*replica
	if !until(20*time.Second, func() bool { leaders = leaderOf(rs); return len(leaders) == 1 }) {
		t.Fatalf("%d leaders among three replicas", len(leaders))
	}
	leaders[0].kill(syscall.SIGKILL)
	rest := slices.DeleteFunc(slices.Clone(rs), func(r *replica) bool { return r == leaders[0] })
	start := time.Now()
	if !until(20*time.Second, func() bool { return len(leaderOf(rest)) == 1 }) {
		t.Fatalf("no replica took the lease over within 20s of the leader's death")
	}
	t.Logf("the lease was taken over in %v", time.Since(start).Round(time.Millisecond))
}

// TestDatabaseAwayAndBack: with the database frozen, then stopped, requests
// are answered promptly with CloudHsmInternalFailureException and the
// health check says not ready; once it is back, service resumes by itself
// with nothing acknowledged lost.
func TestDatabaseAwayAndBack(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)
	rs := []*replica{startReplica(t, db, nil), startReplica(t, db, nil)}
	c := balanced(rs, acct, 1)
	before := create(t, c, 0)
	frozenAnswers(t, pg, rs)
	pg.Stop(false)
	for _, r := range rs {
		start := time.Now()
		_, err := direct(r, acct).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		if errCode(err) != "CloudHsmInternalFailureException" {
			t.Errorf("DescribeClusters with the database away: %v, want CloudHsmInternalFailureException", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("the answer took %v", d)
		}
		if code, h, err := r.health(ctx); err != nil || code != 503 || h.Status != "unavailable" {
			t.Errorf("health with the database away: %d %+v %v", code, h, err)
		}
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if !until(30*time.Second, func() bool { code, _, err := r.health(ctx); return err == nil && code == 200 }) {
			t.Fatalf("replica %s not ready 30s after the database came back", r.URL)
		}
	}
	if got := describeOne(t, c, aws.ToString(before.ClusterId)); got == nil {
		t.Errorf("the cluster acknowledged before the database went away is gone")
	}
	create(t, c, 1)
}

// frozenAnswers freezes the database (its processes stopped: connections
// open, nothing answers, as with a hung server or a network dropping
// packets) and checks that every replica still answers a read, a write and
// its health check promptly, with an error, within the 5-second deadline
// of a database call (and some slack), never hanging; then thaws it and
// waits until every replica is ready again.
func frozenAnswers(t *testing.T, pg *pgtest.Server, rs []*replica) {
	t.Helper()
	const bound = 5*time.Second + 3*time.Second
	pg.Freeze()
	defer pg.Thaw() // again, harmless, should a check below end the test
	for _, r := range rs {
		c := direct(r, acct)
		for name, call := range map[string]func() error{
			"DescribeClusters": func() error { _, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); return err },
			"CreateCluster": func() error {
				_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(100)})
				return err
			},
		} {
			start := time.Now()
			err := call()
			d := time.Since(start).Round(time.Millisecond)
			t.Logf("%s on %s with the database frozen: %s after %v", name, r.URL, errCode(err), d)
			if errCode(err) != "CloudHsmInternalFailureException" || d > bound {
				t.Errorf("%s on %s with the database frozen: %v after %v; want CloudHsmInternalFailureException within %v", name, r.URL, err, d, bound)
			}
		}
		start := time.Now()
		code, _, err := r.health(ctx)
		if d := time.Since(start).Round(time.Millisecond); err != nil || code != 503 || d > bound {
			t.Errorf("health of %s with the database frozen: %d %v after %v; want 503 within %v", r.URL, code, err, d, bound)
		}
	}
	pg.Thaw()
	for _, r := range rs {
		if !until(30*time.Second, func() bool { code, _, err := r.health(ctx); return err == nil && code == 200 }) {
			t.Fatalf("replica %s not ready 30s after the database was thawed", r.URL)
		}
	}
}

// TestRollingRestart: every replica restarted in turn behind the balancer;
// clients retrying as the SDKs do see no failed request.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	_, _, rs := estate(t, 3)
	c := balanced(rs, acct, 6)
	stop := make(chan struct{})
	var failures, calls int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%4 == 0 {
					_, err = c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(w*1000 + i)})
				} else {
					_, err = c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(5)})
				}
				mu.Lock()
				calls++
				if err != nil {
					failures++
					t.Errorf("a call failed during the rolling restart: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	callsNow := func() int { mu.Lock(); defer mu.Unlock(); return calls }
	progress := func(n int, when string) {
		want := callsNow() + n
		if !until(time.Minute, func() bool { return callsNow() >= want }) {
			close(stop)
			wg.Wait()
			t.Fatalf("%s: the calls stalled: %d made, %d wanted within a minute", when, callsNow(), want)
		}
	}
	progress(20, "before the restarts")
	for i, r := range rs {
		r.kill(syscall.SIGTERM)
		progress(20, fmt.Sprintf("replica %d stopped", i)) // served by the others meanwhile
		r.start()
		progress(20, fmt.Sprintf("replica %d restarted", i))
	}
	close(stop)
	wg.Wait()
	t.Logf("%d calls during the rolling restart, %d failed", calls, failures)
}

// TestReplicasOnDisagreeingClocks: replicas whose hosts' clocks are hours
// apart agree on every state, because they read the database's clock.
func TestReplicasOnDisagreeingClocks(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared(t)
	db := pg.NewDatabase(t)
	ahead := startReplica(t, db, []string{"CLOUDHSM_LOCAL_TEST_LOCAL_CLOCK_OFFSET=2h"})
	behind := startReplica(t, db, []string{"CLOUDHSM_LOCAL_TEST_LOCAL_CLOCK_OFFSET=-3h"})
	created := create(t, direct(ahead, acct), 0)
	got := describeOne(t, direct(behind, acct), aws.ToString(created.ClusterId))
	if !got.CreateTimestamp.Equal(*created.CreateTimestamp) {
		t.Fatalf("created at %s, seen created at %s", created.CreateTimestamp, got.CreateTimestamp)
	}
	if d := time.Since(*created.CreateTimestamp); d > time.Minute || d < -time.Minute {
		t.Errorf("a replica whose host is 2h ahead dates a cluster %v from now: it must read the database's clock", d)
	}
	// Both see the same state at the same moment: CREATE_IN_PROGRESS, then
	// UNINITIALIZED (the fast profile's 500ms later).
	if !until(10*time.Second, func() bool {
		return describeOne(t, direct(behind, acct), aws.ToString(created.ClusterId)).State == types.ClusterStateUninitialized
	}) {
		t.Fatalf("the replica 3h behind never saw the cluster UNINITIALIZED")
	}
	if st := describeOne(t, direct(ahead, acct), aws.ToString(created.ClusterId)).State; st != types.ClusterStateUninitialized {
		t.Errorf("the replica 2h ahead shows %s", st)
	}
	var clocks []time.Time
	for _, r := range []*replica{ahead, behind} {
		st, err := r.admin().Clock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		at, _ := time.Parse(time.RFC3339Nano, st.Now)
		clocks = append(clocks, at)
	}
	if d := clocks[1].Sub(clocks[0]); d > 5*time.Second || d < -5*time.Second {
		t.Errorf("the two replicas' clocks are %v apart", d)
	}
}

// TestReplicasShareResetImportAndRoots: reset and import through one
// replica apply to the estate; the simulated roots are the same on every
// replica.
func TestReplicasShareResetImportAndRoots(t *testing.T) {
	t.Parallel()
	_, _, rs := estate(t, 2)
	c := balanced(rs, acct, 1)
	create(t, c, 0)
	snap, err := rs[0].admin().Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs[1].admin().Reset(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if out, err := direct(rs[0], acct).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil || len(out.Clusters) != 0 {
		t.Fatalf("after a reset through replica 1, replica 0 lists %v %v", out, err)
	}
	if _, err := rs[1].admin().Import(ctx, bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if out, err := direct(rs[0], acct).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil || len(out.Clusters) != 1 {
		t.Fatalf("after an import through replica 1, replica 0 lists %v %v", out, err)
	}
	var roots []string
	for _, r := range rs {
		pem, err := r.admin().Raw(ctx, http.MethodGet, "roots/aws.pem", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, string(pem))
	}
	if roots[0] != roots[1] {
		t.Errorf("the replicas have different simulated roots: chains made on one would not verify on the other")
	}
}

// raceOutcomes runs call n times at once and counts the error codes ("" for
// success).
func raceOutcomes(n int, call func(i int) error) map[string]int {
	var mu sync.Mutex
	out := map[string]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := call(i)
			mu.Lock()
			out[errCode(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// TestReplicasBackupsTagsAndFaults: a backup deleted, copied and restored
// at once through every replica; 50 tags; a fault for the next N calls
// counts the estate's calls.
func TestReplicasBackupsTagsAndFaults(t *testing.T) {
	t.Parallel()
	_, _, rs := estate(t, 3)
	seed, err := os.ReadFile("../examples/seed-estate.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs[2].admin().Import(ctx, bytes.NewReader(seed)); err != nil {
		t.Fatal(err)
	}
	c := balanced(rs, acct, 1)
	const backup = "backup-r4dz6kq2hwn" // READY in the seed
	if got := raceOutcomes(6, func(int) error {
		_, err := c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: aws.String(backup)})
		return err
	}); got[""] != 1 || got["CloudHsmInvalidRequestException"] != 5 {
		t.Errorf("6 DeleteBackup of one backup at once through 3 replicas: %v, want 1 accepted", got)
	}
	if got := raceOutcomes(6, func(i int) error {
		var err error
		if i%2 == 0 {
			_, err = c.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: aws.String(backup)})
		} else {
			_, err = c.CopyBackupToRegion(ctx, &cloudhsmv2.CopyBackupToRegionInput{BackupId: aws.String(backup), DestinationRegion: aws.String("eu-central-1")})
		}
		return err
	}); got[""] < 1 {
		t.Errorf("restores and copies of a backup pending deletion: %v, want the first restore to win", got)
	}
	out, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"backupIds": {backup}}})
	if err != nil || len(out.Backups) != 1 || out.Backups[0].BackupState != types.BackupStateReady {
		t.Errorf("after the race the backup is %+v %v, want READY (restored once)", out, err)
	}

	// 50 tags: ten requests of 10 new keys at once, through every replica.
	cl := create(t, c, 7)
	got := raceOutcomes(10, func(i int) error {
		var tags []types.Tag
		for k := range 10 {
			tags = append(tags, types.Tag{Key: aws.String(fmt.Sprintf("k%d-%d", i, k)), Value: aws.String("v")})
		}
		_, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: cl.ClusterId, TagList: tags})
		return err
	})
	if got[""] != 5 || got["CloudHsmResourceLimitExceededException"] != 5 {
		t.Errorf("10 concurrent TagResource of 10 new keys: %v, want 5 accepted (50 tags)", got)
	}
	if tags, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: cl.ClusterId}); err != nil || len(tags.TagList) != 50 {
		t.Errorf("ListTags: %d tags %v", len(tags.TagList), err)
	}

	// A fault for the next 4 calls, added through one replica.
	if _, err := rs[0].admin().AddFault(ctx, admin.FaultRule{Operation: "DescribeClusters", Error: "ThrottlingException", Count: 4}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if !until(10*time.Second, func() bool { f, err := r.admin().Faults(ctx); return err == nil && len(f) == 1 }) {
			t.Fatalf("replica %s did not learn of the fault rule", r.URL)
		}
	}
	if got := raceOutcomes(12, func(int) error {
		_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(5)})
		return err
	}); got["ThrottlingException"] != 4 || got[""] != 8 {
		t.Errorf("12 calls through 3 replicas with a fault for the next 4: %v", got)
	}
}
