package reliability

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
)

// The crash test: a concurrent write load against the real binary on a
// data directory, SIGKILL in the middle of it, a restart on the same
// directory, and a check that every acknowledged write survived and that
// nothing unacknowledged is half there.

const (
	crashAccount = "111122223333"
	crashRegion  = "us-east-1"
	crashWorkers = 8
	crashRounds  = 3
)

// crashCluster is what the test knows of one cluster it created.
type crashCluster struct {
	id      string
	token   string            // value of the "token" tag, unique per CreateCluster
	tags    map[string]string // as last acknowledged
	azs     []string
	deleted bool            // a DeleteCluster was acknowledged
	hsms    map[string]bool // acknowledged CreateHsm ids
	uninit  bool            // seen UNINITIALIZED
}

// crashPending is the write a worker had in flight when the server died:
// it may or may not have been applied.
type crashPending struct {
	kind    string // create, tag, untag, hsm, delete
	cluster *crashCluster
	token   string            // create
	tags    map[string]string // create: its tags; tag, untag: the tags once applied
}

type crashWorker struct {
	n        int
	subnets  []string
	clusters []*crashCluster
	pending  *crashPending
	rng      *rand.Rand

	tried, acked, refused, ambiguous int
	unexpected                       []string
	// per operation: requests and time spent
	ops    map[string]int
	opTime map[string]time.Duration
	lastOp time.Time
}

func (w *crashWorker) live() []*crashCluster {
	var out []*crashCluster
	for _, c := range w.clusters {
		if !c.deleted {
			out = append(out, c)
		}
	}
	return out
}

// outcome classifies a response: acknowledged, refused by the service
// (definitely not applied), or ambiguous (no answer: maybe applied).
func (w *crashWorker) outcome(op string, err error) string {
	w.tried++
	if w.ops == nil {
		w.ops, w.opTime = map[string]int{}, map[string]time.Duration{}
	}
	w.ops[op]++
	w.opTime[op] += time.Since(w.lastOp)
	if err == nil {
		w.acked++
		return "ack"
	}
	code := apiCode(err)
	switch {
	case code == "":
		w.ambiguous++
		return "ambiguous"
	case strings.HasPrefix(code, "CloudHsm") && code != "CloudHsmInternalFailureException":
		w.refused++
		return "refused"
	default:
		w.unexpected = append(w.unexpected, fmt.Sprintf("%s: %v", op, err))
		w.ambiguous++
		return "ambiguous"
	}
}

var tagKeys = []string{"a", "b", "c", "d"}

// run sends writes until the server stops answering or ctx ends.
func (w *crashWorker) run(ctx context.Context, c *cloudhsmv2.Client) {
	bg := context.Background() // requests are not cancelled: only the server dies
	for ctx.Err() == nil {
		w.lastOp = time.Now()
		live := w.live()
		if len(live) < 2 || (len(live) < 6 && w.rng.IntN(5) == 0) {
			token := fmt.Sprintf("w%d-%s", w.n, randHex(10))
			tags := map[string]string{"owner": fmt.Sprintf("worker-%d", w.n), "token": token, "a": randHex(4)}
			out, err := c.CreateCluster(bg, &cloudhsmv2.CreateClusterInput{
				HsmType: aws.String("hsm2m.medium"), SubnetIds: w.subnets, TagList: tagList(tags),
			})
			switch w.outcome("CreateCluster", err) {
			case "ack":
				cl := &crashCluster{id: aws.ToString(out.Cluster.ClusterId), token: token, tags: tags, hsms: map[string]bool{}}
				for az := range out.Cluster.SubnetMapping {
					cl.azs = append(cl.azs, az)
				}
				sort.Strings(cl.azs)
				w.clusters = append(w.clusters, cl)
			case "ambiguous":
				w.pending = &crashPending{kind: "create", token: token, tags: tags}
				return
			}
			continue
		}
		cl := live[w.rng.IntN(len(live))]
		switch r := w.rng.IntN(100); {
		case r < 35 || len(cl.hsms) > 0:
			set := map[string]string{}
			for range 1 + w.rng.IntN(2) {
				set[tagKeys[w.rng.IntN(len(tagKeys))]] = randHex(6)
			}
			_, err := c.TagResource(bg, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(cl.id), TagList: tagList(set)})
			next := maps.Clone(cl.tags)
			maps.Copy(next, set)
			switch w.outcome("TagResource", err) {
			case "ack":
				cl.tags = next
			case "ambiguous":
				w.pending = &crashPending{kind: "tag", cluster: cl, tags: next}
				return
			}
		case r < 55:
			keys := []string{tagKeys[w.rng.IntN(len(tagKeys))], tagKeys[w.rng.IntN(len(tagKeys))]}
			_, err := c.UntagResource(bg, &cloudhsmv2.UntagResourceInput{ResourceId: aws.String(cl.id), TagKeyList: keys})
			next := maps.Clone(cl.tags)
			for _, k := range keys {
				delete(next, k)
			}
			switch w.outcome("UntagResource", err) {
			case "ack":
				cl.tags = next
			case "ambiguous":
				w.pending = &crashPending{kind: "untag", cluster: cl, tags: next}
				return
			}
		default:
			if !cl.uninit {
				out, err := c.DescribeClusters(bg, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {cl.id}}})
				if err != nil {
					if apiCode(err) == "" {
						return // the server is gone
					}
					w.unexpected = append(w.unexpected, fmt.Sprintf("DescribeClusters: %v", err))
					continue
				}
				if len(out.Clusters) == 1 && out.Clusters[0].State == types.ClusterStateUninitialized {
					cl.uninit = true
				}
				continue
			}
			if w.rng.IntN(10) < 6 {
				az := cl.azs[w.rng.IntN(len(cl.azs))]
				out, err := c.CreateHsm(bg, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(cl.id), AvailabilityZone: aws.String(az)})
				switch w.outcome("CreateHsm", err) {
				case "ack":
					cl.hsms[aws.ToString(out.Hsm.HsmId)] = true
				case "ambiguous":
					w.pending = &crashPending{kind: "hsm", cluster: cl}
					return
				}
			} else {
				_, err := c.DeleteCluster(bg, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(cl.id)})
				switch w.outcome("DeleteCluster", err) {
				case "ack":
					cl.deleted = true
				case "ambiguous":
					w.pending = &crashPending{kind: "delete", cluster: cl}
					return
				}
			}
		}
	}
}

// crashReport collects what a verification found.
type crashReport struct {
	lost       []string // acknowledged writes missing
	violations []string // half-applied writes, phantoms, broken invariants
	clusters   int
	hsms       int
}

// verify compares the restarted server with the workers' knowledge, and
// resolves each pending write to what the server shows.
func verifyCrash(ctx context.Context, c *cloudhsmv2.Client, workers []*crashWorker) (*crashReport, error) {
	got, err := allClusters(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("DescribeClusters after restart: %w", err)
	}
	rep := &crashReport{clusters: len(got)}
	byID := map[string]*types.Cluster{}
	byToken := map[string]*types.Cluster{}
	ips := map[string]string{} // subnet/ip -> hsm id
	hsmIDs := map[string]string{}
	for i := range got {
		gc := &got[i]
		id := aws.ToString(gc.ClusterId)
		if byID[id] != nil {
			rep.violations = append(rep.violations, fmt.Sprintf("cluster %s listed twice", id))
		}
		byID[id] = gc
		tags := tagMap(gc.TagList)
		if tok := tags["token"]; tok != "" {
			byToken[tok] = gc
		}
		if !slices.Contains(types.ClusterState("").Values(), gc.State) {
			rep.violations = append(rep.violations, fmt.Sprintf("cluster %s in unknown state %q", id, gc.State))
		}
		for _, h := range gc.Hsms {
			rep.hsms++
			hid := aws.ToString(h.HsmId)
			if other, dup := hsmIDs[hid]; dup {
				rep.violations = append(rep.violations, fmt.Sprintf("HSM id %s in clusters %s and %s", hid, other, id))
			}
			hsmIDs[hid] = id
			if !slices.Contains(types.HsmState("").Values(), h.State) {
				rep.violations = append(rep.violations, fmt.Sprintf("HSM %s in unknown state %q", hid, h.State))
			}
			key := aws.ToString(h.SubnetId) + " " + aws.ToString(h.EniIp)
			if other, dup := ips[key]; dup {
				rep.violations = append(rep.violations, fmt.Sprintf("IP address %s of subnet %s held by HSMs %s and %s (clusters sharing the subnet)",
					aws.ToString(h.EniIp), aws.ToString(h.SubnetId), other, hid))
			}
			ips[key] = hid
		}
		if len(gc.Hsms) > 0 && (gc.State == types.ClusterStateDeleteInProgress || gc.State == types.ClusterStateDeleted) {
			rep.violations = append(rep.violations, fmt.Sprintf("cluster %s is %s with %d HSMs", id, gc.State, len(gc.Hsms)))
		}
	}

	known := map[string]bool{}
	for _, w := range workers {
		p := w.pending
		for _, cl := range w.clusters {
			known[cl.id] = true
			gc := byID[cl.id]
			pend := p != nil && p.cluster == cl
			gone := gc == nil || gc.State == types.ClusterStateDeleteInProgress || gc.State == types.ClusterStateDeleted
			if cl.deleted {
				if !gone {
					rep.lost = append(rep.lost, fmt.Sprintf("DeleteCluster %s was acknowledged but the cluster is %s", cl.id, gc.State))
				}
				continue
			}
			if gc == nil {
				rep.lost = append(rep.lost, fmt.Sprintf("CreateCluster %s was acknowledged but the cluster is gone", cl.id))
				continue
			}
			if gone {
				if pend && p.kind == "delete" {
					cl.deleted = true
				} else {
					rep.lost = append(rep.lost, fmt.Sprintf("cluster %s is %s but no DeleteCluster was sent", cl.id, gc.State))
				}
				continue
			}
			tags := tagMap(gc.TagList)
			switch {
			case equalTags(tags, cl.tags):
			case pend && (p.kind == "tag" || p.kind == "untag") && equalTags(tags, p.tags):
				cl.tags = p.tags
			case pend && (p.kind == "tag" || p.kind == "untag"):
				rep.violations = append(rep.violations, fmt.Sprintf("cluster %s has tags %v: neither the acknowledged %v nor the unacknowledged %s's %v (half applied?)",
					cl.id, tags, cl.tags, p.kind, p.tags))
				cl.tags = tags
			default:
				rep.lost = append(rep.lost, fmt.Sprintf("cluster %s has tags %v, but the last acknowledged tags are %v", cl.id, tags, cl.tags))
			}
			seen := map[string]bool{}
			for _, h := range gc.Hsms {
				seen[aws.ToString(h.HsmId)] = true
			}
			for hid := range cl.hsms {
				if !seen[hid] {
					rep.lost = append(rep.lost, fmt.Sprintf("CreateHsm %s in cluster %s was acknowledged but the HSM is gone", hid, cl.id))
				}
			}
			var extra []string
			for hid := range seen {
				if !cl.hsms[hid] {
					extra = append(extra, hid)
				}
			}
			switch {
			case len(extra) == 0:
			case len(extra) == 1 && pend && p.kind == "hsm":
				cl.hsms[extra[0]] = true
			default:
				rep.violations = append(rep.violations, fmt.Sprintf("cluster %s has HSMs %v that no acknowledged or pending CreateHsm made", cl.id, extra))
			}
		}
		if p != nil && p.kind == "create" {
			if gc := byToken[p.token]; gc != nil {
				id := aws.ToString(gc.ClusterId)
				if tags := tagMap(gc.TagList); !equalTags(tags, p.tags) {
					rep.violations = append(rep.violations, fmt.Sprintf("unacknowledged CreateCluster %s is half there: tags %v, sent %v", id, tags, p.tags))
				}
				cl := &crashCluster{id: id, token: p.token, tags: p.tags, hsms: map[string]bool{}}
				for az := range gc.SubnetMapping {
					cl.azs = append(cl.azs, az)
				}
				sort.Strings(cl.azs)
				w.clusters = append(w.clusters, cl)
				known[id] = true
			}
		}
		w.pending = nil
	}
	for id, gc := range byID {
		if !known[id] {
			rep.violations = append(rep.violations, fmt.Sprintf("cluster %s (tags %v) was never created by the test", id, tagMap(gc.TagList)))
		}
	}
	return rep, nil
}

func TestCrashConsistency(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, "--data-dir", dir)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	workers := make([]*crashWorker, crashWorkers)
	for i := range workers {
		workers[i] = &crashWorker{n: i, subnets: newSubnets(2), rng: rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))}
	}
	var lost, violations []string
	seenViolation := map[string]bool{}
	crashes := 0
	for round := 1; round <= crashRounds; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, w := range workers {
			c := sdkClient(p.URL, crashAccount, crashRegion, &http.Client{Timeout: 10 * time.Second})
			wg.Add(1)
			go func() { defer wg.Done(); w.run(ctx, c) }()
		}
		time.Sleep(1500*time.Millisecond + time.Duration(rng.IntN(500))*time.Millisecond)
		p.kill()
		crashes++
		cancel()
		wg.Wait()

		p = startBinary(t, "--data-dir", dir)
		c := sdkClient(p.URL, crashAccount, crashRegion, nil)
		rep, err := verifyCrash(context.Background(), c, workers)
		if err != nil {
			alive := "running"
			select {
			case <-p.done:
				alive = fmt.Sprintf("exited: %v", p.err)
			default:
			}
			t.Fatalf("round %d: %v\nserver %s; stderr:\n%s", round, err, alive, p.stderrTail())
		}
		t.Logf("round %d: SIGKILL under load, restarted: %d clusters, %d HSMs; %d acknowledged writes lost, %d other violations",
			round, rep.clusters, rep.hsms, len(rep.lost), len(rep.violations))
		for _, s := range rep.lost {
			if !seenViolation[s] { // count each lost write once, not in every later round
				seenViolation[s] = true
				lost = append(lost, fmt.Sprintf("round %d: %s", round, s))
			}
		}
		for _, s := range rep.violations {
			if !seenViolation[s] { // a broken invariant stays broken: report it once
				seenViolation[s] = true
				violations = append(violations, fmt.Sprintf("round %d: %s", round, s))
			}
		}
	}
	var tried, acked, refused, ambiguous int
	var unexpected []string
	for _, w := range workers {
		tried += w.tried
		acked += w.acked
		refused += w.refused
		ambiguous += w.ambiguous
		unexpected = append(unexpected, w.unexpected...)
	}
	opsN := map[string]int{}
	opsT := map[string]time.Duration{}
	for _, w := range workers {
		for k, v := range w.ops {
			opsN[k] += v
			opsT[k] += w.opTime[k]
		}
	}
	for _, k := range slices.Sorted(maps.Keys(opsN)) {
		t.Logf("  %-14s %4d requests, mean %s", k, opsN[k], (opsT[k] / time.Duration(opsN[k])).Round(time.Millisecond))
	}
	t.Logf("crash test: %d writes tried, %d acknowledged, %d refused, %d unanswered; %d crashes survived; %d acknowledged writes lost; %d other violations",
		tried, acked, refused, ambiguous, crashes, len(lost), len(violations))
	recordSummary(t, "crash", map[string]any{
		"rounds": crashRounds, "workers": crashWorkers, "crashesSurvived": crashes,
		"writesTried": tried, "acknowledged": acked, "refused": refused, "unanswered": ambiguous,
		"acknowledgedWritesLost": len(lost), "otherViolations": len(violations),
		"requestsByOp": opsN, "samples": limit(append(slices.Clone(lost), violations...), 20),
	})
	if acked < 50 {
		t.Errorf("only %d writes were acknowledged: the load did not exercise the server", acked)
	}
	for _, s := range unexpected {
		t.Errorf("unexpected answer: %s", s)
	}
	for _, s := range limit(lost, 20) {
		t.Errorf("acknowledged write lost: %s", s)
	}
	for _, s := range limit(violations, 20) {
		t.Errorf("violation: %s", s)
	}
}

// limit returns at most n items, and a line saying how many were left out.
func limit(xs []string, n int) []string {
	if len(xs) <= n {
		return xs
	}
	return append(slices.Clone(xs[:n]), fmt.Sprintf("... and %d more", len(xs)-n))
}
