package awsjson

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// pooled is a PooledBody that notices use after release.
type pooled struct {
	b        []byte
	released bool
}

func (p *pooled) Bytes() []byte { return p.b }
func (p *pooled) Release()      { p.released = true; copy(p.b, strings.Repeat("X", len(p.b))) }

type recorder struct {
	mu  sync.Mutex
	got []Exchange
}

// keep copies what the hook is handed, as a request log must.
func (r *recorder) keep(x Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x.Request = append([]byte(nil), x.Request...)
	x.Response = append([]byte(nil), x.Response...)
	r.got = append(r.got, x)
}

func (r *recorder) last(t *testing.T) Exchange {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		t.Fatal("Record was not called")
	}
	return r.got[len(r.got)-1]
}

func recordingServer(rec *recorder, before func(context.Context, *Request) error) *Server {
	return NewServer(Operations{
		"Echo": func(ctx context.Context, r *Request) (any, error) {
			return map[string]string{"Got": string(r.Body)}, nil
		},
		"Pool": func(ctx context.Context, r *Request) (any, error) { return &pooled{b: []byte(`{"pooled":true}`)}, nil },
		"Fail": func(ctx context.Context, r *Request) (any, error) {
			return nil, Errorf(CodeResourceNotFound, "Cluster %s not found.", "cluster-x")
		},
	}, Hooks{
		Authenticate: func(r *http.Request, body []byte) (any, error) {
			if r.Header.Get("Authorization") == "refuse" {
				return nil, errors.New("refused")
			}
			return "caller-1", nil
		},
		Before: before,
		Record: rec.keep,
	}, nil)
}

func TestRecordSeesBodiesButNoSignature(t *testing.T) {
	rec := &recorder{}
	s := recordingServer(rec, nil)
	cases := []struct {
		name, target, auth, body string
		status                   int
		code, op, response       string
		caller                   any
	}{
		{"success", "BaldrApiService.Echo", "AWS4-HMAC-SHA256 Signature=abc", `{"A":1}`, 200, "", "Echo", `{"Got":"{\"A\":1}"}`, "caller-1"},
		{"pooled body seen before release", "BaldrApiService.Pool", "", `{}`, 200, "", "Pool", `{"pooled":true}`, "caller-1"},
		{"error envelope", "BaldrApiService.Fail", "", `{}`, 400, CodeResourceNotFound, "Fail", `"Message":"Cluster cluster-x not found."`, "caller-1"},
		{"unknown operation", "BaldrApiService.Nope", "", `{}`, 400, CodeUnknownOperation, "", "Nope", nil},
		{"authentication refused", "BaldrApiService.Echo", "refuse", `{"B":2}`, 500, CodeInternalFailure, "Echo", "unknown error", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/?X-Amz-Signature=presigned", strings.NewReader(tc.body))
			r.Header.Set("X-Amz-Target", tc.target)
			r.Header.Set("User-Agent", "aws-sdk-go-v2/1.0")
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			s.ServeHTTP(httptest.NewRecorder(), r)
			x := rec.last(t)
			if x.Status != tc.status || x.Code != tc.code || x.Operation != tc.op || x.Target != tc.target || x.Caller != tc.caller {
				t.Fatalf("recorded %+v", x)
			}
			if !strings.Contains(string(x.Response), tc.response) {
				t.Fatalf("response %s, want %s", x.Response, tc.response)
			}
			if tc.op != "" && string(x.Request) != tc.body {
				t.Fatalf("request %q, want %q", x.Request, tc.body)
			}
			if x.UserAgent != "aws-sdk-go-v2/1.0" || x.InProcess || x.RequestID == "" || x.Start.IsZero() {
				t.Fatalf("recorded %+v", x)
			}
			for _, secret := range []string{"Signature=abc", "presigned"} {
				if strings.Contains(string(x.Request)+string(x.Response), secret) {
					t.Fatalf("the signature %q was recorded: %+v", secret, x)
				}
			}
		})
	}
}

func TestInvokeRunsTheWiresRules(t *testing.T) {
	rec := &recorder{}
	var beforeSaw []string
	s := recordingServer(rec, func(ctx context.Context, r *Request) error {
		beforeSaw = append(beforeSaw, r.Operation+"/"+r.Caller.(string))
		if string(r.Body) == `"throttle"` {
			return Errorf(CodeThrottling, "Rate exceeded")
		}
		return nil
	})
	cases := []struct {
		name, op, body string
		status         int
		code, response string
	}{
		{"success", "Echo", `{"A":1}`, 200, "", `{"Got":"{\"A\":1}"}`},
		{"pooled", "Pool", `{}`, 200, "", `{"pooled":true}`},
		{"error", "Fail", `{}`, 400, CodeResourceNotFound, `{"__type":"CloudHsmResourceNotFoundException","Message":"Cluster cluster-x not found."}`},
		{"Before hook refuses", "Echo", `"throttle"`, 400, CodeThrottling, `"__type":"ThrottlingException"`},
		{"unknown", "Nope", `{}`, 400, CodeUnknownOperation, `Unknown operation \"Nope\".`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := s.Invoke(context.Background(), tc.op, "console", []byte(tc.body))
			if status != tc.status || !strings.Contains(string(body), tc.response) {
				t.Fatalf("Invoke = %d %s, want %d %s", status, body, tc.status, tc.response)
			}
			x := rec.last(t)
			if !x.InProcess || x.Status != tc.status || x.Code != tc.code || x.Caller != "console" || string(x.Response) != string(body) {
				t.Fatalf("recorded %+v", x)
			}
		})
	}
	if strings.Join(beforeSaw, ",") != "Echo/console,Pool/console,Fail/console,Echo/console" {
		t.Fatalf("Before saw %v", beforeSaw)
	}
}
