package network

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// learnedIPv4Pools are where learned VPCs get their IPv4 blocks, in order:
// the private ranges of RFC 1918, which AWS accepts as VPC CIDRs.
var learnedIPv4Pools = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

var learnedIPv6Pool = netip.MustParsePrefix("2600:1f18::/32") // VPC /56s come from here

const (
	// A learned VPC gets a /19: 2,184 fit in an account and region (2,048
	// of 10.0.0.0/8, 128 of 172.16.0.0/12, 8 of 192.168.0.0/16), each with
	// room for 32 subnets of /24. (Until version 0.4 a VPC got a /16 of
	// 10.0.0.0/8, which let 256 fit; VPCs learned then keep their
	// subnets, and new subnets of them are placed in the /19 of their
	// first subnet.)
	learnedVPCBits      = 19
	learnedSubnetBits   = 24
	learnedVPCIPv6Bits  = 56
	learnedSubnetV6Bits = 64
	azLetters           = "abcdefghijklmnopqrstuvwxyz"
)

// Learned is the provider used without prior knowledge of the network: the
// first time a subnet id is named (per Tenant) it is placed in a VPC, an
// Availability Zone and a CIDR, and that placement is remembered forever.
//
// Subnets new to the server that arrive together in one Resolve call are put
// in one VPC (the VPC of a subnet of the request that is already known, else a
// brand new VPC with its own /19 of the private ranges and /56 of
// 2600:1f18::/32) and
// in distinct Availability Zones (region + letter a..z, skipping the AZs of the
// request's known subnets and preferring AZs with the fewest subnets of the
// VPC, then the lowest letter), each with its own /24 and IPv6 /64 that
// overlap no other subnet of the VPC.
//
// Every newly learned subnet is saved in the provider's Placements before
// Resolve returns; at startup the caller hands the saved subnets back
// through Restore.
type Learned struct {
	placements Placements

	mu      sync.Mutex
	tenants map[Tenant]*learnedTenant
}

var _ Provider = (*Learned)(nil)

type learnedTenant struct {
	subnets map[string]Subnet
	vpcs    map[string]*learnedVPC
}

type learnedVPC struct {
	id      string
	cidr    netip.Prefix // IPv4 /16 (derived from a subnet for restored VPCs)
	ipv6    netip.Prefix // IPv6 /56, zero if not known yet
	subnets []string     // ids of the VPC's subnets
}

// Placements is where a Learned provider keeps the placements it makes, so
// that a subnet keeps its VPC, zone and CIDR for as long as the estate
// lives, in every process that serves the estate.
//
// Save is called with the provider's lock held, so calls from one provider
// never overlap; it must not call back into the provider.
type Placements interface {
	// Save durably records subnets, new placements for t, given that the
	// provider knows known placements of t. If the store holds placements
	// of t that the provider was never given (another process made them),
	// Save records nothing and returns every placement of t it holds; the
	// provider remembers them and plans again. A failed Save records
	// nothing.
	Save(t Tenant, known int, subnets []Subnet) (missed []Subnet, err error)
}

// NewLearned returns an empty learned provider that keeps its placements in
// placements (nil: nowhere, for tests).
func NewLearned(placements Placements) *Learned {
	if placements == nil {
		placements = discardPlacements{}
	}
	return &Learned{placements: placements, tenants: make(map[Tenant]*learnedTenant)}
}

type discardPlacements struct{}

func (discardPlacements) Save(Tenant, int, []Subnet) ([]Subnet, error) { return nil, nil }

func newLearnedTenant() *learnedTenant {
	return &learnedTenant{subnets: make(map[string]Subnet), vpcs: make(map[string]*learnedVPC)}
}

// Restore makes the provider remember s for t, as persisted earlier. It is
// meant for startup, before the provider serves requests; it does not call
// persist. Restoring a subnet id already known replaces its placement.
func (l *Learned) Restore(t Tenant, s Subnet) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.restoreLocked(t, s)
}

// restoreLocked is Restore with l.mu held.
func (l *Learned) restoreLocked(t Tenant, s Subnet) {
	ts := l.tenants[t]
	if ts == nil {
		ts = newLearnedTenant()
		l.tenants[t] = ts
	}
	if old, ok := ts.subnets[s.ID]; ok {
		if v := ts.vpcs[old.VpcID]; v != nil {
			for i, id := range v.subnets {
				if id == s.ID {
					v.subnets = append(v.subnets[:i], v.subnets[i+1:]...)
					break
				}
			}
		}
	}
	v := ts.vpcs[s.VpcID]
	if v == nil {
		v = &learnedVPC{id: s.VpcID}
		ts.vpcs[s.VpcID] = v
	}
	if !v.cidr.IsValid() && s.CIDR.IsValid() {
		v.cidr = enclosing(s.CIDR, learnedVPCBits)
	}
	if !v.ipv6.IsValid() && s.IPv6CIDR.IsValid() {
		v.ipv6 = enclosing(s.IPv6CIDR, learnedVPCIPv6Bits)
	}
	v.subnets = append(v.subnets, s.ID)
	ts.subnets[s.ID] = s
}

// Adopt implements Provider: it remembers and saves the subnets of t it
// does not know yet, with the placement they come with (an import).
// Subnets without a whole placement (VPC, zone and CIDR) are not adopted.
func (l *Learned) Adopt(t Tenant, subnets []Subnet) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		ts := l.tenants[t]
		var fresh []Subnet
		for _, s := range subnets {
			if s.ID == "" || s.VpcID == "" || s.AZ == "" || !s.CIDR.IsValid() {
				continue
			}
			if ts != nil {
				if _, known := ts.subnets[s.ID]; known {
					continue
				}
			}
			if !slices.ContainsFunc(fresh, func(o Subnet) bool { return o.ID == s.ID }) {
				fresh = append(fresh, s)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		missed, err := l.placements.Save(t, l.knownLocked(t), fresh)
		if err != nil {
			return fmt.Errorf("save adopted subnets: %w", err)
		}
		if missed == nil {
			for _, s := range fresh {
				l.restoreLocked(t, s)
			}
			return nil
		}
		for _, s := range missed {
			l.restoreLocked(t, s)
		}
	}
}

// knownLocked counts the placements of t the provider knows.
func (l *Learned) knownLocked(t Tenant) int {
	if ts := l.tenants[t]; ts != nil {
		return len(ts.subnets)
	}
	return 0
}

// enclosing returns the prefix of length bitsLen containing p, or p itself
// (masked) if p is already shorter.
func enclosing(p netip.Prefix, bitsLen int) netip.Prefix {
	if p.Bits() <= bitsLen {
		return p.Masked()
	}
	q, err := p.Addr().Prefix(bitsLen)
	if err != nil {
		return p.Masked()
	}
	return q
}

// Resolve implements Provider.
func (l *Learned) Resolve(ctx context.Context, t Tenant, ids []string) ([]Subnet, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkRequestIDs(ids); err != nil {
		return nil, err
	}
	if !validRegion(t.Region) {
		return nil, errorf(ErrInvalid, "Region %q is not a valid region name.", t.Region)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		ts := l.tenants[t]
		if ts == nil {
			ts = newLearnedTenant() // stored only if something is learned
		}
		plan, err := ts.plan(t, ids)
		if err != nil || len(plan.fresh) == 0 {
			return plan.out, err
		}
		missed, err := l.placements.Save(t, len(ts.subnets), plan.freshSubnets())
		if err != nil {
			ids := make([]string, len(plan.fresh))
			for k, i := range plan.fresh {
				ids[k] = plan.out[i].ID
			}
			return nil, &Error{
				Kind:    ErrUnavailable,
				Message: fmt.Sprintf("The service could not record subnets %s: %v", strings.Join(ids, ", "), err),
				cause:   err,
			}
		}
		if missed != nil {
			// Another process learned subnets of t meanwhile: plan again
			// knowing them (one of them may be a subnet of this request).
			for _, s := range missed {
				l.restoreLocked(t, s)
			}
			continue
		}
		l.adopt(t, ts, plan)
		return plan.out, nil
	}
}

// placement is what Resolve plans for one request: its subnets, in the
// request's order, and which of them are new, in which VPC.
type placement struct {
	out    []Subnet
	fresh  []int // indexes into out of subnets new to the provider
	vpc    *learnedVPC
	newVPC bool
	ipv6   netip.Prefix // the VPC's /56, possibly newly chosen
}

func (p placement) freshSubnets() []Subnet {
	out := make([]Subnet, len(p.fresh))
	for k, i := range p.fresh {
		out[k] = p.out[i]
	}
	return out
}

// plan places the subnets of ids that ts does not know, changing nothing.
func (ts *learnedTenant) plan(t Tenant, ids []string) (placement, error) {
	p := placement{out: make([]Subnet, len(ids))}
	var known []Subnet
	for i, id := range ids {
		if s, ok := ts.subnets[id]; ok {
			p.out[i] = s
			known = append(known, s)
		} else {
			p.out[i] = Subnet{ID: id}
			p.fresh = append(p.fresh, i)
		}
	}
	if len(known) > 0 {
		if err := CheckClusterSubnets(known); err != nil {
			return placement{}, err
		}
	}
	if len(p.fresh) == 0 {
		return p, nil
	}
	if len(known) > 0 {
		p.vpc = ts.vpcs[known[0].VpcID]
	}
	if p.vpc == nil {
		var err error
		if p.vpc, err = ts.planVPC(t, known); err != nil {
			return placement{}, err
		}
		p.newVPC = true
	}
	p.ipv6 = p.vpc.ipv6
	if !p.ipv6.IsValid() {
		var ok bool
		if p.ipv6, ok = ts.planIPv6Block(); !ok {
			return placement{}, errorf(ErrUnavailable, "No IPv6 address range is left for VPC %s in account %s, region %s.", p.vpc.id, t.Account, t.Region)
		}
	}
	if err := ts.placeFresh(t, &p, known); err != nil {
		return placement{}, err
	}
	// The rules hold by construction; check anyway before saving.
	if err := CheckClusterSubnets(p.out); err != nil {
		return placement{}, err
	}
	return p, nil
}

// placeFresh gives each new subnet of p an Availability Zone and CIDRs in
// p's VPC.
func (ts *learnedTenant) placeFresh(t Tenant, p *placement, known []Subnet) error {
	usedAZ := make(map[string]bool) // AZs of the request's subnets
	for _, s := range known {
		usedAZ[s.AZ] = true
	}
	vpcAZ := make(map[string]int) // subnets of the VPC per AZ
	var taken4, taken6 []netip.Prefix
	for _, id := range p.vpc.subnets {
		s := ts.subnets[id]
		vpcAZ[s.AZ]++
		taken4 = append(taken4, s.CIDR)
		taken6 = append(taken6, s.IPv6CIDR)
	}
	for _, i := range p.fresh {
		az := pickAZ(t.Region, usedAZ, vpcAZ)
		if az == "" {
			return errorf(ErrInvalid, "Subnet %s cannot be placed: region %s has no Availability Zone left for it (at most %d subnets per cluster).", p.out[i].ID, t.Region, len(azLetters))
		}
		usedAZ[az] = true
		vpcAZ[az]++
		c4, ok := freeChild(p.vpc.cidr, learnedSubnetBits, taken4)
		if !ok {
			return errorf(ErrUnavailable, "Subnet %s cannot be placed: VPC %s (%s) has no free /%d IPv4 range left.", p.out[i].ID, p.vpc.id, p.vpc.cidr, learnedSubnetBits)
		}
		c6, ok := freeChild(p.ipv6, learnedSubnetV6Bits, taken6)
		if !ok {
			return errorf(ErrUnavailable, "Subnet %s cannot be placed: VPC %s (%s) has no free /%d IPv6 range left.", p.out[i].ID, p.vpc.id, p.ipv6, learnedSubnetV6Bits)
		}
		taken4 = append(taken4, c4)
		taken6 = append(taken6, c6)
		p.out[i] = Subnet{ID: p.out[i].ID, VpcID: p.vpc.id, AZ: az, CIDR: c4, IPv6CIDR: c6}
	}
	return nil
}

// pickAZ returns, among the AZs the request does not use, the one with the
// fewest subnets of the VPC (then the lowest letter), so that later
// clusters mixing subnets of this VPC are less likely to collide; "" when
// every letter is used.
func pickAZ(region string, usedAZ map[string]bool, vpcAZ map[string]int) string {
	az, best := "", 0
	for j := range len(azLetters) {
		cand := region + azLetters[j:j+1]
		if usedAZ[cand] {
			continue
		}
		if az == "" || vpcAZ[cand] < best {
			az, best = cand, vpcAZ[cand]
		}
	}
	return az
}

// adopt remembers what plan placed, once it is saved.
func (l *Learned) adopt(t Tenant, ts *learnedTenant, p placement) {
	if l.tenants[t] == nil {
		l.tenants[t] = ts
	}
	if p.newVPC {
		ts.vpcs[p.vpc.id] = p.vpc
	}
	p.vpc.ipv6 = p.ipv6
	for _, i := range p.fresh {
		ts.subnets[p.out[i].ID] = p.out[i]
		p.vpc.subnets = append(p.vpc.subnets, p.out[i].ID)
	}
}

// planVPC returns a new VPC (not yet stored) with an id and a /16 unused in
// the tenant. avoid lists subnets whose VPC ids must not be reused.
func (ts *learnedTenant) planVPC(t Tenant, avoid []Subnet) (*learnedVPC, error) {
	var taken []netip.Prefix
	for _, v := range ts.vpcs {
		taken = append(taken, v.cidr)
	}
	for _, s := range ts.subnets {
		taken = append(taken, s.CIDR)
	}
	var cidr netip.Prefix
	ok := false
	for _, pool := range learnedIPv4Pools {
		if cidr, ok = freeChild(pool, learnedVPCBits, taken); ok {
			break
		}
	}
	if !ok {
		return nil, errorf(ErrUnavailable, "No IPv4 range is left for a new VPC in account %s, region %s: all %d /%d ranges of 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16 are in use. Reuse subnet ids of existing VPCs, or reset the account.",
			t.Account, t.Region, learnedVPCCapacity(), learnedVPCBits)
	}
	id := NewVPCID()
	for ts.vpcs[id] != nil || usesVPC(avoid, id) {
		id = NewVPCID()
	}
	return &learnedVPC{id: id, cidr: cidr}, nil
}

// learnedVPCCapacity is how many learned VPCs fit in a tenant.
func learnedVPCCapacity() int {
	n := 0
	for _, p := range learnedIPv4Pools {
		n += 1 << (learnedVPCBits - p.Bits())
	}
	return n
}

func usesVPC(ss []Subnet, id string) bool {
	for _, s := range ss {
		if s.VpcID == id {
			return true
		}
	}
	return false
}

// planIPv6Block picks a random /56 of learnedIPv6Pool unused in the tenant.
func (ts *learnedTenant) planIPv6Block() (netip.Prefix, bool) {
	var taken []netip.Prefix
	for _, v := range ts.vpcs {
		taken = append(taken, v.ipv6)
	}
	for _, s := range ts.subnets {
		taken = append(taken, s.IPv6CIDR)
	}
	width := learnedVPCIPv6Bits - learnedIPv6Pool.Bits()
	for range 64 {
		var b [8]byte
		rand.Read(b[:])
		n := binary.BigEndian.Uint64(b[:]) & (1<<width - 1)
		c := childPrefix(learnedIPv6Pool, learnedVPCIPv6Bits, n)
		free := true
		for _, p := range taken {
			if p.IsValid() && p.Overlaps(c) {
				free = false
				break
			}
		}
		if free {
			return c, true
		}
	}
	return netip.Prefix{}, false
}

// CreateSecurityGroup implements Provider: it returns a fresh security group id.
func (l *Learned) CreateSecurityGroup(ctx context.Context, t Tenant, vpcID, clusterID string) (string, error) {
	return newSecurityGroup(ctx, vpcID)
}

// DeleteSecurityGroup implements Provider: it does nothing.
func (l *Learned) DeleteSecurityGroup(ctx context.Context, t Tenant, groupID, clusterID string) error {
	return ctx.Err()
}

// CreateInterface implements Provider: it returns a fresh interface id; the
// caller allocates the addresses.
func (l *Learned) CreateInterface(ctx context.Context, t Tenant, req InterfaceRequest) (Interface, error) {
	return newInterface(ctx)
}

// DeleteInterface implements Provider: it does nothing.
func (l *Learned) DeleteInterface(ctx context.Context, t Tenant, eniID, clusterID, hsmID string) error {
	return ctx.Err()
}
