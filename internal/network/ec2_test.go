package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// ---- helpers ---------------------------------------------------------------

// testLogger is a text logger whose output the test reads.
func testLogger() (*slog.Logger, *testkit.LockedBuffer) {
	var b testkit.LockedBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// startMoto starts moto_server for the test (see testkit.StartMotoServer).
func startMoto(t *testing.T) *testkit.MotoServer {
	t.Helper()
	return testkit.StartMotoServer(t, "the EC2 provider is NOT tested against an EC2 emulator")
}

type testVPC struct {
	ID   string
	IPv6 netip.Prefix // Amazon-provided block, zero if none
}

// createVPC creates a VPC through the EC2 Query API.
func createVPC(t *testing.T, e *EC2, region, cidr string, ipv6 bool) testVPC {
	t.Helper()
	p := url.Values{"CidrBlock": {cidr}}
	if ipv6 {
		p.Set("AmazonProvidedIpv6CidrBlock", "true")
	}
	var resp struct {
		VpcID string `xml:"vpc>vpcId"`
		IPv6  []struct {
			CidrBlock string `xml:"ipv6CidrBlock"`
		} `xml:"vpc>ipv6CidrBlockAssociationSet>item"`
	}
	if err := e.call(context.Background(), region, "CreateVpc", p, &resp); err != nil {
		t.Fatalf("CreateVpc %s: %v", cidr, err)
	}
	v := testVPC{ID: resp.VpcID}
	if !ValidVPCID(v.ID) {
		t.Fatalf("CreateVpc returned vpc id %q", v.ID)
	}
	if ipv6 {
		if len(resp.IPv6) == 0 {
			t.Fatalf("CreateVpc %s: no IPv6 block in the answer", cidr)
		}
		v.IPv6 = netip.MustParsePrefix(resp.IPv6[0].CidrBlock)
	}
	return v
}

// createSubnet creates a subnet through the EC2 Query API. ipv6 may be "".
func createSubnet(t *testing.T, e *EC2, region, vpcID, az, cidr, ipv6 string) string {
	t.Helper()
	p := url.Values{"VpcId": {vpcID}, "AvailabilityZone": {az}, "CidrBlock": {cidr}}
	if ipv6 != "" {
		p.Set("Ipv6CidrBlock", ipv6)
	}
	var resp struct {
		SubnetID string `xml:"subnet>subnetId"`
	}
	if err := e.call(context.Background(), region, "CreateSubnet", p, &resp); err != nil {
		t.Fatalf("CreateSubnet %s %s: %v", az, cidr, err)
	}
	if !ValidSubnetID(resp.SubnetID) {
		t.Fatalf("CreateSubnet returned subnet id %q", resp.SubnetID)
	}
	return resp.SubnetID
}

type testGroup struct {
	GroupID     string `xml:"groupId"`
	GroupName   string `xml:"groupName"`
	Description string `xml:"groupDescription"`
	VpcID       string `xml:"vpcId"`
	Ingress     []struct {
		Protocol string   `xml:"ipProtocol"`
		FromPort int      `xml:"fromPort"`
		ToPort   int      `xml:"toPort"`
		Groups   []string `xml:"groups>item>groupId"`
	} `xml:"ipPermissions>item"`
}

// describeGroup returns the security group id, or an error (an *ec2APIError
// InvalidGroup.NotFound once deleted).
func describeGroup(e *EC2, region, id string) (testGroup, error) {
	var resp struct {
		Groups []testGroup `xml:"securityGroupInfo>item"`
	}
	err := e.call(context.Background(), region, "DescribeSecurityGroups", url.Values{"GroupId.1": {id}}, &resp)
	if err != nil {
		return testGroup{}, err
	}
	if len(resp.Groups) != 1 {
		return testGroup{}, fmt.Errorf("DescribeSecurityGroups %s: %d groups", id, len(resp.Groups))
	}
	return resp.Groups[0], nil
}

func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var apiErr *ec2APIError
	if !errors.As(err, &apiErr) || apiErr.Code != code {
		t.Fatalf("got error %v, want EC2 error %s", err, code)
	}
}

// ---- against moto_server -----------------------------------------------------

func TestEC2Moto(t *testing.T) {
	moto := startMoto(t)
	logger, logs := testLogger()
	e := NewEC2(EC2Config{Endpoint: moto.URL, Logger: logger})
	const region = "us-east-1"

	vpc1 := createVPC(t, e, region, "10.10.0.0/16", true)
	vpc2 := createVPC(t, e, region, "10.20.0.0/16", false)
	v6a := netip.PrefixFrom(vpc1.IPv6.Addr(), 64) // first /64 of the VPC's /56
	subA := createSubnet(t, e, region, vpc1.ID, "us-east-1a", "10.10.1.0/24", v6a.String())
	subB := createSubnet(t, e, region, vpc1.ID, "us-east-1b", "10.10.2.0/24", "")
	subA2 := createSubnet(t, e, region, vpc1.ID, "us-east-1a", "10.10.3.0/24", "")
	subC := createSubnet(t, e, region, vpc2.ID, "us-east-1c", "10.20.1.0/24", "")
	t.Logf("moto: vpc1 %s (IPv6 %s), vpc2 %s, subnets %s %s %s %s", vpc1.ID, vpc1.IPv6, vpc2.ID, subA, subB, subA2, subC)

	ctx := context.Background()
	t.Run("resolve", func(t *testing.T) {
		got, err := e.Resolve(ctx, tenantA, []string{subB, subA})
		if err != nil {
			t.Fatal(err)
		}
		want := []Subnet{
			{ID: subB, VpcID: vpc1.ID, AZ: "us-east-1b", CIDR: netip.MustParsePrefix("10.10.2.0/24")},
			{ID: subA, VpcID: vpc1.ID, AZ: "us-east-1a", CIDR: netip.MustParsePrefix("10.10.1.0/24"), IPv6CIDR: v6a},
		}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("Resolve = %+v\nwant       %+v", got, want)
		}
	})
	t.Run("different VPCs", func(t *testing.T) {
		_, err := e.Resolve(ctx, tenantA, []string{subA, subC})
		wantKind(t, err, ErrInvalid, "different VPCs", subA, subC, vpc1.ID, vpc2.ID)
	})
	t.Run("same AZ", func(t *testing.T) {
		_, err := e.Resolve(ctx, tenantA, []string{subA, subA2})
		wantKind(t, err, ErrInvalid, "us-east-1a", subA, subA2)
	})
	t.Run("unknown subnet", func(t *testing.T) {
		const unknown = "subnet-0123456789abcdef0"
		_, err := e.Resolve(ctx, tenantA, []string{subB, unknown})
		wantKind(t, err, ErrNotFound, "Subnet "+unknown+" does not exist in us-east-1", moto.URL)
		if strings.Contains(err.Error(), subB) {
			t.Errorf("error %q names the existing subnet %s", err, subB)
		}
	})
	t.Run("other region", func(t *testing.T) {
		// The region is carried by the SigV4 credential scope; moto keeps
		// regions apart, as EC2 does.
		_, err := e.Resolve(ctx, tenantC, []string{subA})
		wantKind(t, err, ErrNotFound, "Subnet "+subA+" does not exist in eu-west-2")
	})
	t.Run("malformed id", func(t *testing.T) {
		_, err := e.Resolve(ctx, tenantA, []string{"subnet-xyz"})
		wantKind(t, err, ErrInvalid, "subnet-xyz")
	})

	t.Run("security group", func(t *testing.T) {
		const cluster = "cluster-abcdefghijk"
		id, err := e.CreateSecurityGroup(ctx, tenantA, vpc1.ID, cluster)
		if err != nil {
			t.Fatal(err)
		}
		g, err := describeGroup(e, region, id)
		if err != nil {
			t.Fatalf("the group %s is not in moto: %v", id, err)
		}
		if g.GroupName != "cloudhsm-cluster-"+cluster+"-sg" || g.VpcID != vpc1.ID ||
			g.Description != "Security group for CloudHSM cluster "+cluster {
			t.Errorf("group = %+v", g)
		}
		if len(g.Ingress) != 1 || g.Ingress[0].Protocol != "tcp" || g.Ingress[0].FromPort != 2223 ||
			g.Ingress[0].ToPort != 2225 || len(g.Ingress[0].Groups) != 1 || g.Ingress[0].Groups[0] != id {
			t.Errorf("ingress = %+v, want TCP 2223-2225 from %s", g.Ingress, id)
		}
		t.Logf("moto group: %+v", g)

		// Creating it again (a retried CreateCluster step) finds the same group.
		again, err := e.CreateSecurityGroup(ctx, tenantA, vpc1.ID, cluster)
		if err != nil || again != id {
			t.Fatalf("second CreateSecurityGroup = %q, %v; want %s", again, err, id)
		}

		// Another tenant cannot delete it.
		if err := e.DeleteSecurityGroup(ctx, tenantB, id, cluster); err != nil {
			t.Fatal(err)
		}
		if _, err := describeGroup(e, region, id); err != nil {
			t.Fatalf("group deleted through another account: %v", err)
		}

		if err := e.DeleteSecurityGroup(ctx, tenantA, id, cluster); err != nil {
			t.Fatal(err)
		}
		_, err = describeGroup(e, region, id)
		wantAPIError(t, err, "InvalidGroup.NotFound")
		if err := e.DeleteSecurityGroup(ctx, tenantA, id, cluster); err != nil {
			t.Fatalf("deleting again: %v", err)
		}
		if strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("unexpected warnings:\n%s", logs)
		}
	})

	t.Run("security group after a restart", func(t *testing.T) {
		const cluster, otherCluster = "cluster-bcdefghijkl", "cluster-cdefghijklm"
		id, err := e.CreateSecurityGroup(ctx, tenantA, vpc1.ID, cluster)
		if err != nil {
			t.Fatal(err)
		}
		// A group of the user's own, not made by cloudhsm-local.
		var own struct {
			GroupID string `xml:"groupId"`
		}
		if err := e.call(ctx, region, "CreateSecurityGroup", url.Values{
			"GroupName": {"app-servers"}, "GroupDescription": {"not cloudhsm-local's"}, "VpcId": {vpc1.ID},
		}, &own); err != nil || !ValidSecurityGroupID(own.GroupID) {
			t.Fatalf("CreateSecurityGroup app-servers = %q, %v", own.GroupID, err)
		}

		// A new provider, as after a restart: it has not seen either group.
		logger2, logs2 := testLogger()
		e2 := NewEC2(EC2Config{Endpoint: moto.URL, Logger: logger2})
		for _, tc := range []struct{ what, group, cluster string }{
			{"the user's group", own.GroupID, cluster},
			{"the cluster's group for another cluster", id, otherCluster},
		} {
			if err := e2.DeleteSecurityGroup(ctx, tenantA, tc.group, tc.cluster); err != nil {
				t.Errorf("deleting %s: %v", tc.what, err)
			}
		}
		if _, err := describeGroup(e, region, own.GroupID); err != nil {
			t.Errorf("the user's group %s was deleted: %v", own.GroupID, err)
		}
		if _, err := describeGroup(e, region, id); err != nil {
			t.Errorf("cluster %s's group %s was deleted for %s: %v", cluster, id, otherCluster, err)
		}
		if l := logs2.String(); !strings.Contains(l, own.GroupID) || !strings.Contains(l, "app-servers") {
			t.Errorf("leaving the user's group alone is not logged:\n%s", l)
		}

		// A made-up id (a derived one, or from the Learned provider) is
		// not in EC2: nothing to delete, nothing to warn about.
		before := logs2.String()
		if err := e2.DeleteSecurityGroup(ctx, tenantA, NewSecurityGroupID(), cluster); err != nil {
			t.Errorf("deleting a made-up id: %v", err)
		}
		if l := logs2.String(); l != before {
			t.Errorf("deleting a made-up id logged:\n%s", strings.TrimPrefix(l, before))
		}

		// The cluster's own group is deleted.
		if err := e2.DeleteSecurityGroup(ctx, tenantA, id, cluster); err != nil {
			t.Fatal(err)
		}
		_, err = describeGroup(e, region, id)
		wantAPIError(t, err, "InvalidGroup.NotFound")
		if err := e2.DeleteSecurityGroup(ctx, tenantA, id, cluster); err != nil {
			t.Errorf("deleting again: %v", err)
		}
	})
}

// TestEC2MotoOutage: resolved subnets stay usable from the cache while EC2 is
// down; anything else fails quickly with ErrUnavailable naming the endpoint.
func TestEC2MotoOutage(t *testing.T) {
	moto := startMoto(t)
	logger, logs := testLogger()
	const timeout, attempts = time.Second, 3
	e := NewEC2(EC2Config{Endpoint: moto.URL, Logger: logger, CacheTTL: time.Minute, Timeout: timeout, Attempts: attempts})
	const region = "us-east-1"
	vpc := createVPC(t, e, region, "10.30.0.0/16", false)
	subA := createSubnet(t, e, region, vpc.ID, "us-east-1a", "10.30.1.0/24", "")
	subB := createSubnet(t, e, region, vpc.ID, "us-east-1b", "10.30.2.0/24", "")

	ctx := context.Background()
	first, err := e.Resolve(ctx, tenantA, []string{subA})
	if err != nil {
		t.Fatal(err)
	}
	moto.Stop()

	start := time.Now()
	got, err := e.Resolve(ctx, tenantA, []string{subA})
	if err != nil || len(got) != 1 || got[0] != first[0] {
		t.Fatalf("cached Resolve with moto down = %+v, %v; want %+v", got, err, first)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("cached Resolve took %v", d)
	}

	// The same subnet in another account is not cached.
	_, err = e.Resolve(ctx, tenantB, []string{subA})
	wantKind(t, err, ErrUnavailable, moto.URL)

	start = time.Now()
	_, err = e.Resolve(ctx, tenantA, []string{subA, subB})
	elapsed := time.Since(start)
	wantKind(t, err, ErrUnavailable, "The EC2 endpoint "+moto.URL+" did not answer DescribeSubnets", "--ec2-endpoint")
	t.Logf("moto down: Resolve failed after %v: %v", elapsed, err)
	if bound := timeout*attempts + 4*time.Second; elapsed > bound {
		t.Errorf("Resolve took %v, more than %v", elapsed, bound)
	}

	// A cluster is not refused for want of EC2: the group id is derived.
	start = time.Now()
	id, err := e.CreateSecurityGroup(ctx, tenantA, vpc.ID, "cluster-defghijklmn")
	elapsed = time.Since(start)
	if err != nil || !ValidSecurityGroupID(id) {
		t.Fatalf("CreateSecurityGroup with moto down = %q, %v", id, err)
	}
	t.Logf("moto down: CreateSecurityGroup fell back after %v", elapsed)
	if !strings.Contains(logs.String(), id) {
		t.Errorf("fallback not logged:\n%s", logs)
	}

	// Once the TTL has passed, the cached subnet is looked up again.
	e.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	_, err = e.Resolve(ctx, tenantA, []string{subA})
	wantKind(t, err, ErrUnavailable, moto.URL)
}

// ---- against httptest servers -------------------------------------------------

// fakeEC2 is an httptest server with a scripted answer.
type fakeEC2 struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	reqs []*http.Request
	form []url.Values
}

func newFakeEC2(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, form url.Values)) *fakeEC2 {
	f := &fakeEC2{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		f.mu.Lock()
		f.reqs = append(f.reqs, r)
		f.form = append(f.form, form)
		f.mu.Unlock()
		answer(w, r, form)
	}))
	t.Cleanup(f.Close)
	return f
}

func answerXML(status int, body string) func(http.ResponseWriter, *http.Request, url.Values) {
	return func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

const fakeSubnets = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeSubnetsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
  <subnetSet>
    <item>
      <subnetId>subnet-0bb1c79de3ABCDEF0</subnetId>
      <state>available</state>
      <vpcId>vpc-0ee975135dEXAMPLE</vpcId>
      <cidrBlock>10.0.2.0/24</cidrBlock>
      <ipv6CidrBlockAssociationSet/>
      <availabilityZone>eu-west-2b</availabilityZone>
    </item>
    <item>
      <subnetId>subnet-0ab1c79de3e0a0a01</subnetId>
      <state>available</state>
      <vpcId>vpc-0ee975135dEXAMPLE</vpcId>
      <cidrBlock>10.0.1.0/24</cidrBlock>
      <ipv6CidrBlockAssociationSet>
        <item>
          <ipv6CidrBlock>2001:db8:1234:1a01::/64</ipv6CidrBlock>
          <associationId>subnet-cidr-assoc-1</associationId>
          <ipv6CidrBlockState><state>disassociated</state></ipv6CidrBlockState>
        </item>
        <item>
          <ipv6CidrBlock>2001:db8:1234:1a00::/64</ipv6CidrBlock>
          <associationId>subnet-cidr-assoc-2</associationId>
          <ipv6CidrBlockState><state>associated</state></ipv6CidrBlockState>
        </item>
      </ipv6CidrBlockAssociationSet>
      <availabilityZone>eu-west-2a</availabilityZone>
    </item>
  </subnetSet>
</DescribeSubnetsResponse>`

func TestEC2ResolveParsesAndCaches(t *testing.T) {
	f := newFakeEC2(t, answerXML(200, fakeSubnets))
	e := NewEC2(EC2Config{Endpoint: f.URL, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"})
	const a, b = "subnet-0ab1c79de3e0a0a01", "subnet-0bb1c79de3ABCDEF0"
	got, err := e.Resolve(context.Background(), tenantC, []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	want := []Subnet{
		{ID: a, VpcID: "vpc-0ee975135dEXAMPLE", AZ: "eu-west-2a", CIDR: netip.MustParsePrefix("10.0.1.0/24"),
			IPv6CIDR: netip.MustParsePrefix("2001:db8:1234:1a00::/64")},
		{ID: b, VpcID: "vpc-0ee975135dEXAMPLE", AZ: "eu-west-2b", CIDR: netip.MustParsePrefix("10.0.2.0/24")},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Resolve = %+v\nwant       %+v", got, want)
	}

	r, form := f.reqs[0], f.form[0]
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		t.Errorf("request %s %s", r.Method, r.Header.Get("Content-Type"))
	}
	if form.Get("Action") != "DescribeSubnets" || form.Get("Version") != "2016-11-15" ||
		form.Get("SubnetId.1") != a || form.Get("SubnetId.2") != b || len(form) != 4 {
		t.Errorf("form = %v", form)
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(auth, "/eu-west-2/ec2/aws4_request") ||
		r.Header.Get("X-Amz-Date") == "" {
		t.Errorf("not signed for ec2 in eu-west-2: %q", auth)
	}

	// Cached: no second call, for either subnet alone.
	for _, ids := range [][]string{{a, b}, {b}} {
		if _, err := e.Resolve(context.Background(), tenantC, ids); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.hits.Load(); n != 1 {
		t.Errorf("%d calls, want 1 (cache)", n)
	}
	// Another account: looked up again.
	if _, err := e.Resolve(context.Background(), Tenant{Account: "999999999999", Region: "eu-west-2"}, []string{a}); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 2 {
		t.Errorf("%d calls, want 2 (cache keyed by account)", n)
	}
	// After the TTL: looked up again.
	e.now = func() time.Time { return time.Now().Add(31 * time.Second) }
	if _, err := e.Resolve(context.Background(), tenantC, []string{a}); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 3 {
		t.Errorf("%d calls, want 3 (TTL 30s)", n)
	}
}

func TestEC2Failures(t *testing.T) {
	const ec2Error = `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>x</RequestID></Response>`
	tests := []struct {
		name     string
		status   int
		body     string
		kind     ErrorKind
		hits     int32
		contains []string
	}{
		{"500", 500, fmt.Sprintf(ec2Error, "InternalError", "An internal error has occurred"), ErrUnavailable, 3,
			[]string{"did not answer DescribeSubnets", "InternalError", "(3 attempts)", "--ec2-endpoint"}},
		{"503 garbage", 503, "<html>Service Unavailable", ErrUnavailable, 3,
			[]string{"did not answer DescribeSubnets", "HTTP 503", "(3 attempts)"}},
		{"200 garbage", 200, "<<<this is not XML", ErrUnavailable, 1,
			[]string{"did not answer DescribeSubnets", "not XML"}},
		{"200 wrong document", 200, `<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>`, ErrUnavailable, 1,
			[]string{"<ListAllMyBucketsResult>, not <DescribeSubnetsResponse>"}},
		{"200 bad CIDR", 200, strings.Replace(fakeSubnets, "10.0.2.0/24", "10.0.2.0/99", 1), ErrUnavailable, 1,
			[]string{"unusable subnet", "10.0.2.0/99"}},
		{"200 missing subnet", 200, `<DescribeSubnetsResponse><subnetSet/></DescribeSubnetsResponse>`, ErrNotFound, 1,
			[]string{"Subnets subnet-0ab1c79de3e0a0a01, subnet-0bb1c79de3ABCDEF0 do not exist in eu-west-2"}},
		{"400 garbage", 400, "bad request", ErrUnavailable, 1,
			[]string{"HTTP 400", "not an EC2 error document"}},
		{"auth failure", 401, fmt.Sprintf(ec2Error, "AuthFailure", "AWS was not able to validate the provided access credentials"), ErrUnavailable, 1,
			[]string{"refused DescribeSubnets: AuthFailure: AWS was not able to validate the provided access credentials."}},
		{"not found", 400, fmt.Sprintf(ec2Error, "InvalidSubnetID.NotFound", "The subnet ID 'subnet-0bb1c79de3ABCDEF0' does not exist"), ErrNotFound, 1,
			[]string{"Subnet subnet-0bb1c79de3ABCDEF0 does not exist in eu-west-2 (according to the EC2 endpoint http://"}},
		{"malformed", 400, fmt.Sprintf(ec2Error, "InvalidSubnetID.Malformed", "Invalid id: \"subnet-0bb1c79de3ABCDEF0\""), ErrInvalid, 1,
			[]string{"refused the subnet ids"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEC2(t, answerXML(tc.status, tc.body))
			e := NewEC2(EC2Config{Endpoint: f.URL})
			e.backoff = func(int) time.Duration { return time.Millisecond }
			_, err := e.Resolve(context.Background(), tenantC, []string{"subnet-0ab1c79de3e0a0a01", "subnet-0bb1c79de3ABCDEF0"})
			wantKind(t, err, tc.kind, append(tc.contains, f.URL)...)
			if n := f.hits.Load(); n != tc.hits {
				t.Errorf("%d attempts, want %d", n, tc.hits)
			}
			t.Logf("%v", err)
		})
	}
}

// hangingEC2 never answers until the client gives up.
func hangingEC2(t *testing.T) *fakeEC2 {
	release := make(chan struct{})
	f := newFakeEC2(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before f.Close
	return f
}

func TestEC2Timeouts(t *testing.T) {
	t.Run("per attempt", func(t *testing.T) {
		f := hangingEC2(t)
		e := NewEC2(EC2Config{Endpoint: f.URL, Timeout: 150 * time.Millisecond, Attempts: 2})
		start := time.Now()
		_, err := e.Resolve(context.Background(), tenantA, []string{"subnet-12345678"})
		elapsed := time.Since(start)
		wantKind(t, err, ErrUnavailable, "no answer within 150ms (2 attempts)", f.URL)
		if f.hits.Load() != 2 || elapsed > 2*time.Second {
			t.Errorf("%d attempts in %v", f.hits.Load(), elapsed)
		}
	})
	t.Run("caller context", func(t *testing.T) {
		f := hangingEC2(t)
		e := NewEC2(EC2Config{Endpoint: f.URL, Timeout: 10 * time.Second, Attempts: 3})
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := e.Resolve(ctx, tenantA, []string{"subnet-12345678"})
		elapsed := time.Since(start)
		wantKind(t, err, ErrUnavailable, f.URL)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
		if f.hits.Load() != 1 || elapsed > 2*time.Second {
			t.Errorf("%d attempts in %v", f.hits.Load(), elapsed)
		}
	})
	t.Run("refused connection", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		endpoint := "http://" + l.Addr().String()
		l.Close()
		e := NewEC2(EC2Config{Endpoint: endpoint})
		_, err = e.Resolve(context.Background(), tenantA, []string{"subnet-12345678"})
		wantKind(t, err, ErrUnavailable, "The EC2 endpoint "+endpoint+" did not answer DescribeSubnets", "connection refused", "(3 attempts)")
	})
}

func TestEC2Endpoint(t *testing.T) {
	for _, tc := range []struct{ in, shown string }{
		{"", "(none)"},
		{"ftp://example.com", "ftp://example.com"},
		{"127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"http://localhost:4566/", "http://localhost:4566"},
	} {
		e := NewEC2(EC2Config{Endpoint: tc.in})
		if e.Endpoint() != tc.shown {
			t.Errorf("Endpoint(%q) = %q, want %q", tc.in, e.Endpoint(), tc.shown)
		}
	}
	e := NewEC2(EC2Config{})
	_, err := e.Resolve(context.Background(), tenantA, []string{"subnet-12345678"})
	wantKind(t, err, ErrUnavailable, "no EC2 endpoint is configured")

	// Requests are checked before any call.
	_, err = e.Resolve(context.Background(), tenantA, []string{"subnet-12345678", "subnet-12345678"})
	wantKind(t, err, ErrInvalid, "more than once")
	_, err = e.Resolve(context.Background(), Tenant{Account: "111111111111"}, []string{"subnet-12345678"})
	wantKind(t, err, ErrInvalid, "Region")
	_, err = e.CreateSecurityGroup(context.Background(), tenantA, "", "cluster-abcdefghijk")
	wantKind(t, err, ErrInvalid, "VPC")
}

func TestEC2CreateSecurityGroupFallback(t *testing.T) {
	f := newFakeEC2(t, answerXML(400, `<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors></Response>`))
	logger, logs := testLogger()
	e := NewEC2(EC2Config{Endpoint: f.URL, Logger: logger})
	id, err := e.CreateSecurityGroup(context.Background(), tenantA, "vpc-0ee975135dexample", "cluster-abcdefghijk")
	if err != nil || !ValidSecurityGroupID(id) {
		t.Fatalf("CreateSecurityGroup = %q, %v", id, err)
	}
	form := f.form[0]
	if form.Get("Action") != "CreateSecurityGroup" || form.Get("GroupName") != "cloudhsm-cluster-cluster-abcdefghijk-sg" ||
		form.Get("VpcId") != "vpc-0ee975135dexample" || form.Get("GroupDescription") == "" {
		t.Errorf("form = %v", form)
	}
	if l := logs.String(); !strings.Contains(l, "UnauthorizedOperation") || !strings.Contains(l, id) {
		t.Errorf("log does not name the reason and the derived id:\n%s", l)
	}
	// The derived group is not deleted through EC2.
	if err := e.DeleteSecurityGroup(context.Background(), tenantA, id, "cluster-abcdefghijk"); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestEC2DeleteSecurityGroup(t *testing.T) {
	const sg = "sg-0123456789abcdef0"
	var deletes, describes atomic.Int32
	f := newFakeEC2(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		switch form.Get("Action") {
		case "CreateSecurityGroup":
			io.WriteString(w, `<CreateSecurityGroupResponse><groupId>`+sg+`</groupId></CreateSecurityGroupResponse>`)
		case "AuthorizeSecurityGroupIngress":
			io.WriteString(w, `<AuthorizeSecurityGroupIngressResponse><return>true</return></AuthorizeSecurityGroupIngressResponse>`)
		case "DescribeSecurityGroups":
			// Asked once the group is forgotten: it is gone.
			describes.Add(1)
			io.WriteString(w, `<DescribeSecurityGroupsResponse><securityGroupInfo/></DescribeSecurityGroupsResponse>`)
		case "DeleteSecurityGroup":
			code := "DependencyViolation"
			if deletes.Add(1) > 1 {
				code = "InvalidGroup.NotFound"
			}
			w.WriteHeader(400)
			fmt.Fprintf(w, `<Response><Errors><Error><Code>%s</Code><Message>resource %s has a dependent object</Message></Error></Errors></Response>`, code, sg)
		default:
			w.WriteHeader(400)
		}
	})
	logger, logs := testLogger()
	e := NewEC2(EC2Config{Endpoint: f.URL, Logger: logger})
	ctx := context.Background()
	id, err := e.CreateSecurityGroup(ctx, tenantA, "vpc-0ee975135d0e0a0a0", "cluster-abcdefghijk")
	if err != nil || id != sg {
		t.Fatalf("CreateSecurityGroup = %q, %v", id, err)
	}
	ingress := f.form[1]
	for k, v := range map[string]string{
		"Action": "AuthorizeSecurityGroupIngress", "GroupId": sg, "IpPermissions.1.IpProtocol": "tcp",
		"IpPermissions.1.FromPort": "2223", "IpPermissions.1.ToPort": "2225", "IpPermissions.1.Groups.1.GroupId": sg,
	} {
		if ingress.Get(k) != v {
			t.Errorf("ingress %s = %q, want %q", k, ingress.Get(k), v)
		}
	}

	err = e.DeleteSecurityGroup(ctx, tenantA, sg, "cluster-abcdefghijk")
	wantKind(t, err, ErrUnavailable, "refused DeleteSecurityGroup: DependencyViolation", f.URL)
	if !strings.Contains(logs.String(), "did not delete") {
		t.Errorf("failure not logged:\n%s", logs)
	}
	// Still ours: a later attempt calls EC2 again; NotFound counts as deleted.
	if err := e.DeleteSecurityGroup(ctx, tenantA, sg, "cluster-abcdefghijk"); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteSecurityGroup(ctx, tenantA, sg, "cluster-abcdefghijk"); err != nil {
		t.Fatal(err)
	}
	if n := deletes.Load(); n != 2 {
		t.Errorf("%d DeleteSecurityGroup calls, want 2", n)
	}
	if n := describes.Load(); n != 1 {
		t.Errorf("%d DescribeSecurityGroups calls, want 1 (for the forgotten group)", n)
	}
}

// TestEC2DeleteSecurityGroupNotCreatedHere: a provider that did not create a
// group (it restarted, or another provider made the id) asks EC2 and deletes
// only the group named after the cluster.
func TestEC2DeleteSecurityGroupNotCreatedHere(t *testing.T) {
	const (
		cluster      = "cluster-abcdefghijk"
		sgCluster    = "sg-0c0c0c0c0c0c0c0c0" // cloudhsm-cluster-cluster-abcdefghijk-sg
		sgUser       = "sg-0a0a0a0a0a0a0a0a0" // the user's "web"
		sgNeighbour  = "sg-0b0b0b0b0b0b0b0b0" // another cluster's
		sgUnknown    = "sg-0d0d0d0d0d0d0d0d0" // EC2 answers an empty set
		sgNotFound   = "sg-0e0e0e0e0e0e0e0e0" // EC2 answers InvalidGroup.NotFound
		sgBroken     = "sg-0f0f0f0f0f0f0f0f0" // EC2 fails
		neighbourSG  = "cloudhsm-cluster-cluster-zyxwvutsrqp-sg"
		groupItemFmt = `<item><ownerId>123456789012</ownerId><groupId>%s</groupId><groupName>%s</groupName><vpcId>vpc-0ee975135d0e0a0a0</vpcId></item>`
	)
	names := map[string]string{sgCluster: "cloudhsm-cluster-" + cluster + "-sg", sgUser: "web", sgNeighbour: neighbourSG}
	var mu sync.Mutex
	var deleted []string
	f := newFakeEC2(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		switch form.Get("Action") {
		case "DescribeSecurityGroups":
			id := form.Get("Filter.1.Value.1")
			if form.Get("Filter.1.Name") != "group-id" || len(form) != 4 {
				w.WriteHeader(400)
				return
			}
			switch id {
			case sgBroken:
				w.WriteHeader(503)
				return
			case sgNotFound:
				w.WriteHeader(400)
				fmt.Fprintf(w, `<Response><Errors><Error><Code>InvalidGroup.NotFound</Code><Message>The security group '%s' does not exist</Message></Error></Errors></Response>`, id)
				return
			}
			items := ""
			if name, ok := names[id]; ok {
				items = fmt.Sprintf(groupItemFmt, id, name)
			}
			io.WriteString(w, `<DescribeSecurityGroupsResponse><securityGroupInfo>`+items+`</securityGroupInfo></DescribeSecurityGroupsResponse>`)
		case "DeleteSecurityGroup":
			mu.Lock()
			deleted = append(deleted, form.Get("GroupId"))
			mu.Unlock()
			io.WriteString(w, `<DeleteSecurityGroupResponse><return>true</return></DeleteSecurityGroupResponse>`)
		default:
			w.WriteHeader(400)
		}
	})
	logger, logs := testLogger()
	e := NewEC2(EC2Config{Endpoint: f.URL, Logger: logger, Attempts: 2})
	e.backoff = func(int) time.Duration { return time.Millisecond }
	ctx := context.Background()

	for _, sg := range []string{sgUser, sgNeighbour, sgUnknown, sgNotFound, "sg-xyz", ""} {
		if err := e.DeleteSecurityGroup(ctx, tenantC, sg, cluster); err != nil {
			t.Errorf("DeleteSecurityGroup(%q) = %v, want nil", sg, err)
		}
	}
	if len(deleted) != 0 {
		t.Fatalf("deleted %v, none of which is cluster %s's group", deleted, cluster)
	}
	if l := logs.String(); !strings.Contains(l, sgUser) || !strings.Contains(l, "groupName=web") || !strings.Contains(l, neighbourSG) {
		t.Errorf("leaving the groups of others alone is not logged:\n%s", l)
	}
	// Malformed ids are not even looked up.
	if n := f.hits.Load(); n != 4 {
		t.Errorf("%d calls, want 4 DescribeSecurityGroups", n)
	}
	f.mu.Lock()
	for _, r := range f.reqs {
		if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "/eu-west-2/ec2/aws4_request") {
			t.Errorf("not signed for the tenant's region eu-west-2: %q", auth)
		}
	}
	f.mu.Unlock()

	// EC2 cannot say: an error, and nothing deleted.
	err := e.DeleteSecurityGroup(ctx, tenantC, sgBroken, cluster)
	wantKind(t, err, ErrUnavailable, "did not answer DescribeSecurityGroups", "HTTP 503", f.URL)
	if len(deleted) != 0 || !strings.Contains(logs.String(), "not deleted") {
		t.Errorf("after a failed lookup: deleted %v, log:\n%s", deleted, logs)
	}

	// The cluster's own group is deleted.
	if err := e.DeleteSecurityGroup(ctx, tenantC, sgCluster, cluster); err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0] != sgCluster {
		t.Errorf("deleted %v, want [%s]", deleted, sgCluster)
	}
}
