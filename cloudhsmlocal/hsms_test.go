package cloudhsmlocal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// stepDelay is the server's default in-progress delay.
const stepDelay = 500 * time.Millisecond

const (
	codeInvalidRequest = "CloudHsmInvalidRequestException"
	codeNotFound       = "CloudHsmResourceNotFoundException"
	codeLimitExceeded  = "CloudHsmResourceLimitExceededException"
)

var (
	hsmIDRe = regexp.MustCompile(`^hsm-[2-7a-z]{11}$`)
	eniIDRe = regexp.MustCompile(`^eni-[0-9a-f]{17}$`)
)

// ---- helpers shared by hsms_test.go, initialize_test.go, modify_test.go, openssl_test.go ----

// clusterWithoutHsm creates a cluster from in (hsm2m.medium and two fresh
// subnets unless set) and advances it to UNINITIALIZED.
func clusterWithoutHsm(t *testing.T, srv *cloudhsmlocal.Server, c *cloudhsmv2.Client, in *cloudhsmv2.CreateClusterInput) *types.Cluster {
	t.Helper()
	if in == nil {
		in = &cloudhsmv2.CreateClusterInput{}
	}
	if in.HsmType == nil {
		in.HsmType = aws.String("hsm2m.medium")
	}
	if in.SubnetIds == nil {
		in.SubnetIds = subnets(2)
	}
	out, err := c.CreateCluster(ctx, in)
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	srv.Advance(stepDelay)
	cl := describe(t, c, *out.Cluster.ClusterId)
	if cl.State != types.ClusterStateUninitialized {
		t.Fatalf("cluster %s is %s, want UNINITIALIZED", *cl.ClusterId, cl.State)
	}
	return cl
}

// sortedAZsOf returns the cluster's Availability Zones in order.
func sortedAZsOf(cl *types.Cluster) []string {
	azs := make([]string, 0, len(cl.SubnetMapping))
	for az := range cl.SubnetMapping {
		azs = append(azs, az)
	}
	sort.Strings(azs)
	return azs
}

func createHsmInput(clusterID, az, ip string) *cloudhsmv2.CreateHsmInput {
	in := &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(clusterID), AvailabilityZone: aws.String(az)}
	if ip != "" {
		in.IpAddress = aws.String(ip)
	}
	return in
}

// mustCreateHsm creates an HSM (ip "" lets the server choose).
func mustCreateHsm(t *testing.T, c *cloudhsmv2.Client, clusterID, az, ip string) *types.Hsm {
	t.Helper()
	out, err := c.CreateHsm(ctx, createHsmInput(clusterID, az, ip))
	if err != nil {
		t.Fatalf("CreateHsm(%s, %s, ip %q): %v", clusterID, az, ip, err)
	}
	return out.Hsm
}

// hsmInCluster returns the cluster's HSM with the id, or nil.
func hsmInCluster(cl *types.Cluster, id string) *types.Hsm {
	for i := range cl.Hsms {
		if aws.ToString(cl.Hsms[i].HsmId) == id {
			return &cl.Hsms[i]
		}
	}
	return nil
}

// clusterWithCSR creates a cluster from in with one ACTIVE HSM in its first
// AZ, so that it is UNINITIALIZED with a CSR.
func clusterWithCSR(t *testing.T, srv *cloudhsmlocal.Server, c *cloudhsmv2.Client, in *cloudhsmv2.CreateClusterInput) (*types.Cluster, *types.Hsm) {
	t.Helper()
	cl := clusterWithoutHsm(t, srv, c, in)
	h := mustCreateHsm(t, c, *cl.ClusterId, sortedAZsOf(cl)[0], "")
	srv.Advance(stepDelay)
	cl = describe(t, c, *cl.ClusterId)
	got := hsmInCluster(cl, *h.HsmId)
	if got == nil || got.State != types.HsmStateActive || cl.Certificates == nil || cl.Certificates.ClusterCsr == nil {
		t.Fatalf("want an ACTIVE HSM and a CSR in cluster %s: %+v", *cl.ClusterId, cl)
	}
	return cl, got
}

// initializeAndActivate signs the CSR of an UNINITIALIZED cluster, initializes
// it and advances until it is ACTIVE and its activation backup READY.
func initializeAndActivate(t *testing.T, srv *cloudhsmlocal.Server, c *cloudhsmv2.Client, cl *types.Cluster) *types.Cluster {
	t.Helper()
	ca := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{
		ClusterId: cl.ClusterId, SignedCert: aws.String(ca.signCSR(t, *cl.Certificates.ClusterCsr)), TrustAnchor: aws.String(ca.pem),
	}); err != nil {
		t.Fatalf("InitializeCluster: %v", err)
	}
	srv.Advance(stepDelay) // INITIALIZED
	srv.Advance(stepDelay) // ACTIVE, activation backup started
	srv.Advance(stepDelay) // activation backup READY
	cl = describe(t, c, *cl.ClusterId)
	if cl.State != types.ClusterStateActive {
		t.Fatalf("cluster %s is %s, want ACTIVE", *cl.ClusterId, cl.State)
	}
	return cl
}

// activeClusterWith walks a cluster created from in to ACTIVE with one HSM
// in its first AZ.
func activeClusterWith(t *testing.T, srv *cloudhsmlocal.Server, c *cloudhsmv2.Client, in *cloudhsmv2.CreateClusterInput) (*types.Cluster, *types.Hsm) {
	t.Helper()
	cl, h := clusterWithCSR(t, srv, c, in)
	cl = initializeAndActivate(t, srv, c, cl)
	return cl, hsmInCluster(cl, *h.HsmId)
}

// apiErrorOf returns the code and message of an AWS error, failing if err
// is not one.
func apiErrorOf(t *testing.T, err error) (string, string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an AWS API error, got %v", err)
	}
	return ae.ErrorCode(), ae.ErrorMessage()
}

// wantExactAPIError asserts err has exactly the code and message.
func wantExactAPIError(t *testing.T, err error, code, msg string) {
	t.Helper()
	gotCode, gotMsg := apiErrorOf(t, err)
	if gotCode != code || gotMsg != msg {
		t.Fatalf("got %s %q\nwant %s %q", gotCode, gotMsg, code, msg)
	}
}

// withLastOctet replaces the last octet of an IPv4 address.
func withLastOctet(t *testing.T, ip string, last byte) string {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		t.Fatalf("%q is not an IPv4 address", ip)
	}
	b := a.As4()
	b[3] = last
	return netip.AddrFrom4(b).String()
}

// slash24 returns the /24 containing an IPv4 address.
func slash24(t *testing.T, ip string) netip.Prefix {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		t.Fatalf("%q is not an IPv4 address", ip)
	}
	p, _ := a.Prefix(24)
	return p
}

// bodyRecorder is an HTTP client that keeps the last response body.
type bodyRecorder struct {
	next aws.HTTPClient
	mu   sync.Mutex
	last []byte
}

func (r *bodyRecorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.next.Do(req)
	if err != nil {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.last = b
	r.mu.Unlock()
	return resp, nil
}

func (r *bodyRecorder) lastBody() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// recordingClient returns a client whose raw response bodies are recorded.
func recordingClient(srv *cloudhsmlocal.Server) (*cloudhsmv2.Client, *bodyRecorder) {
	cfg := srv.AWSConfig()
	rec := &bodyRecorder{next: cfg.HTTPClient}
	cfg.HTTPClient = rec
	return cloudhsmv2.NewFromConfig(cfg), rec
}

// ---- CreateHsm ----

// TestCreateHsmPlacement checks where HSMs go: the AZ's subnet, a fresh ENI,
// the lowest free address unless the caller asks for one.
func TestCreateHsmPlacement(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl := clusterWithoutHsm(t, srv, c, nil)
	id := *cl.ClusterId
	azs := sortedAZsOf(cl)
	if len(azs) != 2 {
		t.Fatalf("two subnets gave SubnetMapping %v", cl.SubnetMapping)
	}
	az := azs[1]

	h := mustCreateHsm(t, c, id, az, "")
	if h.State != types.HsmStateCreateInProgress {
		t.Errorf("CreateHsm state %s, want CREATE_IN_PROGRESS", h.State)
	}
	if !hsmIDRe.MatchString(aws.ToString(h.HsmId)) {
		t.Errorf("HsmId %q does not match %s", aws.ToString(h.HsmId), hsmIDRe)
	}
	if aws.ToString(h.ClusterId) != id || aws.ToString(h.AvailabilityZone) != az ||
		aws.ToString(h.SubnetId) != cl.SubnetMapping[az] || aws.ToString(h.HsmType) != aws.ToString(cl.HsmType) {
		t.Errorf("CreateHsm answer %+v, want ClusterId %s, AZ %s, SubnetId %s, HsmType %s",
			h, id, az, cl.SubnetMapping[az], aws.ToString(cl.HsmType))
	}

	srv.Advance(stepDelay - time.Millisecond)
	if got := hsmInCluster(describe(t, c, id), *h.HsmId); got == nil || got.State != types.HsmStateCreateInProgress {
		t.Fatalf("1ms before the delay the HSM should still be CREATE_IN_PROGRESS: %+v", got)
	}
	srv.Advance(time.Millisecond)
	cl = describe(t, c, id)
	first := hsmInCluster(cl, *h.HsmId)
	if first == nil || first.State != types.HsmStateActive || aws.ToString(first.StateMessage) != "HSM created." {
		t.Fatalf("after the delay want ACTIVE / \"HSM created.\", got %+v", first)
	}
	if !eniIDRe.MatchString(aws.ToString(first.EniId)) {
		t.Errorf("EniId %q does not match %s", aws.ToString(first.EniId), eniIDRe)
	}
	if h.EniId != nil && *h.EniId != *first.EniId || h.EniIp != nil && *h.EniIp != aws.ToString(first.EniIp) {
		t.Errorf("CreateHsm answered ENI %s/%s, DescribeClusters says %s/%s",
			aws.ToString(h.EniId), aws.ToString(h.EniIp), aws.ToString(first.EniId), aws.ToString(first.EniIp))
	}
	if first.EniIpV6 != nil {
		t.Errorf("IPV4 cluster HSM has EniIpV6 %s", *first.EniIpV6)
	}
	// The learned subnet is a /24: the first HSM gets its lowest non-reserved address.
	if got, want := aws.ToString(first.EniIp), withLastOctet(t, aws.ToString(first.EniIp), 4); got != want {
		t.Errorf("first HSM of the subnet got %s, want the lowest non-reserved address %s", got, want)
	}
	if aws.ToString(first.SubnetId) != cl.SubnetMapping[az] || aws.ToString(first.AvailabilityZone) != az || aws.ToString(first.HsmType) != "hsm2m.medium" {
		t.Errorf("ACTIVE HSM %+v is not in %s / %s with the cluster's HsmType", first, az, cl.SubnetMapping[az])
	}

	// More HSMs need an ACTIVE cluster.
	initializeAndActivate(t, srv, c, cl)
	net := slash24(t, *first.EniIp)

	second := mustCreateHsm(t, c, id, az, "")
	chosen := withLastOctet(t, *first.EniIp, 200)
	third := mustCreateHsm(t, c, id, az, chosen)
	if third.EniIp != nil && *third.EniIp != chosen {
		t.Errorf("CreateHsm with IpAddress %s answered EniIp %s", chosen, *third.EniIp)
	}
	other := mustCreateHsm(t, c, id, azs[0], "")
	srv.Advance(stepDelay)
	cl = describe(t, c, id)
	if len(cl.Hsms) != 4 {
		t.Fatalf("want 4 HSMs, got %d", len(cl.Hsms))
	}
	s, th, o := hsmInCluster(cl, *second.HsmId), hsmInCluster(cl, *third.HsmId), hsmInCluster(cl, *other.HsmId)
	if s == nil || th == nil || o == nil {
		t.Fatalf("HSMs missing from %+v", cl.Hsms)
	}
	if got, want := aws.ToString(s.EniIp), withLastOctet(t, *first.EniIp, 5); got != want {
		t.Errorf("second HSM of the subnet got %s, want the next free address %s", got, want)
	}
	if !net.Contains(netip.MustParseAddr(aws.ToString(s.EniIp))) {
		t.Errorf("second HSM %s is not in the first HSM's /24 %s", aws.ToString(s.EniIp), net)
	}
	if aws.ToString(th.EniIp) != chosen {
		t.Errorf("requested IpAddress %s, EniIp is %s", chosen, aws.ToString(th.EniIp))
	}
	if aws.ToString(o.SubnetId) != cl.SubnetMapping[azs[0]] || aws.ToString(o.AvailabilityZone) != azs[0] {
		t.Errorf("HSM in %s has SubnetId %s, want %s", azs[0], aws.ToString(o.SubnetId), cl.SubnetMapping[azs[0]])
	}
	if oip := aws.ToString(o.EniIp); oip != withLastOctet(t, oip, 4) || net.Contains(netip.MustParseAddr(oip)) {
		t.Errorf("first HSM of the other subnet got %s; want x.x.x.4 outside %s", oip, net)
	}
	ips, enis := map[string]bool{}, map[string]bool{}
	for _, x := range cl.Hsms {
		if x.State != types.HsmStateActive || aws.ToString(x.HsmType) != "hsm2m.medium" {
			t.Errorf("HSM %s is %s type %s", *x.HsmId, x.State, aws.ToString(x.HsmType))
		}
		if !eniIDRe.MatchString(aws.ToString(x.EniId)) {
			t.Errorf("EniId %q does not match %s", aws.ToString(x.EniId), eniIDRe)
		}
		ips[aws.ToString(x.EniIp)] = true
		enis[aws.ToString(x.EniId)] = true
	}
	if len(ips) != 4 || len(enis) != 4 {
		t.Errorf("HSMs share addresses or ENIs: %v %v", ips, enis)
	}
}

// TestHsmIDsUniqueAcrossClusters creates HSMs in several clusters and
// accounts; every id has the AWS shape and appears once in an unfiltered
// DescribeClusters (Terraform's HSM finder relies on that).
func TestHsmIDsUniqueAcrossClusters(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	other := clientFor(srv, "210987654321", cloudhsmlocal.DefaultRegion)
	seen := map[string]string{}
	for i, cc := range []*cloudhsmv2.Client{c, c, c, other} {
		cl := clusterWithoutHsm(t, srv, cc, nil)
		h := mustCreateHsm(t, cc, *cl.ClusterId, sortedAZsOf(cl)[0], "")
		if !hsmIDRe.MatchString(*h.HsmId) {
			t.Errorf("HsmId %q does not match %s", *h.HsmId, hsmIDRe)
		}
		if prev, dup := seen[*h.HsmId]; dup {
			t.Errorf("HSM id %s given to clusters %s and %s", *h.HsmId, prev, *cl.ClusterId)
		}
		seen[*h.HsmId] = fmt.Sprintf("%d:%s", i, *cl.ClusterId)
	}
	srv.Advance(stepDelay)
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, cl := range out.Clusters {
		for _, h := range cl.Hsms {
			count[*h.HsmId]++
			if aws.ToString(h.ClusterId) != *cl.ClusterId {
				t.Errorf("HSM %s listed in cluster %s says ClusterId %s", *h.HsmId, *cl.ClusterId, aws.ToString(h.ClusterId))
			}
		}
	}
	if len(count) != 3 {
		t.Errorf("account %s sees %d HSMs, want its 3: %v", cloudhsmlocal.DefaultAccount, len(count), count)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("HSM %s listed %d times", id, n)
		}
	}
}

// TestCreateHsmNetworkType: DUALSTACK clusters give HSMs an IPv6 address,
// IPV4 clusters do not.
func TestCreateHsmNetworkType(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	for _, nt := range []types.NetworkType{types.NetworkTypeIpv4, types.NetworkTypeDualstack} {
		t.Run(string(nt), func(t *testing.T) {
			cl := clusterWithoutHsm(t, srv, c, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), NetworkType: nt})
			if cl.NetworkType != nt {
				t.Fatalf("cluster NetworkType %s, want %s", cl.NetworkType, nt)
			}
			h := mustCreateHsm(t, c, *cl.ClusterId, sortedAZsOf(cl)[0], "")
			srv.Advance(stepDelay)
			got := hsmInCluster(describe(t, c, *cl.ClusterId), *h.HsmId)
			if got == nil || got.State != types.HsmStateActive {
				t.Fatalf("HSM %+v, want ACTIVE", got)
			}
			if _, err := netip.ParseAddr(aws.ToString(got.EniIp)); err != nil || !netip.MustParseAddr(*got.EniIp).Is4() {
				t.Errorf("EniIp %q is not IPv4", aws.ToString(got.EniIp))
			}
			switch nt {
			case types.NetworkTypeIpv4:
				if got.EniIpV6 != nil {
					t.Errorf("IPV4 cluster HSM has EniIpV6 %q", *got.EniIpV6)
				}
			case types.NetworkTypeDualstack:
				a, err := netip.ParseAddr(aws.ToString(got.EniIpV6))
				if err != nil || !a.Is6() || a.Is4In6() {
					t.Errorf("DUALSTACK cluster HSM EniIpV6 %q is not an IPv6 address", aws.ToString(got.EniIpV6))
				}
			}
		})
	}
}

// TestCreateHsmAddressesUniqueInSharedSubnet: clusters may share subnets
// (same subnet ids), but an address of a subnet belongs to one ENI: HSMs of
// different clusters in one subnet must not get the same address, and an
// address used by another cluster's HSM is not free (AWS: "IpAddress must be
// a free address of that subnet").
func TestCreateHsmAddressesUniqueInSharedSubnet(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	for _, nt := range []types.NetworkType{types.NetworkTypeIpv4, types.NetworkTypeDualstack} {
		t.Run(string(nt), func(t *testing.T) {
			sn := subnets(2)
			a := clusterWithoutHsm(t, srv, c, &cloudhsmv2.CreateClusterInput{SubnetIds: sn, NetworkType: nt})
			b := clusterWithoutHsm(t, srv, c, &cloudhsmv2.CreateClusterInput{SubnetIds: sn, NetworkType: nt})
			az := sortedAZsOf(a)[0]
			if a.SubnetMapping[az] != b.SubnetMapping[az] {
				t.Fatalf("same subnet ids, different mappings: %v %v", a.SubnetMapping, b.SubnetMapping)
			}
			ha := mustCreateHsm(t, c, *a.ClusterId, az, "")
			// Requesting the address another cluster's HSM holds.
			_, err := c.CreateHsm(ctx, createHsmInput(*b.ClusterId, az, aws.ToString(ha.EniIp)))
			if err == nil {
				t.Errorf("CreateHsm in cluster %s with IpAddress %s, already the address of HSM %s of cluster %s in subnet %s: accepted",
					*b.ClusterId, aws.ToString(ha.EniIp), *ha.HsmId, *a.ClusterId, a.SubnetMapping[az])
			} else {
				wantAPIError(t, err, codeInvalidRequest, aws.ToString(ha.EniIp), "in use")
			}
			if n := len(describe(t, c, *b.ClusterId).Hsms); n == 0 {
				mustCreateHsm(t, c, *b.ClusterId, az, "")
			}
			srv.Advance(stepDelay)
			x := describe(t, c, *a.ClusterId).Hsms[0]
			y := describe(t, c, *b.ClusterId).Hsms[0]
			if aws.ToString(x.EniIp) == aws.ToString(y.EniIp) {
				t.Errorf("HSM %s (cluster %s) and HSM %s (cluster %s) in subnet %s both have EniIp %s",
					*x.HsmId, *a.ClusterId, *y.HsmId, *b.ClusterId, a.SubnetMapping[az], aws.ToString(x.EniIp))
			}
			if nt == types.NetworkTypeDualstack && aws.ToString(x.EniIpV6) == aws.ToString(y.EniIpV6) {
				t.Errorf("HSM %s (cluster %s) and HSM %s (cluster %s) in subnet %s both have EniIpV6 %s",
					*x.HsmId, *a.ClusterId, *y.HsmId, *b.ClusterId, a.SubnetMapping[az], aws.ToString(x.EniIpV6))
			}
		})
	}
}

// TestHsmAddressesAcrossRestartAndDelete: an HSM's address stays taken in
// its subnet after a restart, and is free again once the HSM is deleted.
func TestHsmAddressesAcrossRestartAndDelete(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(firstStart))
	c := client(srv)
	sn := subnets(2)
	a := clusterWithoutHsm(t, srv, c, &cloudhsmv2.CreateClusterInput{SubnetIds: sn})
	b := clusterWithoutHsm(t, srv, c, &cloudhsmv2.CreateClusterInput{SubnetIds: sn})
	az := sortedAZsOf(a)[0]
	ha := mustCreateHsm(t, c, *a.ClusterId, az, "")
	ip := aws.ToString(ha.EniIp)
	srv.Advance(stepDelay)
	srv.Close()

	srv = cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithStartTime(srv.Now()))
	c = client(srv)
	_, err := c.CreateHsm(ctx, createHsmInput(*b.ClusterId, az, ip))
	wantAPIError(t, err, codeInvalidRequest, ip, "in use")
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: a.ClusterId, HsmId: ha.HsmId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateHsm(ctx, createHsmInput(*b.ClusterId, az, ip))
	wantAPIError(t, err, codeInvalidRequest, ip, "in use") // DELETE_IN_PROGRESS still holds it
	srv.Advance(stepDelay)
	if h := mustCreateHsm(t, c, *b.ClusterId, az, ip); aws.ToString(h.EniIp) != ip {
		t.Fatalf("HSM created with EniIp %s, want the freed %s", aws.ToString(h.EniIp), ip)
	}
}

// TestCreateHsmRefusals: bad AZs and addresses are refused and change nothing.
func TestCreateHsmRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, h := activeClusterWith(t, srv, c, nil)
	id := *cl.ClusterId
	az := *h.AvailabilityZone
	sub := cl.SubnetMapping[az]
	used := *h.EniIp
	if used != withLastOctet(t, used, 4) {
		t.Fatalf("first HSM at %s, want x.x.x.4", used)
	}
	unmapped := ""
	for l := 'a'; l <= 'z'; l++ {
		if cand := cloudhsmlocal.DefaultRegion + string(l); cl.SubnetMapping[cand] == "" {
			unmapped = cand
			break
		}
	}
	a4 := netip.MustParseAddr(used).As4()
	a4[2]++
	nextNet := netip.AddrFrom4(a4).String()
	const ipPat = `\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`
	const azPat = `[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d[a-z]`
	validation := func(value, member, pattern string) string {
		return "1 validation error detected: Value '" + value + "' at '" + member +
			"' failed to satisfy constraint: Member must satisfy regular expression pattern: " + pattern
	}
	cases := []struct {
		name, az, ip string
		contains     []string
		exact        string
	}{
		{name: "AZ of the region not in SubnetMapping", az: unmapped, contains: []string{unmapped}},
		{name: "AZ of another region", az: "eu-west-1a", contains: []string{"eu-west-1a"}},
		{name: "AZ violating the pattern", az: "mars-1a", exact: validation("mars-1a", "availabilityZone", azPat)},
		{name: "network address .0", az: az, ip: withLastOctet(t, used, 0), contains: []string{withLastOctet(t, used, 0), "reserved"}},
		{name: "router .1", az: az, ip: withLastOctet(t, used, 1), contains: []string{withLastOctet(t, used, 1), "reserved"}},
		{name: "DNS .2", az: az, ip: withLastOctet(t, used, 2), contains: []string{withLastOctet(t, used, 2), "reserved"}},
		{name: "future use .3", az: az, ip: withLastOctet(t, used, 3), contains: []string{withLastOctet(t, used, 3), "reserved"}},
		{name: "broadcast .255", az: az, ip: withLastOctet(t, used, 255), contains: []string{withLastOctet(t, used, 255), "reserved"}},
		{name: "outside the VPC", az: az, ip: "192.168.7.10", contains: []string{"192.168.7.10", sub}},
		{name: "next /24", az: az, ip: nextNet, contains: []string{nextNet, sub}},
		{name: "used by another HSM", az: az, ip: used, contains: []string{used, "in use"}},
		{name: "not an IP", az: az, ip: "not-an-ip", exact: validation("not-an-ip", "ipAddress", ipPat)},
		{name: "IPv6", az: az, ip: "2600:1f18::10", exact: validation("2600:1f18::10", "ipAddress", ipPat)},
		{name: "three octets", az: az, ip: "10.0.0", exact: validation("10.0.0", "ipAddress", ipPat)},
		{name: "octet over 255", az: az, ip: "999.1.1.1", contains: []string{"999.1.1.1", "IPv4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateHsm(ctx, createHsmInput(id, tc.az, tc.ip))
			if tc.exact != "" {
				wantExactAPIError(t, err, codeInvalidRequest, tc.exact)
			} else {
				wantAPIError(t, err, codeInvalidRequest, tc.contains...)
			}
			if after := describe(t, c, id); len(after.Hsms) != 1 || after.State != types.ClusterStateActive {
				t.Fatalf("refused CreateHsm changed the cluster: %s with %d HSMs", after.State, len(after.Hsms))
			}
		})
	}
}

// TestCreateHsmClusterStates: the first HSM only while UNINITIALIZED, a
// second one only once the cluster is ACTIVE.
func TestCreateHsmClusterStates(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithManualActivation())
	c := client(srv)
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(2)})
	if err != nil {
		t.Fatal(err)
	}
	id := *out.Cluster.ClusterId
	var az string
	for k := range out.Cluster.SubnetMapping {
		az = k
	}
	_, err = c.CreateHsm(ctx, createHsmInput(id, az, ""))
	wantAPIError(t, err, codeInvalidRequest, id, "CREATE_IN_PROGRESS")
	srv.Advance(stepDelay)
	cl := describe(t, c, id)
	if len(cl.Hsms) != 0 {
		t.Fatalf("refused CreateHsm left HSMs: %+v", cl.Hsms)
	}
	first := mustCreateHsm(t, c, id, az, "")
	notActivated := fmt.Sprintf("Cluster '%s' already contains an HSM but has not yet been fully activated", id)
	secondRefused := func(when string, wantState types.ClusterState) {
		t.Helper()
		cl := describe(t, c, id)
		if cl.State != wantState {
			t.Fatalf("%s: cluster is %s, want %s", when, cl.State, wantState)
		}
		for _, a := range sortedAZsOf(cl) {
			_, err := c.CreateHsm(ctx, createHsmInput(id, a, ""))
			if err == nil {
				t.Fatalf("%s: second HSM in %s accepted", when, a)
			}
			code, msg := apiErrorOf(t, err)
			if code != codeInvalidRequest || msg != notActivated {
				t.Fatalf("%s: got %s %q\nwant %s %q", when, code, msg, codeInvalidRequest, notActivated)
			}
		}
		if n := len(describe(t, c, id).Hsms); n != 1 {
			t.Fatalf("%s: refused CreateHsm left %d HSMs", when, n)
		}
	}
	secondRefused("UNINITIALIZED, first HSM CREATE_IN_PROGRESS", types.ClusterStateUninitialized)
	srv.Advance(stepDelay)
	secondRefused("UNINITIALIZED, first HSM ACTIVE", types.ClusterStateUninitialized)
	cl = describe(t, c, id)
	ca := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id,
		SignedCert: aws.String(ca.signCSR(t, *cl.Certificates.ClusterCsr)), TrustAnchor: aws.String(ca.pem)}); err != nil {
		t.Fatal(err)
	}
	secondRefused("INITIALIZE_IN_PROGRESS", types.ClusterStateInitializeInProgress)
	srv.Advance(stepDelay)
	secondRefused("INITIALIZED", types.ClusterStateInitialized)
	srv.Advance(time.Hour)
	secondRefused("INITIALIZED an hour later", types.ClusterStateInitialized)
	if err := srv.Activate(cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, id); err != nil {
		t.Fatal(err)
	}
	// ACTIVE: more HSMs, even while another is still being created.
	h2 := mustCreateHsm(t, c, id, az, "")
	h3 := mustCreateHsm(t, c, id, az, "")
	srv.Advance(stepDelay)
	cl = describe(t, c, id)
	if len(cl.Hsms) != 3 {
		t.Fatalf("want 3 HSMs, got %d", len(cl.Hsms))
	}
	for _, hid := range []string{*first.HsmId, *h2.HsmId, *h3.HsmId} {
		if h := hsmInCluster(cl, hid); h == nil || h.State != types.HsmStateActive {
			t.Errorf("HSM %s: %+v, want ACTIVE", hid, h)
		}
	}
}

// TestHsmsPerClusterLimit: 28 HSMs per cluster, the 29th is refused. The
// 28 requests after the first HSM run concurrently (which also spreads the
// HSM key generation over the CPUs): exactly 27 may succeed.
func TestHsmsPerClusterLimit(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeClusterWith(t, srv, c, nil)
	id := *cl.ClusterId
	azs := sortedAZsOf(cl)
	start := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		refused []error
	)
	sem := make(chan struct{}, 4)
	for i := range 28 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := c.CreateHsm(ctx, createHsmInput(id, azs[i%len(azs)], ""))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused = append(refused, err)
			} else {
				created++
			}
		}()
	}
	wg.Wait()
	t.Logf("28 concurrent CreateHsm calls took %v", time.Since(start))
	if created != 27 || len(refused) != 1 {
		t.Fatalf("28 concurrent CreateHsm calls on a cluster with 1 HSM: %d created, %d refused (%v); want 27 and 1", created, len(refused), refused)
	}
	wantAPIError(t, refused[0], codeInvalidRequest, id, "28")
	srv.Advance(stepDelay)
	cl = describe(t, c, id)
	if len(cl.Hsms) != 28 {
		t.Fatalf("want 28 HSMs, got %d", len(cl.Hsms))
	}
	ips := map[string]bool{}
	for _, h := range cl.Hsms {
		if h.State != types.HsmStateActive {
			t.Errorf("HSM %s is %s", *h.HsmId, h.State)
		}
		ips[aws.ToString(h.EniIp)] = true
	}
	if len(ips) != 28 {
		t.Errorf("28 HSMs have %d distinct addresses", len(ips))
	}
	_, err := c.CreateHsm(ctx, createHsmInput(id, azs[1], ""))
	wantAPIError(t, err, codeInvalidRequest, id, "28")
}

// TestHsmQuotaPerRegion: WithQuotas(0, 2) allows two HSMs per account and
// Region, counting HSMs still being deleted.
func TestHsmQuotaPerRegion(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithQuotas(0, 2))
	c := client(srv)
	a, _ := activeClusterWith(t, srv, c, nil)
	b, hb := clusterWithCSR(t, srv, c, nil)
	refused := func(when string) {
		t.Helper()
		_, err := c.CreateHsm(ctx, createHsmInput(*a.ClusterId, sortedAZsOf(a)[1], ""))
		if err == nil {
			t.Fatalf("%s: third HSM of the Region accepted", when)
		}
		code, msg := apiErrorOf(t, err)
		if code != codeLimitExceeded && code != codeInvalidRequest {
			t.Fatalf("%s: code %s (%q), want %s or %s", when, code, msg, codeLimitExceeded, codeInvalidRequest)
		}
		if !strings.Contains(msg, "quota") || !strings.Contains(msg, "2 HSMs") {
			t.Fatalf("%s: message %q does not name the quota of 2 HSMs", when, msg)
		}
		t.Logf("%s: %s: %s", when, code, msg)
	}
	refused("two HSMs")
	// Other accounts and Regions have their own quota.
	for _, cc := range []*cloudhsmv2.Client{
		clientFor(srv, "210987654321", cloudhsmlocal.DefaultRegion),
		clientFor(srv, cloudhsmlocal.DefaultAccount, "eu-west-1"),
	} {
		o := clusterWithoutHsm(t, srv, cc, nil)
		mustCreateHsm(t, cc, *o.ClusterId, sortedAZsOf(o)[0], "")
	}
	refused("after HSMs in another account and Region")
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: b.ClusterId, HsmId: hb.HsmId}); err != nil {
		t.Fatal(err)
	}
	refused("second HSM DELETE_IN_PROGRESS")
	srv.Advance(stepDelay)
	if _, err := c.CreateHsm(ctx, createHsmInput(*a.ClusterId, sortedAZsOf(a)[1], "")); err != nil {
		t.Fatalf("after the deleted HSM is gone: %v", err)
	}
}

// TestClusterQuotaPerRegion: WithQuotas(2, 0) allows two live clusters per
// account and Region.
func TestClusterQuotaPerRegion(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithQuotas(2, 0))
	c := client(srv)
	first := createCluster(t, c, 1)
	createCluster(t, c, 1)
	refused := func(when string) {
		t.Helper()
		_, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1)})
		wantAPIError(t, err, codeLimitExceeded, "quota", "2 clusters")
	}
	refused("two clusters CREATE_IN_PROGRESS")
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 2 {
		t.Fatalf("refused CreateCluster left %d clusters", len(out.Clusters))
	}
	// Another Region has its own quota.
	if _, err := clientFor(srv, cloudhsmlocal.DefaultAccount, "eu-west-1").CreateCluster(ctx,
		&cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1)}); err != nil {
		t.Fatalf("cluster in another Region: %v", err)
	}
	srv.Advance(stepDelay)
	if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: first.ClusterId}); err != nil {
		t.Fatal(err)
	}
	refused("one cluster DELETE_IN_PROGRESS")
	srv.Advance(stepDelay)
	if st := describe(t, c, *first.ClusterId).State; st != types.ClusterStateDeleted {
		t.Fatalf("deleted cluster is %s", st)
	}
	if _, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(1)}); err != nil {
		t.Fatalf("after a cluster is DELETED: %v", err)
	}
}

// ---- DeleteHsm ----

// TestDeleteHsmSelectors deletes an HSM by each of its three identifiers.
func TestDeleteHsmSelectors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   func(clusterID string, h *types.Hsm) *cloudhsmv2.DeleteHsmInput
	}{
		{"HsmId", func(id string, h *types.Hsm) *cloudhsmv2.DeleteHsmInput {
			return &cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: h.HsmId}
		}},
		{"EniId", func(id string, h *types.Hsm) *cloudhsmv2.DeleteHsmInput {
			return &cloudhsmv2.DeleteHsmInput{ClusterId: &id, EniId: h.EniId}
		}},
		{"EniIp", func(id string, h *types.Hsm) *cloudhsmv2.DeleteHsmInput {
			return &cloudhsmv2.DeleteHsmInput{ClusterId: &id, EniIp: h.EniIp}
		}},
	}
	srv := cloudhsmlocal.Start(t)
	c, rec := recordingClient(srv)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, h := activeClusterWith(t, srv, c, nil)
			id := *cl.ClusterId
			// A second HSM, so that deleting one leaves the other untouched.
			keep := mustCreateHsm(t, c, id, sortedAZsOf(cl)[1], "")
			srv.Advance(stepDelay)
			out, err := c.DeleteHsm(ctx, tc.in(id, h))
			if err != nil {
				t.Fatalf("DeleteHsm: %v", err)
			}
			if aws.ToString(out.HsmId) != *h.HsmId {
				t.Errorf("DeleteHsm answered HsmId %q, want %s", aws.ToString(out.HsmId), *h.HsmId)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.lastBody(), &body); err != nil {
				t.Fatalf("DeleteHsm body %q: %v", rec.lastBody(), err)
			}
			if len(body) != 1 || body["HsmId"] != *h.HsmId {
				t.Errorf("DeleteHsm body %s, want exactly {\"HsmId\":%q}", rec.lastBody(), *h.HsmId)
			}
			cl = describe(t, c, id)
			if got := hsmInCluster(cl, *h.HsmId); got == nil || got.State != types.HsmStateDeleteInProgress {
				t.Fatalf("right after DeleteHsm want DELETE_IN_PROGRESS, got %+v", got)
			}
			if got := hsmInCluster(cl, *keep.HsmId); got == nil || got.State != types.HsmStateActive {
				t.Fatalf("the other HSM: %+v", got)
			}
			srv.Advance(stepDelay)
			cl = describe(t, c, id)
			if len(cl.Hsms) != 1 || hsmInCluster(cl, *h.HsmId) != nil {
				t.Fatalf("deleted HSM should vanish from Hsms: %+v", cl.Hsms)
			}
			// Its address is free again.
			again := mustCreateHsm(t, c, id, *h.AvailabilityZone, *h.EniIp)
			srv.Advance(stepDelay)
			got := hsmInCluster(describe(t, c, id), *again.HsmId)
			if got == nil || got.State != types.HsmStateActive || aws.ToString(got.EniIp) != *h.EniIp || *got.HsmId == *h.HsmId {
				t.Fatalf("HSM reusing %s: %+v", *h.EniIp, got)
			}
		})
	}
}

// TestDeleteHsmRefusals: no selector, several selectors, unknown HSMs.
func TestDeleteHsmRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, h := clusterWithCSR(t, srv, c, nil)
	id := *cl.ClusterId
	free := withLastOctet(t, *h.EniIp, 99)
	cases := []struct {
		name     string
		in       cloudhsmv2.DeleteHsmInput
		code     string
		contains []string
	}{
		{"no selector", cloudhsmv2.DeleteHsmInput{ClusterId: &id}, codeInvalidRequest, []string{"HsmId", "EniId", "EniIp"}},
		{"HsmId and EniId", cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: h.HsmId, EniId: h.EniId}, codeInvalidRequest, []string{"HsmId", "EniId", "EniIp"}},
		{"HsmId and EniIp", cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: h.HsmId, EniIp: h.EniIp}, codeInvalidRequest, []string{"HsmId", "EniId", "EniIp"}},
		{"EniId and EniIp", cloudhsmv2.DeleteHsmInput{ClusterId: &id, EniId: h.EniId, EniIp: h.EniIp}, codeInvalidRequest, []string{"HsmId", "EniId", "EniIp"}},
		{"all three", cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: h.HsmId, EniId: h.EniId, EniIp: h.EniIp}, codeInvalidRequest, []string{"HsmId", "EniId", "EniIp"}},
		{"unknown HsmId", cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: aws.String("hsm-abcdefghijk")}, codeNotFound, []string{"hsm-abcdefghijk"}},
		{"unknown EniId", cloudhsmv2.DeleteHsmInput{ClusterId: &id, EniId: aws.String("eni-0123456789abcdef0")}, codeNotFound, []string{"eni-0123456789abcdef0"}},
		{"unknown EniIp", cloudhsmv2.DeleteHsmInput{ClusterId: &id, EniIp: &free}, codeNotFound, []string{free}},
		{"unknown cluster", cloudhsmv2.DeleteHsmInput{ClusterId: aws.String("cluster-abcdefghijk"), HsmId: h.HsmId}, codeNotFound, []string{"cluster-abcdefghijk"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.DeleteHsm(ctx, &tc.in)
			wantAPIError(t, err, tc.code, tc.contains...)
			if got := hsmInCluster(describe(t, c, id), *h.HsmId); got == nil || got.State != types.HsmStateActive {
				t.Fatalf("refused DeleteHsm changed the HSM: %+v", got)
			}
		})
	}
}

// TestDeleteClusterNeedsHsmsDeleted: DeleteCluster is refused while the
// cluster lists any HSM, including one being deleted.
func TestDeleteClusterNeedsHsmsDeleted(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, h := activeClusterWith(t, srv, c, nil)
	id := *cl.ClusterId
	h2 := mustCreateHsm(t, c, id, sortedAZsOf(cl)[1], "")
	srv.Advance(stepDelay)
	refused := func(when string, hsms ...string) {
		t.Helper()
		_, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: &id})
		if err == nil {
			t.Fatalf("%s: DeleteCluster accepted", when)
		}
		code, msg := apiErrorOf(t, err)
		if code != codeInvalidRequest {
			t.Fatalf("%s: code %s (%q), want %s", when, code, msg, codeInvalidRequest)
		}
		if !strings.Contains(strings.ToLower(msg), "delete all hsms") {
			t.Fatalf("%s: message %q does not say to delete the HSMs first", when, msg)
		}
		for _, x := range hsms {
			if !strings.Contains(msg, x) {
				t.Errorf("%s: message %q does not name HSM %s", when, msg, x)
			}
		}
		if st := describe(t, c, id).State; st != types.ClusterStateActive {
			t.Fatalf("%s: refused DeleteCluster left the cluster %s", when, st)
		}
	}
	refused("two ACTIVE HSMs", *h.HsmId, *h2.HsmId)
	for _, x := range []*string{h.HsmId, h2.HsmId} {
		if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: x}); err != nil {
			t.Fatal(err)
		}
	}
	refused("two HSMs DELETE_IN_PROGRESS", *h.HsmId, *h2.HsmId)
	srv.Advance(stepDelay)
	if n := len(describe(t, c, id).Hsms); n != 0 {
		t.Fatalf("%d HSMs left", n)
	}
	out, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: &id})
	if err != nil {
		t.Fatalf("DeleteCluster without HSMs: %v", err)
	}
	if out.Cluster.State != types.ClusterStateDeleteInProgress || aws.ToString(out.Cluster.StateMessage) != "The cluster is being deleted." {
		t.Errorf("DeleteCluster answered %s %q", out.Cluster.State, aws.ToString(out.Cluster.StateMessage))
	}
	srv.Advance(stepDelay)
	if st := describe(t, c, id).State; st != types.ClusterStateDeleted {
		t.Errorf("cluster is %s, want DELETED", st)
	}
}
