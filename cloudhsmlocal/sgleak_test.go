//go:build unix

package cloudhsmlocal_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// requestsDone is a slog handler that passes each finished request's
// operation name to a channel (the server logs one "request" line when a
// request is over).
type requestsDone struct{ ops chan string }

func (h requestsDone) Enabled(context.Context, slog.Level) bool { return true }
func (h requestsDone) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "request" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "operation" {
				h.ops <- a.Value.String()
				return false
			}
			return true
		})
	}
	return nil
}
func (h requestsDone) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h requestsDone) WithGroup(string) slog.Handler      { return h }

// A client that gives up on a CreateCluster while EC2 makes the cluster's
// security group, or while the server refuses the cluster after the group
// was made (here: the cluster quota), must not leave a group that no
// cluster records. A proxy in front of moto lets EC2 carry out the action,
// then cancels the client and answers only once the server has abandoned
// its EC2 call.
func TestCancelledCreateClusterLeavesNoSecurityGroup(t *testing.T) {
	for _, action := range []string{"AuthorizeSecurityGroupIngress", "CreateSecurityGroup"} {
		t.Run(action, func(t *testing.T) {
			moto := neighbourStartMoto(t)
			vpc := moto.createVPC(t, "10.40.0.0/16")
			subA := moto.createSubnet(t, vpc, "us-east-1a", "10.40.1.0/24")
			subB := moto.createSubnet(t, vpc, "us-east-1b", "10.40.2.0/24")
			target, _ := url.Parse(moto.URL)
			rp := httputil.NewSingleHostReverseProxy(target)
			var mu sync.Mutex
			var cancelClient context.CancelFunc
			proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(strings.NewReader(string(body)))
				mu.Lock()
				cancel := cancelClient
				if cancel != nil && strings.Contains(string(body), "Action="+action+"&") {
					cancelClient = nil
				} else {
					cancel = nil
				}
				mu.Unlock()
				if cancel == nil {
					rp.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, r.WithContext(context.WithoutCancel(r.Context())))
				cancel()
				<-r.Context().Done() // the server gave its EC2 call up
			})}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = proxy.Serve(l) }()
			t.Cleanup(func() { _ = proxy.Close() })

			done := requestsDone{ops: make(chan string, 16)}
			srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithEC2Endpoint("http://"+l.Addr().String(), "test", "test"),
				cloudhsmlocal.WithQuotas(1, 0), cloudhsmlocal.WithLogger(slog.New(done)))
			c := client(srv)
			in := &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{subA, subB}}
			if _, err := c.CreateCluster(ctx, in); err != nil {
				t.Fatal(err)
			}
			<-done.ops
			cctx, cancel := context.WithCancel(ctx)
			mu.Lock()
			cancelClient = cancel
			mu.Unlock()
			if _, err := c.CreateCluster(cctx, in); err == nil {
				t.Fatal("the second CreateCluster succeeded: quota 1 and a cancelled client")
			}
			<-done.ops // the server is done with the abandoned request

			var resp struct {
				Groups []neighbourGroup `xml:"securityGroupInfo>item"`
			}
			if err := moto.Call("DescribeSecurityGroups", url.Values{"Filter.1.Name": {"vpc-id"}, "Filter.1.Value.1": {vpc}}, &resp); err != nil {
				t.Fatal(err)
			}
			var groups []string
			for _, g := range resp.Groups {
				if strings.HasPrefix(g.GroupName, "cloudhsm-cluster-") {
					groups = append(groups, g.GroupName)
				}
			}
			if len(groups) != 1 {
				t.Fatalf("1 cluster, but %d cluster security groups in EC2: %v", len(groups), groups)
			}
		})
	}
}
