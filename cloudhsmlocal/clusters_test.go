package cloudhsmlocal_test

import (
	"io"
	"maps"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

var (
	clusterIDRe = regexp.MustCompile(`^cluster-[2-7a-z]{11}$`)
	vpcIDRe     = regexp.MustCompile(`^vpc-[0-9a-f]{17}$`)
	sgIDRe      = regexp.MustCompile(`^sg-[0-9a-f]{17}$`)
)

const invalidRequest = "CloudHsmInvalidRequestException"
const notFound = "CloudHsmResourceNotFoundException"

// mustCreate creates a cluster and fails the test on error.
func mustCreate(t *testing.T, c *cloudhsmv2.Client, in *cloudhsmv2.CreateClusterInput) *types.Cluster {
	t.Helper()
	out, err := c.CreateCluster(ctx, in)
	if err != nil {
		t.Fatalf("CreateCluster(%s, %v): %v", aws.ToString(in.HsmType), in.SubnetIds, err)
	}
	return out.Cluster
}

func hsm2m(subnetIDs ...string) *cloudhsmv2.CreateClusterInput {
	return &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnetIDs}
}

// describeAll lists every cluster of the client's tenant (all pages).
func describeAll(t *testing.T, c *cloudhsmv2.Client, filters map[string][]string) []types.Cluster {
	t.Helper()
	var out []types.Cluster
	p := cloudhsmv2.NewDescribeClustersPaginator(c, &cloudhsmv2.DescribeClustersInput{Filters: filters})
	for pages := 0; p.HasMorePages(); pages++ {
		if pages > 1000 {
			t.Fatal("DescribeClusters paginator does not end")
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeClusters: %v", err)
		}
		out = append(out, page.Clusters...)
	}
	return out
}

func clusterIDs(cs []types.Cluster) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = aws.ToString(c.ClusterId)
	}
	return out
}

// azOf returns the AZ that mapping maps to subnet, or "".
func azOf(mapping map[string]string, subnet string) string {
	for az, s := range mapping {
		if s == subnet {
			return az
		}
	}
	return ""
}

// TestCreateClusterDefaults: the response and later reads of a fresh cluster.
func TestCreateClusterDefaults(t *testing.T) {
	t.Parallel()
	for _, region := range []string{"us-east-1", "eu-west-1", "ap-southeast-2"} {
		t.Run(region, func(t *testing.T) {
			t.Parallel()
			srv := cloudhsmlocal.Start(t)
			c := clientFor(srv, "210987654321", region)
			sns := subnets(3)
			in := hsm2m(sns...)
			in.TagList = []types.Tag{{Key: aws.String("team"), Value: aws.String("pki")}, {Key: aws.String("env"), Value: aws.String("ci")}}
			created := srv.Now()
			cl := mustCreate(t, c, in)

			id := aws.ToString(cl.ClusterId)
			if !clusterIDRe.MatchString(id) {
				t.Errorf("ClusterId %q does not match %s", id, clusterIDRe)
			}
			if cl.State != types.ClusterStateCreateInProgress {
				t.Errorf("State %s, want CREATE_IN_PROGRESS", cl.State)
			}
			if cl.BackupPolicy != types.BackupPolicyDefault {
				t.Errorf("BackupPolicy %q", cl.BackupPolicy)
			}
			if p := cl.BackupRetentionPolicy; p == nil || p.Type != types.BackupRetentionTypeDays || aws.ToString(p.Value) != "90" {
				t.Errorf("BackupRetentionPolicy %+v, want DAYS/90", p)
			}
			if cl.Mode != types.ClusterModeFips || cl.NetworkType != types.NetworkTypeIpv4 || aws.ToString(cl.HsmType) != "hsm2m.medium" {
				t.Errorf("Mode %q NetworkType %q HsmType %q", cl.Mode, cl.NetworkType, aws.ToString(cl.HsmType))
			}
			if cl.SecurityGroup != nil {
				t.Errorf("CreateCluster response has SecurityGroup %q", *cl.SecurityGroup)
			}
			if cl.StateMessage != nil || cl.SourceBackupId != nil {
				t.Errorf("fresh cluster has StateMessage %v / SourceBackupId %v", cl.StateMessage, cl.SourceBackupId)
			}
			if cl.Hsms == nil || len(cl.Hsms) != 0 {
				t.Errorf("Hsms %v, want []", cl.Hsms)
			}
			if cl.CreateTimestamp == nil || !cl.CreateTimestamp.Equal(created) {
				t.Errorf("CreateTimestamp %v, want the server clock %v", cl.CreateTimestamp, created)
			}
			if !vpcIDRe.MatchString(aws.ToString(cl.VpcId)) {
				t.Errorf("VpcId %q", aws.ToString(cl.VpcId))
			}
			// SubnetMapping: AZ of this region -> each subnet, one subnet per AZ.
			if len(cl.SubnetMapping) != 3 {
				t.Errorf("SubnetMapping %v, want 3 entries", cl.SubnetMapping)
			}
			azRe := regexp.MustCompile(`^` + regexp.QuoteMeta(region) + `[a-z]$`)
			for az, s := range cl.SubnetMapping {
				if !azRe.MatchString(az) {
					t.Errorf("AZ %q is not an AZ of %s", az, region)
				}
				if !slices.Contains(sns, s) {
					t.Errorf("SubnetMapping maps %s to %s, not one of the request's subnets", az, s)
				}
			}
			if got := slices.Sorted(maps.Values(cl.SubnetMapping)); !slices.Equal(got, sortedCopy(sns)) {
				t.Errorf("SubnetMapping values %v, want the subnets %v", got, sns)
			}
			wantTags := []types.Tag{{Key: aws.String("env"), Value: aws.String("ci")}, {Key: aws.String("team"), Value: aws.String("pki")}}
			if !tagsEqual(cl.TagList, wantTags) {
				t.Errorf("TagList %v, want %v", tagString(cl.TagList), tagString(wantTags))
			}

			// Still CREATE_IN_PROGRESS just before the delay, and without an SG.
			srv.Advance(499 * time.Millisecond)
			got := describe(t, c, id)
			if got.State != types.ClusterStateCreateInProgress {
				t.Fatalf("after 499ms: %s, want CREATE_IN_PROGRESS", got.State)
			}
			if got.SecurityGroup != nil {
				t.Errorf("SecurityGroup %q while CREATE_IN_PROGRESS", *got.SecurityGroup)
			}
			srv.Advance(time.Millisecond)
			got = describe(t, c, id)
			if got.State != types.ClusterStateUninitialized {
				t.Fatalf("after 500ms: %s, want UNINITIALIZED", got.State)
			}
			if !sgIDRe.MatchString(aws.ToString(got.SecurityGroup)) {
				t.Errorf("SecurityGroup %q after CREATE_IN_PROGRESS", aws.ToString(got.SecurityGroup))
			}
			if got.StateMessage != nil {
				t.Errorf("UNINITIALIZED StateMessage %q", *got.StateMessage)
			}
			// Everything else is unchanged.
			if aws.ToString(got.VpcId) != aws.ToString(cl.VpcId) || !maps.Equal(got.SubnetMapping, cl.SubnetMapping) ||
				!got.CreateTimestamp.Equal(*cl.CreateTimestamp) || !tagsEqual(got.TagList, wantTags) ||
				aws.ToString(got.BackupRetentionPolicy.Value) != "90" || got.Mode != cl.Mode || got.NetworkType != cl.NetworkType {
				t.Errorf("cluster changed across the transition:\n%+v\n%+v", cl, got)
			}
			// More time changes nothing without an HSM.
			srv.Advance(48 * time.Hour)
			if got := describe(t, c, id); got.State != types.ClusterStateUninitialized {
				t.Errorf("after 48h: %s", got.State)
			}
		})
	}
}

// TestCreateClusterIDsUnique: ids are distinct and well-formed.
func TestCreateClusterIDsUnique(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	seen := map[string]bool{}
	for range 40 {
		id := aws.ToString(mustCreate(t, c, hsm2m(subnets(1)...)).ClusterId)
		if !clusterIDRe.MatchString(id) || seen[id] {
			t.Fatalf("ClusterId %q malformed or repeated", id)
		}
		seen[id] = true
	}
}

// TestCreateClusterRetention: BackupRetentionPolicy.Value 7..379.
func TestCreateClusterRetention(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cases := []struct {
		value string
		ok    bool
	}{
		{"7", true}, {"8", true}, {"90", true}, {"365", true}, {"379", true},
		{"6", false}, {"380", false}, {"0", false}, {"1", false}, {"999", false},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			in := hsm2m(subnets(1)...)
			in.BackupRetentionPolicy = &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String(tc.value)}
			out, err := c.CreateCluster(ctx, in)
			if !tc.ok {
				wantAPIError(t, err, invalidRequest)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := aws.ToString(out.Cluster.BackupRetentionPolicy.Value); v != tc.value {
				t.Errorf("response Value %q, want %q", v, tc.value)
			}
			got := describe(t, c, aws.ToString(out.Cluster.ClusterId))
			if got.BackupRetentionPolicy.Type != types.BackupRetentionTypeDays || aws.ToString(got.BackupRetentionPolicy.Value) != tc.value {
				t.Errorf("DescribeClusters retention %+v, want DAYS/%s", got.BackupRetentionPolicy, tc.value)
			}
		})
	}
	// A policy missing its Type or Value is refused too.
	for _, p := range []*types.BackupRetentionPolicy{{Value: aws.String("30")}, {Type: types.BackupRetentionTypeDays}} {
		in := hsm2m(subnets(1)...)
		in.BackupRetentionPolicy = p
		_, err := c.CreateCluster(ctx, in)
		wantAPIError(t, err, invalidRequest)
	}
	// Only the accepted ones exist.
	if n := len(describeAll(t, c, nil)); n != 5 {
		t.Errorf("%d clusters exist, want 5", n)
	}
}

// TestCreateClusterTypeModeNetwork: HsmType, Mode and NetworkType rules.
func TestCreateClusterTypeModeNetwork(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cases := []struct {
		hsmType     string
		mode        types.ClusterMode
		network     types.NetworkType
		ok          bool
		wantMode    types.ClusterMode
		wantNetwork types.NetworkType
	}{
		{"hsm1.medium", "", "", true, "FIPS", "IPV4"},
		{"hsm2m.medium", "", "", true, "FIPS", "IPV4"},
		{"hsm1.medium", "FIPS", "IPV4", true, "FIPS", "IPV4"},
		{"hsm2m.medium", "FIPS", "", true, "FIPS", "IPV4"},
		{"hsm2m.medium", "NON_FIPS", "", true, "NON_FIPS", "IPV4"},
		{"hsm2m.medium", "", "DUALSTACK", true, "FIPS", "DUALSTACK"},
		{"hsm2m.medium", "NON_FIPS", "DUALSTACK", true, "NON_FIPS", "DUALSTACK"},
		{"hsm1.medium", "NON_FIPS", "", false, "", ""},
		{"hsm1.medium", "", "DUALSTACK", false, "", ""},
		{"hsm1.medium", "NON_FIPS", "DUALSTACK", false, "", ""},
		{"hsm3.medium", "", "", false, "", ""},
		{"hsm2.medium", "", "", false, "", ""},
		{"hsm2m.large", "", "", false, "", ""},
		{"phsm1.medium", "", "", false, "", ""},
	}
	accepted := 0
	for _, tc := range cases {
		t.Run(tc.hsmType+"/"+string(tc.mode)+"/"+string(tc.network), func(t *testing.T) {
			in := &cloudhsmv2.CreateClusterInput{HsmType: aws.String(tc.hsmType), SubnetIds: subnets(2), Mode: tc.mode, NetworkType: tc.network}
			out, err := c.CreateCluster(ctx, in)
			if !tc.ok {
				wantAPIError(t, err, invalidRequest)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			accepted++
			for _, cl := range []*types.Cluster{out.Cluster, describe(t, c, aws.ToString(out.Cluster.ClusterId))} {
				if aws.ToString(cl.HsmType) != tc.hsmType || cl.Mode != tc.wantMode || cl.NetworkType != tc.wantNetwork {
					t.Errorf("HsmType %q Mode %q NetworkType %q, want %q %q %q", aws.ToString(cl.HsmType), cl.Mode, cl.NetworkType, tc.hsmType, tc.wantMode, tc.wantNetwork)
				}
			}
		})
	}
	if n := len(describeAll(t, c, nil)); n != accepted {
		t.Errorf("%d clusters exist, want %d (refused requests must create nothing)", n, accepted)
	}
}

// TestCreateClusterSubnetCount: 1..10 subnets, distinct.
func TestCreateClusterSubnetCount(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	for _, n := range []int{1, 2, 5, 10} {
		sns := subnets(n)
		cl := mustCreate(t, c, hsm2m(sns...))
		if len(cl.SubnetMapping) != n {
			t.Errorf("%d subnets: SubnetMapping has %d entries", n, len(cl.SubnetMapping))
		}
		if got := slices.Sorted(maps.Values(cl.SubnetMapping)); !slices.Equal(got, sortedCopy(sns)) {
			t.Errorf("%d subnets: SubnetMapping values %v", n, got)
		}
	}
	_, err := c.CreateCluster(ctx, hsm2m(subnets(11)...))
	wantAPIError(t, err, invalidRequest, "validation error")
	// The same subnet twice is two subnets in one AZ.
	s := subnets(1)[0]
	_, err = c.CreateCluster(ctx, hsm2m(s, s))
	wantAPIError(t, err, invalidRequest)
}

// TestLearnedNetwork: subnets unknown to the server are placed, remembered
// and checked like a real VPC's.
func TestLearnedNetwork(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)

	a := subnets(3)
	ca := mustCreate(t, c, hsm2m(a...))
	vpcA := aws.ToString(ca.VpcId)
	azA := map[string]string{} // subnet -> AZ
	for az, s := range ca.SubnetMapping {
		azA[s] = az
	}
	if len(azA) != 3 {
		t.Fatalf("three new subnets in %d AZs: %v", len(azA), ca.SubnetMapping)
	}

	// Reusing known subnets, alone or together, in any order: same VPC, same AZ.
	for _, ids := range [][]string{{a[0]}, {a[1]}, {a[2]}, {a[2], a[0]}, {a[1], a[2], a[0]}} {
		cl := mustCreate(t, c, hsm2m(ids...))
		if aws.ToString(cl.VpcId) != vpcA {
			t.Errorf("%v: VPC %s, want %s", ids, aws.ToString(cl.VpcId), vpcA)
		}
		for _, s := range ids {
			if az := azOf(cl.SubnetMapping, s); az != azA[s] {
				t.Errorf("%v: subnet %s in %q, earlier in %q", ids, s, az, azA[s])
			}
		}
	}

	// A known subnet named twice is refused.
	_, err := c.CreateCluster(ctx, hsm2m(a[1], a[1]))
	wantAPIError(t, err, invalidRequest)

	// A known subnet with new ones: the new ones join its VPC, in other AZs.
	mixed := append([]string{a[0]}, subnets(2)...)
	cm := mustCreate(t, c, hsm2m(mixed...))
	if aws.ToString(cm.VpcId) != vpcA || len(cm.SubnetMapping) != 3 || azOf(cm.SubnetMapping, a[0]) != azA[a[0]] {
		t.Errorf("known+new subnets: VPC %s mapping %v", aws.ToString(cm.VpcId), cm.SubnetMapping)
	}

	// A separate set of new subnets forms another VPC.
	b := subnets(2)
	cb := mustCreate(t, c, hsm2m(b...))
	vpcB := aws.ToString(cb.VpcId)
	if vpcB == vpcA {
		t.Fatalf("unrelated new subnets joined VPC %s", vpcA)
	}
	// Known subnets of two VPCs in one request are refused.
	for _, ids := range [][]string{{a[0], b[0]}, {b[1], a[2]}, {a[0], a[1], b[0]}} {
		_, err := c.CreateCluster(ctx, hsm2m(ids...))
		wantAPIError(t, err, invalidRequest)
	}

	// Two known subnets of one VPC in the same AZ are refused. Add new
	// subnets to VPC A until some AZ holds two of them.
	byAZ := map[string][]string{}
	for s, az := range azA {
		byAZ[az] = append(byAZ[az], s)
	}
	for _, s := range mixed[1:] {
		byAZ[azOf(cm.SubnetMapping, s)] = append(byAZ[azOf(cm.SubnetMapping, s)], s)
	}
	var pair []string
	for round := 0; pair == nil && round < 10; round++ {
		ids := append([]string{a[0]}, subnets(9)...)
		cl := mustCreate(t, c, hsm2m(ids...))
		if aws.ToString(cl.VpcId) != vpcA {
			t.Fatalf("new subnets with %s went to VPC %s, want %s", a[0], aws.ToString(cl.VpcId), vpcA)
		}
		if len(cl.SubnetMapping) != 10 {
			t.Fatalf("10 subnets in %d AZs", len(cl.SubnetMapping))
		}
		for _, s := range ids[1:] {
			az := azOf(cl.SubnetMapping, s)
			byAZ[az] = append(byAZ[az], s)
			if len(byAZ[az]) == 2 && pair == nil {
				pair = byAZ[az]
			}
		}
	}
	if pair == nil {
		t.Fatal("no AZ got a second subnet")
	}
	_, err = c.CreateCluster(ctx, hsm2m(pair...))
	wantAPIError(t, err, invalidRequest)

	// Distinct subnets have distinct CIDRs: HSM addresses of two subnets
	// created together are in different ranges, and an address of one subnet
	// is refused in the other. (HSMs are slow to make: two suffice.)
	srv.Advance(time.Second)
	var ips []netip.Addr
	for i, s := range a[:2] {
		cl := mustCreate(t, c, hsm2m(s)) // a single known subnet: its own cluster
		srv.Advance(time.Second)
		if i > 0 {
			_, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String(azA[s]), IpAddress: aws.String(ips[0].String())})
			wantAPIError(t, err, invalidRequest)
		}
		h, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String(azA[s])})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(h.Hsm.SubnetId) != s || aws.ToString(h.Hsm.AvailabilityZone) != azA[s] {
			t.Errorf("HSM in subnet %s / %s, want %s / %s", aws.ToString(h.Hsm.SubnetId), aws.ToString(h.Hsm.AvailabilityZone), s, azA[s])
		}
		srv.Advance(time.Second)
		got := describe(t, c, aws.ToString(cl.ClusterId))
		if len(got.Hsms) != 1 || got.Hsms[0].EniIp == nil {
			t.Fatalf("HSM without an address: %+v", got.Hsms)
		}
		ip, err := netip.ParseAddr(aws.ToString(got.Hsms[0].EniIp))
		if err != nil || !ip.Is4() {
			t.Fatalf("EniIp %q", aws.ToString(got.Hsms[0].EniIp))
		}
		ips = append(ips, ip)
	}
	// The learned layout gives every subnet its own /24 (see internal/network).
	for i := range ips {
		for j := range i {
			pi, _ := ips[i].Prefix(24)
			pj, _ := ips[j].Prefix(24)
			if pi == pj {
				t.Errorf("HSMs of subnets %s and %s share %s", a[i], a[j], pi)
			}
		}
	}
}

// TestDeleteCluster: DELETE_IN_PROGRESS -> DELETED (still visible) -> gone.
func TestDeleteCluster(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	keep := mustCreate(t, c, hsm2m(subnets(1)...))
	cl := mustCreate(t, c, hsm2m(subnets(2)...))
	id := aws.ToString(cl.ClusterId)
	srv.Advance(500 * time.Millisecond)

	out, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	if err != nil {
		t.Fatal(err)
	}
	if out.Cluster.State != types.ClusterStateDeleteInProgress || aws.ToString(out.Cluster.StateMessage) != "The cluster is being deleted." {
		t.Fatalf("DeleteCluster: %s %q", out.Cluster.State, aws.ToString(out.Cluster.StateMessage))
	}
	if aws.ToString(out.Cluster.ClusterId) != id || aws.ToString(out.Cluster.VpcId) != aws.ToString(cl.VpcId) {
		t.Errorf("DeleteCluster returned another cluster: %+v", out.Cluster)
	}
	got := describe(t, c, id)
	if got.State != types.ClusterStateDeleteInProgress || aws.ToString(got.StateMessage) != "The cluster is being deleted." {
		t.Errorf("DescribeClusters after delete: %s %q", got.State, aws.ToString(got.StateMessage))
	}
	// A second delete while in progress is refused.
	_, err = c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	wantAPIError(t, err, invalidRequest)

	srv.Advance(499 * time.Millisecond)
	if got := describe(t, c, id); got.State != types.ClusterStateDeleteInProgress {
		t.Fatalf("after 499ms: %s", got.State)
	}
	srv.Advance(time.Millisecond)
	got = describe(t, c, id)
	if got.State != types.ClusterStateDeleted {
		t.Fatalf("after 500ms: %s, want DELETED", got.State)
	}
	// DELETED is visible unfiltered and through a states filter.
	if ids := clusterIDs(describeAll(t, c, nil)); !slices.Equal(ids, []string{aws.ToString(keep.ClusterId), id}) {
		t.Errorf("unfiltered: %v", ids)
	}
	if ids := clusterIDs(describeAll(t, c, map[string][]string{"states": {"DELETED"}})); !slices.Equal(ids, []string{id}) {
		t.Errorf("states=DELETED: %v", ids)
	}
	// A DELETED cluster cannot be deleted, modified or tagged.
	_, err = c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	if err == nil {
		t.Error("deleting a DELETED cluster succeeded")
	}

	// Gone after the deleted-retention (default 1h).
	srv.Advance(time.Hour - time.Millisecond)
	if got := describe(t, c, id); got.State != types.ClusterStateDeleted {
		t.Fatalf("1h-1ms after DELETED: %s", got.State)
	}
	srv.Advance(time.Millisecond)
	res, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clusters) != 0 {
		t.Fatalf("1h after DELETED the cluster is still listed: %s", res.Clusters[0].State)
	}
	if ids := clusterIDs(describeAll(t, c, nil)); !slices.Equal(ids, []string{aws.ToString(keep.ClusterId)}) {
		t.Errorf("unfiltered after expiry: %v", ids)
	}
	_, err = c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	wantAPIError(t, err, notFound)
}

// TestDeleteClusterRefusals: unknown clusters, clusters with HSMs.
func TestDeleteClusterRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)

	_, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String("cluster-abcdefghijk")})
	wantAPIError(t, err, notFound)

	cl := mustCreate(t, c, hsm2m(subnets(2)...))
	srv.Advance(500 * time.Millisecond)
	cl = describe(t, c, aws.ToString(cl.ClusterId))
	if cl.State != types.ClusterStateUninitialized {
		t.Fatalf("state %s", cl.State)
	}
	az := slices.Sorted(maps.Keys(cl.SubnetMapping))[0]
	h, err := c.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: cl.ClusterId, AvailabilityZone: aws.String(az)})
	if err != nil {
		t.Fatal(err)
	}
	// Refused while the HSM is being created and once it is ACTIVE.
	_, err = c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	wantAPIError(t, err, invalidRequest)
	srv.Advance(time.Second)
	_, err = c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	wantAPIError(t, err, invalidRequest)
	if got := describe(t, c, aws.ToString(cl.ClusterId)); got.State != types.ClusterStateUninitialized || len(got.Hsms) != 1 {
		t.Fatalf("refused delete changed the cluster: %s, %d HSMs", got.State, len(got.Hsms))
	}
	// And while the HSM is being deleted.
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: cl.ClusterId, HsmId: h.Hsm.HsmId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	wantAPIError(t, err, invalidRequest)
	// Once the HSM is gone the cluster can be deleted.
	srv.Advance(time.Second)
	if got := describe(t, c, aws.ToString(cl.ClusterId)); len(got.Hsms) != 0 {
		t.Fatalf("HSM not gone: %+v", got.Hsms)
	}
	out, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: cl.ClusterId})
	if err != nil {
		t.Fatal(err)
	}
	if out.Cluster.State != types.ClusterStateDeleteInProgress {
		t.Errorf("state %s", out.Cluster.State)
	}
}

// TestModifyClusterRetention: changes are reflected everywhere.
func TestModifyClusterRetention(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl := mustCreate(t, c, hsm2m(subnets(1)...))
	srv.Advance(time.Second)
	for _, v := range []string{"7", "379", "30"} {
		out, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: cl.ClusterId,
			BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String(v)}})
		if err != nil {
			t.Fatalf("ModifyCluster %s: %v", v, err)
		}
		if aws.ToString(out.Cluster.BackupRetentionPolicy.Value) != v || aws.ToString(out.Cluster.ClusterId) != aws.ToString(cl.ClusterId) {
			t.Errorf("ModifyCluster response %+v", out.Cluster)
		}
		got := describe(t, c, aws.ToString(cl.ClusterId))
		if got.BackupRetentionPolicy.Type != types.BackupRetentionTypeDays || aws.ToString(got.BackupRetentionPolicy.Value) != v {
			t.Errorf("after ModifyCluster %s: %+v", v, got.BackupRetentionPolicy)
		}
		if got.State != types.ClusterStateUninitialized {
			t.Errorf("ModifyCluster changed the state to %s", got.State)
		}
	}
	for _, v := range []string{"6", "380"} {
		_, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: cl.ClusterId,
			BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String(v)}})
		wantAPIError(t, err, invalidRequest)
	}
	if got := describe(t, c, aws.ToString(cl.ClusterId)); aws.ToString(got.BackupRetentionPolicy.Value) != "30" {
		t.Errorf("refused ModifyCluster changed retention to %s", aws.ToString(got.BackupRetentionPolicy.Value))
	}
	_, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: aws.String("cluster-abcdefghijk"),
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")}})
	wantAPIError(t, err, notFound)
}

// TestDescribeClustersFilters: values within a key OR, keys AND.
func TestDescribeClustersFilters(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	s1 := subnets(2)
	c1 := mustCreate(t, c, hsm2m(s1...))         // VPC 1
	c2 := mustCreate(t, c, hsm2m(s1[0]))         // VPC 1
	c3 := mustCreate(t, c, hsm2m(subnets(1)...)) // VPC 2
	srv.Advance(time.Second)
	if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: c2.ClusterId}); err != nil {
		t.Fatal(err)
	}
	c4 := mustCreate(t, c, hsm2m(subnets(1)...)) // VPC 3, CREATE_IN_PROGRESS
	id1, id2, id3, id4 := aws.ToString(c1.ClusterId), aws.ToString(c2.ClusterId), aws.ToString(c3.ClusterId), aws.ToString(c4.ClusterId)
	vpc1, vpc3 := aws.ToString(c1.VpcId), aws.ToString(c4.VpcId)
	if aws.ToString(c2.VpcId) != vpc1 || aws.ToString(c3.VpcId) == vpc1 {
		t.Fatalf("setup: VPCs %s %s %s", vpc1, aws.ToString(c2.VpcId), aws.ToString(c3.VpcId))
	}
	cases := []struct {
		name    string
		filters map[string][]string
		want    []string
	}{
		{"none", nil, []string{id1, id2, id3, id4}},
		{"empty map", map[string][]string{}, []string{id1, id2, id3, id4}},
		{"one id", map[string][]string{"clusterIds": {id3}}, []string{id3}},
		{"ids in any order", map[string][]string{"clusterIds": {id4, id1}}, []string{id1, id4}},
		{"an id twice", map[string][]string{"clusterIds": {id1, id1}}, []string{id1}},
		{"known and unknown id", map[string][]string{"clusterIds": {"cluster-abcdefghijk", id2}}, []string{id2}},
		{"unknown id only", map[string][]string{"clusterIds": {"cluster-abcdefghijk"}}, []string{}},
		{"malformed id", map[string][]string{"clusterIds": {"not-a-cluster"}}, []string{}},
		{"vpc", map[string][]string{"vpcIds": {vpc1}}, []string{id1, id2}},
		{"two vpcs", map[string][]string{"vpcIds": {vpc3, vpc1}}, []string{id1, id2, id4}},
		{"unknown vpc", map[string][]string{"vpcIds": {"vpc-0123456789abcdef0"}}, []string{}},
		{"state", map[string][]string{"states": {"UNINITIALIZED"}}, []string{id1, id3}},
		{"two states", map[string][]string{"states": {"DELETE_IN_PROGRESS", "CREATE_IN_PROGRESS"}}, []string{id2, id4}},
		{"state nobody is in", map[string][]string{"states": {"ACTIVE"}}, []string{}},
		{"vpc AND state", map[string][]string{"vpcIds": {vpc1}, "states": {"UNINITIALIZED"}}, []string{id1}},
		{"ids AND state", map[string][]string{"clusterIds": {id1, id2, id3}, "states": {"DELETE_IN_PROGRESS", "CREATE_IN_PROGRESS"}}, []string{id2}},
		{"ids AND vpc AND state", map[string][]string{"clusterIds": {id1, id2, id3, id4}, "vpcIds": {vpc1, vpc3}, "states": {"CREATE_IN_PROGRESS", "UNINITIALIZED"}}, []string{id1, id4}},
		{"ids AND vpc disjoint", map[string][]string{"clusterIds": {id3}, "vpcIds": {vpc1}}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: tc.filters})
			if err != nil {
				t.Fatal(err)
			}
			if out.Clusters == nil {
				t.Errorf("Clusters absent, want a (possibly empty) list")
			}
			if got := clusterIDs(out.Clusters); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if out.NextToken != nil {
				t.Errorf("NextToken %q for a short result", *out.NextToken)
			}
		})
	}
	for _, bad := range []map[string][]string{
		{"clusterId": {id1}},
		{"names": {"x"}},
		{"ClusterIds": {id1}},
		{"clusterIds": {id1}, "hsmIds": {"hsm-abcdefghijk"}},
		{"states": {"RUNNING"}},
		{"states": {"UNINITIALIZED", "uninitialized"}},
	} {
		_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: bad})
		wantAPIError(t, err, invalidRequest)
	}
}

func tagsEqual(a, b []types.Tag) bool {
	return slices.EqualFunc(a, b, func(x, y types.Tag) bool {
		return aws.ToString(x.Key) == aws.ToString(y.Key) && aws.ToString(x.Value) == aws.ToString(y.Value)
	})
}

func tagString(tags []types.Tag) string {
	parts := make([]string, len(tags))
	for i, t := range tags {
		parts[i] = aws.ToString(t.Key) + "=" + aws.ToString(t.Value)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// TestEmptyFilterListsFilterNothing: a filter key with an empty list of
// values is the same as no filter (the README's rule), for clusters and
// backups alike; the unknown-key check still applies.
func TestEmptyFilterListsFilterNothing(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	a, b := createCluster(t, c, 1), createCluster(t, c, 1)
	for _, key := range []string{"clusterIds", "states", "vpcIds"} {
		out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{key: {}}})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if ids := clusterIDs(out.Clusters); len(ids) != 2 || ids[0] != *a.ClusterId || ids[1] != *b.ClusterId {
			t.Fatalf("filter %s=[] listed %v, want both clusters", key, ids)
		}
	}
	if _, err := c.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"neverExpires": {}, "states": {}}}); err != nil {
		t.Fatalf("empty backup filters: %v", err)
	}
	_, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"bogus": {}}})
	wantAPIError(t, err, "CloudHsmInvalidRequestException", "bogus")
}

// R7-1: with a real clock and no API traffic, /metrics keeps reporting a
// cluster in CREATE_IN_PROGRESS long after DescribeClusters would show it
// UNINITIALIZED (the scheduler is not woken by new events; Stats does not
// catch up).
func TestMetricsGaugeFollowsTheClock(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithRealClock(), cloudhsmlocal.WithDelay(20*time.Millisecond))
	c := client(srv)
	mustCreate(t, c, hsm2m(subnets(1)...))
	// Real time must pass (the feature is the real clock): scrape until the
	// gauge moves, for at most 5 s, with no API call meanwhile.
	want := `cloudhsm_local_resources{state="UNINITIALIZED",type="cluster"} 1`
	var b []byte
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(b), want) {
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "cloudhsm_local_resources{") && strings.Contains(l, `type="cluster"`) && !strings.HasSuffix(l, " 0") {
				lines = append(lines, l)
			}
		}
		t.Errorf("/metrics lacks %s; cluster series: %v", want, lines)
	}
	// DescribeClusters (which catches up lazily) says UNINITIALIZED.
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil || len(out.Clusters) != 1 || out.Clusters[0].State != types.ClusterStateUninitialized {
		t.Fatalf("DescribeClusters: %v %v", out, err)
	}
}
