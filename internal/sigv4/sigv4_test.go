package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testKeyID   = "AKIAIOSFODNN7EXAMPLE"
	testSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testAccount = "111122223333"
	otherKeyID  = "AKIAI44QH8DHBEXAMPLE"
	otherSecret = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
	testHost    = "cloudhsmv2.us-east-1.amazonaws.com"
	testBody    = `{"Filters":{"states":["ACTIVE"]},"MaxResults":10}`
)

// t0 is the signing time of every test request.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var testCreds = StaticCredentials{
	testKeyID:  {AccessKeyID: testKeyID, SecretAccessKey: testSecret, Account: testAccount},
	otherKeyID: {AccessKeyID: otherKeyID, SecretAccessKey: otherSecret, Account: "444455556666"},
}

func verifierAt(now time.Time) *Verifier {
	return &Verifier{Creds: testCreds, Service: "cloudhsm", Now: func() time.Time { return now }, MaxSkew: 15 * time.Minute}
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// spec describes a request to sign with aws-sdk-go-v2.
type spec struct {
	method      string
	url         string
	body        string
	headers     [][2]string // added in order (Header.Add)
	keyID       string
	secret      string
	service     string
	region      string
	at          time.Time
	payloadHash string // "" = hex sha256(body)
	presign     bool
}

func defaultSpec() spec {
	return spec{
		method: http.MethodPost,
		url:    "https://" + testHost + "/",
		body:   testBody,
		headers: [][2]string{
			{"Content-Type", "application/x-amz-json-1.1"},
			{"X-Amz-Target", "BaldrApiService.DescribeClusters"},
		},
		keyID:   testKeyID,
		secret:  testSecret,
		service: "cloudhsm",
		region:  "us-east-1",
		at:      t0,
	}
}

// clientRequest signs (or presigns) s and returns the client-side request.
func clientRequest(tb testing.TB, s spec) *http.Request {
	tb.Helper()
	creds := aws.Credentials{AccessKeyID: s.keyID, SecretAccessKey: s.secret}
	ph := s.payloadHash
	if ph == "" {
		ph = hashHex([]byte(s.body))
	}
	newReq := func(u string) *http.Request {
		var body io.Reader
		if s.body != "" {
			body = strings.NewReader(s.body)
		}
		req, err := http.NewRequest(s.method, u, body)
		if err != nil {
			tb.Fatal(err)
		}
		for _, h := range s.headers {
			req.Header.Add(h[0], h[1])
		}
		return req
	}
	req := newReq(s.url)
	if !s.presign {
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, ph, s.service, s.region, s.at); err != nil {
			tb.Fatal(err)
		}
		return req
	}
	uri, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, ph, s.service, s.region, s.at)
	if err != nil {
		tb.Fatal(err)
	}
	out := newReq(uri)
	for k, vs := range hdr {
		if k == "Host" {
			continue
		}
		out.Header[k] = vs
	}
	return out
}

// wire sends req through HTTP/1.1 serialization and parsing, returning the
// request as a server sees it, and its body.
func wire(tb testing.TB, req *http.Request) (*http.Request, []byte) {
	tb.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		tb.Fatal(err)
	}
	sr, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		tb.Fatal(err)
	}
	body, err := io.ReadAll(sr.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return sr, body
}

func signed(tb testing.TB, edit ...func(*spec)) (*http.Request, []byte) {
	tb.Helper()
	s := defaultSpec()
	for _, e := range edit {
		e(&s)
	}
	return wire(tb, clientRequest(tb, s))
}

func presigned(tb testing.TB, edit ...func(*spec)) (*http.Request, []byte) {
	tb.Helper()
	s := defaultSpec()
	s.method, s.body, s.headers = http.MethodGet, "", nil
	s.presign = true
	for _, e := range edit {
		e(&s)
	}
	return wire(tb, clientRequest(tb, s))
}

// buildFunc builds a case's request and the body sent with it.
type buildFunc func(t *testing.T) (*http.Request, []byte)

// signedWith builds the default header-signed request, its spec edited.
func signedWith(edit ...func(*spec)) buildFunc {
	return func(t *testing.T) (*http.Request, []byte) { return signed(t, edit...) }
}

// presignedWith builds the default presigned request, its spec edited.
func presignedWith(edit ...func(*spec)) buildFunc {
	return func(t *testing.T) (*http.Request, []byte) { return presigned(t, edit...) }
}

// edited builds with build, then changes the request after signing, as a
// client or proxy on the way might.
func edited(build buildFunc, change ...func(*http.Request)) buildFunc {
	return func(t *testing.T) (*http.Request, []byte) {
		r, b := build(t)
		for _, c := range change {
			c(r)
		}
		return r, b
	}
}

// The changes after signing, for edited.

func replaceInAuth(old, new string) func(*http.Request) {
	return func(r *http.Request) { editAuth(r, old, new) }
}

func setHeader(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

func delHeader(name string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Del(name) }
}

func setQuery(name, value string) func(*http.Request) {
	return func(r *http.Request) { editQuery(r, func(q url.Values) { q.Set(name, value) }) }
}

func delQuery(name string) func(*http.Request) {
	return func(r *http.Request) { editQuery(r, func(q url.Values) { q.Del(name) }) }
}

func setRawQuery(raw string) func(*http.Request) {
	return func(r *http.Request) { r.URL.RawQuery = raw }
}

func editAuth(r *http.Request, old, new string) {
	r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), old, new, 1))
}

func editQuery(r *http.Request, f func(url.Values)) {
	q := r.URL.Query()
	f(q)
	r.URL.RawQuery = q.Encode()
}

type want struct {
	code      string // "" = success
	status    int
	msg       string // exact message, when set
	msgPrefix string // message prefix, when set
	scope     Scope  // on success
	account   string // on success
}

func okScope(region string) want {
	return want{scope: Scope{AccessKeyID: testKeyID, Date: "20260102", Region: region, Service: "cloudhsm"}, account: testAccount}
}

func check(t *testing.T, cred Credential, scope Scope, err error, w want) {
	t.Helper()
	if w.code == "" {
		if err != nil {
			t.Fatalf("Verify refused a valid request: %v", err)
		}
		if scope != w.scope {
			t.Errorf("scope = %+v, want %+v", scope, w.scope)
		}
		if cred.Account != w.account || cred.AccessKeyID != w.scope.AccessKeyID {
			t.Errorf("credential = %+v, want account %s key %s", cred, w.account, w.scope.AccessKeyID)
		}
		return
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *AuthError %s", err, err, w.code)
	}
	if ae.Code != w.code || ae.Status != w.status {
		t.Errorf("got %s %d (%q), want %s %d", ae.Code, ae.Status, ae.Message, w.code, w.status)
	}
	if w.msg != "" && ae.Message != w.msg {
		t.Errorf("message = %q\nwant      %q", ae.Message, w.msg)
	}
	if w.msgPrefix != "" && !strings.HasPrefix(ae.Message, w.msgPrefix) {
		t.Errorf("message = %q\nwant prefix %q", ae.Message, w.msgPrefix)
	}
	if cred != (Credential{}) || scope != (Scope{}) {
		t.Errorf("refusal returned credential %+v scope %+v", cred, scope)
	}
}

func incompleteW(msg string) want {
	return want{code: CodeIncompleteSignature, status: 400, msg: msg}
}

func invalidW(msg string) want {
	return want{code: CodeInvalidSignature, status: 400, msg: msg}
}

var mismatch = invalidW(MsgSignatureMismatch)

// verifyCase is one request built, verified at now (zero: t0), and the
// outcome wanted.
type verifyCase struct {
	name  string
	build buildFunc
	now   time.Time
	want  want
}

func runVerifyCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, body := tc.build(t)
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			cred, scope, err := verifierAt(now).Verify(r, body)
			check(t, cred, scope, err, tc.want)
		})
	}
}

// withExpires presigns for secs seconds.
func withExpires(secs string) func(*spec) {
	return func(s *spec) { s.url = "https://" + testHost + "/?X-Amz-Expires=" + secs }
}

// Header-signed requests that verify: canonicalization of the query, path,
// headers and host, and the edges of the 15-minute window.
func TestVerifyHeaderSigned(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name:  "valid",
			build: signedWith(),
			want:  okScope("us-east-1"),
		},
		{
			name:  "region is the caller's choice",
			build: signedWith(func(s *spec) { s.region = "eu-west-2" }),
			want:  okScope("eu-west-2"),
		},
		{
			name:  "second credential",
			build: signedWith(func(s *spec) { s.keyID, s.secret = otherKeyID, otherSecret }),
			want:  want{scope: Scope{AccessKeyID: otherKeyID, Date: "20260102", Region: "us-east-1", Service: "cloudhsm"}, account: "444455556666"},
		},
		{
			name: "signed x-amz-content-sha256 matching body",
			build: signedWith(func(s *spec) {
				s.headers = append(s.headers, [2]string{"X-Amz-Content-Sha256", hashHex([]byte(testBody))})
			}),
			want: okScope("us-east-1"),
		},
		{
			name:  "empty body",
			build: signedWith(func(s *spec) { s.body = "" }),
			want:  okScope("us-east-1"),
		},
		{
			name:  "extra unsigned header is allowed",
			build: edited(signedWith(), setHeader("X-Forwarded-For", "10.0.0.1"), setHeader("User-Agent", "something else")),
			want:  okScope("us-east-1"),
		},
		{
			name: "repeated headers and runs of spaces",
			build: signedWith(func(s *spec) {
				s.headers = append(s.headers,
					[2]string{"X-Amz-Meta-Note", "  one   two  "},
					[2]string{"X-Amz-Meta-Note", "three"},
					[2]string{"My-Header", "a    b   c"})
			}),
			want: okScope("us-east-1"),
		},
		{
			name: "query parameters with reserved characters",
			build: signedWith(func(s *spec) {
				s.url = "https://" + testHost + "/?b=2&a=x%20y&c=%2B%2F&d=~_.-&a=w&empty="
			}),
			want: okScope("us-east-1"),
		},
		{
			name: "equivalent query encoding and order still verify",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, b := signed(t, func(s *spec) {
					s.url = "https://" + testHost + "/?b=2&a=x%20y&c=%2B%2F&d=~"
				})
				r.URL.RawQuery = "d=%7e&c=%2b%2f&a=x%20y&&b=%32"
				return r, b
			},
			want: okScope("us-east-1"),
		},
		{
			name:  "path with escapes",
			build: signedWith(func(s *spec) { s.url = "https://" + testHost + "/a%20b/c~d/$e" }),
			want:  okScope("us-east-1"),
		},
		{
			name:  "host with port",
			build: signedWith(func(s *spec) { s.url = "http://localhost:8443/" }),
			want:  okScope("us-east-1"),
		},
		{
			name:  "15 minutes late is still current",
			build: signedWith(),
			now:   t0.Add(15 * time.Minute),
			want:  okScope("us-east-1"),
		},
		{
			name:  "15 minutes early is still current",
			build: signedWith(),
			now:   t0.Add(-15 * time.Minute),
			want:  okScope("us-east-1"),
		},
	})
}

// Header-signed requests refused for their form, before any signature is
// computed: missing or incomplete authentication, a bad date, a bad query.
func TestVerifyHeaderSignedRefusesForm(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name:  "no authentication",
			build: edited(signedWith(), delHeader("Authorization")),
			want:  want{code: CodeMissingAuthenticationToken, status: 403, msg: "Missing Authentication Token"},
		},
		{
			name:  "empty Authorization header",
			build: edited(signedWith(), setHeader("Authorization", "")),
			want:  want{code: CodeMissingAuthenticationToken, status: 403, msg: "Missing Authentication Token"},
		},
		{
			name:  "bearer token",
			build: edited(signedWith(), setHeader("Authorization", "Bearer abc.def")),
			want:  incompleteW("'abc.def' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer abc.def'."),
		},
		{
			name:  "algorithm only",
			build: edited(signedWith(), setHeader("Authorization", "AWS4-HMAC-SHA256")),
			want:  incompleteW("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256"),
		},
		{
			name:  "nothing at all, no date",
			build: edited(signedWith(), setHeader("Authorization", "Basic dXNlcjpwYXNz=="), delHeader("X-Amz-Date")),
			want:  incompleteW("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=Basic dXNlcjpwYXNz=="),
		},
		{
			name: "missing signature",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, b := signed(t)
				h := r.Header.Get("Authorization")
				r.Header.Set("Authorization", h[:strings.Index(h, ", Signature=")])
				return r, b
			},
			want: want{code: CodeIncompleteSignature, status: 400, msgPrefix: "Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256 Credential="},
		},
		{
			name:  "missing date",
			build: edited(signedWith(), delHeader("X-Amz-Date")),
			want:  want{code: CodeIncompleteSignature, status: 400, msgPrefix: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Credential=" + testKeyID + "/20260102/"},
		},
		{
			name:  "date not ISO-8601 basic",
			build: edited(signedWith(), setHeader("X-Amz-Date", "2026-01-02T03:04:05Z")),
			want:  incompleteW("Date must be in ISO-8601 'basic format'. Got '2026-01-02T03:04:05Z'. See http://en.wikipedia.org/wiki/ISO_8601"),
		},
		{
			name:  "header and presigned query together",
			build: edited(signedWith(), setRawQuery("X-Amz-Algorithm=AWS4-HMAC-SHA256")),
			want:  invalidW("Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."),
		},
		{
			name:  "malformed query escape",
			build: edited(signedWith(), setRawQuery("a=%zz")),
			want:  incompleteW("Illegal hex character in escape % pattern: %zz"),
		},
		{
			name:  "truncated query escape",
			build: edited(signedWith(), setRawQuery("a=%4")),
			want:  incompleteW("Incomplete trailing escape % sequence"),
		},
	})
}

// Header-signed requests refused for their time, algorithm, credential
// scope or access key, in the order of the checks.
func TestVerifyHeaderSignedRefusesScope(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name:  "signature expired",
			build: signedWith(),
			now:   t0.Add(30 * time.Minute),
			want:  invalidW("Signature expired: 20260102T030405Z is now earlier than 20260102T031905Z (20260102T033405Z - 15 min.)"),
		},
		{
			name:  "signature expired by one second",
			build: signedWith(),
			now:   t0.Add(15*time.Minute + time.Second),
			want:  invalidW("Signature expired: 20260102T030405Z is now earlier than 20260102T030406Z (20260102T031906Z - 15 min.)"),
		},
		{
			name:  "signature not yet current",
			build: signedWith(),
			now:   t0.Add(-30 * time.Minute),
			want:  invalidW("Signature not yet current: 20260102T030405Z is still later than 20260102T024905Z (20260102T023405Z + 15 min.)"),
		},
		{
			name:  "host not signed",
			build: edited(signedWith(), replaceInAuth("SignedHeaders=content-length;content-type;host;", "SignedHeaders=content-length;content-type;")),
			want:  invalidW("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."),
		},
		{
			name:  "unsupported algorithm",
			build: edited(signedWith(), replaceInAuth("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512")),
			want:  incompleteW("Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). "),
		},
		{
			name:  "credential with four elements",
			build: edited(signedWith(), replaceInAuth("/aws4_request", "")),
			want:  incompleteW("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + testKeyID + "/20260102/us-east-1/cloudhsm'"),
		},
		{
			name:  "credential with six elements",
			build: edited(signedWith(), replaceInAuth("/aws4_request", "/aws4_request/x")),
			want:  incompleteW("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + testKeyID + "/20260102/us-east-1/cloudhsm/aws4_request/x'"),
		},
		{
			name:  "wrong terminator",
			build: edited(signedWith(), replaceInAuth("/aws4_request", "/aws5_request")),
			want:  invalidW("Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. "),
		},
		{
			name:  "wrong service",
			build: signedWith(func(s *spec) { s.service = "kms" }),
			want:  invalidW("Credential should be scoped to correct service: 'cloudhsm'. "),
		},
		{
			name:  "service name is case sensitive",
			build: signedWith(func(s *spec) { s.service = "CloudHSM" }),
			want:  invalidW("Credential should be scoped to correct service: 'cloudhsm'. "),
		},
		{
			name:  "invalid region",
			build: signedWith(func(s *spec) { s.region = "US_EAST_1" }),
			want:  invalidW("Credential should be scoped to a valid region, not 'US_EAST_1'. "),
		},
		{
			name:  "scope date differs from X-Amz-Date",
			build: edited(signedWith(), replaceInAuth("/20260102/", "/20260101/")),
			want:  invalidW("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260101' != '20260102', from '20260102T030405Z'."),
		},
		{
			name:  "every scope problem in one message",
			build: edited(signedWith(func(s *spec) { s.region, s.service = "", "s3" }), replaceInAuth("/20260102/", "/20251231/"), replaceInAuth("/aws4_request", "/aws4_reqest")),
			want:  invalidW("Credential should be scoped to a valid region, not ''. Credential should be scoped to correct service: 'cloudhsm'. Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_reqest'. Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20251231' != '20260102', from '20260102T030405Z'."),
		},
		{
			name:  "unknown access key",
			build: signedWith(func(s *spec) { s.keyID = "AKIAUNKNOWNKEY000000" }),
			want:  want{code: CodeUnrecognizedClient, status: 400, msg: "The security token included in the request is invalid."},
		},
	})
}

// Header-signed requests whose signature or payload hash does not match
// what was sent.
func TestVerifyHeaderSignedRefusesTampering(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name:  "wrong secret",
			build: signedWith(func(s *spec) { s.secret = otherSecret }),
			want:  mismatch,
		},
		{
			name: "tampered body",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, _ := signed(t)
				return r, []byte(strings.Replace(testBody, "10", "99", 1))
			},
			want: mismatch,
		},
		{
			name:  "tampered signed header",
			build: edited(signedWith(), setHeader("X-Amz-Target", "BaldrApiService.DeleteCluster")),
			want:  mismatch,
		},
		{
			name:  "signed header removed",
			build: edited(signedWith(), delHeader("X-Amz-Target")),
			want:  mismatch,
		},
		{
			name: "tampered host",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, b := signed(t)
				r.Host = "cloudhsmv2.eu-west-1.amazonaws.com"
				return r, b
			},
			want: mismatch,
		},
		{
			name: "tampered method",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, b := signed(t)
				r.Method = http.MethodPut
				return r, b
			},
			want: mismatch,
		},
		{
			name:  "query parameter added",
			build: edited(signedWith(), setRawQuery("Action=Delete")),
			want:  mismatch,
		},
		{
			name: "tampered signature",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, b := signed(t)
				h := r.Header.Get("Authorization")
				last := h[len(h)-1]
				repl := byte('0')
				if last == '0' {
					repl = '1'
				}
				r.Header.Set("Authorization", h[:len(h)-1]+string(repl))
				return r, b
			},
			want: mismatch,
		},
		{
			name: "upper-case signature",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, b := signed(t)
				h := r.Header.Get("Authorization")
				i := strings.Index(h, "Signature=") + len("Signature=")
				r.Header.Set("Authorization", h[:i]+strings.ToUpper(h[i:]))
				return r, b
			},
			want: mismatch,
		},
		{
			name: "x-amz-content-sha256 not the body's",
			build: signedWith(func(s *spec) {
				h := hashHex([]byte("something else"))
				s.payloadHash = h
				s.headers = append(s.headers, [2]string{"X-Amz-Content-Sha256", h})
			}),
			want: invalidW("The provided 'x-amz-content-sha256' header does not match what was computed."),
		},
		{
			name: "UNSIGNED-PAYLOAD in header form",
			build: signedWith(func(s *spec) {
				s.payloadHash = UnsignedPayload
				s.headers = append(s.headers, [2]string{"X-Amz-Content-Sha256", UnsignedPayload})
			}),
			want: invalidW(MsgUnsignedPayloadInHeader),
		},
		{
			name:  "UNSIGNED-PAYLOAD signed without declaring it",
			build: signedWith(func(s *spec) { s.payloadHash = UnsignedPayload }),
			want:  mismatch,
		},
	})
}

// Presigned (query-string) requests that verify.
func TestVerifyPresigned(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name:  "valid, body hash",
			build: presignedWith(),
			want:  okScope("us-east-1"),
		},
		{
			name:  "valid, UNSIGNED-PAYLOAD",
			build: presignedWith(func(s *spec) { s.payloadHash = UnsignedPayload }),
			want:  okScope("us-east-1"),
		},
		{
			name: "valid, declared UNSIGNED-PAYLOAD in query",
			build: presignedWith(func(s *spec) {
				s.payloadHash = UnsignedPayload
				s.url = "https://" + testHost + "/?X-Amz-Content-Sha256=UNSIGNED-PAYLOAD"
			}),
			want: okScope("us-east-1"),
		},
		{
			name: "valid POST with body and signed headers",
			build: presignedWith(func(s *spec) {
				d := defaultSpec()
				s.method, s.body, s.headers = http.MethodPost, d.body, d.headers
			}),
			want: okScope("us-east-1"),
		},
		{
			name:  "valid, other region, X-Amz-Expires honoured",
			build: presignedWith(withExpires("300"), func(s *spec) { s.region = "ap-southeast-2" }),
			now:   t0.Add(299 * time.Second),
			want:  okScope("ap-southeast-2"),
		},
	})
}

// Presigned requests refused for X-Amz-Expires or the 15-minute window.
func TestVerifyPresignedRefusesExpiry(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name:  "expired by X-Amz-Expires",
			build: presignedWith(withExpires("60")),
			now:   t0.Add(2 * time.Minute),
			want:  want{code: CodeAccessDenied, status: 403, msg: "Request has expired."},
		},
		{
			name:  "X-Amz-Expires beyond the 15-minute window",
			build: presignedWith(withExpires("3600")),
			now:   t0.Add(20 * time.Minute),
			want:  invalidW("Signature expired: 20260102T030405Z is now earlier than 20260102T030905Z (20260102T032405Z - 15 min.)"),
		},
		{
			name:  "no X-Amz-Expires: 15-minute window",
			build: presignedWith(),
			now:   t0.Add(16 * time.Minute),
			want:  invalidW("Signature expired: 20260102T030405Z is now earlier than 20260102T030505Z (20260102T032005Z - 15 min.)"),
		},
		{
			name:  "not yet current",
			build: presignedWith(withExpires("60")),
			now:   t0.Add(-16 * time.Minute),
			want:  invalidW("Signature not yet current: 20260102T030405Z is still later than 20260102T030305Z (20260102T024805Z + 15 min.)"),
		},
		{
			name:  "X-Amz-Expires not a number",
			build: presignedWith(withExpires("soon")),
			want:  incompleteW("X-Amz-Expires should be a number"),
		},
		{
			name:  "X-Amz-Expires negative",
			build: presignedWith(withExpires("-5")),
			want:  incompleteW("X-Amz-Expires must be non-negative"),
		},
		{
			name:  "X-Amz-Expires over a week",
			build: presignedWith(withExpires("604801")),
			want:  incompleteW("X-Amz-Expires must be less than a week (in seconds) that is 604800"),
		},
	})
}

// Presigned requests refused for their form, scope or key.
func TestVerifyPresignedRefusesForm(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name:  "unknown key",
			build: presignedWith(func(s *spec) { s.keyID = "AKIANOBODY" }),
			want:  want{code: CodeUnrecognizedClient, status: 400, msg: MsgUnrecognizedClient},
		},
		{
			name:  "signature missing",
			build: edited(presignedWith(), delQuery("X-Amz-Signature")),
			want:  incompleteW("AWS query-string parameters must include 'X-Amz-Signature'. Re-examine the query-string parameters."),
		},
		{
			name: "credential alone",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, b := presigned(t)
				editQuery(r, func(q url.Values) {
					for k := range q {
						if k != "X-Amz-Credential" {
							q.Del(k)
						}
					}
				})
				return r, b
			},
			want: incompleteW("AWS query-string parameters must include 'X-Amz-Algorithm'. AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Date'. Re-examine the query-string parameters."),
		},
		{
			name:  "bad X-Amz-Date",
			build: edited(presignedWith(), setQuery("X-Amz-Date", "20260102")),
			want:  incompleteW("Date must be in ISO-8601 'basic format'. Got '20260102'. See http://en.wikipedia.org/wiki/ISO_8601"),
		},
		{
			name:  "host not signed",
			build: edited(presignedWith(), setQuery("X-Amz-SignedHeaders", "x-amz-date")),
			want:  invalidW(MsgHostNotSigned),
		},
		{
			name:  "unsupported algorithm",
			build: edited(presignedWith(), setQuery("X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256")),
			want:  incompleteW("Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for now). "),
		},
		{
			name:  "wrong service",
			build: presignedWith(func(s *spec) { s.service = "sts" }),
			want:  invalidW("Credential should be scoped to correct service: 'cloudhsm'. "),
		},
	})
}

// Presigned requests whose signature or payload hash does not match what
// was sent.
func TestVerifyPresignedRefusesTampering(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name: "tampered body of a POST",
			build: func(t *testing.T) (*http.Request, []byte) {
				r, _ := presigned(t, func(s *spec) {
					d := defaultSpec()
					s.method, s.body, s.headers = http.MethodPost, d.body, d.headers
				})
				return r, []byte(`{}`)
			},
			want: mismatch,
		},
		{
			name:  "tampered query parameter",
			build: edited(presignedWith(withExpires("300")), setQuery("X-Amz-Expires", "600")),
			want:  mismatch,
		},
		{
			name:  "extra query parameter",
			build: edited(presignedWith(), setQuery("Action", "DeleteCluster")),
			want:  mismatch,
		},
		{
			name:  "wrong secret",
			build: presignedWith(func(s *spec) { s.secret = otherSecret }),
			want:  mismatch,
		},
		{
			name: "declared content hash not the body's",
			build: presignedWith(func(s *spec) {
				h := hashHex([]byte("x"))
				s.payloadHash = h
				s.url = "https://" + testHost + "/?X-Amz-Content-Sha256=" + h
			}),
			want: invalidW(MsgContentSHA256Mismatch),
		},
	})
}

// The client-side request (Host not yet moved to r.Host, no Content-Length
// header) verifies as well.
func TestVerifyClientSideRequest(t *testing.T) {
	req := clientRequest(t, defaultSpec())
	cred, scope, err := verifierAt(t0).Verify(req, []byte(testBody))
	check(t, cred, scope, err, okScope("us-east-1"))
}

// Through a real net/http server and client.
func TestVerifyOverHTTP(t *testing.T) {
	v := verifierAt(t0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cred, scope, err := v.Verify(r, body)
		var ae *AuthError
		if errors.As(err, &ae) {
			w.WriteHeader(ae.Status)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": ae.Code, "message": ae.Message})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"account": cred.Account, "region": scope.Region})
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name       string
		secret     string
		wantStatus int
		wantBody   string
	}{
		{"valid", testSecret, 200, `"region":"sa-east-1"`},
		{"wrong secret", otherSecret, 400, `"__type":"InvalidSignatureException"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultSpec()
			s.url, s.secret, s.region = srv.URL+"/", tc.secret, "sa-east-1"
			req := clientRequest(t, s)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(b), tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", resp.StatusCode, b, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

// A request dated by the Date header instead of X-Amz-Date, signed by hand.
func TestVerifyDateHeader(t *testing.T) {
	hm := func(k []byte, s string) []byte {
		h := hmac.New(sha256.New, k)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	date := t0.Format(http.TimeFormat)
	canonical := "GET\n/\n\ndate:" + date + "\nhost:" + testHost + "\n\ndate;host\n" + hashHex(nil)
	sts := "AWS4-HMAC-SHA256\n20260102T030405Z\n20260102/us-east-1/cloudhsm/aws4_request\n" + hashHex([]byte(canonical))
	k := hm([]byte("AWS4"+testSecret), "20260102")
	k = hm(k, "us-east-1")
	k = hm(k, "cloudhsm")
	k = hm(k, "aws4_request")
	sig := hex.EncodeToString(hm(k, sts))

	r := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/", nil)
	r.Header.Set("Date", date)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testKeyID+"/20260102/us-east-1/cloudhsm/aws4_request,SignedHeaders=date;host,Signature="+sig)
	cred, scope, err := verifierAt(t0.Add(time.Minute)).Verify(r, nil)
	check(t, cred, scope, err, okScope("us-east-1"))

	// Space-separated components are accepted too.
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testKeyID+"/20260102/us-east-1/cloudhsm/aws4_request SignedHeaders=date;host Signature="+sig)
	cred, scope, err = verifierAt(t0).Verify(r, nil)
	check(t, cred, scope, err, okScope("us-east-1"))

	r.Header.Set("Date", "yesterday")
	_, _, err = verifierAt(t0).Verify(r, nil)
	check(t, Credential{}, Scope{}, err, incompleteW("Date must be in ISO-8601 'basic format'. Got 'yesterday'. See http://en.wikipedia.org/wiki/ISO_8601"))
}

// Vectors of AWS's SigV4 test suite (service "service", AKIDEXAMPLE).
func TestVerifyAWSTestSuite(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	v := &Verifier{
		Creds:   StaticCredentials{"AKIDEXAMPLE": {AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: secret, Account: "123456789012"}},
		Service: "service",
		Now:     func() time.Time { return time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) },
	}
	for _, tc := range []struct {
		name, method, target, sig string
	}{
		{"get-vanilla", "GET", "/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"post-vanilla", "POST", "/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
		{"get-vanilla-query-order-key-case", "GET", "/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://example.amazonaws.com"+tc.target, nil)
			r.Header.Set("X-Amz-Date", "20150830T123600Z")
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="+tc.sig)
			if _, scope, err := v.Verify(r, nil); err != nil {
				t.Fatalf("Verify: %v", err)
			} else if scope.Region != "us-east-1" || scope.Service != "service" {
				t.Fatalf("scope = %+v", scope)
			}
		})
	}
}

func TestValidRegionHook(t *testing.T) {
	r, body := signed(t, func(s *spec) { s.region = "xx-nowhere-9" })
	v := verifierAt(t0)
	if _, _, err := v.Verify(r, body); err != nil {
		t.Fatalf("syntactically valid region refused by default: %v", err)
	}
	v.ValidRegion = func(region string) bool { return region == "us-east-1" }
	_, _, err := v.Verify(r, body)
	check(t, Credential{}, Scope{}, err, invalidW("Credential should be scoped to a valid region, not 'xx-nowhere-9'. "))
}

func TestVerifierDefaults(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	r, body := signed(t, func(s *spec) { s.at = now })
	v := &Verifier{Creds: testCreds}
	if _, _, err := v.Verify(r, body); err != nil {
		t.Fatalf("zero Verifier with current time: %v", err)
	}
	v = &Verifier{} // no credentials at all
	_, _, err := v.Verify(r, body)
	check(t, Credential{}, Scope{}, err, want{code: CodeUnrecognizedClient, status: 400, msg: MsgUnrecognizedClient})
}

func TestParseAuthorization(t *testing.T) {
	valid := "AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/cloudhsm/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd"
	a, err := ParseAuthorization(valid)
	if err != nil {
		t.Fatal(err)
	}
	if a.Scope != (Scope{AccessKeyID: "AKID", Date: "20260102", Region: "us-east-1", Service: "cloudhsm"}) ||
		strings.Join(a.SignedHeaders, ";") != "host;x-amz-date" || a.Signature != "abcd" {
		t.Fatalf("parsed %+v", a)
	}
	for _, tc := range []struct{ in, reason string }{
		{"Bearer x", "'x' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer x'."},
		{"AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request", "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request"},
		{"HMAC Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=x", "Unsupported AWS 'algorithm': 'HMAC' (only AWS4-HMAC-SHA256 for now). "},
		{"AWS4-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host, Signature=x", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'a/b/c/d'"},
		{"AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=x", "Credential should be scoped with a valid terminator: 'aws4_request', not 'e'. "},
	} {
		_, err := ParseAuthorization(tc.in)
		var me *MalformedError
		if !errors.As(err, &me) || me.Reason != tc.reason {
			t.Errorf("ParseAuthorization(%q) = %v\nwant %q", tc.in, err, tc.reason)
		}
	}
}

func TestParseScope(t *testing.T) {
	r, _ := signed(t, func(s *spec) { s.region = "eu-central-1" })
	s, err := ParseScope(r)
	if err != nil || s.Region != "eu-central-1" || s.AccessKeyID != testKeyID {
		t.Fatalf("header: %+v %v", s, err)
	}
	r, _ = presigned(t, func(s *spec) { s.region = "eu-north-1" })
	s, err = ParseScope(r)
	if err != nil || s.Region != "eu-north-1" || s.Service != "cloudhsm" {
		t.Fatalf("query: %+v %v", s, err)
	}
	r.URL.RawQuery = ""
	if _, err := ParseScope(r); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("unsigned: %v", err)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	r, _ := signed(f)
	for _, s := range []string{
		r.Header.Get("Authorization"),
		"",
		" ",
		"Bearer abc",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA256\tCredential=a/b/c/d/aws4_request,SignedHeaders=host,Signature=0",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request SignedHeaders=host Signature=0",
		"AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request/, SignedHeaders=;;, Signature==",
		"AWS4-HMAC-SHA256 ,,,,Credential=////,=,",
		"AWS4-HMAC-SHA256 Credential=\xff\xfe/\x00/c/d/aws4_request, SignedHeaders=host, Signature=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) || me.Reason == "" {
				t.Fatalf("error %v (%T) is not a *MalformedError with a reason", err, err)
			}
			return
		}
		if a.Signature == "" || len(a.SignedHeaders) == 0 {
			t.Fatalf("accepted %q without a signature or signed headers: %+v", h, a)
		}
		for _, p := range []string{a.Scope.AccessKeyID, a.Scope.Date, a.Scope.Region, a.Scope.Service} {
			if strings.Contains(p, "/") {
				t.Fatalf("scope element %q contains a slash (from %q)", p, h)
			}
		}
	})
}

var statusOf = map[string]int{
	CodeMissingAuthenticationToken: 403,
	CodeIncompleteSignature:        400,
	CodeInvalidSignature:           400,
	CodeUnrecognizedClient:         400,
	CodeAccessDenied:               403,
}

func FuzzVerify(f *testing.F) {
	// The fuzzed request carries only what the fuzzer gives it, so the seed
	// signed here is valid as such.
	build := func(method, rawQuery, auth, amzDate, contentSHA string, body []byte) *http.Request {
		r := &http.Request{
			Method:        method,
			URL:           &url.URL{Path: "/", RawQuery: rawQuery},
			Host:          testHost,
			Header:        http.Header{},
			ContentLength: int64(len(body)),
		}
		for k, v := range map[string]string{"Authorization": auth, "X-Amz-Date": amzDate, "X-Amz-Content-Sha256": contentSHA} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		return r
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+testHost+"/?a=1", strings.NewReader(testBody))
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret},
		req, hashHex([]byte(testBody)), "cloudhsm", "us-east-1", t0); err != nil {
		f.Fatal(err)
	}
	auth, date := req.Header.Get("Authorization"), req.Header.Get("X-Amz-Date")
	f.Add("POST", "a=1", auth, date, "", []byte(testBody))
	f.Add("POST", "a=1", auth, date, hashHex([]byte(testBody)), []byte(testBody))
	f.Add("POST", "a=1", auth, date, "UNSIGNED-PAYLOAD", []byte(testBody))
	f.Add("POST", "", auth, date, "", []byte(testBody))
	f.Add("GET", "", "", "", "", []byte(nil))
	f.Add("GET", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260102%2Fus-east-1%2Fcloudhsm%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00", "", "", "", []byte(nil))
	f.Add("GET", "X-Amz-Credential=%&X-Amz-Signature=%zz", "", "", "", []byte(nil))
	f.Add("GET", "X-Amz-Expires=99999999999999999999999&X-Amz-Algorithm=x&X-Amz-Credential=x&X-Amz-Signature=x&X-Amz-SignedHeaders=host&X-Amz-Date=20260102T030405Z", "", "", "", []byte(nil))
	f.Add("POST", "", "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=0", "20260102T030405Z", "", []byte("{}"))
	f.Add("POST", "", "AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=, Signature=0", "99999999T999999Z", "", []byte("{}"))
	f.Add("POST", "", "AWS4-HMAC-SHA256 Credential=a/20260102/us-east-1/cloudhsm/aws4_request, SignedHeaders=host;;HOST;x-amz-date, Signature=0", "20260102T030405Z", "", []byte("{}"))

	v := verifierAt(t0)
	f.Fuzz(func(t *testing.T, method, rawQuery, auth, amzDate, contentSHA string, body []byte) {
		r := build(method, rawQuery, auth, amzDate, contentSHA, body)
		cred, scope, err := v.Verify(r, body)
		if err == nil {
			if cred.SecretAccessKey == "" || cred != testCreds[scope.AccessKeyID] {
				t.Fatalf("accepted with credential %+v scope %+v", cred, scope)
			}
			if scope.Service != "cloudhsm" {
				t.Fatalf("accepted scope %+v", scope)
			}
			return
		}
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("error %v (%T) is not an *AuthError", err, err)
		}
		if st, ok := statusOf[ae.Code]; !ok || st != ae.Status || ae.Message == "" {
			t.Fatalf("unexpected refusal %+v", ae)
		}
		if cred != (Credential{}) || scope != (Scope{}) {
			t.Fatalf("refusal returned credential %+v scope %+v", cred, scope)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	r, body := signed(b)
	v := verifierAt(t0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := v.Verify(r, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPresigned(b *testing.B) {
	r, body := presigned(b)
	v := verifierAt(t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := v.Verify(r, body); err != nil {
			b.Fatal(err)
		}
	}
}
