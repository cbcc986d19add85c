package awsjson

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func testServer() *Server {
	return NewServer(Operations{
		"Echo":  func(ctx context.Context, r *Request) (any, error) { return map[string]string{"Op": r.Operation}, nil },
		"Empty": func(ctx context.Context, r *Request) (any, error) { return nil, nil },
		"Panic": func(ctx context.Context, r *Request) (any, error) { panic("boom") },
		"Fail": func(ctx context.Context, r *Request) (any, error) {
			return nil, Errorf(CodeResourceNotFound, "Cluster %s not found.", "cluster-x")
		},
		"Oops": func(ctx context.Context, r *Request) (any, error) { return nil, errors.New("disk on fire") },
	}, Hooks{}, nil)
}

func TestWire(t *testing.T) {
	s := testServer()
	cases := []struct {
		name, method, path, target, ctype, body string
		status                                  int
		code, contains                          string
	}{
		{"ok", "POST", "/", "BaldrApiService.Echo", ContentType, "{}", 200, "", `{"Op":"Echo"}`},
		{"empty result is {}", "POST", "/", "BaldrApiService.Empty", ContentType, "{}", 200, "", "{}"},
		{"json 1.0 accepted", "POST", "/", "BaldrApiService.Echo", "application/x-amz-json-1.0", "{}", 200, "", "Echo"},
		{"no content type accepted", "POST", "/", "BaldrApiService.Echo", "", "{}", 200, "", "Echo"},
		{"domain error", "POST", "/", "BaldrApiService.Fail", ContentType, "{}", 400, CodeResourceNotFound, "cluster-x"},
		{"unexpected error hides cause", "POST", "/", "BaldrApiService.Oops", ContentType, "{}", 500, CodeInternalFailure, "unknown error"},
		{"panic", "POST", "/", "BaldrApiService.Panic", ContentType, "{}", 500, CodeInternalFailure, ""},
		{"unknown op", "POST", "/", "BaldrApiService.Nope", ContentType, "{}", 400, CodeUnknownOperation, "Nope"},
		{"wrong prefix", "POST", "/", "Other.Echo", ContentType, "{}", 400, CodeUnknownOperation, "Other.Echo"},
		{"missing target", "POST", "/", "", ContentType, "{}", 400, CodeUnknownOperation, "Missing X-Amz-Target"},
		{"GET", "GET", "/", "BaldrApiService.Echo", ContentType, "", 405, CodeMethodNotAllowed, "GET"},
		{"other path", "POST", "/x", "BaldrApiService.Echo", ContentType, "{}", 400, CodeUnknownOperation, "/x"},
		{"text/plain", "POST", "/", "BaldrApiService.Echo", "text/plain", "{}", 415, CodeUnsupportedMediaType, "text/plain"},
		{"too large", "POST", "/", "BaldrApiService.Echo", ContentType, strings.Repeat(" ", DefaultMaxBodyBytes+1), 413, CodeRequestTooLarge, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.target != "" {
				r.Header.Set("X-Amz-Target", tc.target)
			}
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if w.Header().Get("x-amzn-RequestId") == "" {
				t.Fatal("no x-amzn-RequestId")
			}
			if ct := w.Header().Get("Content-Type"); ct != ContentType {
				t.Fatalf("content type %q", ct)
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Fatalf("body %s does not contain %q", w.Body, tc.contains)
			}
			if tc.code == "" {
				return
			}
			var env map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
				t.Fatalf("error body is not JSON: %s", w.Body)
			}
			if env["__type"] != tc.code || w.Header().Get("x-amzn-ErrorType") != tc.code || env["Message"] == "" {
				t.Fatalf("envelope %v, header %q", env, w.Header().Get("x-amzn-ErrorType"))
			}
			if len(env) != 2 {
				t.Fatalf("envelope has extra members: %v", env)
			}
		})
	}
	// The server keeps serving after a panic.
	r := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
	r.Header.Set("X-Amz-Target", "BaldrApiService.Echo")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("after panic: %d", w.Code)
	}
}

func TestRequestIDShape(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewRequestID()
		if len(id) != 36 || id[14] != '4' || seen[id] {
			t.Fatalf("bad or repeated request id %q", id)
		}
		seen[id] = true
	}
}

func TestEveryCodeHasAStatus(t *testing.T) {
	for code, status := range statusByCode {
		if status < 400 || status > 599 {
			t.Errorf("%s -> %d", code, status)
		}
	}
	if Status(CodeInternalFailure) != 500 || Status(CodeInvalidRequest) != 400 || Status("Nope") != 500 {
		t.Fatal("status table")
	}
}
