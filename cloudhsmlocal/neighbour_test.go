//go:build unix

package cloudhsmlocal_test

// Issue "Lives beside LocalStack and moto": with WithEC2Endpoint (the
// binary's --ec2-endpoint) subnets are looked up in a neighbouring EC2
// emulator and cluster security groups are created there. These tests run
// against a real moto_server; docs/beside-localstack-moto.md describes the
// same set-up for Terraform.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

const neighbourRegion = "us-east-1"

// neighbourMoto is a moto_server started for one test, with an EC2 Query
// API client of it.
type neighbourMoto struct{ *testkit.MotoServer }

// neighbourStartMoto starts moto_server (see testkit.StartMotoServer).
func neighbourStartMoto(t *testing.T) *neighbourMoto {
	t.Helper()
	return &neighbourMoto{testkit.StartMotoServer(t, "cloudhsm-local is NOT tested beside an EC2 emulator")}
}

func (m *neighbourMoto) createVPC(t *testing.T, cidr string) string {
	t.Helper()
	var resp struct {
		VpcID string `xml:"vpc>vpcId"`
	}
	if err := m.Call("CreateVpc", url.Values{"CidrBlock": {cidr}}, &resp); err != nil {
		t.Fatalf("moto CreateVpc %s: %v", cidr, err)
	}
	if !strings.HasPrefix(resp.VpcID, "vpc-") {
		t.Fatalf("moto CreateVpc %s returned %q", cidr, resp.VpcID)
	}
	return resp.VpcID
}

func (m *neighbourMoto) createSubnet(t *testing.T, vpcID, az, cidr string) string {
	t.Helper()
	var resp struct {
		SubnetID string `xml:"subnet>subnetId"`
	}
	if err := m.Call("CreateSubnet", url.Values{"VpcId": {vpcID}, "AvailabilityZone": {az}, "CidrBlock": {cidr}}, &resp); err != nil {
		t.Fatalf("moto CreateSubnet %s %s: %v", az, cidr, err)
	}
	if !strings.HasPrefix(resp.SubnetID, "subnet-") {
		t.Fatalf("moto CreateSubnet %s returned %q", cidr, resp.SubnetID)
	}
	return resp.SubnetID
}

type neighbourGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
	VpcID     string `xml:"vpcId"`
}

// describeGroup looks a security group up by id; a *testkit.EC2Error
// InvalidGroup.NotFound when moto does not know it.
func (m *neighbourMoto) describeGroup(id string) (neighbourGroup, error) {
	var resp struct {
		Groups []neighbourGroup `xml:"securityGroupInfo>item"`
	}
	// The group-id filter rather than GroupId.N: a missing group is then
	// an empty answer, which is reported as InvalidGroup.NotFound too.
	if err := m.Call("DescribeSecurityGroups", url.Values{"Filter.1.Name": {"group-id"}, "Filter.1.Value.1": {id}}, &resp); err != nil {
		return neighbourGroup{}, err
	}
	if len(resp.Groups) == 0 {
		return neighbourGroup{}, &testkit.EC2Error{Status: 200, Code: "InvalidGroup.NotFound", Message: "no group " + id}
	}
	if len(resp.Groups) != 1 || resp.Groups[0].GroupID != id {
		return neighbourGroup{}, fmt.Errorf("DescribeSecurityGroups group-id=%s answered %+v", id, resp.Groups)
	}
	return resp.Groups[0], nil
}

// neighbourCreateHsm creates an HSM (ip may be "") and returns it.
func neighbourCreateHsm(t *testing.T, c *cloudhsmv2.Client, clusterID, az, ip string) *types.Hsm {
	t.Helper()
	in := &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(clusterID), AvailabilityZone: aws.String(az)}
	if ip != "" {
		in.IpAddress = aws.String(ip)
	}
	out, err := c.CreateHsm(ctx, in)
	if err != nil {
		t.Fatalf("CreateHsm %s %q: %v", az, ip, err)
	}
	return out.Hsm
}

func TestNeighbourMoto(t *testing.T) {
	moto := neighbourStartMoto(t)

	vpc1 := moto.createVPC(t, "10.20.0.0/16")
	subA := moto.createSubnet(t, vpc1, "us-east-1a", "10.20.1.0/24")
	subB := moto.createSubnet(t, vpc1, "us-east-1b", "10.20.2.0/24")
	subA2 := moto.createSubnet(t, vpc1, "us-east-1a", "10.20.3.0/24")
	vpc2 := moto.createVPC(t, "10.30.0.0/16")
	subC := moto.createSubnet(t, vpc2, "us-east-1c", "10.30.1.0/24")
	t.Logf("moto %s: %s {us-east-1a %s, us-east-1b %s, us-east-1a %s}, %s {us-east-1c %s}",
		moto.URL, vpc1, subA, subB, subA2, vpc2, subC)

	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithEC2Endpoint(moto.URL, "test", "test"))
	cfg := srv.AWSConfig()
	cfg.RetryMaxAttempts = 1
	c := cloudhsmv2.NewFromConfig(cfg)

	// ---- a cluster in moto's subnets -----------------------------------
	firstLookup := time.Now()
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{subA, subB}})
	if err != nil {
		t.Fatalf("CreateCluster in moto's subnets %s, %s: %v", subA, subB, err)
	}
	cl := out.Cluster
	id := aws.ToString(cl.ClusterId)
	wantMapping := map[string]string{"us-east-1a": subA, "us-east-1b": subB}
	if fmt.Sprint(cl.SubnetMapping) != fmt.Sprint(wantMapping) {
		t.Errorf("SubnetMapping = %v, want moto's %v", cl.SubnetMapping, wantMapping)
	}
	if aws.ToString(cl.VpcId) != vpc1 {
		t.Errorf("VpcId = %q, want moto's %s", aws.ToString(cl.VpcId), vpc1)
	}

	srv.Advance(time.Minute)
	cl = describe(t, c, id)
	if cl.State != types.ClusterStateUninitialized {
		t.Fatalf("cluster %s is %s after Advance, want UNINITIALIZED", id, cl.State)
	}
	sg := aws.ToString(cl.SecurityGroup)
	if sg == "" {
		t.Fatalf("cluster %s has no SecurityGroup after Advance", id)
	}
	g, err := moto.describeGroup(sg)
	if err != nil {
		t.Fatalf("the cluster's security group %s is not in moto: %v", sg, err)
	}
	if g.GroupName != "cloudhsm-cluster-"+id+"-sg" || g.VpcID != vpc1 {
		t.Errorf("moto's group %s = %+v, want name cloudhsm-cluster-%s-sg in %s", sg, g, id, vpc1)
	}

	// ---- HSM addresses come from moto's CIDR blocks --------------------
	subnetA := netip.MustParsePrefix("10.20.1.0/24")
	subnetB := netip.MustParsePrefix("10.20.2.0/24")
	cidrhost5 := subnetA.Addr().Next().Next().Next().Next().Next() // cidrhost("10.20.1.0/24", 5)
	if cidrhost5.String() != "10.20.1.5" {
		t.Fatalf("cidrhost: %s", cidrhost5)
	}
	h := neighbourCreateHsm(t, c, id, "us-east-1a", cidrhost5.String())
	if aws.ToString(h.EniIp) != "10.20.1.5" || aws.ToString(h.SubnetId) != subA {
		t.Errorf("HSM in us-east-1a with IpAddress 10.20.1.5: EniIp %q SubnetId %q, want 10.20.1.5 in %s",
			aws.ToString(h.EniIp), aws.ToString(h.SubnetId), subA)
	}
	// One HSM at a time in an UNINITIALIZED cluster: delete it (once
	// ACTIVE) first.
	srv.Advance(time.Minute)
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(id), HsmId: h.HsmId}); err != nil {
		t.Fatalf("DeleteHsm: %v", err)
	}
	srv.Advance(time.Minute)
	h = neighbourCreateHsm(t, c, id, "us-east-1b", "")
	ip, err := netip.ParseAddr(aws.ToString(h.EniIp))
	if err != nil || !subnetB.Contains(ip) || aws.ToString(h.SubnetId) != subB {
		t.Errorf("HSM in us-east-1b without IpAddress: EniIp %q SubnetId %q, want an address of %s in %s",
			aws.ToString(h.EniIp), aws.ToString(h.SubnetId), subnetB, subB)
	}
	srv.Advance(time.Minute)

	// ---- moto's topology is enforced -----------------------------------
	refused := func(name string, ids []string, contains ...string) {
		t.Helper()
		_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: ids})
		if err == nil {
			t.Errorf("%s: CreateCluster(%v) was accepted", name, ids)
			return
		}
		code, msg := apiErrorOf(t, err)
		if code != "CloudHsmInvalidRequestException" {
			t.Errorf("%s: %s %q, want CloudHsmInvalidRequestException", name, code, msg)
			return
		}
		t.Logf("%s: %s: %s", name, code, msg)
		for _, s := range contains {
			if !strings.Contains(msg, s) {
				t.Errorf("%s: message %q does not contain %q", name, msg, s)
			}
		}
	}
	refused("subnets of two VPCs", []string{subA, subC}, subA, subC, vpc1, vpc2)
	refused("two subnets in one AZ", []string{subA, subA2}, "us-east-1a")
	const unknown = "subnet-0123456789abcdef0"
	refused("unknown subnet", []string{subB, unknown}, unknown, moto.URL)

	// ---- DeleteCluster deletes the security group in moto --------------
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(id), HsmId: h.HsmId}); err != nil {
		t.Fatalf("DeleteHsm: %v", err)
	}
	srv.Advance(time.Minute)
	if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteCluster: %v", err)
	}
	srv.Advance(time.Minute)
	if st := describe(t, c, id).State; st != types.ClusterStateDeleted {
		t.Fatalf("cluster %s is %s, want DELETED", id, st)
	}
	_, err = moto.describeGroup(sg)
	var ec2Err *testkit.EC2Error
	if !errors.As(err, &ec2Err) || ec2Err.Code != "InvalidGroup.NotFound" {
		t.Errorf("after DeleteCluster, moto's group %s: %v, want InvalidGroup.NotFound", sg, err)
	}

	// ---- the binary, as docs/beside-localstack-moto.md runs it ----------
	t.Run("binary --ec2-endpoint", func(t *testing.T) {
		bin := strictBuildBinary(t)
		banner, endpoint := strictStartBinary(t, bin, "--in-memory", "--listen", "127.0.0.1:0", "--ec2-endpoint", moto.URL)
		if !strings.Contains(banner, "subnets: looked up in EC2 at "+moto.URL) {
			t.Errorf("the banner does not name the EC2 endpoint")
		}
		// Real clock, fast profile: in-progress states last 500ms.
		bc := cloudhsmv2.NewFromConfig(aws.Config{
			Region:           neighbourRegion,
			Credentials:      cfg.Credentials,
			BaseEndpoint:     aws.String(endpoint),
			RetryMaxAttempts: 1,
		})
		waitState := func(id string, want types.ClusterState) *types.Cluster {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				cl := describe(t, bc, id)
				if cl.State == want {
					return cl
				}
				if time.Now().After(deadline) {
					t.Fatalf("cluster %s is still %s after 10s, want %s", id, cl.State, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		out, err := bc.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{subA, subB}})
		if err != nil {
			t.Fatalf("CreateCluster through the binary: %v", err)
		}
		bid := aws.ToString(out.Cluster.ClusterId)
		if aws.ToString(out.Cluster.VpcId) != vpc1 || fmt.Sprint(out.Cluster.SubnetMapping) != fmt.Sprint(wantMapping) {
			t.Errorf("through the binary: VpcId %q SubnetMapping %v, want %s %v", aws.ToString(out.Cluster.VpcId), out.Cluster.SubnetMapping, vpc1, wantMapping)
		}
		bsg := aws.ToString(waitState(bid, types.ClusterStateUninitialized).SecurityGroup)
		if g, err := moto.describeGroup(bsg); err != nil || g.GroupName != "cloudhsm-cluster-"+bid+"-sg" {
			t.Errorf("through the binary: security group %s in moto: %+v, %v", bsg, g, err)
		}
		_, err = bc.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{subA, subC}})
		wantAPIError(t, err, "CloudHsmInvalidRequestException", "different VPCs")
		if _, err := bc.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(bid)}); err != nil {
			t.Fatalf("DeleteCluster through the binary: %v", err)
		}
		waitState(bid, types.ClusterStateDeleted)
		_, err = moto.describeGroup(bsg)
		var ec2Err *testkit.EC2Error
		if !errors.As(err, &ec2Err) || ec2Err.Code != "InvalidGroup.NotFound" {
			t.Errorf("through the binary, after DeleteCluster, moto's group %s: %v, want InvalidGroup.NotFound", bsg, err)
		}
	})

	// ---- moto goes away -------------------------------------------------
	moto.Stop()
	fresh := subnets(2) // never looked up, so not in the cache
	start := time.Now()
	_, err = c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: fresh})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("CreateCluster(%v) with moto stopped was accepted", fresh)
	}
	code, msg := apiErrorOf(t, err)
	t.Logf("with moto stopped, after %s: %s: %s", elapsed.Round(time.Millisecond), code, msg)
	if code != "CloudHsmServiceException" || !strings.Contains(msg, moto.URL) {
		t.Errorf("with moto stopped: %s %q, want CloudHsmServiceException naming %s", code, msg, moto.URL)
	}
	if elapsed >= 15*time.Second {
		t.Errorf("with moto stopped, CreateCluster took %s (want < 15s)", elapsed)
	}

	// Subnets looked up before moto went away stay usable from the
	// provider's cache (30s from the first lookup, real time); the
	// security group is then a derived id that exists only in
	// cloudhsm-local. Asserted only while the cache entries are surely
	// alive.
	if since := time.Since(firstLookup); since < 20*time.Second {
		out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{subA, subB}})
		if err != nil {
			t.Fatalf("with moto stopped, CreateCluster in subnets looked up %s ago (cached): %v", since.Round(time.Millisecond), err)
		}
		cid := aws.ToString(out.Cluster.ClusterId)
		if aws.ToString(out.Cluster.VpcId) != vpc1 {
			t.Errorf("cached: VpcId %q, want %s", aws.ToString(out.Cluster.VpcId), vpc1)
		}
		srv.Advance(time.Minute)
		if sg := aws.ToString(describe(t, c, cid).SecurityGroup); !strings.HasPrefix(sg, "sg-") {
			t.Errorf("cached: SecurityGroup %q, want a derived sg- id", sg)
		}
		if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(cid)}); err != nil {
			t.Fatalf("with moto stopped, DeleteCluster: %v", err)
		}
		srv.Advance(time.Minute)
		if st := describe(t, c, cid).State; st != types.ClusterStateDeleted {
			t.Errorf("with moto stopped, cluster %s is %s after DeleteCluster, want DELETED", cid, st)
		}
	} else {
		t.Logf("not checking the subnet cache: the subnets were looked up %s ago", since.Round(time.Millisecond))
	}
}

// TestNeighbourMotoRestart: a server restarted on the same data directory
// (and the same moto) still deletes, in moto, the security groups the server
// before it created there, and a made-up group id in a cluster record (from
// a server without --ec2-endpoint) is deleted without a warning and without
// touching moto.
func TestNeighbourMotoRestart(t *testing.T) {
	moto := neighbourStartMoto(t)
	vpc := moto.createVPC(t, "10.40.0.0/16")
	subA := moto.createSubnet(t, vpc, "us-east-1a", "10.40.1.0/24")
	subB := moto.createSubnet(t, vpc, "us-east-1b", "10.40.2.0/24")
	dir := t.TempDir()
	ec2 := cloudhsmlocal.WithEC2Endpoint(moto.URL, "test", "test")
	create := func(c *cloudhsmv2.Client, subnetIDs []string) string {
		t.Helper()
		out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnetIDs})
		if err != nil {
			t.Fatalf("CreateCluster(%v): %v", subnetIDs, err)
		}
		return aws.ToString(out.Cluster.ClusterId)
	}
	deleteCluster := func(c *cloudhsmv2.Client, id string) {
		t.Helper()
		if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(id)}); err != nil {
			t.Fatalf("DeleteCluster %s: %v", id, err)
		}
	}
	wantGroupGone := func(sg, why string) {
		t.Helper()
		_, err := moto.describeGroup(sg)
		var ec2Err *testkit.EC2Error
		if !errors.As(err, &ec2Err) || ec2Err.Code != "InvalidGroup.NotFound" {
			t.Errorf("%s, moto's group %s: %v, want InvalidGroup.NotFound", why, sg, err)
		}
	}

	// ---- a server without --ec2-endpoint: a made-up group id ------------
	srv0 := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart))
	learned := create(client(srv0), subnets(1))
	srv0.Advance(time.Minute)
	madeUp := aws.ToString(describe(t, client(srv0), learned).SecurityGroup)
	srv0.Close()

	// ---- the first server with moto: two groups in moto ------------------
	srv1 := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), ec2, cloudhsmlocal.WithStartTime(firstStart.Add(time.Hour)))
	c1 := client(srv1)
	kept, deleting := create(c1, []string{subA, subB}), create(c1, []string{subA})
	srv1.Advance(time.Minute)
	groups := map[string]string{} // cluster id -> security group
	for _, id := range []string{kept, deleting} {
		sg := aws.ToString(describe(t, c1, id).SecurityGroup)
		g, err := moto.describeGroup(sg)
		if err != nil || g.GroupName != "cloudhsm-cluster-"+id+"-sg" {
			t.Fatalf("cluster %s's security group %s in moto: %+v, %v", id, sg, g, err)
		}
		groups[id] = sg
	}
	// Stopped while a deletion is in progress.
	deleteCluster(c1, deleting)
	srv1.Close()
	if _, err := moto.describeGroup(groups[deleting]); err != nil {
		t.Fatalf("the group %s of cluster %s, still DELETE_IN_PROGRESS, is already gone: %v", groups[deleting], deleting, err)
	}

	// ---- restarted on the same directory and moto ------------------------
	var logs testkit.LockedBuffer
	srv2 := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), ec2, cloudhsmlocal.WithStartTime(firstStart.Add(2*time.Hour)),
		cloudhsmlocal.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	c2 := client(srv2)
	for id, sg := range groups {
		if got := aws.ToString(describe(t, c2, id).SecurityGroup); got != sg {
			t.Fatalf("after the restart, cluster %s has SecurityGroup %q, want %s", id, got, sg)
		}
	}
	deleteCluster(c2, kept)
	deleteCluster(c2, learned)
	all := []string{kept, deleting, learned}
	for i := 0; ; i++ {
		done := 0
		for _, id := range all {
			if describe(t, c2, id).State == types.ClusterStateDeleted {
				done++
			}
		}
		if done == len(all) {
			break
		}
		if i == 10 {
			t.Fatalf("%d of clusters %v DELETED after 10 minutes", done, all)
		}
		srv2.Advance(time.Minute)
	}
	wantGroupGone(groups[kept], "cluster "+kept+" deleted after the restart")
	wantGroupGone(groups[deleting], "cluster "+deleting+" deleting across the restart")
	if _, err := moto.describeGroup(madeUp); err == nil {
		t.Errorf("moto knows the made-up group %s", madeUp)
	}
	if l := logs.String(); strings.Contains(l, "level=WARN") {
		t.Errorf("warnings after the restart:\n%s", l)
	}
}
