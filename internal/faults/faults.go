// Package faults owns fault injection for the CloudHSM v2 endpoint: rules
// that make chosen operations fail with an AWS error, answer slowly, or
// both, for every call, a random share of calls, or the next N calls. Test
// suites use it to exercise their retry and error paths; the admin API
// manages the rules and the server consults them before every operation.
//
// An Injector is safe for concurrent use and holds all of its state (rules,
// hit counts, random source); many can live in one process.
package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
)

// AnyOperation in Rule.Operation matches every operation.
const AnyOperation = "*"

// MaxRules bounds how many rules an injector holds.
const MaxRules = 1000

// MaxLatency bounds a rule's latency.
const MaxLatency = 10 * time.Minute

// LatencyOnly is the error label of an injected fault that only delays the
// call (in logs and metrics).
const LatencyOnly = "latency"

// defaultMessages are the messages AWS sends with each error code.
var defaultMessages = map[string]string{
	awsjson.CodeThrottling:              "Rate exceeded",
	awsjson.CodeInternalFailure:         "The request processing has failed because of an unknown error, exception or failure.",
	awsjson.CodeService:                 "The request was rejected because an error occurred.",
	awsjson.CodeServiceUnavailableFault: "Service Unavailable",
	awsjson.CodeAccessDenied:            "The request was rejected because the requester does not have permission to perform the requested operation.",
	awsjson.CodeResourceLimitExceeded:   "The request was rejected because it exceeds an AWS CloudHSM limit.",
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("200ms", "1.5s").
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "200ms".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`latency must be a string such as "200ms"`)
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("latency %q is not a Go duration such as 200ms or 1.5s", s)
	}
	*d = Duration(v)
	return nil
}

// Rule is one fault: which calls it matches and what it does to them.
type Rule struct {
	// ID is assigned by the injector.
	ID string `json:"id"`
	// Operation is the operation name (DescribeClusters) or "*" for all.
	Operation string `json:"operation"`
	// Account and Region, when set, limit the rule to that caller's tenant.
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
	// Error is the AWS error code to answer with; empty for latency only.
	Error string `json:"error,omitempty"`
	// Message overrides the error's default, AWS-like message.
	Message string `json:"message,omitempty"`
	// Latency delays every call the rule hits.
	Latency Duration `json:"latency,omitempty"`
	// Probability in (0, 1] is the share of matching calls the rule hits;
	// 0 means every call.
	Probability float64 `json:"probability,omitempty"`
	// Count, when positive, limits the rule to its next Count hits.
	Count int `json:"count,omitempty"`

	// Remaining is how many hits a counted rule has left.
	Remaining int `json:"remaining,omitempty"`
	// Hits is how many calls the rule has hit so far.
	Hits int64 `json:"hits"`
	// Spent is true once a counted rule has no hits left.
	Spent   bool      `json:"spent,omitempty"`
	Created time.Time `json:"created"`
}

// Call is what a rule is matched against.
type Call struct {
	Operation string
	Account   string
	Region    string
	// Delay, when set, is told an injected latency before the call waits
	// it (the server moves its write deadline past it).
	Delay func(time.Duration)
}

// Options configure an Injector.
type Options struct {
	// Operations, when set, is the list of valid operation names: rules
	// naming another operation are refused (catches typos).
	Operations []string
	// Seed, when non-zero, seeds the random source (for reproducible runs).
	Seed uint64
	// Logger receives one line per injected fault.
	Logger *slog.Logger
	// OnInject is told about every injected fault; errorCode is the code or
	// LatencyOnly. It is called without the injector's lock held.
	OnInject func(operation, errorCode string)
	// Sleep waits for d or until ctx is done; nil uses a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now stamps rules' creation time; nil uses time.Now.
	Now func() time.Time
	// Ledger, when set, keeps the rules with an estate that several
	// processes serve (see Ledger). Nil: the rules live in this injector.
	Ledger Ledger
}

// A Ledger keeps an injector's rules with an estate that several processes
// serve, so that each process applies the same rules and a counted rule
// counts the calls to the whole estate. The injector calls it without its
// own lock held; it may be slow (a database).
type Ledger interface {
	// Change runs fn on the estate's rules (as encoded by the injector;
	// nil when there are none) and keeps what fn returns, atomically with
	// respect to every process; it returns what it kept.
	Change(fn func(old []byte) ([]byte, error)) ([]byte, error)
}

// Injector holds the rules and applies them. The zero value is not usable;
// create one with New.
type Injector struct {
	ops      map[string]bool
	log      *slog.Logger
	onInject func(operation, errorCode string)
	sleep    func(ctx context.Context, d time.Duration) error
	now      func() time.Time

	ledger Ledger

	mu     sync.Mutex
	rng    *rand.Rand
	rules  []*Rule
	nextID int
	gen    uint64 // of the ledger's state installed (see install)
}

// New returns an Injector with no rules.
func New(opts Options) *Injector {
	in := &Injector{log: opts.Logger, onInject: opts.OnInject, sleep: opts.Sleep, now: opts.Now, ledger: opts.Ledger}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.sleep == nil {
		in.sleep = sleepCtx
	}
	if in.now == nil {
		in.now = time.Now
	}
	if len(opts.Operations) > 0 {
		in.ops = map[string]bool{}
		for _, op := range opts.Operations {
			in.ops[op] = true
		}
	}
	seed1, seed2 := opts.Seed, opts.Seed^0x9e3779b97f4a7c15
	if opts.Seed == 0 {
		seed1, seed2 = rand.Uint64(), rand.Uint64()
	}
	in.rng = rand.New(rand.NewPCG(seed1, seed2))
	return in
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	accountRe = regexp.MustCompile(`^[0-9]{12}$`)
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// InvalidRuleError is a refusal of a rule, with a message for the user.
type InvalidRuleError struct{ Reason string }

func (e *InvalidRuleError) Error() string { return "invalid fault rule: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidRuleError{Reason: fmt.Sprintf(format, args...)}
}

// Validate checks a rule as Add would, without adding it.
func (in *Injector) Validate(r Rule) error {
	switch {
	case r.Operation == "":
		return invalid(`operation is required (an operation name such as DescribeClusters, or "*" for all)`)
	case r.Operation != AnyOperation && in.ops != nil && !in.ops[r.Operation]:
		return invalid("unknown operation %q; valid: %v or %q", r.Operation, in.Operations(), AnyOperation)
	case r.Account != "" && !accountRe.MatchString(r.Account):
		return invalid("account %q is not a 12-digit AWS account id", r.Account)
	case r.Region != "" && !regionRe.MatchString(r.Region):
		return invalid("region %q is not an AWS region name", r.Region)
	case r.Error != "" && !awsjson.Known(r.Error):
		return invalid("error %q is not an error code the CloudHSM v2 endpoint sends; use %s, %s or %s (or \"\" for latency only)",
			r.Error, awsjson.CodeThrottling, awsjson.CodeInternalFailure, awsjson.CodeService)
	case r.Error == "" && r.Message != "":
		return invalid("message needs an error")
	case r.Latency < 0 || time.Duration(r.Latency) > MaxLatency:
		return invalid("latency must be between 0 and %s", MaxLatency)
	case r.Error == "" && r.Latency == 0:
		return invalid("a rule needs an error, a latency, or both")
	case r.Probability < 0 || r.Probability > 1 || r.Probability != r.Probability:
		return invalid("probability must be between 0 and 1 (0 or absent: every matching call)")
	case r.Count < 0:
		return invalid("count must be positive (absent: no limit)")
	}
	return nil
}

// Operations returns the valid operation names, sorted (nil when any name is accepted).
func (in *Injector) Operations() []string {
	if in.ops == nil {
		return nil
	}
	out := make([]string, 0, len(in.ops))
	for op := range in.ops {
		out = append(out, op)
	}
	slices.Sort(out)
	return out
}

// Add validates r, gives it an id, and appends it to the rules. The
// returned copy is what was stored.
func (in *Injector) Add(r Rule) (Rule, error) {
	if err := in.Validate(r); err != nil {
		return Rule{}, err
	}
	var stored Rule
	err := in.update(func(rules []*Rule, nextID int) ([]*Rule, int, error) {
		if len(rules) >= MaxRules {
			return nil, 0, invalid("at most %d rules; delete some first", MaxRules)
		}
		nextID++
		r.ID = "fault-" + strconv.Itoa(nextID)
		r.Hits, r.Spent, r.Remaining = 0, false, r.Count
		r.Created = in.now().UTC()
		stored = r
		return append(rules, &stored), nextID, nil
	})
	if err != nil {
		return Rule{}, err
	}
	in.log.Info("fault rule added", ruleAttrs(stored)...)
	return stored, nil
}

// update changes the rules: in the ledger when there is one, else here.
// fn gets the rules and the last id number given, and returns the new ones.
func (in *Injector) update(fn func(rules []*Rule, nextID int) ([]*Rule, int, error)) error {
	if in.ledger == nil {
		in.mu.Lock()
		defer in.mu.Unlock()
		rules, next, err := fn(slices.Clone(in.rules), in.nextID)
		if err != nil {
			return err
		}
		in.rules, in.nextID = rules, next
		return nil
	}
	var built ledgerState
	_, err := in.ledger.Change(func(old []byte) ([]byte, error) {
		st, err := decodeRules(old)
		if err != nil {
			return nil, err
		}
		rules, next, err := fn(st.Rules, st.NextID)
		if err != nil {
			return nil, err
		}
		built = ledgerState{Rules: rules, NextID: next, Gen: st.Gen + 1}
		return json.Marshal(built)
	})
	if err != nil {
		return err
	}
	in.install(built)
	return nil
}

// ledgerState is what a Ledger keeps: the rules, the last id number, and
// a generation that each change increments (a process may learn of two
// changes out of order: the change it made, and one made after it).
type ledgerState struct {
	Rules  []*Rule `json:"rules"`
	NextID int     `json:"nextId"`
	Gen    uint64  `json:"gen,omitempty"`
}

func decodeRules(b []byte) (ledgerState, error) {
	var st ledgerState
	if len(b) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("fault rules kept with the estate: %w", err)
	}
	return st, nil
}

// Replace sets the rules to those a Ledger keeps (as its Change returned
// them): a process serving a shared estate calls it when another process
// changed them. A state older than the one installed is ignored.
func (in *Injector) Replace(kept []byte) error {
	st, err := decodeRules(kept)
	if err != nil {
		return err
	}
	in.install(st)
	return nil
}

// install sets the rules to st unless the injector has st or a newer
// state already. Uncounted rules keep the hits counted here (the ledger
// counts only counted rules' hits).
func (in *Injector) install(st ledgerState) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if st.Gen <= in.gen {
		return
	}
	for _, r := range st.Rules {
		if r.Count > 0 {
			continue
		}
		if i := slices.IndexFunc(in.rules, func(o *Rule) bool { return o.ID == r.ID }); i >= 0 {
			r.Hits = in.rules[i].Hits
		}
	}
	in.rules, in.nextID, in.gen = st.Rules, st.NextID, st.Gen
}

// Rules returns copies of every rule, in the order they are evaluated.
func (in *Injector) Rules() []Rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]Rule, len(in.rules))
	for i, r := range in.rules {
		out[i] = *r
	}
	return out
}

// Get returns the rule with id.
func (in *Injector) Get(id string) (Rule, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range in.rules {
		if r.ID == id {
			return *r, true
		}
	}
	return Rule{}, false
}

// Delete removes the rule with id and reports whether it existed.
func (in *Injector) Delete(id string) (bool, error) {
	found := false
	err := in.update(func(rules []*Rule, next int) ([]*Rule, int, error) {
		before := len(rules)
		rules = slices.DeleteFunc(rules, func(r *Rule) bool { return r.ID == id })
		found = len(rules) < before
		return rules, next, nil
	})
	if err == nil && found {
		in.log.Info("fault rule deleted", slog.String("fault_id", id))
	}
	return found, err
}

// Clear removes every rule and returns how many there were.
func (in *Injector) Clear() (int, error) {
	n := 0
	err := in.update(func(rules []*Rule, next int) ([]*Rule, int, error) {
		n = len(rules)
		return nil, next, nil
	})
	if err == nil && n > 0 {
		in.log.Info("fault rules cleared", slog.Int("count", n))
	}
	return n, err
}

func (r *Rule) matches(c Call) bool {
	if r.Spent {
		return false
	}
	if r.Operation != AnyOperation && r.Operation != c.Operation {
		return false
	}
	if r.Account != "" && r.Account != c.Account {
		return false
	}
	if r.Region != "" && r.Region != c.Region {
		return false
	}
	return true
}

type hit struct {
	id, code, message string
	latency           time.Duration
}

// Inject applies the rules to one call. Rules are evaluated in the order
// they were added; every matching rule that fires (its probability draw
// passes and it has hits left) counts a hit and adds its latency, and the
// first one with an error ends the evaluation: Inject waits for the total
// latency (or until ctx is done, returning ctx.Err()) and returns that error
// as an *awsjson.Error. It returns nil when no error is injected.
//
// With a Ledger, a counted rule's hit is taken from the estate's count
// (a rule another process spent meanwhile does not fire); other rules
// count their hits in this process.
func (in *Injector) Inject(ctx context.Context, c Call) error {
	var hits []hit
	if in.ledger == nil {
		hits = in.hitsLocal(c)
	} else {
		hits = in.hitsShared(c)
	}
	if len(hits) == 0 {
		return nil
	}
	var latency time.Duration
	var fail *hit
	for i := range hits {
		h := &hits[i]
		latency += h.latency
		label := h.code
		if label == "" {
			label = LatencyOnly
		}
		attrs := []slog.Attr{
			slog.String("fault_id", h.id),
			slog.String("operation", c.Operation),
			slog.String("account", c.Account),
			slog.String("region", c.Region),
			slog.String("error", label),
		}
		if h.latency > 0 {
			attrs = append(attrs, slog.Duration("latency", h.latency))
		}
		in.log.LogAttrs(ctx, slog.LevelInfo, "fault injected", attrs...)
		if in.onInject != nil {
			in.onInject(c.Operation, label)
		}
		if h.code != "" {
			fail = h
		}
	}
	if latency > 0 {
		if c.Delay != nil {
			c.Delay(latency)
		}
		if err := in.sleep(ctx, latency); err != nil {
			return err
		}
	}
	if fail == nil {
		return nil
	}
	return &awsjson.Error{Code: fail.code, Message: fail.message}
}

// hitsLocal evaluates the rules for c and counts their hits.
func (in *Injector) hitsLocal(c Call) []hit {
	var hits []hit
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range in.rules {
		if !r.matches(c) || !in.draw(r) {
			continue
		}
		r.take()
		hits = append(hits, r.hit())
		if r.Error != "" {
			break
		}
	}
	return hits
}

// hitsShared is hitsLocal for rules kept in a Ledger: counted rules take
// their hit from the estate's count.
func (in *Injector) hitsShared(c Call) []hit {
	in.mu.Lock()
	var cands []*Rule
	for _, r := range in.rules {
		if r.matches(c) {
			cands = append(cands, r)
		}
	}
	in.mu.Unlock()
	var hits []hit
	for _, r := range cands {
		in.mu.Lock()
		fire := in.draw(r)
		in.mu.Unlock()
		if !fire {
			continue
		}
		if r.Count > 0 {
			if !in.takeShared(r.ID) {
				continue
			}
		} else {
			in.mu.Lock()
			r.Hits++
			in.mu.Unlock()
		}
		hits = append(hits, r.hit())
		if r.Error != "" {
			break
		}
	}
	return hits
}

// takeShared takes one hit of counted rule id from the estate's count; it
// reports false when the rule is spent or gone, or the ledger fails (a
// fault the estate cannot count is not injected).
func (in *Injector) takeShared(id string) bool {
	err := in.update(func(rules []*Rule, next int) ([]*Rule, int, error) {
		for _, r := range rules {
			if r.ID == id && !r.Spent {
				r.take()
				return rules, next, nil
			}
		}
		return nil, 0, errNothingTaken // nothing to keep: the ledger is left as it is
	})
	switch {
	case err == nil:
		return true
	case !errors.Is(err, errNothingTaken):
		in.log.Error("count a fault rule's hit with the estate", slog.String("fault_id", id), slog.Any("err", err))
	}
	return false
}

// errNothingTaken is how takeShared leaves the ledger unchanged when the
// rule is spent or gone.
var errNothingTaken = errors.New("faults: the rule is spent or gone")

// draw reports whether a rule with a probability fires (in.mu held).
func (in *Injector) draw(r *Rule) bool {
	return r.Probability <= 0 || r.Probability >= 1 || in.rng.Float64() < r.Probability
}

// take counts one hit of r.
func (r *Rule) take() {
	r.Hits++
	if r.Count > 0 {
		r.Remaining--
		if r.Remaining <= 0 {
			r.Spent = true
		}
	}
}

func (r *Rule) hit() hit {
	h := hit{id: r.ID, code: r.Error, latency: time.Duration(r.Latency)}
	if r.Error != "" {
		h.message = r.Message
		if h.message == "" {
			h.message = messageFor(r.Error)
		}
	}
	return h
}

func messageFor(code string) string {
	if m, ok := defaultMessages[code]; ok {
		return m
	}
	return "Injected fault: " + code + "."
}

func ruleAttrs(r Rule) []any {
	attrs := []any{slog.String("fault_id", r.ID), slog.String("operation", r.Operation)}
	if r.Account != "" {
		attrs = append(attrs, slog.String("account", r.Account))
	}
	if r.Region != "" {
		attrs = append(attrs, slog.String("region", r.Region))
	}
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", r.Error))
	}
	if r.Latency > 0 {
		attrs = append(attrs, slog.Duration("latency", time.Duration(r.Latency)))
	}
	if r.Probability > 0 {
		attrs = append(attrs, slog.Float64("probability", r.Probability))
	}
	if r.Count > 0 {
		attrs = append(attrs, slog.Int("count", r.Count))
	}
	return attrs
}
