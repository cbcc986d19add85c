package cloudhsmlocal_test

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// clientWithKey talks to srv in region with an arbitrary access key id.
func clientWithKey(srv *cloudhsmlocal.Server, accessKey, region string) *cloudhsmv2.Client {
	cfg := srv.AWSConfigFor(cloudhsmlocal.DefaultAccount, region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(accessKey, "any-secret", "")
	return cloudhsmv2.NewFromConfig(cfg)
}

// TestTenancyIsolation: a cluster of (A, us-east-1) does not exist for
// (B, us-east-1) nor for (A, eu-west-1).
func TestTenancyIsolation(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	const acctA, acctB = "111122223333", "444455556666"
	owner := clientFor(srv, acctA, "us-east-1")
	in := hsm2m(subnets(2)...)
	in.TagList = []types.Tag{{Key: aws.String("owner"), Value: aws.String("A")}}
	cl := mustCreate(t, owner, in)
	id := cl.ClusterId
	srv.Advance(time.Second)

	others := map[string]*cloudhsmv2.Client{
		"other account":               clientFor(srv, acctB, "us-east-1"),
		"other region":                clientFor(srv, acctA, "eu-west-1"),
		"other account, other region": clientFor(srv, acctB, "eu-west-1"),
		"default account":             client(srv),
	}
	for name, c := range others {
		t.Run(name, func(t *testing.T) {
			out, err := c.DescribeClusters(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Clusters) != 0 {
				t.Errorf("unfiltered DescribeClusters sees %v", clusterIDs(out.Clusters))
			}
			out, err = c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {*id}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Clusters) != 0 {
				t.Errorf("clusterIds filter finds %v", clusterIDs(out.Clusters))
			}
			out, err = c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"vpcIds": {aws.ToString(cl.VpcId)}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Clusters) != 0 {
				t.Errorf("vpcIds filter finds %v", clusterIDs(out.Clusters))
			}
			retention := &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")}
			calls := map[string]func() error{
				"DeleteCluster": func() error {
					_, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: id})
					return err
				},
				"ModifyCluster": func() error {
					_, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: id, BackupRetentionPolicy: retention})
					return err
				},
				"TagResource": func() error {
					_, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: id, TagList: []types.Tag{{Key: aws.String("owner"), Value: aws.String("intruder")}}})
					return err
				},
				"UntagResource": func() error {
					_, err := c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: id, TagKeyList: []string{"owner"}})
					return err
				},
				"ListTags": func() error {
					_, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: id})
					return err
				},
				"CreateHsm": func() error {
					var az string
					for k := range cl.SubnetMapping {
						az = k
					}
					_, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: id, AvailabilityZone: aws.String(az)})
					return err
				},
			}
			for op, call := range calls {
				t.Run(op, func(t *testing.T) { wantAPIError(t, call(), notFound) })
			}
		})
	}

	// The owner's cluster is untouched.
	got := describe(t, owner, *id)
	if got.State != types.ClusterStateUninitialized || aws.ToString(got.BackupRetentionPolicy.Value) != "90" || len(got.Hsms) != 0 {
		t.Errorf("owner's cluster changed: %s retention %s HSMs %d", got.State, aws.ToString(got.BackupRetentionPolicy.Value), len(got.Hsms))
	}
	if !tagsEqual(got.TagList, in.TagList) {
		t.Errorf("owner's tags changed: %s", tagString(got.TagList))
	}
	lt, err := owner.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: id})
	if err != nil || !tagsEqual(lt.TagList, in.TagList) {
		t.Errorf("owner's ListTags: %v %v", err, lt)
	}
}

// TestTenancySameNamesIndependent: the same subnet ids in two tenants are
// two unrelated subnets, and each tenant lists only its own clusters.
func TestTenancySameNamesIndependent(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	a := clientFor(srv, "111122223333", "us-east-1")
	b := clientFor(srv, "444455556666", "us-east-1")
	e := clientFor(srv, "111122223333", "eu-west-1")
	s := subnets(2)

	// In A the two subnets are learned together: one VPC.
	ca := mustCreate(t, a, hsm2m(s...))
	// In B they are learned apart: two VPCs, so together they are refused.
	b0 := mustCreate(t, b, hsm2m(s[0]))
	b1 := mustCreate(t, b, hsm2m(s[1]))
	if aws.ToString(b0.VpcId) == aws.ToString(b1.VpcId) {
		t.Fatalf("separately learned subnets share VPC %s", aws.ToString(b0.VpcId))
	}
	_, err := b.CreateCluster(ctx, hsm2m(s...))
	wantAPIError(t, err, invalidRequest)
	// A is not affected by B's view of the same ids.
	ca2 := mustCreate(t, a, hsm2m(s[1], s[0]))
	if aws.ToString(ca2.VpcId) != aws.ToString(ca.VpcId) {
		t.Errorf("A's subnets moved from %s to %s", aws.ToString(ca.VpcId), aws.ToString(ca2.VpcId))
	}
	// The region of the credential scope decides the AZs.
	ce := mustCreate(t, e, hsm2m(s...))
	for az := range ce.SubnetMapping {
		if len(az) != len("eu-west-1a") || az[:9] != "eu-west-1" {
			t.Errorf("eu-west-1 cluster maps AZ %q", az)
		}
	}

	want := map[*cloudhsmv2.Client][]string{
		a: {aws.ToString(ca.ClusterId), aws.ToString(ca2.ClusterId)},
		b: {aws.ToString(b0.ClusterId), aws.ToString(b1.ClusterId)},
		e: {aws.ToString(ce.ClusterId)},
	}
	for c, ids := range want {
		if got := clusterIDs(describeAll(t, c, nil)); !slices.Equal(got, ids) {
			t.Errorf("tenant lists %v, want %v", got, ids)
		}
	}
}

// TestTenancyAccessKeys: a 12-digit access key id is the account; any other
// key is the default account 123456789012.
func TestTenancyAccessKeys(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	defaultView := clientFor(srv, "123456789012", "us-east-1")
	cases := []struct {
		key       string
		isDefault bool
	}{
		{"AKIDEXAMPLE", true},
		{"AKIAIOSFODNN7EXAMPLE", true},
		{"ASIAXXXXXXXXXXXXXXXX", true},
		{"12345678901", true},   // 11 digits
		{"1234567890123", true}, // 13 digits
		{"12345678901a", true},  // 12 characters, not all digits
		{"123456789012", true},
		{"999988887777", false},
		{"000000000001", false},
	}
	var defaultIDs []string
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			c := clientWithKey(srv, tc.key, "us-east-1")
			cl := mustCreate(t, c, hsm2m(subnets(1)...))
			id := aws.ToString(cl.ClusterId)
			out, err := defaultView.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
			if err != nil {
				t.Fatal(err)
			}
			if seen := len(out.Clusters) == 1; seen != tc.isDefault {
				t.Errorf("key %q: visible in 123456789012 = %v, want %v", tc.key, seen, tc.isDefault)
			}
			if !tc.isDefault {
				own := clientFor(srv, tc.key, "us-east-1")
				if got := describe(t, own, id); aws.ToString(got.ClusterId) != id {
					t.Errorf("key %q: not visible in its own account", tc.key)
				}
			} else {
				defaultIDs = append(defaultIDs, id)
				// Visible to every other non-account key, too.
				if got := describe(t, clientWithKey(srv, "AKIDSOMEONEELSE", "us-east-1"), id); aws.ToString(got.ClusterId) != id {
					t.Errorf("key %q: not visible to another default-account key", tc.key)
				}
			}
		})
	}
	if got := clusterIDs(describeAll(t, defaultView, nil)); !slices.Equal(got, defaultIDs) {
		t.Errorf("default account lists %v, want %v", got, defaultIDs)
	}
	// The region still comes from the credential scope for non-account keys.
	if out, err := clientWithKey(srv, "AKIDEXAMPLE", "eu-west-1").DescribeClusters(ctx, nil); err != nil || len(out.Clusters) != 0 {
		t.Errorf("AKIDEXAMPLE in eu-west-1 sees %v (%v)", out, err)
	}
}

// ap-southeast-6 (Auckland) is a region of the aws partition in which
// botocore's endpoints.json (1.43.x) lists a cloudhsmv2 endpoint. A client
// configured for it must be served in both auth modes. (The same table
// also refuses it as a CopyBackupToRegion destination.)
func TestRegionApSoutheast6(t *testing.T) {
	srv := cloudhsmlocal.Start(t)
	if _, err := clientFor(srv, cloudhsmlocal.DefaultAccount, "ap-southeast-6").DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}); err != nil {
		t.Fatalf("permissive DescribeClusters in ap-southeast-6: %v", err)
	}
	strict := startStrict(t)
	c := strictClient(strict, strictKeyID, strictSecret)
	if _, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{}, func(o *cloudhsmv2.Options) { o.Region = "ap-southeast-6" }); err != nil {
		t.Fatalf("strict DescribeClusters in ap-southeast-6: %v", err)
	}
}

// Permissive mode refuses a credential scope naming an unknown region with
// the code and wording strict mode (and AWS) use for the same fault:
// InvalidSignatureException "Credential should be scoped to a valid region,
// not '...'. ", not UnrecognizedClientException.
func TestPermissiveUnknownRegionCode(t *testing.T) {
	srv := cloudhsmlocal.Start(t)
	_, err := clientFor(srv, cloudhsmlocal.DefaultAccount, "xx-nowhere-1").DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	wantAPIError(t, err, "InvalidSignatureException", "Credential should be scoped to a valid region, not 'xx-nowhere-1'.")
}
