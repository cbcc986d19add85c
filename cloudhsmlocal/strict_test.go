package cloudhsmlocal_test

// Issue "strict authentication": with WithStrictAuth (and the binary's
// --auth strict --credentials FILE) only requests signed by a known key are
// served, the caller's account is the key's, and the admin API is never left
// open.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// The keys of the AWS documentation's examples.
const (
	strictKeyID   = "AKIAIOSFODNN7EXAMPLE"
	strictSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	strictAccount = "111122223333"

	otherKeyID   = "AKIAI44QH8DHBEXAMPLE"
	otherSecret  = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
	otherAccount = "444455556666"

	strictRegion     = "us-east-1"
	strictAdminToken = "t0ken"
)

// startStrict starts a strict server whose clock starts at the real time
// (signatures are checked against the server clock, 15 minutes' skew
// allowed), knowing both example keys, with an admin token.
func startStrict(t *testing.T) *cloudhsmlocal.Server {
	t.Helper()
	return cloudhsmlocal.Start(t,
		cloudhsmlocal.WithStrictAuth(
			cloudhsmlocal.Credential{AccessKeyID: strictKeyID, SecretAccessKey: strictSecret, Account: strictAccount},
			cloudhsmlocal.Credential{AccessKeyID: otherKeyID, SecretAccessKey: otherSecret, Account: otherAccount},
		),
		cloudhsmlocal.WithStartTime(time.Now()),
		cloudhsmlocal.WithAdminToken(strictAdminToken),
	)
}

// strictClient is an SDK client of srv signing with the given static key,
// with retries off (one attempt per call).
func strictClient(srv *cloudhsmlocal.Server, keyID, secret string) *cloudhsmv2.Client {
	cfg := srv.AWSConfigFor(cloudhsmlocal.DefaultAccount, strictRegion)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(keyID, secret, "")
	cfg.RetryMaxAttempts = 1
	return cloudhsmv2.NewFromConfig(cfg)
}

// wantHTTPStatus asserts that the SDK error carries the HTTP status.
func strictWantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v carries no HTTP response", err)
	}
	if re.HTTPStatusCode() != status {
		t.Fatalf("HTTP status %d, want %d (%v)", re.HTTPStatusCode(), status, err)
	}
}

// strictRawCall builds an unsigned CloudHSM v2 JSON request of the server
// at endpoint.
func strictRawCall(t *testing.T, endpoint, operation string, body []byte) *http.Request {
	t.Helper()
	req, err := testkit.NewAWSJSONRequest(endpoint, operation, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// strictErrorBody is the JSON error envelope the server answers with.
type strictErrorBody struct {
	Type    string `json:"__type"`
	Message string `json:"Message"`
}

// do sends req and returns the status and the body.
func strictDo(t *testing.T, c *http.Client, req *http.Request) (int, []byte, http.Header) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// wantRawError asserts an AWS JSON error answer.
func strictWantRawError(t *testing.T, status int, body []byte, wantStatus int, code string, contains ...string) {
	t.Helper()
	var e strictErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("HTTP %d, body %q is not an AWS JSON error: %v", status, body, err)
	}
	if status != wantStatus || e.Type != code {
		t.Fatalf("HTTP %d %s (%q), want HTTP %d %s", status, e.Type, e.Message, wantStatus, code)
	}
	for _, s := range contains {
		if !strings.Contains(e.Message, s) {
			t.Fatalf("message %q does not contain %q", e.Message, s)
		}
	}
}

func TestStrictAuthSDK(t *testing.T) {
	srv := startStrict(t)
	good := strictClient(srv, strictKeyID, strictSecret)
	other := strictClient(srv, otherKeyID, otherSecret)

	var clusterID string
	t.Run("CreateCluster with a known key", func(t *testing.T) {
		out, err := good.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(2)})
		if err != nil {
			t.Fatalf("CreateCluster signed by %s: %v", strictKeyID, err)
		}
		clusterID = aws.ToString(out.Cluster.ClusterId)
		if got := describe(t, good, clusterID); aws.ToString(got.ClusterId) != clusterID {
			t.Fatalf("DescribeClusters returned %s", aws.ToString(got.ClusterId))
		}
	})
	if clusterID == "" {
		t.FailNow()
	}

	t.Run("the cluster belongs to the key's account", func(t *testing.T) {
		// Another known key, of another account, does not see it.
		out, err := other.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		if err != nil {
			t.Fatalf("DescribeClusters signed by %s: %v", otherKeyID, err)
		}
		for _, c := range out.Clusters {
			if aws.ToString(c.ClusterId) == clusterID {
				t.Fatalf("account %s sees cluster %s of account %s", otherAccount, clusterID, strictAccount)
			}
		}
		_, err = other.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(clusterID)})
		if err == nil {
			t.Fatalf("account %s deleted cluster %s of account %s", otherAccount, clusterID, strictAccount)
		}

		// The admin export names the account.
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/_cloudhsm-local/export", nil)
		req.Header.Set("Authorization", "Bearer "+strictAdminToken)
		status, body, _ := strictDo(t, http.DefaultClient, req)
		if status != http.StatusOK {
			t.Fatalf("export: HTTP %d %s", status, body)
		}
		var snap struct {
			Clusters []struct {
				Account   string `json:"account"`
				Region    string `json:"region"`
				ClusterID string `json:"clusterId"`
			} `json:"clusters"`
		}
		if err := json.Unmarshal(body, &snap); err != nil {
			t.Fatalf("export: %v", err)
		}
		found := false
		for _, c := range snap.Clusters {
			if c.ClusterID == clusterID {
				found = true
				if c.Account != strictAccount || c.Region != strictRegion {
					t.Errorf("cluster %s belongs to %s/%s, want account %s region %s", clusterID, c.Account, c.Region, strictAccount, strictRegion)
				}
			}
		}
		if !found {
			t.Errorf("export does not list cluster %s", clusterID)
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		c := strictClient(srv, strictKeyID, strictSecret+"x")
		_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		wantAPIError(t, err, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided.")
		strictWantStatus(t, err, http.StatusBadRequest)
	})

	t.Run("unknown access key", func(t *testing.T) {
		c := strictClient(srv, "AKIAUNKNOWNEXAMPLE00", strictSecret)
		_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		wantAPIError(t, err, "UnrecognizedClientException", "The security token included in the request is invalid.")
		strictWantStatus(t, err, http.StatusBadRequest)
		// Permissive mode's convention (a 12-digit account id as access
		// key id, any secret) does not work in strict mode.
		_, err = clientFor(srv, strictAccount, strictRegion).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		wantAPIError(t, err, "UnrecognizedClientException")
	})

	t.Run("unsigned request", func(t *testing.T) {
		status, body, hdr := strictDo(t, http.DefaultClient, strictRawCall(t, srv.URL, "DescribeClusters", []byte(`{}`)))
		strictWantRawError(t, status, body, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		if got := hdr.Get("X-Amzn-ErrorType"); got != "MissingAuthenticationTokenException" {
			t.Errorf("x-amzn-ErrorType = %q", got)
		}
	})

	t.Run("presigned request", func(t *testing.T) {
		body := []byte(`{"MaxResults":5}`)
		req := strictRawCall(t, srv.URL, "DescribeClusters", body)
		req.URL.RawQuery = "X-Amz-Expires=300"
		creds := aws.Credentials{AccessKeyID: strictKeyID, SecretAccessKey: strictSecret}
		signed, hdr, err := v4.NewSigner().PresignHTTP(ctx, creds, req, testkit.PayloadSHA256(body), "cloudhsm", strictRegion, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(signed, "X-Amz-Signature=") || !strings.Contains(signed, "X-Amz-Credential="+strictKeyID) {
			t.Fatalf("presigned URL %s", signed)
		}
		send := func(body []byte) (int, []byte) {
			preq, err := http.NewRequest(http.MethodPost, signed, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range hdr {
				if !strings.EqualFold(k, "Host") {
					preq.Header[k] = v
				}
			}
			// X-Amz-Target is hoisted into the query by the signer; the
			// server routes on the header, which is sent unsigned.
			preq.Header.Set("X-Amz-Target", "BaldrApiService.DescribeClusters")
			preq.Header.Set("Content-Type", "application/x-amz-json-1.1")
			if preq.Header.Get("Authorization") != "" {
				t.Fatal("a presigned request carries an Authorization header")
			}
			status, b, _ := strictDo(t, http.DefaultClient, preq)
			return status, b
		}
		status, b := send(body)
		if status != http.StatusOK {
			t.Fatalf("presigned DescribeClusters: HTTP %d %s", status, b)
		}
		var out struct{ Clusters []struct{ ClusterId string } }
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Clusters) != 1 || out.Clusters[0].ClusterId != clusterID {
			t.Fatalf("presigned DescribeClusters by %s = %s, want only %s", strictKeyID, b, clusterID)
		}

		// The presigned URL was signed over the body: another body (of
		// the same length, so that only the content differs) is refused.
		status, b = send([]byte(`{"MaxResults":1}`))
		strictWantRawError(t, status, b, http.StatusBadRequest, "InvalidSignatureException", "does not match")
	})

	t.Run("body tampered after signing", func(t *testing.T) {
		body := []byte(`{"Filters":{"clusterIds":["` + clusterID + `"]}}`)
		req := strictRawCall(t, srv.URL, "DescribeClusters", body)
		creds := aws.Credentials{AccessKeyID: strictKeyID, SecretAccessKey: strictSecret}
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, testkit.PayloadSHA256(body), "cloudhsm", strictRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
		// Untouched, it is served.
		ok := req.Clone(context.Background())
		ok.Body = io.NopCloser(bytes.NewReader(body))
		if status, b, _ := strictDo(t, http.DefaultClient, ok); status != http.StatusOK {
			t.Fatalf("signed DescribeClusters: HTTP %d %s", status, b)
		}
		// Same length, other content: a man in the middle's edit.
		tampered := bytes.Replace(body, []byte(clusterID), []byte(strings.Repeat("x", len(clusterID))), 1)
		bad := req.Clone(context.Background())
		bad.Body = io.NopCloser(bytes.NewReader(tampered))
		bad.ContentLength = int64(len(tampered))
		status, b, _ := strictDo(t, http.DefaultClient, bad)
		strictWantRawError(t, status, b, http.StatusBadRequest, "InvalidSignatureException", "does not match")
	})
}

func TestStrictAuthSignatureExpired(t *testing.T) {
	srv := startStrict(t)
	creds := aws.Credentials{AccessKeyID: strictKeyID, SecretAccessKey: strictSecret}
	body := []byte(`{}`)

	// Presigned with a shorter X-Amz-Expires, used after it: refused as
	// S3 refuses (AccessDeniedException, 403), see sigv4.Verify.
	req := strictRawCall(t, srv.URL, "DescribeClusters", body)
	req.URL.RawQuery = "X-Amz-Expires=60"
	signed, hdr, err := v4.NewSigner().PresignHTTP(ctx, creds, req, testkit.PayloadSHA256(body), "cloudhsm", strictRegion, time.Now().Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	preq, _ := http.NewRequest(http.MethodPost, signed, bytes.NewReader(body))
	for k, v := range hdr {
		preq.Header[k] = v
	}
	preq.Header.Set("X-Amz-Target", "BaldrApiService.DescribeClusters")
	status, b, _ := strictDo(t, http.DefaultClient, preq)
	strictWantRawError(t, status, b, http.StatusForbidden, "AccessDeniedException", "Request has expired.")

	// Signed 20 minutes ahead of the server's clock.
	req = strictRawCall(t, srv.URL, "DescribeClusters", body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, testkit.PayloadSHA256(body), "cloudhsm", strictRegion, time.Now().Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	status, b, _ = strictDo(t, http.DefaultClient, req)
	strictWantRawError(t, status, b, http.StatusBadRequest, "InvalidSignatureException", "Signature not yet current")

	c := strictClient(srv, strictKeyID, strictSecret)
	if _, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil {
		t.Fatalf("before Advance: %v", err)
	}
	srv.Advance(20 * time.Minute)
	// A fresh client: the SDK signs at the real time, 20 minutes before
	// the server's clock, beyond the 15 minutes allowed.
	c = strictClient(srv, strictKeyID, strictSecret)
	_, err = c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	wantAPIError(t, err, "InvalidSignatureException", "Signature expired", "15 min.")
	strictWantStatus(t, err, http.StatusBadRequest)
}

func TestStrictAdminToken(t *testing.T) {
	srv := startStrict(t)
	health := srv.URL + "/_cloudhsm-local/health"
	get := func(authz string) (int, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, health, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		status, _, hdr := strictDo(t, http.DefaultClient, req)
		return status, hdr
	}
	if status, hdr := get(""); status != http.StatusUnauthorized {
		t.Errorf("health without a token: HTTP %d, want 401", status)
	} else if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("health without a token: WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
	}
	if status, _ := get("Bearer wrong"); status != http.StatusUnauthorized {
		t.Errorf("health with a wrong token: HTTP %d, want 401", status)
	}
	if status, _ := get("Bearer " + strictAdminToken); status != http.StatusOK {
		t.Errorf("health with the token: HTTP %d, want 200", status)
	}
}

// strictBuildBinary builds cmd/cloudhsm-local into a temporary directory.
func strictBuildBinary(t *testing.T) string {
	t.Helper()
	bin, err := testkit.BuildServerBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// binaryEnv is the environment without CLOUDHSM_LOCAL_* settings.
func strictBinaryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOUDHSM_LOCAL_") {
			env = append(env, kv)
		}
	}
	return env
}

// strictStartBinary starts the cloudhsm-local binary with args (and no
// CLOUDHSM_LOCAL_* environment), reads its startup banner up to the
// metrics line and returns it with the endpoint it listens on. The process
// is killed when the test ends.
func strictStartBinary(t *testing.T, bin string, args ...string) (banner, endpoint string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = strictBinaryEnv()
	stderr := &testkit.LockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for range lines {
		}
		_ = cmd.Wait()
	})

	var b strings.Builder
	deadline := time.After(20 * time.Second)
	for !strings.Contains(b.String(), "  metrics: ") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("cloudhsm-local %s: stdout ended before the banner did:\n%s\nstderr:\n%s", strings.Join(args, " "), b.String(), stderr.String())
			}
			b.WriteString(l + "\n")
		case <-deadline:
			t.Fatalf("cloudhsm-local %s: no complete banner within 20s:\n%s\nstderr:\n%s", strings.Join(args, " "), b.String(), stderr.String())
		}
	}
	// Keep draining stdout so that the server never blocks on it.
	go func() {
		for range lines {
		}
	}()
	banner = b.String()
	t.Logf("cloudhsm-local %s:\n%s", strings.Join(args, " "), banner)
	u := regexp.MustCompile(`listening on (http://127\.0\.0\.1:[0-9]+)\n`).FindStringSubmatch(banner)
	if u == nil {
		t.Fatal("the banner has no listening address")
	}
	return banner, u[1]
}

func TestStrictBinary(t *testing.T) {
	bin := strictBuildBinary(t)

	t.Run("--auth strict without --credentials", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, bin, "--auth", "strict", "--in-memory", "--listen", "127.0.0.1:0")
		cmd.Env = strictBinaryEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("exit: %v, want a non-zero exit\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		}
		if !strings.Contains(stderr.String(), "--auth strict needs --credentials FILE") {
			t.Errorf("stderr does not say what is missing: %q", stderr.String())
		}
		if strings.Contains(stdout.String(), "listening on") {
			t.Errorf("it started anyway: %s", stdout.String())
		}
	})

	t.Run("generated admin token", func(t *testing.T) {
		credsFile := filepath.Join(t.TempDir(), "credentials.json")
		doc := `{"credentials":[{"accessKeyId":"` + strictKeyID + `","secretAccessKey":"` + strictSecret + `","account":"` + strictAccount + `"}]}`
		if err := os.WriteFile(credsFile, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		text, endpoint := strictStartBinary(t, bin, "--auth", "strict", "--credentials", credsFile, "--in-memory", "--listen", "127.0.0.1:0")
		m := regexp.MustCompile(`the admin API token is ([0-9a-f]{32,})\n`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("the banner has no generated admin token line")
		}
		token := m[1]
		if !strings.Contains(text, "auth: strict") {
			t.Errorf("the banner does not say %q", "auth: strict")
		}
		if !strings.Contains(text, "(bearer token required)") {
			t.Errorf("the banner does not say the admin API needs the token")
		}

		// The token is the admin API's.
		get := func(authz string) int {
			req, _ := http.NewRequest(http.MethodGet, endpoint+"/_cloudhsm-local/health", nil)
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			status, _, _ := strictDo(t, http.DefaultClient, req)
			return status
		}
		if s := get(""); s != http.StatusUnauthorized {
			t.Errorf("health without the token: HTTP %d, want 401", s)
		}
		if s := get("Bearer " + token); s != http.StatusOK {
			t.Errorf("health with the generated token: HTTP %d, want 200", s)
		}

		// And strict authentication is on (the binary's clock is real).
		cfg := aws.Config{
			Region:           strictRegion,
			Credentials:      credentials.NewStaticCredentialsProvider(strictKeyID, strictSecret, ""),
			BaseEndpoint:     aws.String(endpoint),
			RetryMaxAttempts: 1,
		}
		if _, err := cloudhsmv2.NewFromConfig(cfg).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil {
			t.Errorf("DescribeClusters signed by a key of the credentials file: %v", err)
		}
		cfg.Credentials = credentials.NewStaticCredentialsProvider(strictKeyID, "wrong", "")
		_, err := cloudhsmv2.NewFromConfig(cfg).DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
		wantAPIError(t, err, "InvalidSignatureException")
		status, body, _ := strictDo(t, http.DefaultClient, strictRawCall(t, endpoint, "DescribeClusters", []byte(`{}`)))
		strictWantRawError(t, status, body, http.StatusForbidden, "MissingAuthenticationTokenException")
	})
}
