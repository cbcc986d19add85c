package reliability

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// The soak test: many accounts and regions drive clusters through their
// whole lifecycle at once against one in-process server whose clock a
// goroutine keeps advancing, while readers list everything; invariants are
// checked on every answer, and once more when the load stops.

var (
	soakAccounts = []string{"111111111111", "222222222222", "333333333333"}
	soakRegions  = []string{"us-east-1", "eu-west-1"}
)

// clusterOrder is the legal order of cluster states in this load (no
// ModifyCluster HsmType, no DEGRADED): every sequence a client observes
// must be a subsequence of it.
var clusterOrder = map[types.ClusterState]int{
	types.ClusterStateCreateInProgress:     0,
	types.ClusterStateUninitialized:        1,
	types.ClusterStateInitializeInProgress: 2,
	types.ClusterStateInitialized:          3,
	types.ClusterStateActive:               4,
	types.ClusterStateDeleteInProgress:     5,
	types.ClusterStateDeleted:              6,
}

var hsmOrder = map[types.HsmState]int{
	types.HsmStateCreateInProgress: 0,
	types.HsmStateActive:           1,
	types.HsmStateDeleteInProgress: 2,
}

type soakTenant struct {
	account, region string
	subnets         []string // shared by every cluster of the tenant
}

func (t *soakTenant) String() string { return t.account + "/" + t.region }

type soak struct {
	ca      *testkit.CA
	tenants []*soakTenant
	clients map[*soakTenant]*cloudhsmv2.Client

	hsmGate chan struct{}

	mu            sync.Mutex
	owner         map[string]*soakTenant            // cluster id -> tenant that created it
	hsmIDs        map[string]string                 // HSM id -> cluster id
	seenIn        map[string]map[*soakTenant]bool   // cluster id -> tenants whose answers showed it
	backupsIn     map[string]map[*soakTenant]string // backup id -> tenant -> its ClusterId
	requests      map[string]int
	errors        map[string]int
	counts        map[string]int
	violations    []string
	seenViolation map[string]bool
}

// violate records a broken invariant (once per distinct message: a long
// soak would otherwise repeat a lasting one at every listing).
func (s *soak) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seenViolation[msg] {
		return
	}
	s.seenViolation[msg] = true
	s.violations = append(s.violations, msg)
}

func (s *soak) count(name string, n int) {
	s.mu.Lock()
	s.counts[name] += n
	s.mu.Unlock()
}

// call records a request and its outcome; any error is unexpected in this
// load (every request is valid for the state its sender knows).
func (s *soak) call(op string, err error) error {
	s.mu.Lock()
	s.requests[op]++
	if err != nil {
		code := apiCode(err)
		if code == "" {
			code = "transport"
		}
		s.errors[code]++
	}
	s.mu.Unlock()
	if err != nil {
		s.violate("%s failed: %v", op, err)
	}
	return err
}

func (s *soak) saw(t *soakTenant, id string) {
	s.mu.Lock()
	if s.seenIn[id] == nil {
		s.seenIn[id] = map[*soakTenant]bool{}
	}
	s.seenIn[id][t] = true
	s.mu.Unlock()
}

// soakCluster is a worker's knowledge of a cluster it owns.
type soakCluster struct {
	id       string
	azs      []string
	tags     map[string]string
	phase    string
	last     int                  // index in clusterOrder of the last state seen
	states   []types.ClusterState // distinct states in the order seen
	hsmLast  map[string]int       // HSM id -> index in hsmOrder of its last state
	hsms     map[string]bool      // HSMs created and not yet seen gone
	deleting map[string]bool      // HSMs whose DeleteHsm was sent
	wantHsms int                  // HSMs to run while ACTIVE
	shortcut bool                 // delete while UNINITIALIZED
	backups  bool                 // backup operations done
	since    time.Time            // when the current phase began
}

type soakWorker struct {
	s        *soak
	t        *soakTenant
	c        *cloudhsmv2.Client
	rng      *rand.Rand
	clusters []*soakCluster
	all      []*soakCluster
}

// run works until stop ends. Requests themselves are never cancelled, so
// that every write the server applied is also known to the worker.
func (w *soakWorker) run(stop context.Context) {
	ctx := context.Background()
	for stop.Err() == nil {
		live := w.clusters[:0:0]
		for _, cl := range w.clusters {
			if cl.phase != "done" {
				live = append(live, cl)
			}
		}
		w.clusters = live
		if len(live) < 2 {
			w.create(ctx)
			continue
		}
		cl := live[w.rng.IntN(len(live))]
		if w.rng.IntN(10) < 3 && cl.phase != "deleting" {
			w.tagOp(ctx, cl)
			continue
		}
		w.step(ctx, cl)
		if cl.phase != "done" && time.Since(cl.since) > 20*time.Second {
			w.s.violate("cluster %s stuck in phase %s for %s (states seen %v)", cl.id, cl.phase, time.Since(cl.since).Round(time.Second), cl.states)
			cl.phase = "done"
		}
	}
}

func (w *soakWorker) create(ctx context.Context) {
	tags := map[string]string{"tenant": w.t.String(), "n": strconv.Itoa(w.rng.IntN(1000))}
	out, err := w.c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType: aws.String("hsm2m.medium"), SubnetIds: w.t.subnets, TagList: tagList(tags),
	})
	if w.s.call("CreateCluster", err) != nil {
		return
	}
	id := aws.ToString(out.Cluster.ClusterId)
	w.s.mu.Lock()
	if other := w.s.owner[id]; other != nil {
		w.s.mu.Unlock()
		w.s.violate("CreateCluster returned id %s twice (%s and %s)", id, other, w.t)
		return
	}
	w.s.owner[id] = w.t
	w.s.counts["clusters created"]++
	w.s.mu.Unlock()
	cl := &soakCluster{
		id: id, tags: tags, phase: "creating", last: -1,
		hsmLast: map[string]int{}, hsms: map[string]bool{}, deleting: map[string]bool{},
		wantHsms: 1 + w.rng.IntN(4)/3, shortcut: w.rng.IntN(5) < 2, since: time.Now(),
	}
	for az := range out.Cluster.SubnetMapping {
		cl.azs = append(cl.azs, az)
	}
	slices.Sort(cl.azs)
	w.observe(cl, out.Cluster, "CreateCluster")
	w.clusters = append(w.clusters, cl)
	w.all = append(w.all, cl)
}

// observeState checks that st may follow what cl has shown so far.
func (w *soakWorker) observeState(cl *soakCluster, st types.ClusterState, via string) {
	i, ok := clusterOrder[st]
	if !ok {
		w.s.violate("cluster %s: %s shows state %q, outside the legal order", cl.id, via, st)
		return
	}
	if i < cl.last {
		w.s.violate("cluster %s: %s shows %s after %v: not a subsequence of the legal order", cl.id, via, st, cl.states)
		return
	}
	if i > cl.last {
		cl.last = i
		cl.states = append(cl.states, st)
		w.s.count("state transitions seen", 1)
	}
}

// observe checks one answer about cl against what the worker knows.
func (w *soakWorker) observe(cl *soakCluster, got *types.Cluster, via string) {
	w.observeState(cl, got.State, via)
	if tags := tagMap(got.TagList); !equalTags(tags, cl.tags) {
		w.s.violate("cluster %s: %s shows TagList %v, but the acknowledged tags are %v", cl.id, via, tags, cl.tags)
	}
	ips := map[string]string{}
	present := map[string]bool{}
	for _, h := range got.Hsms {
		id := aws.ToString(h.HsmId)
		present[id] = true
		if aws.ToString(h.ClusterId) != cl.id {
			w.s.violate("HSM %s listed in cluster %s says ClusterId %s", id, cl.id, aws.ToString(h.ClusterId))
		}
		if !cl.hsms[id] {
			w.s.violate("cluster %s: %s shows HSM %s that its owner never created", cl.id, via, id)
			continue
		}
		i, ok := hsmOrder[h.State]
		switch {
		case !ok:
			w.s.violate("HSM %s in state %q", id, h.State)
		case i < cl.hsmLast[id]:
			w.s.violate("HSM %s went back to %s", id, h.State)
		default:
			cl.hsmLast[id] = i
		}
		key := aws.ToString(h.SubnetId) + " " + aws.ToString(h.EniIp)
		if other, dup := ips[key]; dup {
			w.s.violate("cluster %s: HSMs %s and %s share IP %s", cl.id, other, id, key)
		}
		ips[key] = id
	}
	for id := range cl.hsms {
		if !present[id] && !cl.deleting[id] && via != "CreateCluster" {
			w.s.violate("cluster %s: HSM %s vanished without a DeleteHsm", cl.id, id)
		}
		if !present[id] && cl.deleting[id] {
			delete(cl.hsms, id)
			w.s.count("HSMs deleted", 1)
		}
	}
}

func (w *soakWorker) describe(ctx context.Context, cl *soakCluster) *types.Cluster {
	out, err := w.c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {cl.id}}})
	if w.s.call("DescribeClusters", err) != nil {
		return nil
	}
	if len(out.Clusters) != 1 {
		if cl.last == clusterOrder[types.ClusterStateDeleted] {
			return nil // expired after DELETED: legal
		}
		w.s.violate("cluster %s: DescribeClusters by id returned %d clusters (last state %v)", cl.id, len(out.Clusters), cl.states)
		cl.phase = "done"
		return nil
	}
	w.observe(cl, &out.Clusters[0], "DescribeClusters")
	return &out.Clusters[0]
}

func (w *soakWorker) setPhase(cl *soakCluster, p string) {
	cl.phase = p
	cl.since = time.Now()
}

func (w *soakWorker) step(ctx context.Context, cl *soakCluster) {
	switch cl.phase {
	case "creating":
		if got := w.describe(ctx, cl); got != nil && got.State == types.ClusterStateUninitialized {
			if cl.shortcut {
				w.deleteCluster(ctx, cl)
			} else {
				w.createHsm(ctx, cl, "hsm-wait")
			}
		}
	case "hsm-wait":
		got := w.describe(ctx, cl)
		if got != nil && allActive(got) && got.Certificates != nil && got.Certificates.ClusterCsr != nil {
			signed, err := w.s.ca.Sign(*got.Certificates.ClusterCsr)
			if err != nil {
				w.s.violate("cluster %s: the ClusterCsr cannot be signed: %v", cl.id, err)
				w.setPhase(cl, "done")
				return
			}
			out, err := w.c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{
				ClusterId: aws.String(cl.id), SignedCert: aws.String(signed), TrustAnchor: aws.String(w.s.ca.PEM),
			})
			if w.s.call("InitializeCluster", err) != nil {
				return
			}
			w.observeState(cl, out.State, "InitializeCluster")
			w.s.count("clusters initialized", 1)
			w.setPhase(cl, "init-wait")
		}
	case "init-wait":
		if got := w.describe(ctx, cl); got != nil && got.State == types.ClusterStateActive {
			w.s.count("clusters activated", 1)
			w.setPhase(cl, "active")
		}
	case "active":
		switch {
		case len(cl.hsms) < cl.wantHsms:
			w.createHsm(ctx, cl, "active-hsm-wait")
		case !cl.backups:
			w.backupOps(ctx, cl)
			cl.backups = true
		default:
			w.setPhase(cl, "draining")
		}
	case "active-hsm-wait":
		if got := w.describe(ctx, cl); got != nil && allActive(got) {
			w.setPhase(cl, "active")
		}
	case "draining":
		got := w.describe(ctx, cl)
		if got == nil {
			return
		}
		if len(got.Hsms) == 0 {
			w.deleteCluster(ctx, cl)
			return
		}
		for _, h := range got.Hsms {
			id := aws.ToString(h.HsmId)
			if h.State == types.HsmStateActive && !cl.deleting[id] {
				out, err := w.c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(cl.id), HsmId: aws.String(id)})
				if w.s.call("DeleteHsm", err) != nil {
					return
				}
				if aws.ToString(out.HsmId) != id {
					w.s.violate("DeleteHsm %s answered HsmId %s", id, aws.ToString(out.HsmId))
				}
				cl.deleting[id] = true
				return
			}
		}
	case "deleting":
		got := w.describe(ctx, cl)
		if got == nil && cl.last == clusterOrder[types.ClusterStateDeleted] || got != nil && got.State == types.ClusterStateDeleted {
			w.s.count("clusters deleted", 1)
			w.setPhase(cl, "done")
		}
	}
}

func allActive(c *types.Cluster) bool {
	for _, h := range c.Hsms {
		if h.State != types.HsmStateActive {
			return false
		}
	}
	return len(c.Hsms) > 0
}

func (w *soakWorker) createHsm(ctx context.Context, cl *soakCluster, next string) {
	az := cl.azs[w.rng.IntN(len(cl.azs))]
	// One HSM at a time: each costs two RSA-2048 keys, which under -race on
	// a small machine would otherwise starve the rest of the load. When
	// another is being made, the worker does something else meanwhile.
	select {
	case w.s.hsmGate <- struct{}{}:
	default:
		cl.since = time.Now() // waiting on the test, not on the server
		return
	}
	out, err := w.c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(cl.id), AvailabilityZone: aws.String(az)})
	<-w.s.hsmGate
	if w.s.call("CreateHsm", err) != nil {
		return
	}
	id := aws.ToString(out.Hsm.HsmId)
	w.s.mu.Lock()
	other, dup := w.s.hsmIDs[id]
	w.s.hsmIDs[id] = cl.id
	w.s.counts["HSMs created"]++
	w.s.mu.Unlock()
	if dup {
		w.s.violate("CreateHsm returned id %s twice (clusters %s and %s)", id, other, cl.id)
	}
	cl.hsms[id] = true
	cl.hsmLast[id] = 0
	w.setPhase(cl, next)
}

func (w *soakWorker) deleteCluster(ctx context.Context, cl *soakCluster) {
	out, err := w.c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(cl.id)})
	if w.s.call("DeleteCluster", err) != nil {
		return
	}
	w.observe(cl, out.Cluster, "DeleteCluster")
	w.setPhase(cl, "deleting")
}

// tagOp changes the cluster's tags, then checks ListTags (in pages of two)
// against them.
func (w *soakWorker) tagOp(ctx context.Context, cl *soakCluster) {
	keys := []string{"a", "b", "c", "d", "e"}
	if w.rng.IntN(3) == 0 && len(cl.tags) > 2 {
		k := keys[w.rng.IntN(len(keys))]
		_, err := w.c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: aws.String(cl.id), TagKeyList: []string{k}})
		if w.s.call("UntagResource", err) != nil {
			return
		}
		delete(cl.tags, k)
	} else {
		set := map[string]string{keys[w.rng.IntN(len(keys))]: randHex(5)}
		_, err := w.c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(cl.id), TagList: tagList(set)})
		if w.s.call("TagResource", err) != nil {
			return
		}
		maps.Copy(cl.tags, set)
	}
	got := map[string]string{}
	p := cloudhsmv2.NewListTagsPaginator(w.c, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(cl.id), MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if w.s.call("ListTags", err) != nil {
			return
		}
		for _, t := range page.TagList {
			if _, dup := got[aws.ToString(t.Key)]; dup {
				w.s.violate("cluster %s: ListTags returned key %q twice", cl.id, aws.ToString(t.Key))
			}
			got[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	if !equalTags(got, cl.tags) {
		w.s.violate("cluster %s: ListTags %v, but the acknowledged tags are %v", cl.id, got, cl.tags)
	}
	w.s.count("tag checks", 1)
	if d := w.describe(ctx, cl); d != nil {
		if !equalTags(tagMap(d.TagList), got) {
			w.s.violate("cluster %s: TagList %v differs from ListTags %v", cl.id, tagMap(d.TagList), got)
		}
	}
}

// backupOps exercises the cluster's backups: they must belong to it, and
// a delete and restore must round-trip.
func (w *soakWorker) backupOps(ctx context.Context, cl *soakCluster) {
	out, err := w.c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"clusterIds": {cl.id}}})
	if w.s.call("DescribeBackups", err) != nil {
		return
	}
	if len(out.Backups) == 0 {
		w.s.violate("cluster %s is ACTIVE but has no backup (one is taken on activation)", cl.id)
		return
	}
	w.s.count("backups seen", len(out.Backups))
	for _, b := range out.Backups {
		if aws.ToString(b.ClusterId) != cl.id {
			w.s.violate("DescribeBackups for cluster %s returned backup %s of cluster %s", cl.id, aws.ToString(b.BackupId), aws.ToString(b.ClusterId))
		}
	}
	b := out.Backups[0]
	if b.BackupState != types.BackupStateReady {
		return
	}
	id := b.BackupId
	d, err := w.c.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: id})
	if w.s.call("DeleteBackup", err) != nil {
		return
	}
	if d.Backup.BackupState != types.BackupStatePendingDeletion {
		w.s.violate("DeleteBackup %s answered state %s", aws.ToString(id), d.Backup.BackupState)
	}
	r, err := w.c.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: id})
	if w.s.call("RestoreBackup", err) != nil {
		return
	}
	if r.Backup.BackupState != types.BackupStateReady {
		w.s.violate("RestoreBackup %s answered state %s", aws.ToString(id), r.Backup.BackupState)
	}
	w.s.count("backup delete/restore round trips", 1)
}

// reader lists tenants' clusters and backups and probes other tenants'
// resources, checking what every answer shows.
func (s *soak) reader(stop context.Context, n int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))
	last := map[string]int{} // cluster id -> index of the last state this reader saw
	for stop.Err() == nil {
		t := s.tenants[rng.IntN(len(s.tenants))]
		c := s.clients[t]
		seen := map[string]bool{}
		in := &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(int32(1 + rng.IntN(25)))}
		for {
			out, err := c.DescribeClusters(ctx, in)
			if s.call("DescribeClusters", err) != nil {
				return
			}
			ips := map[string]string{}
			for _, cl := range out.Clusters {
				id := aws.ToString(cl.ClusterId)
				s.saw(t, id)
				if seen[id] {
					s.violate("reader: cluster %s listed twice in one pagination of %s", id, t)
				}
				seen[id] = true
				i, ok := clusterOrder[cl.State]
				if !ok {
					s.violate("reader: cluster %s in state %q", id, cl.State)
				} else if i < last[id] {
					s.violate("reader: cluster %s went back to %s", id, cl.State)
				} else {
					last[id] = i
				}
				for _, h := range cl.Hsms {
					key := aws.ToString(h.SubnetId) + " " + aws.ToString(h.EniIp)
					if other, dup := ips[key]; dup {
						s.violate("HSMs %s and %s hold the same address %s in one answer (tenant %s)", other, aws.ToString(h.HsmId), key, t)
					}
					ips[key] = aws.ToString(h.HsmId)
				}
			}
			s.count("clusters read", len(out.Clusters))
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
		s.count("listings", 1)

		bout, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{})
		if s.call("DescribeBackups", err) != nil {
			return
		}
		s.mu.Lock()
		listed := map[string]bool{}
		for _, b := range bout.Backups {
			id := aws.ToString(b.BackupId)
			if listed[id] {
				s.violations = append(s.violations, fmt.Sprintf("reader: backup %s listed twice in one DescribeBackups answer of %s", id, t))
			}
			listed[id] = true
			if s.backupsIn[id] == nil {
				s.backupsIn[id] = map[*soakTenant]string{}
			}
			s.backupsIn[id][t] = aws.ToString(b.ClusterId)
		}
		s.mu.Unlock()

		// A cluster of another tenant must be invisible here.
		s.mu.Lock()
		var foreign string
		for id, o := range s.owner {
			if o != t {
				foreign = id
				break
			}
		}
		s.mu.Unlock()
		if foreign == "" {
			continue
		}
		out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {foreign}}})
		if s.call("DescribeClusters", err) != nil {
			return
		}
		if len(out.Clusters) != 0 {
			s.violate("tenant %s sees cluster %s of another tenant through a clusterIds filter", t, foreign)
		}
		_, err = c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(foreign)})
		s.mu.Lock()
		s.requests["ListTags"]++
		s.mu.Unlock()
		if code := apiCode(err); code != "CloudHsmResourceNotFoundException" {
			s.violate("tenant %s: ListTags on cluster %s of another tenant answered %v, want CloudHsmResourceNotFoundException", t, foreign, err)
		}
		s.count("cross-tenant probes", 1)
	}
}

// soakGrace is how much longer than asked the soak may run to see one
// whole lifecycle.
const soakGrace = 20 * time.Second

func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("SOAK_SECONDS"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			t.Fatalf("SOAK_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n * float64(time.Second))
	}
	return 5 * time.Second
}

func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	srv, err := cloudhsmlocal.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := &soak{
		ca: newTestCA(t), clients: map[*soakTenant]*cloudhsmv2.Client{}, hsmGate: make(chan struct{}, 1),
		owner: map[string]*soakTenant{}, hsmIDs: map[string]string{}, seenIn: map[string]map[*soakTenant]bool{},
		backupsIn: map[string]map[*soakTenant]string{},
		requests:  map[string]int{}, errors: map[string]int{}, counts: map[string]int{},
		seenViolation: map[string]bool{},
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, a := range soakAccounts {
		for _, r := range soakRegions {
			ten := &soakTenant{account: a, region: r, subnets: newSubnets(2)}
			s.tenants = append(s.tenants, ten)
			s.clients[ten] = sdkClient(srv.URL, a, r, hc)
		}
	}
	start := time.Now()
	// The load runs for dur, and on (up to soakGrace more) until at least one
	// cluster has gone all the way to ACTIVE and one to DELETED, so that a
	// slow machine still exercises whole lifecycles.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		deadline := time.NewTimer(dur + soakGrace)
		defer deadline.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-deadline.C:
				cancel()
				return
			case <-tick.C:
				s.mu.Lock()
				done := s.counts["clusters activated"] > 0 && s.counts["clusters deleted"] > 0
				s.mu.Unlock()
				if done && time.Since(start) >= dur {
					cancel()
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	// The clock: 100 ms of server time every few ms of real time, so that
	// every 500 ms in-progress state ends within a few tens of ms.
	advances := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			srv.Advance(100 * time.Millisecond)
			advances++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var workers []*soakWorker
	for i, ten := range s.tenants {
		for j := range 2 {
			w := &soakWorker{s: s, t: ten, c: s.clients[ten], rng: rand.New(rand.NewPCG(uint64(i), uint64(j)+uint64(time.Now().UnixNano())))}
			workers = append(workers, w)
			wg.Add(1)
			go func() { defer wg.Done(); w.run(ctx) }()
		}
	}
	for n := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); s.reader(ctx, n) }()
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Quiescent: every cluster's answers must agree with its owner's view,
	// and nothing may have shown up in a tenant that did not create it.
	fctx := context.Background()
	byID := map[string]*soakCluster{}
	for _, w := range workers {
		for _, cl := range w.all {
			byID[cl.id] = cl
		}
	}
	for _, ten := range s.tenants {
		c := s.clients[ten]
		got, err := allClusters(fctx, c)
		if err != nil {
			t.Fatalf("final DescribeClusters for %s: %v", ten, err)
		}
		ips := map[string]string{}
		for i := range got {
			gc := &got[i]
			id := aws.ToString(gc.ClusterId)
			s.saw(ten, id)
			cl := byID[id]
			if cl == nil {
				continue // reported below as never created
			}
			if tags := tagMap(gc.TagList); !equalTags(tags, cl.tags) {
				s.violate("final: cluster %s TagList %v, acknowledged tags %v", id, tags, cl.tags)
			}
			lt, err := allTags(fctx, c, id)
			switch {
			case err != nil && gc.State == types.ClusterStateDeleted:
			case err != nil:
				s.violate("final: ListTags %s: %v", id, err)
			case !equalTags(lt, tagMap(gc.TagList)):
				s.violate("final: cluster %s ListTags %v differs from TagList %v", id, lt, tagMap(gc.TagList))
			}
			for _, h := range gc.Hsms {
				key := aws.ToString(h.SubnetId) + " " + aws.ToString(h.EniIp)
				if other, dup := ips[key]; dup {
					s.violate("final: HSMs %s and %s hold the same address %s (tenant %s)", other, aws.ToString(h.HsmId), key, ten)
				}
				ips[key] = aws.ToString(h.HsmId)
			}
		}
	}
	for id, tens := range s.seenIn {
		owner := s.owner[id]
		for ten := range tens {
			switch {
			case owner == nil:
				s.violate("cluster %s seen in %s was never created by the test", id, ten)
			case owner != ten:
				s.violate("cluster %s of %s is visible in %s", id, owner, ten)
			}
		}
	}
	for bid, tens := range s.backupsIn {
		if len(tens) > 1 {
			s.violate("backup id %s is listed in %d tenants", bid, len(tens))
		}
		for ten, cid := range tens {
			if owner := s.owner[cid]; owner != ten {
				s.violate("backup %s of cluster %s (owner %v) is listed in %s", bid, cid, owner, ten)
			}
		}
	}

	total := 0
	for _, n := range s.requests {
		total += n
	}
	summary := map[string]any{
		"seconds":          elapsed.Seconds(),
		"askedSeconds":     dur.Seconds(),
		"tenants":          len(s.tenants),
		"workers":          len(workers),
		"readers":          3,
		"clockAdvances":    advances,
		"serverTime":       srv.Now().UTC().Format(time.RFC3339),
		"requests":         total,
		"requestsPerSec":   float64(total) / elapsed.Seconds(),
		"requestsByOp":     s.requests,
		"errorsByCode":     s.errors,
		"counts":           s.counts,
		"violations":       len(s.violations),
		"violationSamples": limit(s.violations, 20),
	}
	t.Logf("soak: %s, %d tenants, %d workers + 3 readers: %d requests (%.0f/s), %d clock advances",
		elapsed.Round(time.Millisecond), len(s.tenants), len(workers), total, float64(total)/elapsed.Seconds(), advances)
	for _, k := range slices.Sorted(maps.Keys(s.requests)) {
		t.Logf("  %-18s %6d", k, s.requests[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.counts)) {
		t.Logf("  %-34s %6d", k, s.counts[k])
	}
	t.Logf("  errors by code: %v; violations: %d", s.errors, len(s.violations))
	recordSummary(t, "soak", summary)
	if s.counts["clusters activated"] == 0 || s.counts["clusters deleted"] == 0 {
		t.Errorf("the load did not run whole lifecycles (%d activated, %d deleted)", s.counts["clusters activated"], s.counts["clusters deleted"])
	}
	for _, v := range limit(s.violations, 25) {
		t.Error(v)
	}
}
