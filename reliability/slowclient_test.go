package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
)

// awaitEnd reads from conn until the server answers or closes it, and
// returns how long that took and what happened.
func awaitEnd(conn net.Conn, limit time.Duration) (time.Duration, string) {
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	d := time.Since(start)
	switch {
	case err == nil:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return d, fmt.Sprintf("answered %d %s: %.200s", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b)
	case isTimeout(err):
		return d, "still open"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return d, "closed"
	default:
		return d, "closed: " + err.Error()
	}
}

// TestSlowClients starts the binary with short read timeouts and checks
// that clients which send nothing, or trickle their headers or body, are
// cut off in bounded time while other clients are served.
func TestSlowClients(t *testing.T) {
	p := startBinary(t, "--in-memory", "--read-header-timeout", "1s", "--read-timeout", "2s")
	const bound = 6 * time.Second // the timeouts plus slack for a loaded machine

	// Other clients keep being served throughout.
	stop := make(chan struct{})
	var served, slow int
	var worst time.Duration
	var bgErr error
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		hc := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			r, err := rawPost(hc, p.URL, targetPrefix+"DescribeClusters", []byte(`{}`))
			d := time.Since(start)
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", r.Status, r.Body)
			}
			if err != nil {
				bgErr = err
				return
			}
			served++
			worst = max(worst, d)
			if d > time.Second {
				slow++
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	type result struct {
		name    string
		took    time.Duration
		outcome string
	}
	results := make(chan result, 8)
	var wg sync.WaitGroup
	run := func(name string, f func(conn net.Conn) (time.Duration, string)) {
		conn := p.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, out := f(conn)
			results <- result{name, d, out}
		}()
	}
	trickle := func(conn net.Conn, s string, every time.Duration, done <-chan struct{}) {
		for i := 0; i < len(s); i++ {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			if _, err := conn.Write([]byte{s[i]}); err != nil {
				return
			}
		}
	}
	body := `{"Filters":{"clusterIds":["cluster-abcdefghijk"]},"MaxResults":10}` + strings.Repeat(" ", 200)
	headers := "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: BaldrApiService.DescribeClusters\r\n" +
		"Content-Type: application/x-amz-json-1.1\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"

	run("connects and sends nothing", func(conn net.Conn) (time.Duration, string) {
		return awaitEnd(conn, bound)
	})
	run("trickles its headers, a byte every 200ms", func(conn net.Conn) (time.Duration, string) {
		done := make(chan struct{})
		defer close(done)
		go trickle(conn, headers, 200*time.Millisecond, done)
		return awaitEnd(conn, bound)
	})
	run("sends its headers, then trickles the body, a byte every 200ms", func(conn net.Conn) (time.Duration, string) {
		if _, err := io.WriteString(conn, headers); err != nil {
			return 0, "write: " + err.Error()
		}
		done := make(chan struct{})
		defer close(done)
		go trickle(conn, body, 200*time.Millisecond, done)
		return awaitEnd(conn, bound)
	})
	run("sends a Content-Length of 1000 and 17 bytes", func(conn net.Conn) (time.Duration, string) {
		h := strings.Replace(headers, "Content-Length: "+fmt.Sprint(len(body)), "Content-Length: 1000", 1)
		if _, err := io.WriteString(conn, h+`{"ClusterId":"clu`); err != nil {
			return 0, "write: " + err.Error()
		}
		return awaitEnd(conn, bound)
	})
	wg.Wait()
	close(results)
	close(stop)
	bg.Wait()

	for r := range results {
		t.Logf("a client that %s: %s after %s", r.name, r.outcome, r.took.Round(10*time.Millisecond))
		switch {
		case r.outcome == "still open":
			t.Errorf("a client that %s still holds its connection after %s", r.name, bound)
		case strings.HasPrefix(r.outcome, "answered 200"):
			t.Errorf("a client that %s was answered 200", r.name)
		}
	}
	if bgErr != nil {
		t.Errorf("another client was not served while slow clients were connected: %v", bgErr)
	}
	t.Logf("meanwhile %d requests of another client were served (slowest %s, %d over 1s)", served, worst.Round(time.Millisecond), slow)
	if served < 10 {
		t.Errorf("only %d requests of another client were served meanwhile", served)
	}
}

// TestGracefulShutdown sends SIGTERM while a request is in flight: the
// request must complete, the process exit 0 with its store closed, and a
// restart on the same data directory must work at once and show the write.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, "--data-dir", dir, "--read-timeout", "10s")

	body := fmt.Sprintf(`{"HsmType":"hsm2m.medium","SubnetIds":[%q],"TagList":[{"Key":"inflight","Value":"yes"}]}`, newSubnets(1)[0])
	conn := p.dial(t)
	head := "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: BaldrApiService.CreateCluster\r\n" +
		"Content-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" + crashAccount +
		"/20260101/us-east-1/cloudhsm/aws4_request, SignedHeaders=host, Signature=00\r\n" +
		"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"
	half := len(body) / 2
	if _, err := io.WriteString(conn, head+body[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server is now reading the body
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	// The listener is closed: no new connections.
	if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted after SIGTERM")
	}
	select {
	case <-p.done:
		t.Fatalf("the process exited with a request in flight: %v; stderr:\n%s", p.err, p.stderrTail())
	default:
	}
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatalf("finishing the in-flight request: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the request in flight at SIGTERM: %v; stderr:\n%s", err, p.stderrTail())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"ClusterId":"cluster-`) {
		t.Fatalf("the request in flight at SIGTERM was answered %d: %.300s", resp.StatusCode, b)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the process did not exit within 20s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderrTail())
	}

	// The same data directory opens at once (a store left open would be
	// "in use"), and the write answered during shutdown is there.
	start := time.Now()
	p2 := startBinary(t, "--data-dir", dir)
	t.Logf("restarted on the same data directory in %s", time.Since(start).Round(time.Millisecond))
	c := sdkClient(p2.URL, crashAccount, "us-east-1", nil)
	out, err := c.DescribeClusters(context.Background(), &cloudhsmv2.DescribeClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 1 || tagMap(out.Clusters[0].TagList)["inflight"] != "yes" {
		t.Fatalf("after restart the account holds %d clusters, want the one created during shutdown", len(out.Clusters))
	}
	t.Logf("cluster %s created during shutdown survived the restart", aws.ToString(out.Clusters[0].ClusterId))
}
