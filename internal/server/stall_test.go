package server_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/sdkhttp"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// gatedIdentities makes real identities, but each waits until release is
// closed; entered receives the HSM id of each request as it arrives.
type gatedIdentities struct {
	local   *pki.LocalIdentities
	entered chan string
	release chan struct{}
}

func (g *gatedIdentities) NewIdentity(a *pki.Authority, req pki.IdentityRequest) (*pki.HSMIdentity, string, error) {
	g.entered <- req.HsmID
	<-g.release
	return g.local.NewIdentity(a, req)
}

func (g *gatedIdentities) Close() { g.local.Close() }

// TestCreateHsmDoesNotStallOthers holds a CreateHsm in the middle of its key
// generation, for as long as the test likes, and checks that every other
// kind of request, reads and writes, in the same account and cluster and in
// another account, is answered meanwhile. A server that made keys under its
// lock, or made other requests wait for them, fails on the deadline.
func TestCreateHsmDoesNotStallOthers(t *testing.T) {
	gate := &gatedIdentities{local: pki.NewLocalIdentities(), entered: make(chan string, 1), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gate.release) }) }
	ck := clock.NewFrozen(time.Now().UTC().Truncate(time.Millisecond))
	srv, err := server.New(server.Config{
		InMemory:   true,
		Clock:      ck,
		Identities: func() pki.IdentitySource { return gate },
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	// Cleanups run last in, first out: the gate opens before the server
	// closes, so that a CreateHsm still waiting can finish.
	t.Cleanup(func() { _ = srv.Close() })
	t.Cleanup(hs.Close)
	t.Cleanup(release)

	clientFor := func(account string) *cloudhsmv2.Client {
		return cloudhsmv2.NewFromConfig(aws.Config{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider(account, "secret", ""),
			BaseEndpoint: aws.String(hs.URL),
			HTTPClient:   sdkhttp.PrivateBodies{Client: hs.Client()},
		})
	}
	c, other := clientFor("111122223333"), clientFor("444455556666")
	ctx := context.Background()
	created, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0a1b2c3d4e5f60718", "subnet-0b1b2c3d4e5f60718"},
	})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	clusterID := aws.ToString(created.Cluster.ClusterId)
	var az string
	for zone := range created.Cluster.SubnetMapping {
		az = zone
		break
	}
	ck.Advance(time.Hour)
	if err := srv.Service().CatchUp(); err != nil {
		t.Fatal(err)
	}

	type hsmResult struct {
		out *cloudhsmv2.CreateHsmOutput
		err error
	}
	done := make(chan hsmResult, 1)
	go func() {
		out, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(clusterID), AvailabilityZone: aws.String(az)})
		done <- hsmResult{out, err}
	}()
	var hsmID string
	select {
	case hsmID = <-gate.entered:
	case r := <-done:
		t.Fatalf("CreateHsm returned before its keys were asked for: %+v, %v", r.out, r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("CreateHsm never asked for keys")
	}

	// The CreateHsm is now waiting for its keys, and will until release.
	others := []struct {
		name string
		call func(context.Context) error
	}{
		{"DescribeClusters, same account", func(ctx context.Context) error {
			out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
			if err == nil && len(out.Clusters) != 1 {
				t.Errorf("DescribeClusters: %d clusters, want 1", len(out.Clusters))
			}
			return err
		}},
		{"DescribeClusters, other account", func(ctx context.Context) error {
			_, err := other.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
			return err
		}},
		{"CreateCluster", func(ctx context.Context) error {
			_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
				HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0c1b2c3d4e5f60718"},
			})
			return err
		}},
		{"TagResource on the cluster", func(ctx context.Context) error {
			_, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(clusterID), TagList: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			return err
		}},
		{"ListTags", func(ctx context.Context) error {
			_, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(clusterID)})
			return err
		}},
		{"DescribeBackups", func(ctx context.Context) error {
			_, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{})
			return err
		}},
		{"ModifyCluster", func(ctx context.Context) error {
			_, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: aws.String(clusterID), BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")}})
			return err
		}},
	}
	for _, o := range others {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := o.call(cctx)
		cancel()
		if err != nil {
			t.Errorf("%s while CreateHsm waits for its keys: %v", o.name, err)
		}
	}
	select {
	case r := <-done:
		t.Fatalf("CreateHsm returned while its keys were held back: %+v, %v", r.out, r.err)
	default:
	}

	release()
	r := <-done
	if r.err != nil {
		t.Fatalf("CreateHsm: %v", r.err)
	}
	if got := aws.ToString(r.out.Hsm.HsmId); got != hsmID {
		t.Errorf("CreateHsm made %s, keys were made for %s", got, hsmID)
	}
}
