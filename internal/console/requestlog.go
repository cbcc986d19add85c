package console

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/api"
	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
)

// Bodies longer than these are kept cut (the request log shows how long
// they were): copying a whole DescribeClusters page (tens of kilobytes of
// certificates) for every call would cost the API its throughput.
const (
	maxRequestBody  = 32 << 10
	maxResponseBody = 8 << 10
)

// RequestLog keeps the last N API calls of this process (a ring), for the
// console's request page. It is fed by the wire's Record hook and is safe
// for concurrent use; recording takes one slot's lock and copies into
// buffers the slot reuses, so it allocates nothing once the ring is full.
type RequestLog struct {
	slots []logSlot
	next  atomic.Uint64 // calls recorded so far
}

type logSlot struct {
	mu  sync.Mutex
	e   Call
	req []byte
	res []byte
}

// Call is one recorded API call.
type Call struct {
	Seq       uint64
	Start     time.Time
	Duration  time.Duration
	RequestID string
	Operation string // or the X-Amz-Target sent, when it named no operation
	Account   string
	Region    string
	Status    int
	Code      string
	UserAgent string
	// Console marks a call the console made (through the API's handlers).
	Console bool
	// Request and Response are the bodies (secrets left out), cut at
	// RequestLen / ResponseLen when longer.
	Request, Response       []byte
	RequestLen, ResponseLen int
	// Preview is the start of the request body (Calls only).
	Preview string
}

const previewLen = 120

// NewRequestLog returns a log of the last n calls; nil when n <= 0 (off).
func NewRequestLog(n int) *RequestLog {
	if n <= 0 {
		return nil
	}
	return &RequestLog{slots: make([]logSlot, n)}
}

// Size returns how many calls the log keeps.
func (l *RequestLog) Size() int { return len(l.slots) }

// Version changes with every call recorded.
func (l *RequestLog) Version() uint64 { return l.next.Load() }

// Record keeps one finished call; it fits awsjson.Hooks.Record.
func (l *RequestLog) Record(x awsjson.Exchange) {
	seq := l.next.Add(1)
	s := &l.slots[(seq-1)%uint64(len(l.slots))]
	s.mu.Lock()
	defer s.mu.Unlock()
	op := x.Operation
	if op == "" {
		op = x.Target
	}
	s.e = Call{Seq: seq, Start: x.Start, Duration: x.Duration, RequestID: x.RequestID, Operation: op,
		Status: x.Status, Code: x.Code, UserAgent: x.UserAgent, Console: x.InProcess,
		RequestLen: len(x.Request), ResponseLen: len(x.Response)}
	if c, ok := x.Caller.(*api.Caller); ok {
		s.e.Account, s.e.Region = c.Tenant.Account, c.Tenant.Region
	}
	s.req = append(s.req[:0], x.Request[:min(len(x.Request), maxRequestBody)]...)
	if mayHoldSecret(s.req) {
		s.req = scrubSecrets(s.req)
	}
	s.res = append(s.res[:0], x.Response[:min(len(x.Response), maxResponseBody)]...)
}

// CallFilter selects calls; empty fields do not filter. Error is "" (any),
// "none" (successes only), "any" (failures only) or an error code.
type CallFilter struct {
	Operation, Account, Error string
}

func (f CallFilter) match(c *Call) bool {
	switch f.Error {
	case "":
	case "none":
		if c.Code != "" {
			return false
		}
	case "any":
		if c.Code == "" {
			return false
		}
	default:
		if c.Code != f.Error {
			return false
		}
	}
	return (f.Operation == "" || c.Operation == f.Operation) && (f.Account == "" || c.Account == f.Account)
}

// Calls returns the recorded calls that f selects, newest first, without
// their bodies.
func (l *RequestLog) Calls(f CallFilter) []Call {
	var out []Call
	for i := range l.slots {
		s := &l.slots[i]
		s.mu.Lock()
		if s.e.Seq != 0 && f.match(&s.e) {
			c := s.e
			c.Preview = string(s.req[:min(len(s.req), previewLen)])
			if len(s.req) > previewLen {
				c.Preview += "…"
			}
			out = append(out, c)
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Call) int { return cmpUint(b.Seq, a.Seq) })
	return out
}

// Call returns call seq with its bodies, if the ring still holds it.
func (l *RequestLog) Call(seq uint64) (Call, bool) {
	if seq == 0 {
		return Call{}, false
	}
	s := &l.slots[(seq-1)%uint64(len(l.slots))]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e.Seq != seq {
		return Call{}, false
	}
	c := s.e
	c.Request = slices.Clone(s.req)
	c.Response = slices.Clone(s.res)
	return c, true
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// secretWords are (lower case) parts of member names whose values the log
// leaves out. The CloudHSM API has no such member; a client that sends one
// anyway (an access key pair pasted into a tag's JSON) should not find it
// on a web page.
var secretWords = []string{"secret", "password", "passphrase", "sessiontoken", "securitytoken", "privatekey", "credential"}

// mayHoldSecret reports whether b names a secret word in any case; it
// allocates nothing (it runs on every recorded call).
func mayHoldSecret(b []byte) bool {
	for _, w := range secretWords {
		if containsLowerASCII(b, w) {
			return true
		}
	}
	return false
}

// containsLowerASCII reports whether b holds w (lower case ASCII),
// ignoring the case of b's ASCII letters.
func containsLowerASCII(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		j := 0
		for j < len(w) && b[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

func secretName(name string) bool {
	n := strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(name))
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// scrubSecrets replaces the values of members named like secrets with
// "(left out)". A body that is not JSON is left out whole, as it cannot be
// searched member by member.
func scrubSecrets(body []byte) []byte {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []byte("(left out: the body mentions a secret and is not JSON)")
	}
	out, err := json.Marshal(scrub(v))
	if err != nil {
		return []byte("(left out)")
	}
	return out
}

func scrub(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if secretName(k) {
				v[k] = "(left out)"
			} else {
				v[k] = scrub(x)
			}
		}
	case []any:
		for i, x := range v {
			v[i] = scrub(x)
		}
	}
	return v
}
