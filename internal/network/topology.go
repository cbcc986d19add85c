package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"
)

// Topology is the provider backed by a declared network: a JSON file listing
// VPCs and subnets.
//
//	{"vpcs": [{"id": "vpc-0a1b2c3d4e5f60718", "cidr": "10.1.0.0/16"}],
//	 "subnets": [{"id": "subnet-0a1b2c3d4e5f60718", "vpcId": "vpc-0a1b2c3d4e5f60718",
//	              "availabilityZone": "us-east-1a", "cidr": "10.1.1.0/24",
//	              "ipv6Cidr": "2600:1f18:1::/64", "accounts": ["123456789012"]}]}
//
// A VPC may also declare "ipv6Cidr" (its IPv6 block; subnets' IPv6 blocks must
// then lie inside it). A subnet's "ipv6Cidr" is optional (without it the
// subnet cannot host DUALSTACK clusters). "accounts", if present, restricts
// the subnet to those accounts; absent, every account sees it. The region of a
// subnet is its Availability Zone minus the final letter, and a subnet is
// visible only in its region. A Topology is immutable and safe for concurrent
// use.
type Topology struct {
	vpcs    map[string]topoVPC
	subnets map[string]topoSubnet
}

var _ Provider = (*Topology)(nil)

type topoVPC struct {
	cidr, ipv6 netip.Prefix
	region     string // "" until a subnet names the VPC
}

type topoSubnet struct {
	Subnet
	region   string
	accounts map[string]bool // nil: every account
}

type topologyFile struct {
	VPCs    []topologyVPCEntry    `json:"vpcs"`
	Subnets []topologySubnetEntry `json:"subnets"`
}

type topologyVPCEntry struct {
	ID       string `json:"id"`
	CIDR     string `json:"cidr"`
	IPv6CIDR string `json:"ipv6Cidr"`
}

type topologySubnetEntry struct {
	ID               string    `json:"id"`
	VpcID            string    `json:"vpcId"`
	AvailabilityZone string    `json:"availabilityZone"`
	CIDR             string    `json:"cidr"`
	IPv6CIDR         string    `json:"ipv6Cidr"`
	Accounts         *[]string `json:"accounts"`
}

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

// LoadTopology reads and validates a topology file.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	t, err := ParseTopology(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTopology parses and strictly validates a topology document: unknown
// fields, malformed ids, CIDRs, Availability Zones or account ids, duplicate
// ids, subnets outside their VPC or overlapping each other, and references to
// undeclared VPCs are all errors naming the offending item.
func ParseTopology(data []byte) (*Topology, error) {
	var f topologyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, jsonError(data, dec, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("topology: line %d: unexpected data after the JSON object", lineOf(data, dec.InputOffset()))
	}
	t := &Topology{vpcs: make(map[string]topoVPC), subnets: make(map[string]topoSubnet)}
	for i, e := range f.VPCs {
		if err := t.addVPC(itemName("vpcs", i, e.ID), e); err != nil {
			return nil, fmt.Errorf("topology: %w", err)
		}
	}
	if len(f.Subnets) == 0 {
		return nil, errors.New("topology: no subnets are declared")
	}
	for i, e := range f.Subnets {
		if err := t.addSubnet(itemName("subnets", i, e.ID), e); err != nil {
			return nil, fmt.Errorf("topology: %w", err)
		}
	}
	return t, nil
}

// addVPC checks and adds one entry of "vpcs"; item names it in errors.
func (t *Topology) addVPC(item string, e topologyVPCEntry) error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%s: missing \"id\"", item)
	case !ValidVPCID(e.ID):
		return fmt.Errorf("%s: id is not a VPC id (\"vpc-\" and 8 or 17 lowercase hexadecimal digits)", item)
	}
	if _, dup := t.vpcs[e.ID]; dup {
		return fmt.Errorf("%s: VPC %s is declared more than once", item, e.ID)
	}
	cidr, err := parseCIDR(e.CIDR, "cidr", false, 16, 28)
	if err != nil {
		return fmt.Errorf("%s: %v", item, err)
	}
	var v6 netip.Prefix
	if e.IPv6CIDR != "" {
		if v6, err = parseCIDR(e.IPv6CIDR, "ipv6Cidr", true, 44, 56); err != nil {
			return fmt.Errorf("%s: %v", item, err)
		}
	}
	t.vpcs[e.ID] = topoVPC{cidr: cidr, ipv6: v6}
	return nil
}

// addSubnet checks and adds one entry of "subnets", whose VPC must be
// declared; item names it in errors.
func (t *Topology) addSubnet(item string, e topologySubnetEntry) error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%s: missing \"id\"", item)
	case !subnetIDRE.MatchString(e.ID):
		return fmt.Errorf("%s: id is not a subnet id (\"subnet-\" and 8 or 17 lowercase hexadecimal digits)", item)
	case e.VpcID == "":
		return fmt.Errorf("%s: missing \"vpcId\"", item)
	case e.AvailabilityZone == "":
		return fmt.Errorf("%s: missing \"availabilityZone\"", item)
	}
	if _, dup := t.subnets[e.ID]; dup {
		return fmt.Errorf("%s: subnet %s is declared more than once", item, e.ID)
	}
	vpc, ok := t.vpcs[e.VpcID]
	if !ok {
		return fmt.Errorf("%s: VPC %q is not declared in \"vpcs\"", item, e.VpcID)
	}
	region, ok := RegionOfAZ(e.AvailabilityZone)
	if !ok {
		return fmt.Errorf("%s: availabilityZone %q is not an Availability Zone name such as us-east-1a", item, e.AvailabilityZone)
	}
	if vpc.region == "" {
		vpc.region = region
		t.vpcs[e.VpcID] = vpc
	} else if vpc.region != region {
		return fmt.Errorf("%s: Availability Zone %s is in region %s but VPC %s has subnets in region %s; a VPC belongs to one region",
			item, e.AvailabilityZone, region, e.VpcID, vpc.region)
	}
	cidr, v6, err := subnetCIDRs(item, e, vpc)
	if err != nil {
		return err
	}
	if err := t.checkOverlaps(item, e.VpcID, cidr, v6); err != nil {
		return err
	}
	accounts, err := subnetAccounts(item, e.Accounts)
	if err != nil {
		return err
	}
	t.subnets[e.ID] = topoSubnet{
		Subnet:   Subnet{ID: e.ID, VpcID: e.VpcID, AZ: e.AvailabilityZone, CIDR: cidr, IPv6CIDR: v6},
		region:   region,
		accounts: accounts,
	}
	return nil
}

// subnetCIDRs parses a subnet's CIDRs, which must lie inside its VPC's.
func subnetCIDRs(item string, e topologySubnetEntry, vpc topoVPC) (cidr, v6 netip.Prefix, err error) {
	cidr, err = parseCIDR(e.CIDR, "cidr", false, 16, 28)
	if err != nil {
		return cidr, v6, fmt.Errorf("%s: %v", item, err)
	}
	if !vpc.cidr.Contains(cidr.Addr()) || cidr.Bits() < vpc.cidr.Bits() {
		return cidr, v6, fmt.Errorf("%s: cidr %s is not inside the CIDR %s of VPC %s", item, cidr, vpc.cidr, e.VpcID)
	}
	if e.IPv6CIDR != "" {
		if v6, err = parseCIDR(e.IPv6CIDR, "ipv6Cidr", true, 44, 64); err != nil {
			return cidr, v6, fmt.Errorf("%s: %v", item, err)
		}
		if vpc.ipv6.IsValid() && (!vpc.ipv6.Contains(v6.Addr()) || v6.Bits() < vpc.ipv6.Bits()) {
			return cidr, v6, fmt.Errorf("%s: ipv6Cidr %s is not inside the IPv6 CIDR %s of VPC %s", item, v6, vpc.ipv6, e.VpcID)
		}
	}
	return cidr, v6, nil
}

// checkOverlaps refuses CIDRs that overlap another subnet of the VPC.
func (t *Topology) checkOverlaps(item, vpcID string, cidr, v6 netip.Prefix) error {
	for id, o := range t.subnets {
		if o.VpcID != vpcID {
			continue
		}
		if o.CIDR.Overlaps(cidr) {
			return fmt.Errorf("%s: cidr %s overlaps cidr %s of subnet %s in the same VPC", item, cidr, o.CIDR, id)
		}
		if v6.IsValid() && o.IPv6CIDR.IsValid() && o.IPv6CIDR.Overlaps(v6) {
			return fmt.Errorf("%s: ipv6Cidr %s overlaps ipv6Cidr %s of subnet %s in the same VPC", item, v6, o.IPv6CIDR, id)
		}
	}
	return nil
}

// subnetAccounts checks a subnet's "accounts" (nil: every account).
func subnetAccounts(item string, list *[]string) (map[string]bool, error) {
	if list == nil {
		return nil, nil
	}
	if len(*list) == 0 {
		return nil, fmt.Errorf("%s: \"accounts\" is empty; omit it to make the subnet visible to every account", item)
	}
	accounts := make(map[string]bool, len(*list))
	for _, a := range *list {
		if !accountRE.MatchString(a) {
			return nil, fmt.Errorf("%s: account %q is not a 12-digit AWS account id", item, a)
		}
		accounts[a] = true
	}
	return accounts, nil
}

func itemName(list string, i int, id string) string {
	if id == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, id)
}

// parseCIDR parses a canonical CIDR of the given family whose prefix length
// is within [minBits, maxBits].
func parseCIDR(s, field string, v6 bool, minBits, maxBits int) (netip.Prefix, error) {
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("missing %q", field)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s %q is not a CIDR block", field, s)
	}
	if p.Addr().Is6() != v6 || p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s %s is not an %s CIDR block", field, s, family)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s %s has host bits set; did you mean %s?", field, s, p.Masked())
	}
	if p.Bits() < minBits || p.Bits() > maxBits {
		return netip.Prefix{}, fmt.Errorf("%s %s: the prefix length must be between /%d and /%d", field, s, minBits, maxBits)
	}
	return p, nil
}

// jsonError turns a decoding error into one naming the line of the document.
func jsonError(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("topology: line %d: %v", lineOf(data, se.Offset), err)
	case errors.As(err, &te):
		where := te.Field
		if where == "" {
			where = "value"
		}
		return fmt.Errorf("topology: line %d: %s: expected %s, found a JSON %s", lineOf(data, te.Offset), where, te.Type, te.Value)
	case errors.Is(err, io.EOF):
		return errors.New("topology: the document is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("topology: the document is truncated")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return fmt.Errorf("topology: line %d: %s", lineOf(data, dec.InputOffset()), msg)
}

func lineOf(data []byte, offset int64) int {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	if offset < 0 {
		offset = 0
	}
	return 1 + bytes.Count(data[:offset], []byte("\n"))
}

// Resolve implements Provider: every id must name a subnet declared in the
// tenant's region and visible to the tenant's account.
func (tp *Topology) Resolve(ctx context.Context, t Tenant, ids []string) ([]Subnet, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkRequestIDs(ids); err != nil {
		return nil, err
	}
	out := make([]Subnet, len(ids))
	for i, id := range ids {
		s, ok := tp.subnets[id]
		if !ok || s.region != t.Region || (s.accounts != nil && !s.accounts[t.Account]) {
			return nil, errorf(ErrNotFound, "Subnet %s does not exist in %s.", id, t.Region)
		}
		out[i] = s.Subnet
	}
	if err := CheckClusterSubnets(out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateSecurityGroup implements Provider: it returns a fresh security group id.
func (tp *Topology) CreateSecurityGroup(ctx context.Context, t Tenant, vpcID, clusterID string) (string, error) {
	return newSecurityGroup(ctx, vpcID)
}

// DeleteSecurityGroup implements Provider: it does nothing.
func (tp *Topology) DeleteSecurityGroup(ctx context.Context, t Tenant, groupID, clusterID string) error {
	return ctx.Err()
}

// Restore implements Provider: declared subnets are not learned.
func (*Topology) Restore(Tenant, Subnet) {}

// Adopt implements Provider: declared subnets are not learned.
func (*Topology) Adopt(Tenant, []Subnet) error { return nil }

// CreateInterface implements Provider: it returns a fresh interface id; the
// caller allocates the addresses.
func (tp *Topology) CreateInterface(ctx context.Context, t Tenant, req InterfaceRequest) (Interface, error) {
	return newInterface(ctx)
}

// DeleteInterface implements Provider: it does nothing.
func (tp *Topology) DeleteInterface(ctx context.Context, t Tenant, eniID, clusterID, hsmID string) error {
	return ctx.Err()
}
