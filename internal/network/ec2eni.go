package network

// The EC2 provider's HSM network interfaces: each HSM's ENI is a real EC2
// network interface in the subnet its cluster maps to the HSM's
// Availability Zone, in the cluster's security group.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
)

// ec2ENI is a network interface this provider created since it started.
type ec2ENI struct {
	Tenant
	ClusterID, HsmID string
}

// ec2ENIDescription is the description of an HSM's interface in EC2. AWS
// does not publish the text CloudHSM writes; this one names the HSM and the
// cluster, which is also how DeleteInterface recognises an interface made
// before a restart.
func ec2ENIDescription(clusterID, hsmID string) string {
	return "CloudHSM ENI for HSM " + hsmID + " of cluster " + clusterID
}

// ec2ENIItem is an item of DescribeNetworkInterfaces, or the
// networkInterface of CreateNetworkInterface's answer.
type ec2ENIItem struct {
	ID          string   `xml:"networkInterfaceId"`
	SubnetID    string   `xml:"subnetId"`
	Description string   `xml:"description"`
	PrivateIP   string   `xml:"privateIpAddress"`
	PrivateIPs  []string `xml:"privateIpAddressesSet>item>privateIpAddress"`
	IPv6        []string `xml:"ipv6AddressesSet>item>ipv6Address"`
}

type ec2DescribeNetworkInterfacesResponse struct {
	Items     []ec2ENIItem `xml:"networkInterfaceSet>item"`
	NextToken string       `xml:"nextToken"`
}

type ec2CreateNetworkInterfaceResponse struct {
	Item ec2ENIItem `xml:"networkInterface"`
}

// ec2ENIPurpose completes "cloudhsm-local uses it (--ec2-endpoint) ...".
const ec2ENIPurpose = "to create and delete the network interfaces of HSMs"

// ec2ENIAddressTries bounds the addresses tried when EC2 says the one
// chosen was taken meanwhile (by something that is not an HSM).
const ec2ENIAddressTries = 3

// CreateInterface implements Provider: it creates the HSM's interface in
// EC2, in req.Subnet and the cluster's security group, described as
// "CloudHSM ENI for HSM <hsm> of cluster <cluster>", and returns EC2's id
// and addresses.
//
// EC2 decides which addresses are taken: the interfaces it lists in the
// subnet (every user's, not only HSMs'), besides req.InUse. A requested
// address taken there is refused as the caller refuses one of its own
// (ErrInvalid). Without a requested address the lowest free one is asked
// for explicitly, rather than left to EC2: moto (and LocalStack, built on
// it) picks a random address of the whole block, which may be one AWS
// reserves or one already in use. Real EC2 still refuses a taken address
// (InvalidIPAddress.InUse), and the next free one is tried.
//
// A security group this provider knows exists only in cloudhsm-local (EC2
// was away when the cluster was created) is not sent; the interface then
// joins the VPC's default group, with a warning. When EC2 gives no usable
// answer, interfaces it may have made meanwhile are looked up by their
// description and deleted, so that a failed CreateInterface leaves nothing.
func (e *EC2) CreateInterface(ctx context.Context, t Tenant, req InterfaceRequest) (Interface, error) {
	if err := ctx.Err(); err != nil {
		return Interface{}, err
	}
	if !validRegion(t.Region) {
		return Interface{}, errorf(ErrInvalid, "Region %q is not valid.", t.Region)
	}
	taken, err := e.addressesIn(ctx, t, req.Subnet.ID)
	if err != nil {
		return Interface{}, err
	}
	inUse := func(a netip.Addr) bool { return taken[a] || (req.InUse != nil && req.InUse(a)) }
	group := e.interfaceGroup(t, req)
	for busy := 0; ; {
		ip, ip6, err := pickAddresses(req, inUse)
		if err != nil {
			return Interface{}, err
		}
		iface, err := e.createENI(ctx, t, req, group, ip, ip6)
		apiErr, refused := err.(*ec2APIError) // not wrapped: see createENI
		if !refused {
			return iface, err
		}
		switch {
		case apiErr.Code == "InvalidIPAddress.InUse" && !req.IP.IsValid() && busy < ec2ENIAddressTries-1:
			busy++
			taken[ip] = true
		case apiErr.Code == "InvalidIPAddress.InUse":
			return Interface{}, &Error{Kind: ErrInvalid, cause: err, Message: fmt.Sprintf(
				"IP address %s is already in use in subnet %s (%s).", ip, req.Subnet.ID, req.Subnet.CIDR)}
		default: // the group is unknown to EC2
			e.log.Warn("EC2 does not know the cluster security group; the HSM's network interface joins the VPC's default group",
				"endpoint", e.endpoint, "region", t.Region, "securityGroup", group, "cluster", req.ClusterID, "hsm", req.HsmID)
			group = ""
		}
	}
}

// pickAddresses returns the interface's IPv4 address (the requested one if
// any, checked, else the lowest free) and, when asked, its IPv6 address.
func pickAddresses(req InterfaceRequest, inUse func(netip.Addr) bool) (ip, ip6 netip.Addr, err error) {
	want := ""
	if req.IP.IsValid() {
		want = req.IP.String()
	}
	if ip, err = AllocateIPv4(req.Subnet, inUse, want); err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	if req.IPv6 {
		if ip6, err = AllocateIPv6(req.Subnet, inUse); err != nil {
			return netip.Addr{}, netip.Addr{}, err
		}
	}
	return ip, ip6, nil
}

// interfaceGroup returns the group the interface joins: the cluster's,
// unless this provider knows it exists only in cloudhsm-local.
func (e *EC2) interfaceGroup(t Tenant, req InterfaceRequest) string {
	if !ValidSecurityGroupID(req.SecurityGroup) {
		return ""
	}
	e.mu.Lock()
	g, known := e.groups[req.SecurityGroup]
	e.mu.Unlock()
	if known && !g.InEC2 {
		e.log.Warn("the cluster security group exists only in cloudhsm-local; the HSM's network interface joins the VPC's default group",
			"endpoint", e.endpoint, "region", t.Region, "securityGroup", req.SecurityGroup, "cluster", req.ClusterID, "hsm", req.HsmID)
		return ""
	}
	return req.SecurityGroup
}

// createENI makes one CreateNetworkInterface call. It returns an
// *ec2APIError only for the refusals CreateInterface handles (a taken
// address; an unknown group, when one was sent), and an *Error otherwise.
func (e *EC2) createENI(ctx context.Context, t Tenant, req InterfaceRequest, group string, ip, ip6 netip.Addr) (Interface, error) {
	const action = "CreateNetworkInterface"
	desc := ec2ENIDescription(req.ClusterID, req.HsmID)
	params := url.Values{
		"SubnetId":         {req.Subnet.ID},
		"Description":      {desc},
		"PrivateIpAddress": {ip.String()},
	}
	if group != "" {
		params.Set("SecurityGroupId.1", group)
	}
	if ip6.IsValid() {
		params.Set("Ipv6Addresses.1.Ipv6Address", ip6.String())
	}
	// The same request sent again (a lost answer, retried) makes no second
	// interface in an EC2 that honours ClientToken.
	sum := sha256.Sum256([]byte(params.Encode()))
	params.Set("ClientToken", "cloudhsm-local-"+hex.EncodeToString(sum[:16]))

	var resp ec2CreateNetworkInterfaceResponse
	err := e.call(ctx, t.Region, action, params, &resp)
	var apiErr *ec2APIError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return Interface{}, ctx.Err()
	case errors.As(err, &apiErr):
		switch apiErr.Code {
		case "InvalidIPAddress.InUse":
			return Interface{}, apiErr
		case "InvalidGroup.NotFound", "InvalidSecurityGroupID.NotFound":
			if group != "" {
				return Interface{}, apiErr
			}
		case "InvalidSubnetID.NotFound":
			return Interface{}, e.subnetsNotFound(t, []string{req.Subnet.ID}, "")
		case "InsufficientFreeAddressesInSubnet":
			return Interface{}, &Error{Kind: ErrInvalid, cause: err, Message: fmt.Sprintf(
				"Subnet %s (%s) has no free IP addresses (according to the EC2 endpoint %s).", req.Subnet.ID, req.Subnet.CIDR, e.endpoint)}
		}
		return Interface{}, e.failure(action, ec2ENIPurpose, err)
	default:
		// No usable answer: EC2 may have made the interface all the same.
		e.sweepInterfaces(ctx, t, req.Subnet.ID, desc)
		return Interface{}, e.failure(action, ec2ENIPurpose, err)
	}

	it := resp.Item
	got, perr := netip.ParseAddr(it.PrivateIP)
	if !ValidENIID(it.ID) || perr != nil || !req.Subnet.CIDR.Contains(got) {
		e.sweepInterfaces(ctx, t, req.Subnet.ID, desc)
		return Interface{}, &Error{Kind: ErrUnavailable, Message: fmt.Sprintf(
			"The EC2 endpoint %s answered %s with the interface id %q and the address %q, not an interface of subnet %s (%s).",
			e.endpoint, action, it.ID, it.PrivateIP, req.Subnet.ID, req.Subnet.CIDR)}
	}
	iface := Interface{ID: it.ID, IP: got}
	if ip6.IsValid() {
		for _, s := range it.IPv6 {
			if a, err := netip.ParseAddr(s); err == nil && req.Subnet.IPv6CIDR.Contains(a) {
				iface.IPv6 = a
				break
			}
		}
	}
	e.mu.Lock()
	e.enis[it.ID] = ec2ENI{Tenant: t, ClusterID: req.ClusterID, HsmID: req.HsmID}
	e.mu.Unlock()
	return iface, nil
}

// describeInterfaces lists the interfaces matching filters (name, value
// pairs), following NextToken.
func (e *EC2) describeInterfaces(ctx context.Context, t Tenant, filters ...string) ([]ec2ENIItem, error) {
	const action = "DescribeNetworkInterfaces"
	params := url.Values{}
	for i := 0; i+1 < len(filters); i += 2 {
		n := strconv.Itoa(i/2 + 1)
		params.Set("Filter."+n+".Name", filters[i])
		params.Set("Filter."+n+".Value.1", filters[i+1])
	}
	var out []ec2ENIItem
	for {
		var resp ec2DescribeNetworkInterfacesResponse
		if err := e.call(ctx, t.Region, action, params, &resp); err != nil {
			return nil, err
		}
		out = append(out, resp.Items...)
		if resp.NextToken == "" || resp.NextToken == params.Get("NextToken") {
			return out, nil
		}
		params.Set("NextToken", resp.NextToken)
	}
}

// addressesIn returns the addresses EC2's interfaces hold in subnetID.
func (e *EC2) addressesIn(ctx context.Context, t Tenant, subnetID string) (map[netip.Addr]bool, error) {
	items, err := e.describeInterfaces(ctx, t, "subnet-id", subnetID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, e.failure("DescribeNetworkInterfaces", ec2ENIPurpose, err)
	}
	taken := make(map[netip.Addr]bool)
	for _, it := range items {
		for _, s := range append(append([]string{it.PrivateIP}, it.PrivateIPs...), it.IPv6...) {
			if a, err := netip.ParseAddr(s); err == nil {
				taken[a] = true
			}
		}
	}
	return taken, nil
}

// sweepInterfaces deletes the interfaces of subnetID described desc: those
// a CreateNetworkInterface without a usable answer may have made. What it
// cannot delete is logged.
func (e *EC2) sweepInterfaces(ctx context.Context, t Tenant, subnetID, desc string) {
	items, err := e.describeInterfaces(ctx, t, "subnet-id", subnetID, "description", desc)
	if err != nil {
		e.log.Warn("EC2 did not say whether it made the HSM's network interface; if it did, nothing records it",
			"endpoint", e.endpoint, "region", t.Region, "subnet", subnetID, "description", desc, "reason", err)
		return
	}
	for _, it := range items {
		if it.Description != desc {
			continue
		}
		if err := e.call(ctx, t.Region, "DeleteNetworkInterface", url.Values{"NetworkInterfaceId": {it.ID}}, nil); err != nil {
			e.log.Warn("EC2 did not delete a network interface of an HSM that was not created; nothing records it",
				"endpoint", e.endpoint, "region", t.Region, "networkInterface", it.ID, "description", desc, "reason", err)
		}
	}
}

// DeleteInterface implements Provider: it deletes eniID through EC2 if it
// is the interface of hsmID of clusterID there, and leaves any other alone.
//
// An interface this provider created since it started is deleted only for
// the same tenant, cluster and HSM. Any other id (an interface created
// before a restart, or an id made up by another provider) is looked up
// with DescribeNetworkInterfaces and deleted only if EC2 describes it as
// that HSM's; an id EC2 does not know counts as deleted. Failures are
// returned, not logged: the caller retries and logs.
func (e *EC2) DeleteInterface(ctx context.Context, t Tenant, eniID, clusterID, hsmID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	n, known := e.enis[eniID]
	e.mu.Unlock()
	switch {
	case known && (n.Tenant != t || n.ClusterID != clusterID || n.HsmID != hsmID):
		return nil // made for another HSM
	case !known:
		ours, err := e.hsmInterfaceInEC2(ctx, t, eniID, clusterID, hsmID)
		if err != nil || !ours {
			return err
		}
	}
	const action = "DeleteNetworkInterface"
	err := e.call(ctx, t.Region, action, url.Values{"NetworkInterfaceId": {eniID}}, nil)
	var apiErr *ec2APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Code == "InvalidNetworkInterfaceID.NotFound") {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return e.failure(action, ec2ENIPurpose, err)
	}
	e.mu.Lock()
	delete(e.enis, eniID)
	e.mu.Unlock()
	return nil
}

// hsmInterfaceInEC2 reports whether EC2 holds eniID in t's region with the
// description of hsmID's interface. An interface with another description
// is logged and left alone.
func (e *EC2) hsmInterfaceInEC2(ctx context.Context, t Tenant, eniID, clusterID, hsmID string) (bool, error) {
	if !ValidENIID(eniID) {
		return false, nil
	}
	// The network-interface-id filter rather than NetworkInterfaceId.N: an
	// unknown id is then an empty answer rather than an error.
	items, err := e.describeInterfaces(ctx, t, "network-interface-id", eniID)
	var apiErr *ec2APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && (apiErr.Code == "InvalidNetworkInterfaceID.NotFound" || apiErr.Code == "InvalidNetworkInterfaceID.Malformed"):
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	default:
		return false, e.failure("DescribeNetworkInterfaces", ec2ENIPurpose, err)
	}
	want := ec2ENIDescription(clusterID, hsmID)
	for _, it := range items {
		if it.ID != eniID {
			continue
		}
		if it.Description == want {
			return true, nil
		}
		e.log.Warn("EC2 holds a network interface with the HSM's ENI id but another description; it is not deleted",
			"endpoint", e.endpoint, "region", t.Region, "networkInterface", eniID, "description", it.Description,
			"hsm", hsmID, "cluster", clusterID, "wantDescription", want)
		return false, nil
	}
	return false, nil
}
