package cloudhsmlocal_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// A test starts a server, creates a cluster with aws-sdk-go-v2 and moves
// the server's clock instead of sleeping. In a test, cloudhsmlocal.Start(t)
// does the same and closes the server when the test ends.
func ExampleNew() {
	srv, err := cloudhsmlocal.New()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	client := cloudhsmv2.NewFromConfig(srv.AWSConfig())
	ctx := context.Background()

	out, err := client.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType:   aws.String("hsm2m.medium"),
		SubnetIds: []string{"subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(out.Cluster.State)

	srv.Advance(500 * time.Millisecond) // the default in-progress delay
	got, err := client.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{
		Filters: map[string][]string{"clusterIds": {aws.ToString(out.Cluster.ClusterId)}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(got.Clusters[0].State, len(got.Clusters[0].SubnetMapping), "subnets")
	// Output:
	// CREATE_IN_PROGRESS
	// UNINITIALIZED 2 subnets
}

// A failing test can print the console page of the cluster it was looking
// at; the page shows its state, HSMs, certificates and timeline.
func ExampleServer_ClusterURL() {
	srv, err := cloudhsmlocal.New()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	client := cloudhsmv2.NewFromConfig(srv.AWSConfig())
	out, err := client.CreateCluster(context.Background(), &cloudhsmv2.CreateClusterInput{
		HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0123456789abcdef0"},
	})
	if err != nil {
		panic(err)
	}
	page := srv.ClusterURL(aws.ToString(out.Cluster.ClusterId))
	fmt.Println(strings.HasPrefix(page, srv.URL+"/_cloudhsm-local/console/clusters/cluster-"))
	// Output: true
}
