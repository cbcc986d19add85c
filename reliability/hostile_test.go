package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// sendCase sends one corpus case over a fresh TCP connection, writing the
// request while reading the response (the server may answer before it has
// read the body, e.g. 413), and returns the response.
func sendCase(addr string, c *hostileCase, timeout time.Duration) (*rawResponse, error) {
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	target, sendTarget, _ := c.target()
	ct, sendCT, _ := c.contentType()
	method, path := c.Method, c.Path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/"
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cloudhsm-local-reliability\r\n", method, path, addr)
	if sendTarget {
		fmt.Fprintf(&head, "X-Amz-Target: %s\r\n", target)
	}
	if sendCT {
		fmt.Fprintf(&head, "Content-Type: %s\r\n", ct)
	}
	switch {
	case c.Chunked:
		head.WriteString("Transfer-Encoding: chunked\r\n")
	case c.ContentLength != nil:
		fmt.Fprintf(&head, "Content-Length: %d\r\n", *c.ContentLength)
	default:
		fmt.Fprintf(&head, "Content-Length: %d\r\n", len(body))
	}
	head.WriteString("Connection: close\r\n\r\n")

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	go func() {
		w := bufio.NewWriterSize(conn, 64<<10)
		_, _ = w.Write(head.Bytes())
		if c.Chunked {
			for rest := body; len(rest) > 0; {
				n := min(len(rest), 32<<10)
				fmt.Fprintf(w, "%x\r\n", n)
				_, _ = w.Write(rest[:n])
				_, _ = w.WriteString("\r\n")
				rest = rest[n:]
			}
			_, _ = w.WriteString("0\r\n\r\n")
		} else {
			_, _ = w.Write(body)
		}
		_ = w.Flush() // errors are expected when the server answers early
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	return &rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// checkCaseResponse compares a response with the case's expectations.
func checkCaseResponse(c *hostileCase, r *rawResponse) []string {
	if c.ExpectStatus != http.StatusOK {
		probs := checkErrorEnvelope(r, c.ExpectStatus, c.ExpectCode)
		var env struct{ Message string }
		_ = json.Unmarshal(r.Body, &env)
		if c.ExpectMessageContains != "" && !strings.Contains(env.Message, c.ExpectMessageContains) {
			probs = append(probs, fmt.Sprintf("Message %.300q does not contain %q", env.Message, c.ExpectMessageContains))
		}
		if c.ExpectMessageExcludes != "" && strings.Contains(env.Message, c.ExpectMessageExcludes) {
			probs = append(probs, fmt.Sprintf("Message %.300q contains %.60q", env.Message, c.ExpectMessageExcludes))
		}
		return probs
	}
	var probs []string
	if r.Status != http.StatusOK {
		probs = append(probs, fmt.Sprintf("status %d (%s), want 200: %.300s", r.Status, r.Header.Get("x-amzn-ErrorType"), r.Body))
	}
	if r.Header.Get("x-amzn-RequestId") == "" {
		probs = append(probs, "no x-amzn-RequestId header")
	}
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		probs = append(probs, fmt.Sprintf("body is not a JSON object: %v", err))
	}
	return probs
}

// stored reports what the default tenant (that of unsigned requests) holds,
// through raw POSTs, which also proves the server still answers.
func stored(hc *http.Client, url string) (clusters, backups int, err error) {
	for _, op := range []string{"DescribeClusters", "DescribeBackups"} {
		r, err := rawPost(hc, url, targetPrefix+op, []byte(`{}`))
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", op, err)
		}
		if r.Status != http.StatusOK {
			return 0, 0, fmt.Errorf("%s: status %d: %.300s", op, r.Status, r.Body)
		}
		var out struct {
			Clusters []json.RawMessage
			Backups  []json.RawMessage
		}
		if err := json.Unmarshal(r.Body, &out); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", op, err)
		}
		clusters += len(out.Clusters)
		backups += len(out.Backups)
	}
	return clusters, backups, nil
}

// TestHostileCorpus sends every case of testdata/hostile to an in-process
// server and checks the answer, that nothing was stored, and that the
// server still answers.
func TestHostileCorpus(t *testing.T) {
	cases := loadCorpus(t)
	srv, err := cloudhsmlocal.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	hc := &http.Client{Timeout: 10 * time.Second}

	perOp := map[string]int{}
	failed := map[string]int{}
	for _, c := range cases {
		perOp[c.Operation]++
		ok := t.Run(c.Name, func(t *testing.T) {
			start := time.Now()
			r, err := sendCase(addr, c, 30*time.Second)
			if err != nil {
				t.Fatalf("%s: %v", c.Description, err)
			}
			for _, p := range checkCaseResponse(c, r) {
				t.Errorf("%s: %s", c.Description, p)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("answered in %s", d)
			}
			n, b, err := stored(hc, srv.URL)
			if err != nil {
				t.Fatalf("server no longer answers after the case: %v", err)
			}
			if n != 0 || b != 0 {
				t.Errorf("the hostile request stored something: %d clusters, %d backups in the account", n, b)
			}
		})
		if !ok {
			failed[c.Operation]++
		}
	}
	// A last look through the SDK.
	out, err := cloudhsmv2.NewFromConfig(srv.AWSConfig()).DescribeClusters(t.Context(), &cloudhsmv2.DescribeClustersInput{})
	if err != nil {
		t.Fatalf("DescribeClusters through the SDK after the corpus: %v", err)
	}
	if len(out.Clusters) != 0 {
		t.Errorf("after the corpus the account holds %d clusters", len(out.Clusters))
	}
	ops := make([]string, 0, len(perOp))
	for op := range perOp {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "  %-24s %3d cases, %d failed\n", op, perOp[op], failed[op])
	}
	t.Logf("hostile corpus: %d cases\n%s", len(cases), b.String())
	recordSummary(t, "hostile", map[string]any{"cases": len(cases), "casesByOperation": perOp, "failedByOperation": failed})
}

// TestHostileShortBody: a Content-Length that claims more than is sent.
func TestHostileShortBody(t *testing.T) {
	srv, err := cloudhsmlocal.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	hc := &http.Client{Timeout: 10 * time.Second}
	head := "POST / HTTP/1.1\r\nHost: " + addr + "\r\nX-Amz-Target: BaldrApiService.DeleteCluster\r\n" +
		"Content-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n\r\n" + `{"ClusterId":"clu`

	t.Run("then-eof", func(t *testing.T) {
		// The client stops writing: the server must notice the short body
		// and answer SerializationException, not hang.
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a short body followed by EOF (after %s): %v", time.Since(start).Round(time.Millisecond), err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, p := range checkErrorEnvelope(&rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, 400, codeSer) {
			t.Error(p)
		}
	})

	t.Run("then-silence", func(t *testing.T) {
		// The client keeps the connection open and sends nothing more. The
		// in-process server has no read timeout, so it waits; the client
		// gives up after its own timeout and the server must carry on.
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(750 * time.Millisecond))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		switch {
		case err == nil:
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("a short body was answered 200")
			}
		case isTimeout(err):
			// The expected outcome without a server read timeout.
		default:
			t.Logf("connection ended after %s: %v", time.Since(start), err)
		}
		// Meanwhile, and afterwards, others are served.
		if _, _, err := stored(hc, srv.URL); err != nil {
			t.Fatalf("server does not answer while a short body is pending: %v", err)
		}
		conn.Close()
		if _, _, err := stored(hc, srv.URL); err != nil {
			t.Fatalf("server does not answer after the client gave up: %v", err)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errorsAs(err, &ne) && ne.Timeout()
}
