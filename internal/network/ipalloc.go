package network

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// maxIPv6Scan bounds the search for a free IPv6 address: a /64 is too large
// to scan, and in practice only a handful of its addresses are ever in use.
const maxIPv6Scan = 1 << 20

// AllocateIPv4 picks an IPv4 address for a new network interface in s.
//
// If requested is not empty it must be an IPv4 address inside s.CIDR, not one
// of the five addresses AWS reserves in every subnet (the network address, the
// VPC router at +1, DNS at +2, +3 reserved for future use, and the last
// address), and not in use. Otherwise the lowest free, non-reserved address is
// returned. inUse may be nil (nothing in use). Refusals are *Error of kind
// ErrInvalid.
func AllocateIPv4(s Subnet, inUse func(netip.Addr) bool, requested string) (netip.Addr, error) {
	p := s.CIDR
	if !p.IsValid() || !p.Addr().Is4() {
		return netip.Addr{}, errorf(ErrInvalid, "Subnet %s has no IPv4 CIDR block.", s.ID)
	}
	p = p.Masked()
	if inUse == nil {
		inUse = func(netip.Addr) bool { return false }
	}
	if requested != "" {
		a, err := netip.ParseAddr(requested)
		if err != nil || !a.Is4() {
			return netip.Addr{}, errorf(ErrInvalid, "IP address %q is not a valid IPv4 address.", requested)
		}
		if !p.Contains(a) {
			return netip.Addr{}, errorf(ErrInvalid, "IP address %s is not inside subnet %s (%s).", a, s.ID, p)
		}
		if reserved(p, a) {
			return netip.Addr{}, errorf(ErrInvalid, "IP address %s is reserved by AWS in subnet %s (%s): the first four addresses and the last address of a subnet cannot be assigned.", a, s.ID, p)
		}
		if inUse(a) {
			return netip.Addr{}, errorf(ErrInvalid, "IP address %s is already in use in subnet %s (%s).", a, s.ID, p)
		}
		return a, nil
	}
	if a, ok := lowestFree(p, inUse, 0); ok {
		return a, nil
	}
	return netip.Addr{}, errorf(ErrInvalid, "Subnet %s (%s) has no free IP addresses.", s.ID, p)
}

// AllocateIPv6 returns the lowest free address of s.IPv6CIDR that AWS does
// not reserve (the same first four and last addresses as in IPv4). inUse may
// be nil. Refusals are *Error of kind ErrInvalid.
func AllocateIPv6(s Subnet, inUse func(netip.Addr) bool) (netip.Addr, error) {
	p := s.IPv6CIDR
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return netip.Addr{}, errorf(ErrInvalid, "Subnet %s has no IPv6 CIDR block; a DUALSTACK cluster needs subnets with IPv6 CIDR blocks.", s.ID)
	}
	p = p.Masked()
	if inUse == nil {
		inUse = func(netip.Addr) bool { return false }
	}
	if a, ok := lowestFree(p, inUse, maxIPv6Scan); ok {
		return a, nil
	}
	return netip.Addr{}, errorf(ErrInvalid, "Subnet %s (%s) has no free IPv6 addresses.", s.ID, p)
}

// reserved reports whether a is one of the five addresses AWS reserves in
// the (masked) prefix p.
func reserved(p netip.Prefix, a netip.Addr) bool {
	if a == lastAddr(p) {
		return true
	}
	b := p.Addr()
	for range 4 {
		if a == b {
			return true
		}
		b = b.Next()
		if !b.IsValid() {
			break
		}
	}
	return false
}

// lowestFree scans p from its fifth address up to (excluding) its last one
// for an address not in use. limit > 0 bounds the number of candidates.
func lowestFree(p netip.Prefix, inUse func(netip.Addr) bool, limit int) (netip.Addr, bool) {
	last := lastAddr(p)
	a := p.Addr()
	for range 4 {
		a = a.Next()
		if !a.IsValid() || !p.Contains(a) {
			return netip.Addr{}, false
		}
	}
	for n := 0; a.IsValid() && p.Contains(a) && a != last; n++ {
		if limit > 0 && n >= limit {
			break
		}
		if !inUse(a) {
			return a, true
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}

// lastAddr returns the last address of the (masked) prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		v := binary.BigEndian.Uint32(b[:])
		if p.Bits() < 32 {
			v |= 1<<(32-p.Bits()) - 1
		}
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	host := 128 - p.Bits()
	switch {
	case host >= 64:
		lo = ^uint64(0)
		if host > 64 {
			hi |= 1<<(host-64) - 1
		}
	case host > 0:
		lo |= 1<<host - 1
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// childPrefix returns the n-th sub-prefix of length bits inside parent:
// parent's address plus n << (address length - bits).
func childPrefix(parent netip.Prefix, bitsLen int, n uint64) netip.Prefix {
	a := parent.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:]) + uint32(n<<(32-bitsLen))
		binary.BigEndian.PutUint32(b[:], v)
		return netip.PrefixFrom(netip.AddrFrom4(b), bitsLen)
	}
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	shift := 128 - bitsLen
	var addHi, addLo uint64
	switch {
	case shift >= 64:
		addHi = n << (shift - 64)
	case shift == 0:
		addLo = n
	default:
		addLo = n << shift
		addHi = n >> (64 - shift)
	}
	var c uint64
	lo, c = bits.Add64(lo, addLo, 0)
	hi, _ = bits.Add64(hi, addHi, c)
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), bitsLen)
}

// freeChild returns the lowest sub-prefix of length bitsLen inside parent that
// overlaps none of taken.
func freeChild(parent netip.Prefix, bitsLen int, taken []netip.Prefix) (netip.Prefix, bool) {
	if !parent.IsValid() || bitsLen < parent.Bits() || bitsLen > parent.Addr().BitLen() || bitsLen-parent.Bits() > 20 {
		return netip.Prefix{}, false
	}
	if parent.Addr().Is4() {
		return freeChild4(parent, bitsLen, taken)
	}
	count := uint64(1) << (bitsLen - parent.Bits())
next:
	for n := range count {
		c := childPrefix(parent, bitsLen, n)
		for _, t := range taken {
			if t.IsValid() && t.Overlaps(c) {
				continue next
			}
		}
		return c, true
	}
	return netip.Prefix{}, false
}

// freeChild4 is freeChild for IPv4, in one pass over taken sorted by start:
// a tenant with thousands of learned VPCs plans a new one without trying
// each candidate against each VPC.
func freeChild4(parent netip.Prefix, bitsLen int, taken []netip.Prefix) (netip.Prefix, bool) {
	type span struct{ lo, hi uint64 }
	bounds := func(p netip.Prefix) span {
		p = p.Masked()
		b := p.Addr().As4()
		lo := uint64(binary.BigEndian.Uint32(b[:]))
		return span{lo, lo + 1<<(32-p.Bits()) - 1}
	}
	var spans []span
	for _, t := range taken {
		if t.IsValid() && t.Addr().Is4() && t.Overlaps(parent) {
			spans = append(spans, bounds(t))
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	whole := bounds(parent)
	size := uint64(1) << (32 - bitsLen)
	cand, j := whole.lo, 0
	for cand+size-1 <= whole.hi {
		for j < len(spans) && spans[j].hi < cand {
			j++
		}
		if j == len(spans) || spans[j].lo > cand+size-1 {
			return childPrefix(parent, bitsLen, (cand-whole.lo)/size), true
		}
		// spans[j] overlaps the candidate: go to the first candidate after it.
		cand = (spans[j].hi/size + 1) * size
	}
	return netip.Prefix{}, false
}
