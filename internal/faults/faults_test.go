package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
)

var ops = []string{"DescribeClusters", "CreateCluster", "DescribeBackups"}

const (
	acctA = "111122223333"
	acctB = "444455556666"
)

func newInjector(t *testing.T, opts faults.Options) *faults.Injector {
	t.Helper()
	if opts.Operations == nil {
		opts.Operations = ops
	}
	return faults.New(opts)
}

func mustAdd(t *testing.T, in *faults.Injector, r faults.Rule) faults.Rule {
	t.Helper()
	got, err := in.Add(r)
	if err != nil {
		t.Fatalf("Add(%+v): %v", r, err)
	}
	return got
}

func call(op, account string) faults.Call {
	return faults.Call{Operation: op, Account: account, Region: "us-east-1"}
}

func wantCode(t *testing.T, err error, code, msg string) {
	t.Helper()
	var e *awsjson.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *awsjson.Error %s, got %v", code, err)
	}
	if e.Code != code {
		t.Fatalf("code = %s, want %s", e.Code, code)
	}
	if msg != "" && e.Message != msg {
		t.Fatalf("message = %q, want %q", e.Message, msg)
	}
}

func TestValidate(t *testing.T) {
	in := newInjector(t, faults.Options{})
	cases := []struct {
		name string
		rule faults.Rule
		want string // substring of the error; "" means valid
	}{
		{"throttle", faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling}, ""},
		{"wildcard", faults.Rule{Operation: "*", Error: awsjson.CodeService}, ""},
		{"latency only", faults.Rule{Operation: "CreateCluster", Latency: faults.Duration(time.Millisecond)}, ""},
		{"full", faults.Rule{Operation: "CreateCluster", Account: acctA, Region: "eu-west-1", Error: awsjson.CodeInternalFailure, Message: "boom", Latency: 1, Probability: 0.5, Count: 3}, ""},
		{"no operation", faults.Rule{Error: awsjson.CodeThrottling}, "operation is required"},
		{"unknown operation", faults.Rule{Operation: "DescribeCluster", Error: awsjson.CodeThrottling}, `unknown operation "DescribeCluster"`},
		{"unknown error", faults.Rule{Operation: "DescribeClusters", Error: "Boom"}, `error "Boom"`},
		{"nothing to do", faults.Rule{Operation: "DescribeClusters"}, "needs an error, a latency, or both"},
		{"bad account", faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Account: "12"}, "12-digit"},
		{"bad region", faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Region: "mars"}, "region"},
		{"probability > 1", faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Probability: 1.5}, "probability"},
		{"negative count", faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Count: -1}, "count"},
		{"negative latency", faults.Rule{Operation: "DescribeClusters", Latency: -1}, "latency"},
		{"huge latency", faults.Rule{Operation: "DescribeClusters", Latency: faults.Duration(time.Hour)}, "latency"},
		{"message without error", faults.Rule{Operation: "DescribeClusters", Latency: 1, Message: "x"}, "message needs an error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := in.Validate(c.rule)
			if c.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ie *faults.InvalidRuleError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want InvalidRuleError containing %q, got %v", c.want, err)
			}
		})
	}
	if n := len(in.Rules()); n != 0 {
		t.Fatalf("Validate stored %d rules", n)
	}
}

func TestAnyOperationNameWithoutList(t *testing.T) {
	in := faults.New(faults.Options{})
	mustAdd(t, in, faults.Rule{Operation: "Whatever", Error: awsjson.CodeThrottling})
	wantCode(t, in.Inject(context.Background(), call("Whatever", acctA)), awsjson.CodeThrottling, "Rate exceeded")
}

func TestDefaultMessages(t *testing.T) {
	for code, msg := range map[string]string{
		awsjson.CodeThrottling:      "Rate exceeded",
		awsjson.CodeInternalFailure: "The request processing has failed because of an unknown error, exception or failure.",
		awsjson.CodeService:         "The request was rejected because an error occurred.",
	} {
		in := newInjector(t, faults.Options{})
		mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Error: code})
		wantCode(t, in.Inject(context.Background(), call("DescribeClusters", acctA)), code, msg)
	}
	in := newInjector(t, faults.Options{})
	mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeService, Message: "custom"})
	wantCode(t, in.Inject(context.Background(), call("DescribeClusters", acctA)), awsjson.CodeService, "custom")
}

func TestMatching(t *testing.T) {
	in := newInjector(t, faults.Options{})
	r := mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Account: acctA, Error: awsjson.CodeThrottling})
	ctx := context.Background()
	if err := in.Inject(ctx, call("DescribeClusters", acctB)); err != nil {
		t.Fatalf("other account hit: %v", err)
	}
	if err := in.Inject(ctx, call("CreateCluster", acctA)); err != nil {
		t.Fatalf("other operation hit: %v", err)
	}
	wantCode(t, in.Inject(ctx, call("DescribeClusters", acctA)), awsjson.CodeThrottling, "")
	got, ok := in.Get(r.ID)
	if !ok || got.Hits != 1 {
		t.Fatalf("Get(%s) = %+v, %v; want 1 hit", r.ID, got, ok)
	}

	reg := newInjector(t, faults.Options{})
	mustAdd(t, reg, faults.Rule{Operation: "*", Region: "eu-west-1", Error: awsjson.CodeService})
	if err := reg.Inject(ctx, call("CreateCluster", acctA)); err != nil {
		t.Fatalf("other region hit: %v", err)
	}
	wantCode(t, reg.Inject(ctx, faults.Call{Operation: "CreateCluster", Account: acctA, Region: "eu-west-1"}), awsjson.CodeService, "")
}

func TestCount(t *testing.T) {
	in := newInjector(t, faults.Options{})
	r := mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Count: 3})
	if r.Remaining != 3 || r.ID == "" {
		t.Fatalf("added rule = %+v", r)
	}
	ctx := context.Background()
	for i := range 3 {
		wantCode(t, in.Inject(ctx, call("DescribeClusters", acctA)), awsjson.CodeThrottling, "")
		_ = i
	}
	for range 5 {
		if err := in.Inject(ctx, call("DescribeClusters", acctA)); err != nil {
			t.Fatalf("spent rule still hits: %v", err)
		}
	}
	got, _ := in.Get(r.ID)
	if got.Hits != 3 || got.Remaining != 0 || !got.Spent {
		t.Fatalf("after use: %+v; want 3 hits, spent", got)
	}
}

func TestConcurrentCount(t *testing.T) {
	var mu sync.Mutex
	injected := 0
	in := newInjector(t, faults.Options{OnInject: func(op, code string) {
		mu.Lock()
		injected++
		mu.Unlock()
	}})
	r := mustAdd(t, in, faults.Rule{Operation: "*", Error: awsjson.CodeThrottling, Count: 100})
	var wg sync.WaitGroup
	var errs sync.Map
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 10 {
				if in.Inject(context.Background(), call("DescribeClusters", acctA)) != nil {
					n++
				}
			}
			errs.Store(g, n)
		}()
	}
	// Readers and writers race with Inject.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			_ = in.Rules()
		}
	}()
	wg.Wait()
	total := 0
	errs.Range(func(_, v any) bool { total += v.(int); return true })
	got, _ := in.Get(r.ID)
	if total != 100 || got.Hits != 100 || injected != 100 {
		t.Fatalf("errors = %d, hits = %d, OnInject = %d; want 100 each", total, got.Hits, injected)
	}
}

func TestProbability(t *testing.T) {
	run := func(seed uint64) int64 {
		in := newInjector(t, faults.Options{Seed: seed})
		r := mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Probability: 0.25})
		for range 2000 {
			_ = in.Inject(context.Background(), call("DescribeClusters", acctA))
		}
		got, _ := in.Get(r.ID)
		return got.Hits
	}
	a, b := run(42), run(42)
	if a != b {
		t.Fatalf("same seed gave %d and %d hits", a, b)
	}
	if a < 400 || a > 600 {
		t.Fatalf("probability 0.25 hit %d of 2000 calls", a)
	}
	// Probability and count together: the count bounds the hits.
	in := newInjector(t, faults.Options{Seed: 7})
	r := mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling, Probability: 0.5, Count: 10})
	for range 1000 {
		_ = in.Inject(context.Background(), call("DescribeClusters", acctA))
	}
	if got, _ := in.Get(r.ID); got.Hits != 10 || !got.Spent {
		t.Fatalf("probability+count: %+v", got)
	}
}

func TestLatency(t *testing.T) {
	var slept []time.Duration
	in := newInjector(t, faults.Options{Sleep: func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}})
	mustAdd(t, in, faults.Rule{Operation: "*", Latency: faults.Duration(100 * time.Millisecond)})
	mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Latency: faults.Duration(50 * time.Millisecond), Error: awsjson.CodeThrottling})
	mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeService}) // never reached: the first error wins
	ctx := context.Background()
	wantCode(t, in.Inject(ctx, call("DescribeClusters", acctA)), awsjson.CodeThrottling, "")
	if err := in.Inject(ctx, call("CreateCluster", acctA)); err != nil {
		t.Fatalf("latency-only rule answered an error: %v", err)
	}
	if len(slept) != 2 || slept[0] != 150*time.Millisecond || slept[1] != 100*time.Millisecond {
		t.Fatalf("slept %v; want [150ms 100ms]", slept)
	}
	rules := in.Rules()
	if rules[0].Hits != 2 || rules[1].Hits != 1 || rules[2].Hits != 0 {
		t.Fatalf("hits = %d %d %d; want 2 1 0", rules[0].Hits, rules[1].Hits, rules[2].Hits)
	}
}

func TestRealLatencyAndCancellation(t *testing.T) {
	in := newInjector(t, faults.Options{})
	mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Latency: faults.Duration(30 * time.Millisecond)})
	start := time.Now()
	if err := in.Inject(context.Background(), call("DescribeClusters", acctA)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("latency of 30ms took %v", d)
	}

	slow := newInjector(t, faults.Options{})
	mustAdd(t, slow, faults.Rule{Operation: "DescribeClusters", Latency: faults.Duration(faults.MaxLatency), Error: awsjson.CodeThrottling})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- slow.Inject(ctx, call("DescribeClusters", acctA)) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Inject = %v; want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Inject ignored the cancelled context")
	}
}

func TestOnInjectLabels(t *testing.T) {
	var got []string
	in := newInjector(t, faults.Options{OnInject: func(op, code string) { got = append(got, op+"/"+code) }})
	mustAdd(t, in, faults.Rule{Operation: "DescribeBackups", Latency: 1})
	mustAdd(t, in, faults.Rule{Operation: "DescribeBackups", Error: awsjson.CodeInternalFailure})
	_ = in.Inject(context.Background(), call("DescribeBackups", acctA))
	want := []string{"DescribeBackups/" + faults.LatencyOnly, "DescribeBackups/" + awsjson.CodeInternalFailure}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("OnInject calls = %v; want %v", got, want)
	}
}

func TestDeleteClearGet(t *testing.T) {
	in := newInjector(t, faults.Options{})
	a := mustAdd(t, in, faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling})
	b := mustAdd(t, in, faults.Rule{Operation: "CreateCluster", Error: awsjson.CodeThrottling})
	if a.ID == b.ID {
		t.Fatalf("duplicate ids %s", a.ID)
	}
	if ok, err := in.Delete(a.ID); !ok || err != nil {
		t.Fatalf("first Delete: %v %v", ok, err)
	}
	if ok, _ := in.Delete(a.ID); ok {
		t.Fatal("Delete should succeed once")
	}
	if _, ok := in.Get(a.ID); ok {
		t.Fatal("deleted rule still found")
	}
	if err := in.Inject(context.Background(), call("DescribeClusters", acctA)); err != nil {
		t.Fatalf("deleted rule hit: %v", err)
	}
	if n, err := in.Clear(); n != 1 || err != nil {
		t.Fatalf("Clear = %d, want 1", n)
	}
	if len(in.Rules()) != 0 {
		t.Fatal("rules left after Clear")
	}
}

func TestRuleJSON(t *testing.T) {
	var r faults.Rule
	if err := json.Unmarshal([]byte(`{"operation":"DescribeClusters","latency":"1.5s","count":2}`), &r); err != nil {
		t.Fatal(err)
	}
	if time.Duration(r.Latency) != 1500*time.Millisecond || r.Count != 2 {
		t.Fatalf("decoded %+v", r)
	}
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"latency":"1.5s"`) {
		t.Fatalf("encoded %s", b)
	}
	if err := json.Unmarshal([]byte(`{"latency":"soon"}`), &r); err == nil || !strings.Contains(err.Error(), "Go duration") {
		t.Fatalf("bad latency: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"latency":200}`), &r); err == nil {
		t.Fatal("a number latency should be refused")
	}
}

// memLedger keeps rules as a shared estate would, for the injectors of
// several processes; writes counts the changes it kept.
type memLedger struct {
	mu     sync.Mutex
	kept   []byte
	writes int
}

func (l *memLedger) Change(fn func(old []byte) ([]byte, error)) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, err := fn(l.kept)
	if err != nil {
		return nil, err
	}
	l.kept, l.writes = v, l.writes+1
	return v, nil
}

func (l *memLedger) snapshot() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kept
}

// TestLedgerAcrossProcesses: injectors sharing a ledger (the processes of a
// shared estate) install the newest state whatever the order they learn of
// states in, keep their own hits of uncounted rules, and write nothing
// when a counted rule has nothing left to take.
func TestLedgerAcrossProcesses(t *testing.T) {
	ledger := &memLedger{}
	one := newInjector(t, faults.Options{Ledger: ledger})
	two := newInjector(t, faults.Options{Ledger: ledger})
	ctx := context.Background()

	counted := mustAdd(t, one, faults.Rule{Operation: "CreateCluster", Error: awsjson.CodeThrottling, Count: 1})
	withRule := ledger.snapshot()
	if err := two.Replace(withRule); err != nil {
		t.Fatal(err)
	}
	wantCode(t, one.Inject(ctx, call("CreateCluster", acctA)), awsjson.CodeThrottling, "")
	writes := ledger.writes
	// two has not learned that the rule is spent: it asks the ledger,
	// which has nothing left to take, and keeps nothing.
	if err := two.Inject(ctx, call("CreateCluster", acctA)); err != nil {
		t.Fatalf("a spent counted rule hit on another process: %v", err)
	}
	if ledger.writes != writes {
		t.Errorf("a take with nothing to take wrote the ledger (%d writes, want %d)", ledger.writes, writes)
	}

	if _, err := two.Delete(counted.ID); err != nil {
		t.Fatal(err)
	}
	if err := two.Replace(withRule); err != nil { // learned late, out of order
		t.Fatal(err)
	}
	if _, ok := two.Get(counted.ID); ok {
		t.Error("an older state, learned after a newer one, brought a deleted rule back")
	}

	uncounted := mustAdd(t, one, faults.Rule{Operation: "DescribeClusters", Error: awsjson.CodeThrottling})
	for range 3 {
		wantCode(t, one.Inject(ctx, call("DescribeClusters", acctA)), awsjson.CodeThrottling, "")
	}
	mustAdd(t, two, faults.Rule{Operation: "DescribeBackups", Latency: faults.Duration(time.Millisecond)})
	if err := one.Replace(ledger.snapshot()); err != nil {
		t.Fatal(err)
	}
	if got, _ := one.Get(uncounted.ID); got.Hits != 3 {
		t.Errorf("an uncounted rule's hits after another process added a rule: %d, want 3", got.Hits)
	}
	if n := len(one.Rules()); n != 2 {
		t.Errorf("%d rules after the other process's addition, want 2", n)
	}
}
