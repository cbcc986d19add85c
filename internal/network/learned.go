package network

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
)

var (
	learnedIPv4Pool = netip.MustParsePrefix("10.0.0.0/8")     // VPC /16s come from here
	learnedIPv6Pool = netip.MustParsePrefix("2600:1f18::/32") // VPC /56s come from here
)

const (
	learnedVPCBits      = 16
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
// brand new VPC with its own /16 of 10.0.0.0/8 and /56 of 2600:1f18::/32) and
// in distinct Availability Zones (region + letter a..z, skipping the AZs of the
// request's known subnets and preferring AZs with the fewest subnets of the
// VPC, then the lowest letter), each with its own /24 and IPv6 /64 that
// overlap no other subnet of the VPC.
//
// Every newly learned subnet is handed to the persist function before Resolve
// returns; at startup the caller hands the remembered subnets back through
// Restore.
type Learned struct {
	persist func(Tenant, Subnet) error

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

// NewLearned returns an empty learned provider. persist is called, with the
// provider's lock held, for every newly learned subnet before Resolve returns;
// if it fails, Resolve fails and nothing of that call is remembered. persist
// should overwrite any earlier record of the same (Tenant, subnet id): after a
// failed call, subnets persisted before the failure may be learned again,
// differently. persist must not call back into the provider. A nil persist
// persists nothing.
func NewLearned(persist func(Tenant, Subnet) error) *Learned {
	if persist == nil {
		persist = func(Tenant, Subnet) error { return nil }
	}
	return &Learned{persist: persist, tenants: make(map[Tenant]*learnedTenant)}
}

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

// Adopt makes the provider remember s for t unless it knows a subnet with
// s's id already, and reports whether it did; the caller persists s then
// (Adopt does not call persist). It is for subnets that arrive with a
// placement of their own (an import), while the provider serves requests.
func (l *Learned) Adopt(t Tenant, s Subnet) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ts := l.tenants[t]; ts != nil {
		if _, known := ts.subnets[s.ID]; known {
			return false
		}
	}
	l.restoreLocked(t, s)
	return true
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

	ts := l.tenants[t]
	if ts == nil {
		ts = newLearnedTenant() // stored only if something is learned
	}
	out := make([]Subnet, len(ids))
	var known []Subnet
	var fresh []int // indexes into ids of subnets new to the server
	for i, id := range ids {
		if s, ok := ts.subnets[id]; ok {
			out[i] = s
			known = append(known, s)
		} else {
			fresh = append(fresh, i)
		}
	}
	if len(known) > 0 {
		if err := CheckClusterSubnets(known); err != nil {
			return nil, err
		}
	}
	if len(fresh) == 0 {
		return out, nil
	}

	// Plan the placement of the new subnets without changing anything.
	var (
		vpc     *learnedVPC
		newVPC  bool
		vpcIPv6 netip.Prefix // the /56 to use, possibly newly chosen
	)
	if len(known) > 0 {
		vpc = ts.vpcs[known[0].VpcID]
	}
	if vpc == nil {
		var err error
		if vpc, err = ts.planVPC(t, known); err != nil {
			return nil, err
		}
		newVPC = true
	}
	vpcIPv6 = vpc.ipv6
	if !vpcIPv6.IsValid() {
		var ok bool
		if vpcIPv6, ok = ts.planIPv6Block(); !ok {
			return nil, errorf(ErrUnavailable, "No IPv6 address range is left for VPC %s in account %s, region %s.", vpc.id, t.Account, t.Region)
		}
	}

	usedAZ := make(map[string]bool) // AZs of the request's subnets
	for _, s := range known {
		usedAZ[s.AZ] = true
	}
	vpcAZ := make(map[string]int) // subnets of the VPC per AZ
	var taken4, taken6 []netip.Prefix
	for _, id := range vpc.subnets {
		s := ts.subnets[id]
		vpcAZ[s.AZ]++
		taken4 = append(taken4, s.CIDR)
		taken6 = append(taken6, s.IPv6CIDR)
	}
	for _, i := range fresh {
		// Among the AZs not used by the request, take the one with the fewest
		// subnets of the VPC (then the lowest letter), so that later clusters
		// mixing subnets of this VPC are less likely to collide.
		az, best := "", 0
		for j := range len(azLetters) {
			cand := t.Region + azLetters[j:j+1]
			if usedAZ[cand] {
				continue
			}
			if az == "" || vpcAZ[cand] < best {
				az, best = cand, vpcAZ[cand]
			}
		}
		if az == "" {
			return nil, errorf(ErrInvalid, "Subnet %s cannot be placed: region %s has no Availability Zone left for it (at most %d subnets per cluster).", ids[i], t.Region, len(azLetters))
		}
		usedAZ[az] = true
		vpcAZ[az]++
		c4, ok := freeChild(vpc.cidr, learnedSubnetBits, taken4)
		if !ok {
			return nil, errorf(ErrUnavailable, "Subnet %s cannot be placed: VPC %s (%s) has no free /%d IPv4 range left.", ids[i], vpc.id, vpc.cidr, learnedSubnetBits)
		}
		c6, ok := freeChild(vpcIPv6, learnedSubnetV6Bits, taken6)
		if !ok {
			return nil, errorf(ErrUnavailable, "Subnet %s cannot be placed: VPC %s (%s) has no free /%d IPv6 range left.", ids[i], vpc.id, vpcIPv6, learnedSubnetV6Bits)
		}
		taken4 = append(taken4, c4)
		taken6 = append(taken6, c6)
		out[i] = Subnet{ID: ids[i], VpcID: vpc.id, AZ: az, CIDR: c4, IPv6CIDR: c6}
	}

	// The rules hold by construction; check anyway before persisting.
	if err := CheckClusterSubnets(out); err != nil {
		return nil, err
	}
	for _, i := range fresh {
		if err := l.persist(t, out[i]); err != nil {
			return nil, &Error{
				Kind:    ErrUnavailable,
				Message: fmt.Sprintf("The service could not record subnet %s: %v", ids[i], err),
				cause:   err,
			}
		}
	}

	// Commit.
	if l.tenants[t] == nil {
		l.tenants[t] = ts
	}
	if newVPC {
		ts.vpcs[vpc.id] = vpc
	}
	vpc.ipv6 = vpcIPv6
	for _, i := range fresh {
		ts.subnets[ids[i]] = out[i]
		vpc.subnets = append(vpc.subnets, ids[i])
	}
	return out, nil
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
	cidr, ok := freeChild(learnedIPv4Pool, learnedVPCBits, taken)
	if !ok {
		return nil, errorf(ErrUnavailable, "No IPv4 range is left for a new VPC in account %s, region %s: all %d /%d ranges of %s are in use.",
			t.Account, t.Region, 1<<(learnedVPCBits-learnedIPv4Pool.Bits()), learnedVPCBits, learnedIPv4Pool)
	}
	id := NewVPCID()
	for ts.vpcs[id] != nil || usesVPC(avoid, id) {
		id = NewVPCID()
	}
	return &learnedVPC{id: id, cidr: cidr}, nil
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
