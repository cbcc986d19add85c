package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// The tenant that unsigned requests belong to (the server's defaults).
const (
	defaultAccount = "123456789012"
	defaultRegion  = "us-east-1"
	jsonType       = testkit.AWSJSONContentType
	targetPrefix   = testkit.TargetPrefix
)

// operations are the 18 operations of CloudHSM v2 (API 2017-04-28).
var operations = []string{
	"CopyBackupToRegion", "CreateCluster", "CreateHsm", "DeleteBackup", "DeleteCluster", "DeleteHsm",
	"DeleteResourcePolicy", "DescribeBackups", "DescribeClusters", "GetResourcePolicy", "InitializeCluster",
	"ListTags", "ModifyBackupAttributes", "ModifyCluster", "PutResourcePolicy", "RestoreBackup",
	"TagResource", "UntagResource",
}

var tmpRoot string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "chl-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tmpRoot = d
	if path := os.Getenv("RELIABILITY_SUMMARY"); path != "" {
		_ = os.Remove(path) // this run's sections only
	}
	code := m.Run()
	_ = os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// ---- raw HTTP ----

type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// rawPost sends one AWS JSON 1.1 request without any SDK; target "" omits
// X-Amz-Target.
func rawPost(c *http.Client, url, target string, body []byte) (*rawResponse, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	req.Header.Set("Content-Type", jsonType)
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (*rawResponse, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return &rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// checkErrorEnvelope checks an AWS JSON 1.1 error response: the status, the
// code in both x-amzn-ErrorType and __type, a non-empty bounded Message, the
// content type and a request id. It returns the problems found.
func checkErrorEnvelope(r *rawResponse, status int, code string) []string {
	var probs []string
	if r.Status != status {
		probs = append(probs, fmt.Sprintf("status %d, want %d", r.Status, status))
	}
	if r.Header.Get("x-amzn-RequestId") == "" {
		probs = append(probs, "no x-amzn-RequestId header")
	}
	if ct := r.Header.Get("Content-Type"); ct != jsonType {
		probs = append(probs, fmt.Sprintf("Content-Type %q, want %q", ct, jsonType))
	}
	if got := r.Header.Get("x-amzn-ErrorType"); got != code {
		probs = append(probs, fmt.Sprintf("x-amzn-ErrorType %q, want %q", got, code))
	}
	var env map[string]any
	if err := json.Unmarshal(r.Body, &env); err != nil {
		return append(probs, fmt.Sprintf("body is not a JSON object: %v: %.300q", err, r.Body))
	}
	if got, _ := env["__type"].(string); got != code {
		probs = append(probs, fmt.Sprintf("__type %q, want %q", env["__type"], code))
	}
	msg, ok := env["Message"].(string)
	switch {
	case !ok:
		probs = append(probs, fmt.Sprintf("Message is %T, want a string", env["Message"]))
	case msg == "":
		probs = append(probs, "empty Message")
	case len(msg) > maxMessageBytes:
		probs = append(probs, fmt.Sprintf("Message is %d bytes (over %d): the server echoes hostile input back: %.200q...", len(msg), maxMessageBytes, msg))
	}
	for k := range env {
		if k != "__type" && k != "Message" {
			probs = append(probs, fmt.Sprintf("unexpected member %q in the error body", k))
		}
	}
	return probs
}

// maxMessageBytes bounds an error message: values are rendered cut to 256
// characters, so even a message naming several of them stays small.
const maxMessageBytes = 4096

// ---- SDK ----

// sdkConfig is an aws.Config for account/region at url, without retries.
func sdkConfig(url, account, region string, hc *http.Client) aws.Config {
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	return aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(account, "reliability-secret", ""),
		BaseEndpoint:     aws.String(url),
		HTTPClient:       sdkhttp.PrivateBodies{Client: hc}, // see its doc: retries are off
		RetryMaxAttempts: 1,
	}
}

func sdkClient(url, account, region string, hc *http.Client) *cloudhsmv2.Client {
	return cloudhsmv2.NewFromConfig(sdkConfig(url, account, region, hc))
}

// apiCode returns the AWS error code of err, or "" when err is not an
// answer from the service (transport failure, timeout).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// allClusters pages through DescribeClusters.
func allClusters(ctx context.Context, c *cloudhsmv2.Client) ([]types.Cluster, error) {
	var out []types.Cluster
	p := cloudhsmv2.NewDescribeClustersPaginator(c, &cloudhsmv2.DescribeClustersInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, page.Clusters...)
	}
	return out, nil
}

// allTags pages through ListTags.
func allTags(ctx context.Context, c *cloudhsmv2.Client, id string) (map[string]string, error) {
	out := map[string]string{}
	p := cloudhsmv2.NewListTagsPaginator(c, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range page.TagList {
			k := aws.ToString(t.Key)
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("ListTags returned key %q twice", k)
			}
			out[k] = aws.ToString(t.Value)
		}
	}
	return out, nil
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func tagList(m map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(m))
	for k, v := range m {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out
}

func equalTags(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// randHex returns n random lowercase hex digits.
func randHex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = digits[b[i]&0xf]
	}
	return string(b)
}

// newSubnets returns n made-up subnet ids, unique to the caller.
func newSubnets(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "subnet-" + randHex(17)
	}
	return out
}

// ---- the organisation's CA that signs cluster CSRs ----

// newTestCA makes the CA; its Sign is safe for concurrent use.
func newTestCA(t testing.TB) *testkit.CA {
	return testkit.NewCA(t, "Reliability Root CA", "Reliability")
}

// ---- the real binary ----

var build struct {
	once sync.Once
	path string
	err  error
}

// buildBinary builds cmd/cloudhsm-local once per test run.
func buildBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.path, build.err = testkit.BuildServerBinary(tmpRoot) })
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// proc is a running cloudhsm-local binary.
type proc struct {
	cmd    *exec.Cmd
	URL    string
	Addr   string
	stderr *os.File
	done   chan struct{}
	err    error // from Wait, valid after done
}

// startBinary starts the binary on 127.0.0.1:0 and waits for its banner.
func startBinary(t testing.TB, args ...string) *proc {
	t.Helper()
	bin := buildBinary(t)
	errFile, err := os.CreateTemp(tmpRoot, "stderr-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	cmd.Stderr = errFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: errFile, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case line, ok := <-lines:
		const banner = "cloudhsm-local listening on "
		if !ok || !strings.HasPrefix(line, banner) {
			p.kill()
			t.Fatalf("binary did not print its banner (first line %q); stderr:\n%s", line, p.stderrTail())
		}
		p.URL = strings.TrimPrefix(line, banner)
		p.Addr = strings.TrimPrefix(p.URL, "http://")
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("binary did not start within 30s; stderr:\n%s", p.stderrTail())
	}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stderrTail() string {
	b, _ := os.ReadFile(p.stderr.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// dial opens a raw TCP connection to the process.
func (p *proc) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var summaryMu sync.Mutex

// recordSummary stores v as section of the JSON object in the file named by
// RELIABILITY_SUMMARY, if set.
func recordSummary(t testing.TB, section string, v any) {
	path := os.Getenv("RELIABILITY_SUMMARY")
	if path == "" {
		return
	}
	summaryMu.Lock()
	defer summaryMu.Unlock()
	all := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &all)
	}
	all[section] = v
	if err := writeJSONFile(path, all); err != nil {
		t.Errorf("write RELIABILITY_SUMMARY: %v", err)
	}
}

// writeJSONFile writes v as indented JSON to path.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
