package admin_test

// A randomized property test of durability: whatever sequence of API and
// admin operations ran, a server restarted on the same data directory (and
// the same clock) holds exactly the state the running server held. It
// targets the class of bug where the domain changes a resource in memory
// without recording it for the store (ModifyCluster's retention change
// once moved its backups' expiry in memory only).

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// restartSteps is the number of random operations per seed.
const restartSteps = 150

// TestStateSurvivesRestart runs, for a few fixed seeds, a random sequence
// of operations against a durable server with a frozen clock, and every
// 8-12 steps restarts the server on the same data directory: the exported
// snapshot and every DescribeClusters / DescribeBackups answer must be the
// same before and after the restart. A failure prints the seed and the
// operations so far; the same seed replays the same choices.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t, "Restart Property Test Root", "cloudhsm-local tests")
	identities := newFastIdentities(t)
	realistic := cloudhsm.DefaultConfig()
	realistic.Delays = cloudhsm.RealisticDelays()
	realistic.ManualActivation = true
	for _, tc := range []struct {
		name   string
		seed   uint64
		domain cloudhsm.Config
	}{
		{"fast", 1, cloudhsm.DefaultConfig()},
		{"fast", 2, cloudhsm.DefaultConfig()},
		{"realistic-manual", 3, realistic},
	} {
		t.Run(fmt.Sprintf("%s/seed=%d", tc.name, tc.seed), func(t *testing.T) {
			t.Parallel()
			r := &restartRun{
				t:    t,
				seed: tc.seed,
				rng:  mrand.New(mrand.NewPCG(tc.seed, 0x5eed0f0cafe)),
				ca:   ca,
				cfg: server.Config{
					DataDir:    t.TempDir(),
					Clock:      clock.NewFrozen(start),
					Domain:     tc.domain,
					Identities: func() pki.IdentitySource { return identities },
				},
				places:  map[string]string{},
				clients: map[rsTenant]*cloudhsmv2.Client{},
			}
			r.e = newEnv(t, r.cfg)
			r.run()
		})
	}
}

type rsTenant struct{ account, region string }

func (tn rsTenant) String() string { return tn.account + "/" + tn.region }

// The tenants the operations run in. Copies to us-west-2 create a fifth,
// which the comparison finds in the export.
var rsTenants = []rsTenant{{acctA, "us-east-1"}, {acctA, "eu-west-1"}, {acctB, "us-east-1"}, {acctB, "eu-west-1"}}

type restartRun struct {
	t    *testing.T
	seed uint64
	rng  *mrand.Rand
	ca   *testkit.CA
	cfg  server.Config
	e    *env

	step       int
	log        []string
	restarts   int
	lastCounts string
	clients    map[rsTenant]*cloudhsmv2.Client
	// places records, per tenant and subnet, the VPC and AZ a subnet was
	// first learned in: a learned subnet must keep them across restarts.
	places map[string]string

	// stats counts, per operation, the calls that succeeded and those refused.
	stats map[string][2]int

	// The model of the tenant an operation works in (see refresh).
	clusters []types.Cluster
	backups  []types.Backup
	shared   []types.Backup
}

func (r *restartRun) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf("%3d: ", r.step)+fmt.Sprintf(format, args...))
}

func (r *restartRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d, step %d: %s\n\noperations so far (replay with the same seed):\n%s",
		r.seed, r.step, fmt.Sprintf(format, args...), strings.Join(r.log, "\n"))
}

func (r *restartRun) client(tn rsTenant) *cloudhsmv2.Client {
	c := r.clients[tn]
	if c == nil {
		c = r.e.sdk(tn.account, tn.region, 1)
		r.clients[tn] = c
	}
	return c
}

// outcome classifies an operation's error: AWS refusals of random
// choices are fine; transport errors and internal failures are not.
func (r *restartRun) outcome(op string, err error) string {
	r.t.Helper()
	if r.stats == nil {
		r.stats = map[string][2]int{}
	}
	st := r.stats[op]
	defer func() { r.stats[op] = st }()
	if err == nil {
		st[0]++
		return "ok"
	}
	st[1]++
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if ae.ErrorCode() == "CloudHsmInternalFailureException" {
			r.fatalf("%s: internal failure: %v", op, err)
		}
		return ae.ErrorCode()
	}
	var se *admin.StatusError
	if errors.As(err, &se) {
		if se.Status >= 500 {
			r.fatalf("%s: admin API failure: %v", op, err)
		}
		return fmt.Sprintf("admin %d", se.Status)
	}
	r.fatalf("%s: transport error: %v", op, err)
	return ""
}

// ---- the run ----

func (r *restartRun) run() {
	nextRestart := 8 + r.rng.IntN(5)
	for r.step = 1; r.step <= restartSteps; r.step++ {
		r.randomOp()
		if r.step == nextRestart || r.step == restartSteps {
			r.restartAndCompare()
			nextRestart = r.step + 8 + r.rng.IntN(5)
		}
	}
	var summary []string
	for op, n := range r.stats {
		summary = append(summary, fmt.Sprintf("%s %d/%d", op, n[0], n[0]+n[1]))
	}
	slices.Sort(summary)
	r.t.Logf("seed %d: %d steps, %d restarts; operations succeeded/called: %s", r.seed, restartSteps, r.restarts, strings.Join(summary, ", "))
	r.t.Logf("seed %d: at the end: %s", r.seed, r.lastCounts)
}

type weightedOp struct {
	weight int
	fn     func(tn rsTenant)
}

func (r *restartRun) randomOp() {
	ops := []weightedOp{
		{4, r.opCreateCluster},
		{8, r.opCreateHsm},
		{3, r.opDeleteHsm},
		{7, r.opInitialize},
		{3, r.opActivate},
		{5, r.opModifyRetention},
		{3, r.opModifyHsmType},
		{4, r.opTag},
		{3, r.opUntag},
		{2, r.opDeleteCluster},
		{3, r.opCopyBackup},
		{3, r.opDeleteBackup},
		{3, r.opRestoreBackup},
		{3, r.opNeverExpires},
		{2, r.opPutPolicy},
		{1, r.opDeletePolicy},
		{14, r.opAdvance},
		{2, r.opDegrade},
		{2, r.opHeal},
		{1, r.opReimport},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	// Most activity in the first tenant, so that its clusters get far.
	tn := rsTenants[[]int{0, 0, 0, 1, 2, 2, 3}[r.rng.IntN(7)]]
	n := r.rng.IntN(total)
	for _, o := range ops {
		if n < o.weight {
			o.fn(tn)
			return
		}
		n -= o.weight
	}
}

// refresh reads tn's clusters and backups into the model.
func (r *restartRun) refresh(tn rsTenant) {
	r.clusters, r.backups, _ = r.describe(tn, false)
}

// describe lists tn's clusters, backups and, when withShared, the backups
// other accounts share with it.
func (r *restartRun) describe(tn rsTenant, withShared bool) ([]types.Cluster, []types.Backup, []types.Backup) {
	r.t.Helper()
	c := r.client(tn)
	var clusters []types.Cluster
	pc := cloudhsmv2.NewDescribeClustersPaginator(c, &cloudhsmv2.DescribeClustersInput{})
	for pc.HasMorePages() {
		out, err := pc.NextPage(ctx)
		if err != nil {
			r.fatalf("DescribeClusters %s: %v", tn, err)
		}
		clusters = append(clusters, out.Clusters...)
	}
	list := func(shared bool) []types.Backup {
		var bs []types.Backup
		pb := cloudhsmv2.NewDescribeBackupsPaginator(c, &cloudhsmv2.DescribeBackupsInput{Shared: aws.Bool(shared)})
		for pb.HasMorePages() {
			out, err := pb.NextPage(ctx)
			if err != nil {
				r.fatalf("DescribeBackups %s (shared %v): %v", tn, shared, err)
			}
			bs = append(bs, out.Backups...)
		}
		return bs
	}
	if !withShared {
		return clusters, list(false), nil
	}
	return clusters, list(false), list(true)
}

// pickCluster returns, most of the time, a random cluster of the model
// that pred accepts, sometimes any cluster (a choice the service most
// likely refuses), and mostly nil when none fits, so that the caller does
// something that leads there instead.
func (r *restartRun) pickCluster(pred func(types.Cluster) bool) *types.Cluster {
	var fit []int
	for i, c := range r.clusters {
		if pred(c) {
			fit = append(fit, i)
		}
	}
	if len(fit) > 0 && r.rng.IntN(10) > 0 {
		return &r.clusters[fit[r.rng.IntN(len(fit))]]
	}
	if len(r.clusters) > 0 && (len(fit) > 0 || r.rng.IntN(5) == 0) {
		return &r.clusters[r.rng.IntN(len(r.clusters))] // most likely refused
	}
	return nil
}

func (r *restartRun) pickBackup(pred func(types.Backup) bool) *types.Backup {
	var fit []int
	for i, b := range r.backups {
		if pred(b) {
			fit = append(fit, i)
		}
	}
	if len(fit) > 0 && r.rng.IntN(10) > 0 {
		return &r.backups[fit[r.rng.IntN(len(fit))]]
	}
	if len(r.backups) > 0 && (len(fit) > 0 || r.rng.IntN(5) == 0) {
		return &r.backups[r.rng.IntN(len(r.backups))] // most likely refused
	}
	return nil
}

func (r *restartRun) pickHsm(c *types.Cluster, state types.HsmState) *types.Hsm {
	if c == nil || len(c.Hsms) == 0 {
		return nil
	}
	for _, i := range r.rng.Perm(len(c.Hsms)) {
		if c.Hsms[i].State == state {
			return &c.Hsms[i]
		}
	}
	return &c.Hsms[r.rng.IntN(len(c.Hsms))]
}

func (r *restartRun) randomTags(n int) []types.Tag {
	keys := []string{"env", "team", "cost-center", "owner", "app"}
	var tags []types.Tag
	for _, i := range r.rng.Perm(len(keys))[:n] {
		tags = append(tags, types.Tag{Key: aws.String(keys[i]), Value: aws.String(fmt.Sprintf("v%d", r.rng.IntN(4)))})
	}
	if r.rng.IntN(20) == 0 {
		tags = append(tags, types.Tag{Key: aws.String("aws:reserved"), Value: aws.String("x")}) // refused
	}
	return tags
}

// subnetGroup returns 1-3 subnets of one of two groups of tn's region.
// Subnets first seen together share a VPC; mixing groups that were
// learned apart is refused, which is fine.
func (r *restartRun) subnetGroup(tn rsTenant) []string {
	g := r.rng.IntN(2)
	base := 0xa000
	if tn.region == "eu-west-1" {
		base = 0xe000
	}
	var ids []string
	for _, i := range r.rng.Perm(3)[:1+r.rng.IntN(3)] {
		ids = append(ids, fmt.Sprintf("subnet-%017x", base+g*16+i))
	}
	return ids
}

// checkPlaces asserts that a cluster's subnets are where they were first
// learned (learned subnets must survive restarts).
func (r *restartRun) checkPlaces(tn rsTenant, c *types.Cluster) {
	for az, sn := range c.SubnetMapping {
		key := tn.String() + "/" + sn
		place := aws.ToString(c.VpcId) + " " + az
		if old, ok := r.places[key]; ok && old != place {
			r.fatalf("subnet %s of %s was learned in %s, cluster %s now places it in %s", sn, tn, old, aws.ToString(c.ClusterId), place)
		}
		r.places[key] = place
	}
}

// ---- operations ----

func (r *restartRun) opCreateCluster(tn rsTenant) {
	r.clusters, r.backups, r.shared = r.describe(tn, true)
	live := 0
	for _, c := range r.clusters {
		if c.State != types.ClusterStateDeleted {
			live++
		}
	}
	if live >= 3 && r.rng.IntN(4) > 0 {
		r.opAdvance(tn)
		return
	}
	in := &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: r.subnetGroup(tn)}
	if r.rng.IntN(5) < 2 {
		in.HsmType = aws.String("hsm1.medium")
	}
	if r.rng.IntN(10) == 0 {
		in.Mode = types.ClusterModeNonFips
	}
	if r.rng.IntN(10) == 0 {
		in.NetworkType = types.NetworkTypeDualstack
	}
	if r.rng.IntN(3) == 0 {
		days := []string{"7", "8", "30", "90"}[r.rng.IntN(4)]
		in.BackupRetentionPolicy = &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String(days)}
	}
	if r.rng.IntN(3) == 0 {
		in.TagList = r.randomTags(1 + r.rng.IntN(2))
	}
	if r.rng.IntN(4) == 0 {
		if len(r.shared) > 0 && r.rng.IntN(2) == 0 {
			in.SourceBackupId = r.shared[r.rng.IntN(len(r.shared))].BackupArn
		} else if b := r.pickBackup(func(b types.Backup) bool { return b.BackupState == types.BackupStateReady }); b != nil {
			in.SourceBackupId = b.BackupId
		}
	}
	out, err := r.client(tn).CreateCluster(ctx, in)
	res := r.outcome("CreateCluster", err)
	id := ""
	if err == nil {
		id = aws.ToString(out.Cluster.ClusterId)
		r.checkPlaces(tn, out.Cluster)
	}
	r.logf("%s CreateCluster(%s, %v, mode %q, net %q, retention %v, from %q) -> %s %s", tn, aws.ToString(in.HsmType), in.SubnetIds,
		in.Mode, in.NetworkType, in.BackupRetentionPolicy != nil, aws.ToString(in.SourceBackupId), res, id)
}

func (r *restartRun) opCreateHsm(tn rsTenant) {
	r.refresh(tn)
	c := r.pickCluster(func(c types.Cluster) bool {
		return (c.State == types.ClusterStateUninitialized && len(c.Hsms) == 0) ||
			((c.State == types.ClusterStateActive || c.State == types.ClusterStateDegraded) && len(c.Hsms) < 3)
	})
	if c == nil {
		r.opCreateCluster(tn)
		return
	}
	var azs []string
	for az := range c.SubnetMapping {
		azs = append(azs, az)
	}
	slices.Sort(azs)
	az := tn.region + "z"
	if len(azs) > 0 {
		az = azs[r.rng.IntN(len(azs))]
	}
	out, err := r.client(tn).CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: c.ClusterId, AvailabilityZone: aws.String(az)})
	res := r.outcome("CreateHsm", err)
	id := ""
	if err == nil {
		id = aws.ToString(out.Hsm.HsmId)
	}
	r.logf("%s CreateHsm(%s %s, %s) -> %s %s", tn, aws.ToString(c.ClusterId), c.State, az, res, id)
}

func (r *restartRun) opDeleteHsm(tn rsTenant) {
	r.refresh(tn)
	c := r.pickCluster(func(c types.Cluster) bool { return len(c.Hsms) > 0 })
	h := r.pickHsm(c, types.HsmStateActive)
	if h == nil {
		r.opAdvance(tn)
		return
	}
	in := &cloudhsmv2.DeleteHsmInput{ClusterId: c.ClusterId, HsmId: h.HsmId}
	if r.rng.IntN(4) == 0 {
		in = &cloudhsmv2.DeleteHsmInput{ClusterId: c.ClusterId, EniIp: h.EniIp}
	}
	_, err := r.client(tn).DeleteHsm(ctx, in)
	r.logf("%s DeleteHsm(%s %s, %s %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, aws.ToString(h.HsmId), h.State, r.outcome("DeleteHsm", err))
}

func (r *restartRun) opInitialize(tn rsTenant) {
	r.refresh(tn)
	c := r.pickCluster(func(c types.Cluster) bool {
		return c.State == types.ClusterStateUninitialized && c.Certificates != nil && aws.ToString(c.Certificates.ClusterCsr) != ""
	})
	if c == nil {
		r.opCreateHsm(tn)
		return
	}
	cert := "not a certificate"
	if c.Certificates != nil && aws.ToString(c.Certificates.ClusterCsr) != "" && r.rng.IntN(10) > 0 {
		var err error
		if cert, err = r.ca.Sign(aws.ToString(c.Certificates.ClusterCsr)); err != nil {
			r.fatalf("sign the CSR of %s: %v", aws.ToString(c.ClusterId), err)
		}
	}
	_, err := r.client(tn).InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: c.ClusterId, SignedCert: aws.String(cert), TrustAnchor: aws.String(r.ca.PEM)})
	r.logf("%s InitializeCluster(%s %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, r.outcome("InitializeCluster", err))
}

func (r *restartRun) opActivate(tn rsTenant) {
	r.refresh(tn)
	c := r.pickCluster(func(c types.Cluster) bool { return c.State == types.ClusterStateInitialized })
	if c == nil {
		r.opInitialize(tn)
		return
	}
	_, err := r.e.admin.Activate(ctx, aws.ToString(c.ClusterId), tn.account, tn.region)
	r.logf("%s admin Activate(%s %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, r.outcome("Activate", err))
}

func (r *restartRun) opModifyRetention(tn rsTenant) {
	r.refresh(tn)
	// Clusters with backups are the interesting ones.
	c := r.pickCluster(func(c types.Cluster) bool {
		return slices.ContainsFunc(r.backups, func(b types.Backup) bool { return aws.ToString(b.ClusterId) == aws.ToString(c.ClusterId) })
	})
	if c == nil {
		r.opCreateCluster(tn)
		return
	}
	days := []string{"7", "8", "14", "30", "90", "379", "3"}[r.rng.IntN(7)]
	_, err := r.client(tn).ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: c.ClusterId,
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String(days)}})
	r.logf("%s ModifyCluster(%s %s, retention %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, days, r.outcome("ModifyCluster", err))
}

func (r *restartRun) opModifyHsmType(tn rsTenant) {
	r.refresh(tn)
	// A migration (hsm1.medium to hsm2m.medium), or its rollback within
	// the window.
	c := r.pickCluster(func(c types.Cluster) bool {
		return c.State == types.ClusterStateActive && len(c.Hsms) > 0 &&
			(aws.ToString(c.HsmType) == "hsm1.medium" || c.HsmTypeRollbackExpiration != nil)
	})
	if c == nil {
		r.opCreateHsm(tn)
		return
	}
	target := "hsm2m.medium"
	if aws.ToString(c.HsmType) == "hsm2m.medium" && r.rng.IntN(5) > 0 {
		target = "hsm1.medium" // a rollback, or refused
	}
	_, err := r.client(tn).ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: c.ClusterId, HsmType: aws.String(target)})
	r.logf("%s ModifyCluster(%s %s %s, HsmType %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, aws.ToString(c.HsmType), target, r.outcome("ModifyCluster", err))
}

// taggableID returns a random cluster or backup id of the model.
func (r *restartRun) taggableID() string {
	if len(r.backups) > 0 && (len(r.clusters) == 0 || r.rng.IntN(2) == 0) {
		return aws.ToString(r.backups[r.rng.IntN(len(r.backups))].BackupId)
	}
	if len(r.clusters) > 0 {
		return aws.ToString(r.clusters[r.rng.IntN(len(r.clusters))].ClusterId)
	}
	return ""
}

func (r *restartRun) opTag(tn rsTenant) {
	r.refresh(tn)
	id := r.taggableID()
	if id == "" {
		r.opCreateCluster(tn)
		return
	}
	tags := r.randomTags(1 + r.rng.IntN(3))
	_, err := r.client(tn).TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: tags})
	r.logf("%s TagResource(%s, %d tags) -> %s", tn, id, len(tags), r.outcome("TagResource", err))
}

func (r *restartRun) opUntag(tn rsTenant) {
	r.refresh(tn)
	id := r.taggableID()
	if id == "" {
		r.opAdvance(tn)
		return
	}
	keys := []string{[]string{"env", "team", "cost-center", "owner", "app"}[r.rng.IntN(5)]}
	_, err := r.client(tn).UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: aws.String(id), TagKeyList: keys})
	r.logf("%s UntagResource(%s, %v) -> %s", tn, id, keys, r.outcome("UntagResource", err))
}

func (r *restartRun) opDeleteCluster(tn rsTenant) {
	r.refresh(tn)
	c := r.pickCluster(func(c types.Cluster) bool {
		return len(c.Hsms) == 0 && c.State != types.ClusterStateDeleted && c.State != types.ClusterStateDeleteInProgress
	})
	if c == nil {
		r.opAdvance(tn)
		return
	}
	_, err := r.client(tn).DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: c.ClusterId})
	r.logf("%s DeleteCluster(%s %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, r.outcome("DeleteCluster", err))
}

func (r *restartRun) opCopyBackup(tn rsTenant) {
	r.refresh(tn)
	b := r.pickBackup(func(b types.Backup) bool { return b.BackupState == types.BackupStateReady })
	if b == nil {
		r.opAdvance(tn)
		return
	}
	dest := map[string]string{"us-east-1": "eu-west-1", "eu-west-1": "us-east-1"}[tn.region]
	if r.rng.IntN(8) == 0 {
		dest = "us-west-2"
	}
	in := &cloudhsmv2.CopyBackupToRegionInput{BackupId: b.BackupId, DestinationRegion: aws.String(dest)}
	if r.rng.IntN(3) == 0 {
		in.TagList = r.randomTags(1)
	}
	_, err := r.client(tn).CopyBackupToRegion(ctx, in)
	r.logf("%s CopyBackupToRegion(%s %s, %s) -> %s", tn, aws.ToString(b.BackupId), b.BackupState, dest, r.outcome("CopyBackupToRegion", err))
}

func (r *restartRun) opDeleteBackup(tn rsTenant) {
	r.refresh(tn)
	b := r.pickBackup(func(b types.Backup) bool { return b.BackupState == types.BackupStateReady })
	if b == nil {
		r.opAdvance(tn)
		return
	}
	_, err := r.client(tn).DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: b.BackupId})
	r.logf("%s DeleteBackup(%s %s) -> %s", tn, aws.ToString(b.BackupId), b.BackupState, r.outcome("DeleteBackup", err))
}

func (r *restartRun) opRestoreBackup(tn rsTenant) {
	r.refresh(tn)
	b := r.pickBackup(func(b types.Backup) bool { return b.BackupState == types.BackupStatePendingDeletion })
	if b == nil {
		r.opAdvance(tn)
		return
	}
	_, err := r.client(tn).RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: b.BackupId})
	r.logf("%s RestoreBackup(%s %s) -> %s", tn, aws.ToString(b.BackupId), b.BackupState, r.outcome("RestoreBackup", err))
}

func (r *restartRun) opNeverExpires(tn rsTenant) {
	r.refresh(tn)
	b := r.pickBackup(func(b types.Backup) bool { return b.BackupState != types.BackupStateDeleted })
	if b == nil {
		r.opAdvance(tn)
		return
	}
	never := r.rng.IntN(2) == 0
	_, err := r.client(tn).ModifyBackupAttributes(ctx, &cloudhsmv2.ModifyBackupAttributesInput{BackupId: b.BackupId, NeverExpires: aws.Bool(never)})
	r.logf("%s ModifyBackupAttributes(%s %s, NeverExpires %v) -> %s", tn, aws.ToString(b.BackupId), b.BackupState, never, r.outcome("ModifyBackupAttributes", err))
}

func otherAccount(account string) string {
	if account == acctA {
		return acctB
	}
	return acctA
}

func (r *restartRun) opPutPolicy(tn rsTenant) {
	r.refresh(tn)
	b := r.pickBackup(func(b types.Backup) bool { return b.BackupState == types.BackupStateReady })
	if b == nil {
		r.opAdvance(tn)
		return
	}
	arn := aws.ToString(b.BackupArn)
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":["cloudhsm:CreateCluster","cloudhsm:DescribeBackups"],"Resource":%q}]}`,
		otherAccount(tn.account), arn)
	if r.rng.IntN(10) == 0 {
		policy = `{"Version":"2012-10-17"}` // refused
	}
	_, err := r.client(tn).PutResourcePolicy(ctx, &cloudhsmv2.PutResourcePolicyInput{ResourceArn: aws.String(arn), Policy: aws.String(policy)})
	r.logf("%s PutResourcePolicy(%s %s) -> %s", tn, aws.ToString(b.BackupId), b.BackupState, r.outcome("PutResourcePolicy", err))
}

func (r *restartRun) opDeletePolicy(tn rsTenant) {
	r.refresh(tn)
	b := r.pickBackup(func(types.Backup) bool { return true })
	if b == nil {
		r.opAdvance(tn)
		return
	}
	_, err := r.client(tn).DeleteResourcePolicy(ctx, &cloudhsmv2.DeleteResourcePolicyInput{ResourceArn: b.BackupArn})
	r.logf("%s DeleteResourcePolicy(%s %s) -> %s", tn, aws.ToString(b.BackupId), b.BackupState, r.outcome("DeleteResourcePolicy", err))
}

func (r *restartRun) opAdvance(rsTenant) {
	choices := []time.Duration{100 * time.Millisecond, time.Second, 30 * time.Second, 4 * time.Minute, 10 * time.Minute,
		time.Hour, 6 * time.Hour, 25 * time.Hour, 3 * 24 * time.Hour, 8 * 24 * time.Hour}
	weights := []int{2, 3, 2, 3, 3, 3, 3, 4, 2, 1}
	n := r.rng.IntN(26)
	d := choices[len(choices)-1]
	for i, w := range weights {
		if n < w {
			d = choices[i]
			break
		}
		n -= w
	}
	_, err := r.e.admin.Advance(ctx, d)
	r.logf("admin Advance(%s) -> %s", d, r.outcome("Advance", err))
}

func (r *restartRun) opDegrade(tn rsTenant) {
	r.refresh(tn)
	c := r.pickCluster(func(c types.Cluster) bool {
		return slices.ContainsFunc(c.Hsms, func(h types.Hsm) bool { return h.State == types.HsmStateActive })
	})
	h := r.pickHsm(c, types.HsmStateActive)
	if h == nil {
		r.opAdvance(tn)
		return
	}
	_, err := r.e.admin.Degrade(ctx, admin.HsmTarget{Account: tn.account, Region: tn.region, ClusterID: aws.ToString(c.ClusterId), HsmID: aws.ToString(h.HsmId)})
	r.logf("%s admin Degrade(%s %s, %s %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, aws.ToString(h.HsmId), h.State, r.outcome("Degrade", err))
}

func (r *restartRun) opHeal(tn rsTenant) {
	r.refresh(tn)
	c := r.pickCluster(func(c types.Cluster) bool {
		return slices.ContainsFunc(c.Hsms, func(h types.Hsm) bool { return h.State == types.HsmStateDegraded })
	})
	h := r.pickHsm(c, types.HsmStateDegraded)
	if h == nil {
		r.opDegrade(tn)
		return
	}
	_, err := r.e.admin.Heal(ctx, admin.HsmTarget{Account: tn.account, Region: tn.region, ClusterID: aws.ToString(c.ClusterId), HsmID: aws.ToString(h.HsmId)})
	r.logf("%s admin Heal(%s %s, %s %s) -> %s", tn, aws.ToString(c.ClusterId), c.State, aws.ToString(h.HsmId), h.State, r.outcome("Heal", err))
}

// opReimport imports the server's own export over itself: replacing every
// resource by itself must leave the state as it was, durably.
func (r *restartRun) opReimport(rsTenant) {
	doc, err := r.e.admin.Export(ctx)
	if err != nil {
		r.fatalf("export: %v", err)
	}
	_, err = r.e.admin.Import(ctx, bytes.NewReader(doc))
	r.logf("admin Import(own export) -> %s", r.outcome("Import", err))
}

// ---- the restart and the comparison ----

// observation is what a restart must not change: the snapshot and, for
// every tenant, the clusters, backups and shared backups as listed.
type observation struct {
	snapshot map[string]any
	describe map[string]any
}

func (r *restartRun) observe() observation {
	r.t.Helper()
	doc, err := r.e.admin.Export(ctx)
	if err != nil {
		r.fatalf("export: %v", err)
	}
	snap := normalizedSnapshot(r.t, doc)
	tenants := slices.Clone(rsTenants)
	for _, kind := range []string{"clusters", "backups"} {
		for key := range snap[kind].(map[string]any) {
			parts := strings.SplitN(key, "/", 3)
			if tn := (rsTenant{parts[0], parts[1]}); !slices.Contains(tenants, tn) {
				tenants = append(tenants, tn)
			}
		}
	}
	desc := map[string]any{}
	for _, tn := range tenants {
		clusters, backups, shared := r.describe(tn, true)
		for _, c := range clusters {
			r.checkPlaces(tn, &c)
		}
		desc[tn.String()] = map[string]any{
			"DescribeClusters":        toGeneric(r.t, clusters),
			"DescribeBackups":         toGeneric(r.t, backups),
			"DescribeBackups(Shared)": toGeneric(r.t, shared),
		}
	}
	return observation{snapshot: snap, describe: normalize(desc).(map[string]any)}
}

func (r *restartRun) restartAndCompare() {
	r.t.Helper()
	before := r.observe()
	r.e.hs.Close()
	if err := r.e.srv.Close(); err != nil {
		r.fatalf("close the server: %v", err)
	}
	r.e = newEnv(r.t, r.cfg)
	r.clients = map[rsTenant]*cloudhsmv2.Client{}
	r.restarts++
	r.lastCounts = stateCounts(before.snapshot)
	r.logf("-- restart (%s)", r.lastCounts)
	after := r.observe()
	var diffs []string
	diffJSON("export", before.snapshot, after.snapshot, &diffs)
	diffJSON("describe", before.describe, after.describe, &diffs)
	if len(diffs) > 0 {
		r.fatalf("the state differs after a restart on the same data directory (before -> after):\n  %s", strings.Join(diffs, "\n  "))
	}
}

// stateCounts summarises a normalised snapshot: resources by state.
func stateCounts(snap map[string]any) string {
	counts := map[string]int{}
	for _, kind := range []string{"clusters", "backups"} {
		for _, v := range snap[kind].(map[string]any) {
			m := v.(map[string]any)
			counts[kind+" "+fmt.Sprint(m["state"])]++
			if hsms, ok := m["hsms"].([]any); ok {
				counts["hsms"] += len(hsms)
			}
		}
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// normalizedSnapshot decodes an export into generic JSON with clusters and
// backups keyed by account/region/id (the export lists them in an order
// that depends on map iteration), and normalised as normalize does.
func normalizedSnapshot(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var snap map[string]any
	if err := json.Unmarshal(doc, &snap); err != nil {
		t.Fatalf("decode export: %v", err)
	}
	for kind, idField := range map[string]string{"clusters": "clusterId", "backups": "backupId"} {
		keyed := map[string]any{}
		list, _ := snap[kind].([]any)
		for _, v := range list {
			m := v.(map[string]any)
			key := fmt.Sprintf("%v/%v/%v", m["account"], m["region"], m[idField])
			if _, dup := keyed[key]; dup {
				t.Fatalf("export lists %s twice", key)
			}
			keyed[key] = m
		}
		snap[kind] = keyed
	}
	return normalize(snap).(map[string]any)
}

func toGeneric(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// normalize removes what legitimately differs between a running server's
// view and the stored one: absent, null and empty lists are the same, and
// times are compared as instants (in UTC).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			n := normalize(e)
			if l, ok := n.([]any); n == nil || (ok && len(l) == 0) {
				delete(x, k)
				continue
			}
			x[k] = n
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	case string:
		if len(x) >= 20 && x[4] == '-' && x[10] == 'T' {
			if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return tm.UTC().Format(time.RFC3339Nano)
			}
		}
	}
	return v
}

const maxDiffs = 40

// diffJSON appends a line per difference between two generic JSON values.
func diffJSON(path string, a, b any, out *[]string) {
	if len(*out) >= maxDiffs {
		return
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			p := path + "." + k
			if strings.Contains(k, "/") {
				p = path + "[" + k + "]"
			}
			diffJSON(p, x[k], y[k], out)
		}
		return
	case []any:
		y, ok := b.([]any)
		if !ok {
			break
		}
		if len(x) != len(y) {
			*out = append(*out, fmt.Sprintf("%s: %d elements -> %d elements", path, len(x), len(y)))
		}
		for i := 0; i < len(x) && i < len(y); i++ {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), x[i], y[i], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, fmt.Sprintf("%s: %s -> %s", path, short(a), short(b)))
	}
}

func short(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

// ---- HSM identities ----

// fastIdentities makes real HSM identities (certificates chained to the
// server's roots, the cluster CSR) from a few RSA keys made once, so that
// a hundred CreateHsm calls under the race detector do not spend their
// time generating keys. Identities are not what this test is about.
type fastIdentities struct {
	keys []*rsa.PrivateKey
	turn *atomic.Uint64
}

func newFastIdentities(t *testing.T) fastIdentities {
	t.Helper()
	f := fastIdentities{turn: new(atomic.Uint64)}
	for range 2 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		f.keys = append(f.keys, k)
	}
	return f
}

func (f fastIdentities) NewIdentity(a *pki.Authority, req pki.IdentityRequest) (*pki.HSMIdentity, string, error) {
	id, err := a.NewHSMIdentityWithOptions(req.HsmID, req.Now, pki.IdentityOptions{
		Partition: req.Partition, NonFIPS: req.NonFIPS, HSM1: req.HSM1,
		KeySource: func() (*rsa.PrivateKey, error) { return f.keys[f.turn.Add(1)%uint64(len(f.keys))], nil },
	})
	if err != nil || !req.CSR {
		return id, "", err
	}
	csr, err := pki.ClusterCSR(id, req.Partition, req.NonFIPS, req.HSM1)
	return id, csr, err
}

func (fastIdentities) Close() {}
