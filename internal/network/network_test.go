package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	tenantA = Tenant{Account: "111111111111", Region: "us-east-1"}
	tenantB = Tenant{Account: "222222222222", Region: "us-east-1"}
	tenantC = Tenant{Account: "111111111111", Region: "eu-west-2"}

	hexID17 = regexp.MustCompile(`^[0-9a-f]{17}$`)
)

// recorder is a Placements that remembers what it was given, subnet by
// subnet.
type recorder struct {
	mu    sync.Mutex
	calls []persisted
	fail  func(Tenant, Subnet) error
}

type persisted struct {
	t Tenant
	s Subnet
}

func (r *recorder) Save(t Tenant, _ int, subnets []Subnet) ([]Subnet, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		for _, s := range subnets {
			if err := r.fail(t, s); err != nil {
				return nil, err // a failed Save records nothing
			}
		}
	}
	for _, s := range subnets {
		r.calls = append(r.calls, persisted{t, s})
	}
	return nil, nil
}

func wantKind(t *testing.T, err error, kind ErrorKind, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", kind)
	}
	k, ok := KindOf(err)
	if !ok || k != kind {
		t.Fatalf("error %q: kind %v (ok=%v), want %v", err, k, ok, kind)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not mention %q", err, c)
		}
	}
}

func resolve(t *testing.T, p Provider, tn Tenant, ids ...string) []Subnet {
	t.Helper()
	got, err := p.Resolve(context.Background(), tn, ids)
	if err != nil {
		t.Fatalf("Resolve(%v, %v): %v", tn, ids, err)
	}
	if len(got) != len(ids) {
		t.Fatalf("Resolve returned %d subnets for %d ids", len(got), len(ids))
	}
	for i := range ids {
		if got[i].ID != ids[i] {
			t.Fatalf("Resolve result %d is %s, want %s (same order as the request)", i, got[i].ID, ids[i])
		}
	}
	return got
}

// checkPlacement checks the invariants of one learned cluster placement.
func checkPlacement(t *testing.T, tn Tenant, ss []Subnet) {
	t.Helper()
	if err := CheckClusterSubnets(ss); err != nil {
		t.Fatalf("placement breaks the cluster rules: %v", err)
	}
	for i, s := range ss {
		if !ValidVPCID(s.VpcID) || !hexID17.MatchString(strings.TrimPrefix(s.VpcID, "vpc-")) {
			t.Errorf("%s: VPC id %q is not vpc- and 17 hex digits", s.ID, s.VpcID)
		}
		if region, ok := RegionOfAZ(s.AZ); !ok || region != tn.Region {
			t.Errorf("%s: AZ %q is not in region %s", s.ID, s.AZ, tn.Region)
		}
		if !s.CIDR.Addr().Is4() || s.CIDR.Bits() != 24 || s.CIDR.Masked() != s.CIDR {
			t.Errorf("%s: CIDR %s is not an IPv4 /24", s.ID, s.CIDR)
		}
		if !slices.ContainsFunc(learnedIPv4Pools, func(p netip.Prefix) bool { return p.Contains(s.CIDR.Addr()) }) {
			t.Errorf("%s: CIDR %s is not inside a private range", s.ID, s.CIDR)
		}
		if !s.IPv6CIDR.Addr().Is6() || s.IPv6CIDR.Bits() != 64 || !learnedIPv6Pool.Contains(s.IPv6CIDR.Addr()) {
			t.Errorf("%s: IPv6 CIDR %s is not a /64 inside %s", s.ID, s.IPv6CIDR, learnedIPv6Pool)
		}
		vpcBlock := enclosing(ss[0].CIDR, learnedVPCBits)
		if !vpcBlock.Contains(s.CIDR.Addr()) {
			t.Errorf("%s: CIDR %s is not in the VPC's /%d %s", s.ID, s.CIDR, learnedVPCBits, vpcBlock)
		}
		vpc56 := enclosing(ss[0].IPv6CIDR, 56)
		if !vpc56.Contains(s.IPv6CIDR.Addr()) {
			t.Errorf("%s: IPv6 CIDR %s is not in the VPC's /56 %s", s.ID, s.IPv6CIDR, vpc56)
		}
		for _, o := range ss[i+1:] {
			if s.CIDR.Overlaps(o.CIDR) {
				t.Errorf("%s (%s) overlaps %s (%s)", s.ID, s.CIDR, o.ID, o.CIDR)
			}
			if s.IPv6CIDR.Overlaps(o.IPv6CIDR) {
				t.Errorf("%s (%s) overlaps %s (%s)", s.ID, s.IPv6CIDR, o.ID, o.IPv6CIDR)
			}
		}
	}
}

func TestLearnedPlacement(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
	}{
		{"one subnet", []string{"subnet-00000001"}},
		{"two subnets", []string{"subnet-00000001", "subnet-00000002"}},
		{"three subnets, long ids", []string{"subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719", "subnet-0a1b2c3d4e5f6071a"}},
		{"ten subnets", []string{"subnet-10000000", "subnet-10000001", "subnet-10000002", "subnet-10000003", "subnet-10000004",
			"subnet-10000005", "subnet-10000006", "subnet-10000007", "subnet-10000008", "subnet-10000009"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			l := NewLearned(rec)
			got := resolve(t, l, tenantA, tc.ids...)
			checkPlacement(t, tenantA, got)
			if got[0].AZ != "us-east-1a" {
				t.Errorf("first AZ = %s, want us-east-1a", got[0].AZ)
			}
			if len(rec.calls) != len(tc.ids) {
				t.Fatalf("persist called %d times, want %d", len(rec.calls), len(tc.ids))
			}
			for i, c := range rec.calls {
				if c.t != tenantA || c.s != got[i] {
					t.Errorf("persist call %d = %+v, want %+v %+v", i, c, tenantA, got[i])
				}
			}
			// Stable: the same request, and each subnet alone, give the same answers
			// without persisting again.
			again := resolve(t, l, tenantA, tc.ids...)
			for i := range got {
				if again[i] != got[i] {
					t.Errorf("second Resolve: %+v, first: %+v", again[i], got[i])
				}
				alone := resolve(t, l, tenantA, tc.ids[i])
				if alone[0] != got[i] {
					t.Errorf("Resolve alone: %+v, with others: %+v", alone[0], got[i])
				}
			}
			if len(rec.calls) != len(tc.ids) {
				t.Errorf("persist called %d times after repeats, want %d", len(rec.calls), len(tc.ids))
			}
		})
	}
}

func TestLearnedReusesKnownVPC(t *testing.T) {
	rec := &recorder{}
	l := NewLearned(rec)
	first := resolve(t, l, tenantA, "subnet-aaaaaaaa", "subnet-bbbbbbbb")
	// A request mixing a known subnet and new ones puts the new ones in the
	// known subnet's VPC, in AZs other than the known one's, with CIDRs that
	// overlap no subnet of that VPC (including subnet-bbbbbbbb, not in the request).
	mixed := resolve(t, l, tenantA, "subnet-cccccccc", "subnet-bbbbbbbb", "subnet-dddddddd")
	checkPlacement(t, tenantA, mixed)
	if mixed[1] != first[1] {
		t.Errorf("known subnet changed: %+v, was %+v", mixed[1], first[1])
	}
	for _, s := range mixed {
		if s.VpcID != first[0].VpcID {
			t.Errorf("%s in %s, want the known VPC %s", s.ID, s.VpcID, first[0].VpcID)
		}
		if s.ID != "subnet-bbbbbbbb" && (s.CIDR.Overlaps(first[0].CIDR) || s.IPv6CIDR.Overlaps(first[0].IPv6CIDR)) {
			t.Errorf("%s (%s %s) overlaps subnet-aaaaaaaa (%s %s)", s.ID, s.CIDR, s.IPv6CIDR, first[0].CIDR, first[0].IPv6CIDR)
		}
	}
	if first[0].AZ != "us-east-1a" || first[1].AZ != "us-east-1b" {
		t.Errorf("first AZs %s %s, want us-east-1a us-east-1b", first[0].AZ, first[1].AZ)
	}
	// New subnets skip the request's AZs and prefer AZs unused in the VPC.
	if mixed[0].AZ != "us-east-1c" || mixed[2].AZ != "us-east-1d" {
		t.Errorf("new subnets in %s %s, want us-east-1c us-east-1d", mixed[0].AZ, mixed[2].AZ)
	}
	if len(rec.calls) != 4 {
		t.Errorf("persist called %d times, want 4 (once per new subnet)", len(rec.calls))
	}

	// A request of only new subnets gets a brand new VPC with a distinct /19 and /56.
	other := resolve(t, l, tenantA, "subnet-eeeeeeee")
	checkPlacement(t, tenantA, other)
	if other[0].VpcID == first[0].VpcID {
		t.Fatalf("new subnets reused VPC %s", other[0].VpcID)
	}
	if enclosing(other[0].CIDR, learnedVPCBits).Overlaps(enclosing(first[0].CIDR, learnedVPCBits)) {
		t.Errorf("VPC blocks overlap: %s and %s", other[0].CIDR, first[0].CIDR)
	}
	if enclosing(other[0].IPv6CIDR, 56).Overlaps(enclosing(first[0].IPv6CIDR, 56)) {
		t.Errorf("VPC /56s overlap: %s and %s", other[0].IPv6CIDR, first[0].IPv6CIDR)
	}
	// Two known subnets of the first VPC with a new one: the new one avoids both AZs.
	more := resolve(t, l, tenantA, "subnet-aaaaaaaa", "subnet-ffffffff", "subnet-cccccccc")
	checkPlacement(t, tenantA, more)
	if more[1].VpcID != first[0].VpcID {
		t.Errorf("new subnet in %s, want %s", more[1].VpcID, first[0].VpcID)
	}
}

func TestLearnedManyVPCsDistinct(t *testing.T) {
	l := NewLearned(nil)
	seen := map[netip.Prefix]string{}
	vpcs := map[string]bool{}
	for i := range 20 {
		s := resolve(t, l, tenantA, fmt.Sprintf("subnet-%08x", i))[0]
		p := enclosing(s.CIDR, learnedVPCBits)
		if prev, ok := seen[p]; ok {
			t.Fatalf("%s and %s share VPC block %s", s.ID, prev, p)
		}
		seen[p] = s.ID
		if vpcs[s.VpcID] {
			t.Fatalf("VPC id %s reused", s.VpcID)
		}
		vpcs[s.VpcID] = true
	}
}

func TestLearnedRestore(t *testing.T) {
	rec := &recorder{}
	l := NewLearned(rec)
	a := resolve(t, l, tenantA, "subnet-aaaaaaaa", "subnet-bbbbbbbb")
	b := resolve(t, l, tenantB, "subnet-aaaaaaaa")
	c := resolve(t, l, tenantC, "subnet-cccccccc")

	rec2 := &recorder{}
	l2 := NewLearned(rec2)
	for _, p := range rec.calls {
		l2.Restore(p.t, p.s)
	}
	for _, tc := range []struct {
		tn   Tenant
		ids  []string
		want []Subnet
	}{
		{tenantA, []string{"subnet-aaaaaaaa", "subnet-bbbbbbbb"}, a},
		{tenantA, []string{"subnet-bbbbbbbb"}, a[1:]},
		{tenantB, []string{"subnet-aaaaaaaa"}, b},
		{tenantC, []string{"subnet-cccccccc"}, c},
	} {
		got := resolve(t, l2, tc.tn, tc.ids...)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("after Restore, %v %s = %+v, want %+v", tc.tn, tc.ids[i], got[i], tc.want[i])
			}
		}
	}
	if len(rec2.calls) != 0 {
		t.Errorf("Restore or Resolve of restored subnets persisted %d subnets", len(rec2.calls))
	}
	// A new subnet joining a restored VPC fits around the restored subnets.
	joined := resolve(t, l2, tenantA, "subnet-aaaaaaaa", "subnet-dddddddd")
	checkPlacement(t, tenantA, joined)
	if joined[1].CIDR.Overlaps(a[1].CIDR) || joined[1].IPv6CIDR.Overlaps(a[1].IPv6CIDR) || joined[1].AZ == a[0].AZ {
		t.Errorf("new subnet %+v collides with restored subnets %+v", joined[1], a)
	}
	// A brand new VPC avoids the restored VPC's block.
	fresh := resolve(t, l2, tenantA, "subnet-eeeeeeee")
	if enclosing(fresh[0].CIDR, learnedVPCBits) == enclosing(a[0].CIDR, learnedVPCBits) || fresh[0].VpcID == a[0].VpcID {
		t.Errorf("new VPC %+v collides with restored VPC %+v", fresh[0], a[0])
	}
	if len(rec2.calls) != 2 {
		t.Errorf("persist called %d times, want 2", len(rec2.calls))
	}
}

func TestLearnedTenantsIsolated(t *testing.T) {
	rec := &recorder{}
	l := NewLearned(rec)
	a := resolve(t, l, tenantA, "subnet-aaaaaaaa")[0]
	b := resolve(t, l, tenantB, "subnet-aaaaaaaa")[0]
	c := resolve(t, l, tenantC, "subnet-aaaaaaaa")[0]
	if a.VpcID == b.VpcID || a.VpcID == c.VpcID || b.VpcID == c.VpcID {
		t.Errorf("tenants share a VPC: %s %s %s", a.VpcID, b.VpcID, c.VpcID)
	}
	if c.AZ != "eu-west-2a" {
		t.Errorf("AZ in eu-west-2 = %s, want eu-west-2a", c.AZ)
	}
	if len(rec.calls) != 3 {
		t.Fatalf("persist called %d times, want 3", len(rec.calls))
	}
	// Knowledge in one tenant does not leak into another: in tenant B,
	// subnet-bbbbbbbb is known in its own VPC while A's subnet-bbbbbbbb is new.
	resolve(t, l, tenantB, "subnet-bbbbbbbb")
	ab := resolve(t, l, tenantA, "subnet-aaaaaaaa", "subnet-bbbbbbbb")
	if ab[1].VpcID != a.VpcID {
		t.Errorf("in tenant A, subnet-bbbbbbbb went to %s, want A's %s", ab[1].VpcID, a.VpcID)
	}
	// Whereas in tenant B the two are in different VPCs.
	_, err := l.Resolve(context.Background(), tenantB, []string{"subnet-aaaaaaaa", "subnet-bbbbbbbb"})
	wantKind(t, err, ErrInvalid, "different VPCs")
}

func TestLearnedRefusals(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	l := NewLearned(rec)
	x := resolve(t, l, tenantA, "subnet-aaaaaaaa", "subnet-bbbbbbbb")
	y := resolve(t, l, tenantA, "subnet-cccccccc")
	l.Restore(tenantA, Subnet{ID: "subnet-dddddddd", VpcID: x[0].VpcID, AZ: x[0].AZ,
		CIDR: childPrefix(enclosing(x[0].CIDR, 16), 24, 200)})
	before := len(rec.calls)

	tests := []struct {
		name   string
		tenant Tenant
		ids    []string
		kind   ErrorKind
		msg    []string
	}{
		{"two VPCs", tenantA, []string{"subnet-aaaaaaaa", "subnet-cccccccc"}, ErrInvalid,
			[]string{"Subnets subnet-aaaaaaaa and subnet-cccccccc are in different VPCs (" + x[0].VpcID + ", " + y[0].VpcID + "); all subnets of a cluster must be in one VPC."}},
		{"two VPCs with a new subnet", tenantA, []string{"subnet-99999999", "subnet-aaaaaaaa", "subnet-cccccccc"}, ErrInvalid,
			[]string{"different VPCs"}},
		{"same AZ", tenantA, []string{"subnet-aaaaaaaa", "subnet-dddddddd"}, ErrInvalid,
			[]string{"Subnets subnet-aaaaaaaa and subnet-dddddddd are both in Availability Zone " + x[0].AZ + "; a cluster can have only one subnet per Availability Zone."}},
		{"duplicate known", tenantA, []string{"subnet-aaaaaaaa", "subnet-aaaaaaaa"}, ErrInvalid,
			[]string{"subnet-aaaaaaaa", "more than once"}},
		{"duplicate new", tenantA, []string{"subnet-12345678", "subnet-12345678"}, ErrInvalid,
			[]string{"subnet-12345678", "more than once"}},
		{"empty", tenantA, nil, ErrInvalid, []string{"At least one subnet"}},
		{"bad id", tenantA, []string{"subnet-xyz"}, ErrInvalid, []string{`"subnet-xyz"`}},
		{"bad region", Tenant{Account: "111111111111", Region: ""}, []string{"subnet-12345678"}, ErrInvalid, []string{"Region"}},
		{"27 subnets", tenantA, func() []string {
			var ids []string
			for i := range 27 {
				ids = append(ids, fmt.Sprintf("subnet-f%07x", i))
			}
			return ids
		}(), ErrInvalid, []string{"Availability Zone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Resolve(ctx, tc.tenant, tc.ids)
			wantKind(t, err, tc.kind, tc.msg...)
		})
	}
	if len(rec.calls) != before {
		t.Errorf("refused requests persisted %d subnets", len(rec.calls)-before)
	}
	// Nothing was learned by the refused requests: subnet-99999999 and
	// subnet-12345678 are still new, and land in a new VPC when named alone.
	z := resolve(t, l, tenantA, "subnet-99999999", "subnet-12345678")
	if z[0].VpcID == x[0].VpcID || z[0].VpcID == y[0].VpcID {
		t.Errorf("subnet-99999999 was learned into %s by a refused request", z[0].VpcID)
	}
}

func TestLearnedPersistFailure(t *testing.T) {
	boom := errors.New("disk full")
	rec := &recorder{}
	l := NewLearned(rec)
	known := resolve(t, l, tenantA, "subnet-aaaaaaaa")

	rec.fail = func(_ Tenant, s Subnet) error {
		if s.ID == "subnet-cccccccc" {
			return boom
		}
		return nil
	}
	_, err := l.Resolve(context.Background(), tenantA, []string{"subnet-aaaaaaaa", "subnet-bbbbbbbb", "subnet-cccccccc"})
	wantKind(t, err, ErrUnavailable, "subnet-cccccccc")
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not wrap the persist error", err)
	}
	// Nothing of the failed call is remembered: subnet-bbbbbbbb alone is new and
	// gets a VPC of its own (it would share subnet-aaaaaaaa's VPC if remembered).
	rec.fail = func(Tenant, Subnet) error { return boom }
	_, err = l.Resolve(context.Background(), tenantA, []string{"subnet-bbbbbbbb"})
	wantKind(t, err, ErrUnavailable)
	rec.fail = nil
	got := resolve(t, l, tenantA, "subnet-bbbbbbbb")
	if got[0].VpcID == known[0].VpcID {
		t.Errorf("subnet-bbbbbbbb was remembered in %s after a failed persist", got[0].VpcID)
	}
	// Known subnets still resolve without persisting.
	rec.fail = func(Tenant, Subnet) error { return boom }
	if again := resolve(t, l, tenantA, "subnet-aaaaaaaa"); again[0] != known[0] {
		t.Errorf("known subnet changed after a failed persist: %+v", again[0])
	}
}

func TestLearnedConcurrent(t *testing.T) {
	rec := &recorder{}
	l := NewLearned(rec)
	var wg sync.WaitGroup
	results := make([][]Subnet, 16)
	for i := range results {
		wg.Go(func() {
			got, err := l.Resolve(context.Background(), tenantA, []string{"subnet-aaaaaaaa", fmt.Sprintf("subnet-b%07x", i)})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = got
		})
	}
	wg.Wait()
	if len(rec.calls) != 17 {
		t.Errorf("persist called %d times, want 17", len(rec.calls))
	}
	for _, r := range results {
		if r != nil && r[0] != results[0][0] {
			t.Errorf("subnet-aaaaaaaa resolved differently: %+v vs %+v", r[0], results[0][0])
		}
	}
}

func TestLearnedSecurityGroups(t *testing.T) {
	ctx := context.Background()
	l := NewLearned(nil)
	g1, err := l.CreateSecurityGroup(ctx, tenantA, "vpc-0123456789abcdef0", "cluster-abcdefghijk")
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := l.CreateSecurityGroup(ctx, tenantA, "vpc-0123456789abcdef0", "cluster-abcdefghijk")
	if !regexp.MustCompile(`^sg-[0-9a-f]{17}$`).MatchString(g1) || g1 == g2 {
		t.Errorf("security group ids %q %q", g1, g2)
	}
	if err := l.DeleteSecurityGroup(ctx, tenantA, g1, "cluster-abcdefghijk"); err != nil {
		t.Errorf("delete: %v", err)
	}
}

func TestCheckClusterSubnets(t *testing.T) {
	mk := func(id, vpc, az string) Subnet { return Subnet{ID: id, VpcID: vpc, AZ: az} }
	tests := []struct {
		name string
		in   []Subnet
		msg  string // "" means accepted
	}{
		{"ok one", []Subnet{mk("subnet-1", "vpc-1", "us-east-1a")}, ""},
		{"ok three", []Subnet{mk("subnet-1", "vpc-1", "us-east-1a"), mk("subnet-2", "vpc-1", "us-east-1b"), mk("subnet-3", "vpc-1", "us-east-1c")}, ""},
		{"empty", nil, "At least one subnet"},
		{"duplicate", []Subnet{mk("subnet-1", "vpc-1", "us-east-1a"), mk("subnet-1", "vpc-1", "us-east-1a")}, "Subnet subnet-1 is listed more than once"},
		{"vpcs", []Subnet{mk("subnet-1", "vpc-1", "us-east-1a"), mk("subnet-2", "vpc-2", "us-east-1b")},
			"Subnets subnet-1 and subnet-2 are in different VPCs (vpc-1, vpc-2); all subnets of a cluster must be in one VPC."},
		{"azs", []Subnet{mk("subnet-1", "vpc-1", "us-east-1a"), mk("subnet-2", "vpc-1", "us-east-1b"), mk("subnet-3", "vpc-1", "us-east-1a")},
			"Subnets subnet-1 and subnet-3 are both in Availability Zone us-east-1a; a cluster can have only one subnet per Availability Zone."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckClusterSubnets(tc.in)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantKind(t, err, ErrInvalid)
			if err.Error() != tc.msg && !strings.HasPrefix(err.Error(), tc.msg) {
				t.Errorf("message %q, want %q", err, tc.msg)
			}
		})
	}
}

const goodTopology = `{
  "vpcs": [
    {"id": "vpc-0a1b2c3d4e5f60718", "cidr": "10.1.0.0/16"},
    {"id": "vpc-11111111", "cidr": "10.2.0.0/16", "ipv6Cidr": "2600:1f18:2::/56"},
    {"id": "vpc-22222222", "cidr": "172.16.0.0/16"}
  ],
  "subnets": [
    {"id": "subnet-0a1b2c3d4e5f60718", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "us-east-1a",
     "cidr": "10.1.1.0/24", "ipv6Cidr": "2600:1f18:1::/64"},
    {"id": "subnet-0a1b2c3d4e5f60719", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "us-east-1b",
     "cidr": "10.1.2.0/24"},
    {"id": "subnet-0a1b2c3d4e5f6071a", "vpcId": "vpc-0a1b2c3d4e5f60718", "availabilityZone": "us-east-1b",
     "cidr": "10.1.3.0/24"},
    {"id": "subnet-22222222", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1c",
     "cidr": "10.2.0.0/20", "ipv6Cidr": "2600:1f18:2:1::/64", "accounts": ["111111111111"]},
    {"id": "subnet-33333333", "vpcId": "vpc-22222222", "availabilityZone": "eu-west-2a", "cidr": "172.16.0.0/24"}
  ]
}`

func TestTopologyLookups(t *testing.T) {
	tp, err := ParseTopology([]byte(goodTopology))
	if err != nil {
		t.Fatal(err)
	}
	got := resolve(t, tp, tenantA, "subnet-0a1b2c3d4e5f60719", "subnet-0a1b2c3d4e5f60718")
	want := []Subnet{
		{ID: "subnet-0a1b2c3d4e5f60719", VpcID: "vpc-0a1b2c3d4e5f60718", AZ: "us-east-1b", CIDR: netip.MustParsePrefix("10.1.2.0/24")},
		{ID: "subnet-0a1b2c3d4e5f60718", VpcID: "vpc-0a1b2c3d4e5f60718", AZ: "us-east-1a", CIDR: netip.MustParsePrefix("10.1.1.0/24"),
			IPv6CIDR: netip.MustParsePrefix("2600:1f18:1::/64")},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %+v, want %+v", got[i], want[i])
		}
	}
	resolve(t, tp, tenantA, "subnet-22222222")
	resolve(t, tp, Tenant{Account: "999999999999", Region: "eu-west-2"}, "subnet-33333333")

	tests := []struct {
		name   string
		tenant Tenant
		ids    []string
		kind   ErrorKind
		msg    string
	}{
		{"unknown", tenantA, []string{"subnet-0a1b2c3d4e5f60718", "subnet-99999999"}, ErrNotFound, "Subnet subnet-99999999 does not exist in us-east-1."},
		{"other region", tenantC, []string{"subnet-0a1b2c3d4e5f60718"}, ErrNotFound, "Subnet subnet-0a1b2c3d4e5f60718 does not exist in eu-west-2."},
		{"other account", tenantB, []string{"subnet-22222222"}, ErrNotFound, "Subnet subnet-22222222 does not exist in us-east-1."},
		{"same AZ", tenantA, []string{"subnet-0a1b2c3d4e5f60719", "subnet-0a1b2c3d4e5f6071a"}, ErrInvalid, "both in Availability Zone us-east-1b"},
		{"two VPCs", tenantA, []string{"subnet-0a1b2c3d4e5f60718", "subnet-22222222"}, ErrInvalid, "different VPCs (vpc-0a1b2c3d4e5f60718, vpc-11111111)"},
		{"duplicate", tenantA, []string{"subnet-22222222", "subnet-22222222"}, ErrInvalid, "more than once"},
		{"bad id", tenantA, []string{"sub-1"}, ErrInvalid, "not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tp.Resolve(context.Background(), tc.tenant, tc.ids)
			wantKind(t, err, tc.kind, tc.msg)
		})
	}

	g, err := tp.CreateSecurityGroup(context.Background(), tenantA, "vpc-0a1b2c3d4e5f60718", "cluster-abcdefghijk")
	if err != nil || !ValidSecurityGroupID(g) {
		t.Errorf("CreateSecurityGroup = %q, %v", g, err)
	}
	if err := tp.DeleteSecurityGroup(context.Background(), tenantA, g, "cluster-abcdefghijk"); err != nil {
		t.Errorf("DeleteSecurityGroup: %v", err)
	}
}

func TestLoadTopology(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.json")
	if err := os.WriteFile(path, []byte(goodTopology), 0o600); err != nil {
		t.Fatal(err)
	}
	tp, err := LoadTopology(path)
	if err != nil {
		t.Fatal(err)
	}
	resolve(t, tp, tenantB, "subnet-0a1b2c3d4e5f60718")
	if _, err := LoadTopology(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file loaded")
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"vpcs": []}`), 0o600)
	if _, err := LoadTopology(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("error %v does not name the file", err)
	}
}

func TestParseTopologyErrors(t *testing.T) {
	const vpc = `{"id": "vpc-11111111", "cidr": "10.1.0.0/16"}`
	sub := func(fields string) string {
		return `{"vpcs": [` + vpc + `], "subnets": [` + fields + `]}`
	}
	const okSub = `{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24"}`
	tests := []struct {
		name string
		doc  string
		msg  []string
	}{
		{"empty document", ``, []string{"empty"}},
		{"syntax", "{\n\"vpcs\": [,]}", []string{"line 2"}},
		{"trailing data", sub(okSub) + "\n{}", []string{"line 2", "after"}},
		{"unknown field", "{\"vpcs\": [" + vpc + "],\n \"subnetz\": []}", []string{"line 2", "subnetz"}},
		{"wrong type", "{\"vpcs\": [" + vpc + "],\n \"subnets\": [{\"id\": 5}]}", []string{"line 2", "string"}},
		{"no subnets", `{"vpcs": [` + vpc + `]}`, []string{"no subnets"}},
		{"vpc missing id", `{"vpcs": [{"cidr": "10.1.0.0/16"}], "subnets": [` + okSub + `]}`, []string{"vpcs[0]", `missing "id"`}},
		{"vpc bad id", `{"vpcs": [{"id": "vpc-XYZ", "cidr": "10.1.0.0/16"}], "subnets": [` + okSub + `]}`, []string{"vpcs[0] (vpc-XYZ)", "not a VPC id"}},
		{"vpc duplicate", `{"vpcs": [` + vpc + `,` + vpc + `], "subnets": [` + okSub + `]}`, []string{"vpcs[1] (vpc-11111111)", "more than once"}},
		{"vpc bad cidr", `{"vpcs": [{"id": "vpc-11111111", "cidr": "10.1.0.0"}], "subnets": [` + okSub + `]}`, []string{"vpcs[0]", "not a CIDR"}},
		{"vpc host bits", `{"vpcs": [{"id": "vpc-11111111", "cidr": "10.1.0.1/16"}], "subnets": [` + okSub + `]}`, []string{"vpcs[0]", "did you mean 10.1.0.0/16"}},
		{"vpc too large", `{"vpcs": [{"id": "vpc-11111111", "cidr": "10.0.0.0/8"}], "subnets": [` + okSub + `]}`, []string{"vpcs[0]", "/16 and /28"}},
		{"vpc ipv6 cidr", `{"vpcs": [{"id": "vpc-11111111", "cidr": "2600::/56"}], "subnets": [` + okSub + `]}`, []string{"vpcs[0]", "not an IPv4"}},
		{"subnet missing id", sub(`{"vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24"}`), []string{"subnets[0]", `missing "id"`}},
		{"subnet bad id", sub(`{"id": "subnet-123", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24"}`), []string{"subnets[0] (subnet-123)", "not a subnet id"}},
		{"subnet uppercase id", sub(`{"id": "subnet-ABCDEF12", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24"}`), []string{"subnets[0]", "not a subnet id"}},
		{"subnet duplicate", sub(okSub + "," + strings.Replace(okSub, "10.1.1.0", "10.1.2.0", 1)), []string{"subnets[1] (subnet-11111111)", "more than once"}},
		{"subnet missing vpc", sub(`{"id": "subnet-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24"}`), []string{"subnets[0]", `missing "vpcId"`}},
		{"subnet unknown vpc", sub(`{"id": "subnet-11111111", "vpcId": "vpc-99999999", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24"}`), []string{"subnets[0] (subnet-11111111)", "vpc-99999999", "not declared"}},
		{"subnet missing az", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "cidr": "10.1.1.0/24"}`), []string{"subnets[0]", `missing "availabilityZone"`}},
		{"subnet bad az", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1", "cidr": "10.1.1.0/24"}`), []string{"subnets[0]", `"us-east-1"`, "Availability Zone"}},
		{"subnet bad az 2", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "US-EAST-1A", "cidr": "10.1.1.0/24"}`), []string{"subnets[0]", "Availability Zone"}},
		{"subnet missing cidr", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a"}`), []string{"subnets[0]", `missing "cidr"`}},
		{"subnet outside vpc", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.2.1.0/24"}`), []string{"subnets[0] (subnet-11111111)", "not inside", "10.1.0.0/16"}},
		{"subnet too small", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/29"}`), []string{"subnets[0]", "/16 and /28"}},
		{"subnet overlap", sub(okSub + `,{"id": "subnet-22222222", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1b", "cidr": "10.1.0.0/20"}`), []string{"subnets[1] (subnet-22222222)", "overlaps", "subnet-11111111"}},
		{"subnet ipv6 not v6", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24", "ipv6Cidr": "10.1.1.0/24"}`), []string{"subnets[0]", "not an IPv6"}},
		{"subnet ipv6 /72", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24", "ipv6Cidr": "2600:1f18:1::/72"}`), []string{"subnets[0]", "/44 and /64"}},
		{"subnet ipv6 outside vpc", `{"vpcs": [{"id": "vpc-11111111", "cidr": "10.1.0.0/16", "ipv6Cidr": "2600:1f18:1::/56"}], "subnets": [{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24", "ipv6Cidr": "2600:1f18:2::/64"}]}`, []string{"subnets[0]", "not inside the IPv6 CIDR"}},
		{"vpc in two regions", sub(okSub + `,{"id": "subnet-22222222", "vpcId": "vpc-11111111", "availabilityZone": "us-west-2a", "cidr": "10.1.2.0/24"}`), []string{"subnets[1]", "one region"}},
		{"empty accounts", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24", "accounts": []}`), []string{"subnets[0]", `"accounts" is empty`}},
		{"bad account", sub(`{"id": "subnet-11111111", "vpcId": "vpc-11111111", "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24", "accounts": ["12345"]}`), []string{"subnets[0]", `"12345"`, "12-digit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTopology([]byte(tc.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestAllocateIPv4(t *testing.T) {
	s24 := Subnet{ID: "subnet-11111111", CIDR: netip.MustParsePrefix("10.0.1.0/24")}
	s28 := Subnet{ID: "subnet-22222222", CIDR: netip.MustParsePrefix("10.0.2.16/28")}
	set := func(addrs ...string) func(netip.Addr) bool {
		m := map[netip.Addr]bool{}
		for _, a := range addrs {
			m[netip.MustParseAddr(a)] = true
		}
		return func(a netip.Addr) bool { return m[a] }
	}
	full28 := func(a netip.Addr) bool { return true }
	tests := []struct {
		name      string
		s         Subnet
		inUse     func(netip.Addr) bool
		requested string
		want      string // address, or "" for a refusal
		msg       string
	}{
		{"lowest free", s24, nil, "", "10.0.1.4", ""},
		{"lowest free skips used", s24, set("10.0.1.4", "10.0.1.5", "10.0.1.7"), "", "10.0.1.6", ""},
		{"lowest free /28", s28, set("10.0.2.20"), "", "10.0.2.21", ""},
		{"last usable /28", s28, set("10.0.2.20", "10.0.2.21", "10.0.2.22", "10.0.2.23", "10.0.2.24", "10.0.2.25", "10.0.2.26", "10.0.2.27", "10.0.2.28", "10.0.2.29"), "", "10.0.2.30", ""},
		{"full /28", s28, set("10.0.2.20", "10.0.2.21", "10.0.2.22", "10.0.2.23", "10.0.2.24", "10.0.2.25", "10.0.2.26", "10.0.2.27", "10.0.2.28", "10.0.2.29", "10.0.2.30"), "", "",
			"Subnet subnet-22222222 (10.0.2.16/28) has no free IP addresses."},
		{"full /28 by predicate", s28, full28, "", "", "has no free IP addresses"},
		{"requested ok", s24, set("10.0.1.4"), "10.0.1.200", "10.0.1.200", ""},
		{"requested first usable", s24, nil, "10.0.1.4", "10.0.1.4", ""},
		{"requested last usable", s24, nil, "10.0.1.254", "10.0.1.254", ""},
		{"requested network", s24, nil, "10.0.1.0", "", "IP address 10.0.1.0 is reserved by AWS in subnet subnet-11111111 (10.0.1.0/24)"},
		{"requested router", s24, nil, "10.0.1.1", "", "reserved by AWS"},
		{"requested dns", s24, nil, "10.0.1.2", "", "reserved by AWS"},
		{"requested +3", s24, nil, "10.0.1.3", "",
			"IP address 10.0.1.3 is reserved by AWS in subnet subnet-11111111 (10.0.1.0/24): the first four addresses and the last address of a subnet cannot be assigned."},
		{"requested broadcast", s24, nil, "10.0.1.255", "", "reserved by AWS"},
		{"requested broadcast /28", s28, nil, "10.0.2.31", "", "reserved by AWS"},
		{"requested outside", s24, nil, "10.0.2.10", "", "IP address 10.0.2.10 is not inside subnet subnet-11111111 (10.0.1.0/24)."},
		{"requested in use", s24, set("10.0.1.9"), "10.0.1.9", "", "IP address 10.0.1.9 is already in use in subnet subnet-11111111 (10.0.1.0/24)."},
		{"requested IPv6", s24, nil, "2600::1", "", `IP address "2600::1" is not a valid IPv4 address.`},
		{"requested 4in6", s24, nil, "::ffff:10.0.1.9", "", "not a valid IPv4"},
		{"requested garbage", s24, nil, "10.0.1", "", "not a valid IPv4"},
		{"no IPv4 CIDR", Subnet{ID: "subnet-33333333"}, nil, "", "", "has no IPv4 CIDR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AllocateIPv4(tc.s, tc.inUse, tc.requested)
			if tc.want != "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got != netip.MustParseAddr(tc.want) {
					t.Fatalf("got %s, want %s", got, tc.want)
				}
				return
			}
			wantKind(t, err, ErrInvalid, tc.msg)
		})
	}
}

func TestAllocateIPv6(t *testing.T) {
	s := Subnet{ID: "subnet-11111111", CIDR: netip.MustParsePrefix("10.0.1.0/24"), IPv6CIDR: netip.MustParsePrefix("2600:1f18:1:2::/64")}
	got, err := AllocateIPv6(s, nil)
	if err != nil || got != netip.MustParseAddr("2600:1f18:1:2::4") {
		t.Fatalf("got %s, %v; want 2600:1f18:1:2::4", got, err)
	}
	used := map[netip.Addr]bool{netip.MustParseAddr("2600:1f18:1:2::4"): true, netip.MustParseAddr("2600:1f18:1:2::5"): true}
	got, err = AllocateIPv6(s, func(a netip.Addr) bool { return used[a] })
	if err != nil || got != netip.MustParseAddr("2600:1f18:1:2::6") {
		t.Fatalf("got %s, %v; want 2600:1f18:1:2::6", got, err)
	}
	// A small block fills up.
	small := Subnet{ID: "subnet-22222222", IPv6CIDR: netip.MustParsePrefix("2600:1f18:1:2::/125")}
	_, err = AllocateIPv6(small, func(a netip.Addr) bool { return a.Compare(netip.MustParseAddr("2600:1f18:1:2::7")) < 0 })
	wantKind(t, err, ErrInvalid, "subnet-22222222", "no free IPv6")
	_, err = AllocateIPv6(Subnet{ID: "subnet-33333333", CIDR: s.CIDR}, nil)
	wantKind(t, err, ErrInvalid, "subnet-33333333", "no IPv6 CIDR")
}

func TestIDShapes(t *testing.T) {
	tests := []struct {
		name  string
		gen   func() string
		re    string
		valid func(string) bool
	}{
		{"eni", NewENIID, `^eni-[0-9a-f]{17}$`, ValidENIID},
		{"sg", NewSecurityGroupID, `^sg-[0-9a-f]{17}$`, ValidSecurityGroupID},
		{"vpc", NewVPCID, `^vpc-[0-9a-f]{17}$`, ValidVPCID},
		{"subnet", NewSubnetID, `^subnet-[0-9a-f]{17}$`, ValidSubnetID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			re := regexp.MustCompile(tc.re)
			seen := map[string]bool{}
			for range 100 {
				id := tc.gen()
				if !re.MatchString(id) || !tc.valid(id) {
					t.Fatalf("id %q does not match %s", id, tc.re)
				}
				if seen[id] {
					t.Fatalf("id %q generated twice", id)
				}
				seen[id] = true
			}
		})
	}
	for id, want := range map[string]bool{
		"subnet-12345678": true, "subnet-0a1b2c3d4e5f60718": true, "subnet-ABCDEF12": true,
		"subnet-1234567": false, "subnet-0a1b2c3d4e5f607189": false, "subnet-1234567g": false, "vpc-12345678": false,
	} {
		if ValidSubnetID(id) != want {
			t.Errorf("ValidSubnetID(%q) = %v", id, !want)
		}
	}
	for az, want := range map[string]string{"us-east-1a": "us-east-1", "us-gov-west-1b": "us-gov-west-1", "ap-southeast-2c": "ap-southeast-2", "us-east-1": "", "us-east-1-bos-1a": ""} {
		if got, _ := RegionOfAZ(az); got != want {
			t.Errorf("RegionOfAZ(%q) = %q, want %q", az, got, want)
		}
	}
}

// TestLearnedThousandsOfVPCs: a long-lived server whose tests make up fresh
// subnet ids must not run out of VPCs after a few hundred.
func TestLearnedThousandsOfVPCs(t *testing.T) {
	l := NewLearned(nil)
	ctx := context.Background()
	blocks := map[netip.Prefix]bool{}
	n := learnedVPCCapacity()
	if n < 2000 {
		t.Fatalf("only %d learned VPCs fit in a tenant, want thousands", n)
	}
	for i := range n {
		got, err := l.Resolve(ctx, tenantA, []string{fmt.Sprintf("subnet-%08x", i)})
		if err != nil {
			t.Fatalf("VPC %d of %d: %v", i+1, n, err)
		}
		b := enclosing(got[0].CIDR, learnedVPCBits)
		if blocks[b] {
			t.Fatalf("VPC %d got block %s twice", i+1, b)
		}
		blocks[b] = true
	}
	_, err := l.Resolve(ctx, tenantA, []string{"subnet-ffffffff"})
	wantKind(t, err, ErrUnavailable, "No IPv4 range is left", "reset the account")
	// Another tenant is unaffected.
	resolve(t, l, tenantB, "subnet-ffffffff")
}

// racingPlacements is a Placements shared with another process that learned
// a subnet first: its first Save reports that placement as missed.
type racingPlacements struct {
	theirs []Subnet
	saved  []Subnet
	saves  int
}

func (r *racingPlacements) Save(t Tenant, known int, subnets []Subnet) ([]Subnet, error) {
	r.saves++
	if known < len(r.theirs) {
		return r.theirs, nil
	}
	r.saved = append(r.saved, subnets...)
	return nil, nil
}

// TestLearnedMissedPlacements: a subnet another process learned means the
// same VPC, zone and CIDR here, and new subnets fit around it.
func TestLearnedMissedPlacements(t *testing.T) {
	other := NewLearned(nil)
	theirs := resolve(t, other, tenantA, "subnet-aaaaaaaa")
	rp := &racingPlacements{theirs: theirs}
	l := NewLearned(rp)
	got := resolve(t, l, tenantA, "subnet-aaaaaaaa", "subnet-bbbbbbbb")
	if got[0] != theirs[0] {
		t.Errorf("subnet-aaaaaaaa placed as %+v here, %+v by the other process", got[0], theirs[0])
	}
	if got[1].VpcID != theirs[0].VpcID || got[1].CIDR.Overlaps(theirs[0].CIDR) || got[1].AZ == theirs[0].AZ {
		t.Errorf("new subnet %+v does not fit around the other process's %+v", got[1], theirs[0])
	}
	if rp.saves != 2 || len(rp.saved) != 1 || rp.saved[0] != got[1] {
		t.Errorf("saves %d, saved %+v: want a refused save, then only subnet-bbbbbbbb", rp.saves, rp.saved)
	}
}
