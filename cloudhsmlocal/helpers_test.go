package cloudhsmlocal_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

var ctx = context.Background()

func client(srv *cloudhsmlocal.Server) *cloudhsmv2.Client {
	return cloudhsmv2.NewFromConfig(srv.AWSConfig())
}

func clientFor(srv *cloudhsmlocal.Server, account, region string) *cloudhsmv2.Client {
	return cloudhsmv2.NewFromConfig(srv.AWSConfigFor(account, region))
}

// subnets returns n made-up subnet ids unique to this test.
func subnets(n int) []string {
	out := make([]string, n)
	for i := range out {
		var b [8]byte
		_, _ = rand.Read(b[:])
		out[i] = "subnet-" + hex17(b[:])
	}
	return out
}

func hex17(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 17)
	for i := range out {
		out[i] = digits[int(b[i%len(b)]>>(uint(i%2)*4))&0xf]
	}
	return string(out)
}

func createCluster(t *testing.T, c *cloudhsmv2.Client, n int) *types.Cluster {
	t.Helper()
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(n)})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	return out.Cluster
}

func describe(t *testing.T, c *cloudhsmv2.Client, id string) *types.Cluster {
	t.Helper()
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil {
		t.Fatalf("DescribeClusters: %v", err)
	}
	if len(out.Clusters) != 1 {
		t.Fatalf("DescribeClusters(%s) returned %d clusters", id, len(out.Clusters))
	}
	return &out.Clusters[0]
}

// wantAPIError asserts err is an AWS error with the code, whose message
// contains each of the substrings.
func wantAPIError(t *testing.T, err error, code string, contains ...string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want code %s, got %s: %s", code, ae.ErrorCode(), ae.ErrorMessage())
	}
	for _, s := range contains {
		if !contains_(ae.ErrorMessage(), s) {
			t.Fatalf("message %q does not contain %q", ae.ErrorMessage(), s)
		}
	}
}

func contains_(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (func() bool {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
		return false
	})())
}

// newTestCA makes an organisation's CA that signs cluster CSRs.
func newTestCA(t *testing.T) *testkit.CA {
	return testkit.NewCA(t, "Test Org Root CA", "Test Org")
}
