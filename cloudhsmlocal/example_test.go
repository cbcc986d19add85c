package cloudhsmlocal_test

import (
	"context"
	"fmt"
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
