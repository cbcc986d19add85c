package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/api"
	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/console"
)

func exchange(i int, op, code, body string) awsjson.Exchange {
	return awsjson.Exchange{Start: time.Unix(int64(i), 0), Operation: op, Code: code, Status: 200, Request: []byte(body), Response: []byte(`{}`),
		Caller: &api.Caller{Tenant: cloudhsm.Tenant{Account: fmt.Sprintf("%012d", i%2), Region: "us-east-1"}}}
}

// TestRequestLogKeepsTheLastN: the ring keeps the last N calls, newest
// first, filters them, and cuts long bodies.
func TestRequestLogKeepsTheLastN(t *testing.T) {
	if console.NewRequestLog(0) != nil {
		t.Fatal("a log of size 0 is on")
	}
	l := console.NewRequestLog(3)
	for i := 1; i <= 5; i++ {
		code := ""
		if i == 4 {
			code = awsjson.CodeThrottling
		}
		l.Record(exchange(i, []string{"", "CreateCluster", "DescribeClusters"}[i%3], code, fmt.Sprintf(`{"n":%d}`, i)))
	}
	var seqs []uint64
	for _, c := range l.Calls(console.CallFilter{}) {
		seqs = append(seqs, c.Seq)
	}
	if fmt.Sprint(seqs) != "[5 4 3]" {
		t.Fatalf("kept %v, want the last three, newest first", seqs)
	}
	if _, ok := l.Call(2); ok {
		t.Fatal("call 2 is still kept")
	}
	if c, ok := l.Call(4); !ok || string(c.Request) != `{"n":4}` || c.Code != awsjson.CodeThrottling || c.Account != "000000000000" {
		t.Fatalf("call 4: %+v", c)
	}
	for _, tc := range []struct {
		f    console.CallFilter
		want string
	}{
		{console.CallFilter{Error: "any"}, "[4]"},
		{console.CallFilter{Error: "none"}, "[5 3]"},
		{console.CallFilter{Error: awsjson.CodeThrottling}, "[4]"},
		{console.CallFilter{Operation: "CreateCluster"}, "[4]"},
		{console.CallFilter{Account: "000000000001"}, "[5 3]"},
	} {
		var got []uint64
		for _, c := range l.Calls(tc.f) {
			got = append(got, c.Seq)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("filter %+v: %v, want %s", tc.f, got, tc.want)
		}
	}
	big := strings.Repeat("x", 100<<10)
	l.Record(exchange(6, "InitializeCluster", "", big))
	c, _ := l.Call(6)
	if c.RequestLen != len(big) || len(c.Request) != 32<<10 {
		t.Fatalf("a long body: kept %d of %d", len(c.Request), c.RequestLen)
	}
}

// TestRequestLogLeavesSecretsOut: members named like secrets are left out
// of the bodies kept; other members (tags named so included) stay.
func TestRequestLogLeavesSecretsOut(t *testing.T) {
	l := console.NewRequestLog(8)
	cases := []struct {
		body, gone, kept string
	}{
		{`{"ClusterId":"cluster-abc","SecretAccessKey":"wJalrXUtnFEMI","Nested":{"session_token":"tok123"}}`, "wJalrXUtnFEMI", "cluster-abc"},
		{`{"Password":"hunter2","x":[{"privateKey":"-----BEGIN"}]}`, "hunter2", `"x"`},
		{`{"TagList":[{"Key":"secret","Value":"kept-because-it-is-a-tag-value"}]}`, "", "kept-because-it-is-a-tag-value"},
		{`not json, secret=abc`, "abc", "left out"},
		{`{"ClusterId":"cluster-up","PASSPHRASE":"opensesame"}`, "opensesame", "cluster-up"},
	}
	for i, tc := range cases {
		l.Record(exchange(i, "TagResource", "", tc.body))
		c, _ := l.Call(uint64(i + 1))
		if tc.gone != "" && strings.Contains(string(c.Request), tc.gone) {
			t.Errorf("kept a secret: %s", c.Request)
		}
		if !strings.Contains(string(c.Request), tc.kept) {
			t.Errorf("lost %q: %s", tc.kept, c.Request)
		}
	}
	c, _ := l.Call(2)
	if strings.Contains(string(c.Request), "tok123") {
		t.Fatalf("kept a nested token: %s", c.Request)
	}
	c, _ = l.Call(1)
	if strings.Contains(string(c.Request), "tok123") {
		t.Fatalf("kept a nested token: %s", c.Request)
	}
}
