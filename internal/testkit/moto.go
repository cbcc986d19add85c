package testkit

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// MotoRegion is the region MotoServer.Call signs for.
const MotoRegion = "us-east-1"

// MotoServer is a moto_server process started for one test, with an EC2
// Query API client of it (SigV4, service ec2, key test/test: moto takes
// unsigned requests for S3 ones).
type MotoServer struct {
	URL  string // http://127.0.0.1:PORT
	stop func()
	http *http.Client
}

// Stop kills moto_server (its whole process group) and waits for it to
// exit; it may be called more than once.
func (m *MotoServer) Stop() { m.stop() }

// StartMotoServer starts moto_server on a free 127.0.0.1 port and waits
// until it answers EC2 calls; it is stopped when the test ends. Without
// moto_server on PATH the test fails when CI=true and is skipped (loudly)
// otherwise; untested says what then goes untested, e.g. "the EC2 provider
// is NOT tested against an EC2 emulator".
func StartMotoServer(t testing.TB, untested string) *MotoServer {
	t.Helper()
	path, err := exec.LookPath("moto_server")
	if err != nil {
		MissingTool(t, "moto_server is not on PATH (pip install 'moto[server]'): "+untested)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	var out LockedBuffer
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting moto_server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	m := &MotoServer{
		URL:  fmt.Sprintf("http://127.0.0.1:%d", port),
		http: &http.Client{Timeout: 5 * time.Second},
		stop: func() {
			once.Do(func() {
				killProcessGroup(cmd)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					t.Errorf("moto_server (pid %d) did not exit", cmd.Process.Pid)
				}
			})
		},
	}
	t.Cleanup(m.Stop)

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := m.Call("DescribeVpcs", url.Values{}, nil)
		if err == nil {
			return m
		}
		select {
		case <-exited:
			t.Fatalf("moto_server exited before answering:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer DescribeVpcs within 30s (last error: %v):\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// EC2Error is an EC2 error document.
type EC2Error struct {
	Status        int
	Code, Message string
}

func (e *EC2Error) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Call performs one EC2 Query API action in MotoRegion and decodes the
// answer into out (may be nil). An error document is returned as *EC2Error.
func (m *MotoServer) Call(action string, params url.Values, out any) error {
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("Action", action)
	form.Set("Version", "2016-11-15")
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, m.URL+"/", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := signEC2(req, []byte(body)); err != nil {
		return err
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var doc struct {
			Errors []struct{ Code, Message string } `xml:"Errors>Error"`
		}
		if xml.Unmarshal(data, &doc) == nil && len(doc.Errors) > 0 {
			return &EC2Error{Status: resp.StatusCode, Code: doc.Errors[0].Code, Message: doc.Errors[0].Message}
		}
		return fmt.Errorf("%s: HTTP %d %q", action, resp.StatusCode, data)
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &root); err != nil || root.XMLName.Local != action+"Response" {
		return fmt.Errorf("%s: unexpected answer %.200q", action, data)
	}
	if out != nil {
		return xml.Unmarshal(data, out)
	}
	return nil
}

// signEC2 signs an EC2 Query API request as moto's test/test key.
func signEC2(req *http.Request, body []byte) error {
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	return v4.NewSigner().SignHTTP(context.Background(), creds, req, PayloadSHA256(body), "ec2", MotoRegion, time.Now())
}
