// Package network owns everything cloudhsm-local knows about the customer's
// network: which subnets exist and where they live (VPC, Availability Zone,
// CIDR), how IP addresses are allocated inside a subnet, and the shapes of
// ENI, security group, VPC and subnet ids.
//
// The rest of the server talks to a Provider and never knows which source of
// subnets is in use: the Learned provider (subnets are invented and remembered
// the first time they are named) and the Topology provider (subnets declared
// in a JSON file), which make up ENI and security group ids, or the EC2
// provider (the subnets, security groups and ENIs of a neighbouring EC2 API).
// Every provider applies the same cluster rules through CheckClusterSubnets.
package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// Tenant scopes subnets: the same subnet id in two accounts, or in two regions
// of one account, names two unrelated subnets.
type Tenant struct{ Account, Region string }

// Subnet is where a subnet lives.
type Subnet struct {
	ID, VpcID, AZ string
	CIDR          netip.Prefix // IPv4
	IPv6CIDR      netip.Prefix // zero if none
}

// Provider resolves subnets for CreateCluster and manages the cluster security
// group and the HSMs' network interfaces. Implementations are safe for
// concurrent use.
type Provider interface {
	// Resolve returns the subnets named by ids, in the same order, after checking the
	// cluster rules: all in one VPC, at most one subnet per Availability Zone, no duplicates.
	Resolve(ctx context.Context, t Tenant, ids []string) ([]Subnet, error)
	// CreateSecurityGroup returns the id of a new security group for the cluster in vpcID.
	CreateSecurityGroup(ctx context.Context, t Tenant, vpcID, clusterID string) (string, error)
	// DeleteSecurityGroup deletes groupID, the security group of clusterID,
	// wherever the provider made it. groupID may come from an earlier run
	// of the server (the cluster records persist), from another provider,
	// or be an id that never existed outside cloudhsm-local: a provider
	// deletes only a group it can tell is clusterID's, and an id it does not
	// know counts as deleted.
	DeleteSecurityGroup(ctx context.Context, t Tenant, groupID, clusterID string) error
	// Restore makes the provider remember a placement the estate kept (a
	// subnet learned in an earlier run, read back at startup). Providers
	// that do not learn subnets ignore it.
	Restore(t Tenant, s Subnet)
	// Adopt makes the provider remember the subnets of imported clusters
	// that it does not know yet, with the placement they come with, so
	// that a later CreateCluster naming one finds it where the import has
	// it; subnets it knows keep theirs. Providers whose subnets are
	// declared or looked up ignore it.
	Adopt(t Tenant, subnets []Subnet) error
	// CreateInterface makes the network interface (ENI) of a new HSM in
	// req.Subnet. Providers that manage no real interfaces return a fresh
	// id and leave the addresses to the caller (zero IP and IPv6).
	CreateInterface(ctx context.Context, t Tenant, req InterfaceRequest) (Interface, error)
	// DeleteInterface deletes eniID, the interface of HSM hsmID of cluster
	// clusterID, wherever the provider made it. Like DeleteSecurityGroup,
	// eniID may come from an earlier run or another provider: a provider
	// deletes only an interface it can tell is that HSM's, and an id it
	// does not know counts as deleted. It is safe to call again.
	DeleteInterface(ctx context.Context, t Tenant, eniID, clusterID, hsmID string) error
}

// InterfaceRequest describes the network interface of a new HSM.
type InterfaceRequest struct {
	Subnet           Subnet
	ClusterID, HsmID string
	// SecurityGroup is the cluster's security group, which the interface joins.
	SecurityGroup string
	// IP is the address the caller asked for (checked against Subnet and
	// InUse already); zero lets the provider choose.
	IP netip.Addr
	// IPv6 asks for an IPv6 address too (a DUALSTACK cluster).
	IPv6 bool
	// InUse reports the addresses of Subnet the caller knows are taken
	// (its own HSMs'); nil means none. The provider must not call it after
	// CreateInterface returns.
	InUse func(netip.Addr) bool
}

// Interface is an HSM's network interface.
type Interface struct {
	ID string
	// IP and IPv6 are the interface's addresses where the provider made a
	// real interface (EC2); zero where the caller allocates them.
	IP, IPv6 netip.Addr
}

// ErrorKind classifies a refusal; it maps to an AWS error code upstream.
type ErrorKind int

const (
	// ErrInvalid: the request is wrong (CloudHsmInvalidRequestException).
	ErrInvalid ErrorKind = iota + 1
	// ErrNotFound: a named resource does not exist
	// (CloudHsmInvalidRequestException or CloudHsmResourceNotFoundException,
	// as the caller sees fit).
	ErrNotFound
	// ErrUnavailable: the server could not do it (CloudHsmServiceException).
	ErrUnavailable
)

func (k ErrorKind) String() string {
	switch k {
	case ErrInvalid:
		return "invalid"
	case ErrNotFound:
		return "not found"
	case ErrUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// Error is what providers and the allocation functions return for a refusal.
// Message is a complete sentence meant for the API client.
type Error struct {
	Kind    ErrorKind
	Message string

	cause error // optional underlying error, for logs (see Unwrap)
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying error, if any (for example the error returned
// by a persist function).
func (e *Error) Unwrap() error { return e.cause }

// KindOf reports the ErrorKind of err if err is, or wraps, an *Error.
func KindOf(err error) (ErrorKind, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind, true
	}
	return 0, false
}

func errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// CheckClusterSubnets applies the rules every cluster's subnets must follow,
// whatever provider found them: at least one subnet, no subnet twice, all in
// one VPC, at most one subnet per Availability Zone. It returns an *Error of
// kind ErrInvalid naming the offending subnets, or nil.
func CheckClusterSubnets(subnets []Subnet) error {
	if len(subnets) == 0 {
		return errorf(ErrInvalid, "At least one subnet is required to create a cluster.")
	}
	seen := make(map[string]bool, len(subnets))
	for _, s := range subnets {
		if seen[s.ID] {
			return duplicateError(s.ID)
		}
		seen[s.ID] = true
	}
	first := subnets[0]
	for _, s := range subnets[1:] {
		if s.VpcID != first.VpcID {
			return errorf(ErrInvalid, "Subnets %s and %s are in different VPCs (%s, %s); all subnets of a cluster must be in one VPC.",
				first.ID, s.ID, first.VpcID, s.VpcID)
		}
	}
	byAZ := make(map[string]string, len(subnets))
	for _, s := range subnets {
		if other, ok := byAZ[s.AZ]; ok {
			return errorf(ErrInvalid, "Subnets %s and %s are both in Availability Zone %s; a cluster can have only one subnet per Availability Zone.",
				other, s.ID, s.AZ)
		}
		byAZ[s.AZ] = s.ID
	}
	return nil
}

func duplicateError(id string) *Error {
	return errorf(ErrInvalid, "Subnet %s is listed more than once; each subnet of a cluster must be distinct.", id)
}

// checkRequestIDs validates the subnet ids of a Resolve request before any
// lookup: at least one, each shaped like a subnet id, no duplicates.
func checkRequestIDs(ids []string) error {
	if len(ids) == 0 {
		return errorf(ErrInvalid, "At least one subnet is required to create a cluster.")
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !ValidSubnetID(id) {
			return errorf(ErrInvalid, "Subnet id %q is not valid: a subnet id is \"subnet-\" followed by 8 to 17 hexadecimal digits.", id)
		}
		if seen[id] {
			return duplicateError(id)
		}
		seen[id] = true
	}
	return nil
}

var (
	// The CloudHSM API's pattern for SubnetIds.
	subnetIDRequestRE = regexp.MustCompile(`^subnet-[0-9a-fA-F]{8,17}$`)
	// The shapes EC2 actually issues: 8 (old style) or 17 lowercase hex digits.
	subnetIDRE = regexp.MustCompile(`^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)
	vpcIDRE    = regexp.MustCompile(`^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)
	sgIDRE     = regexp.MustCompile(`^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)
	eniIDRE    = regexp.MustCompile(`^eni-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+)+-[0-9]+$`)
	azRE       = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+)+-[0-9]+[a-z]$`)
)

// ValidSubnetID reports whether id matches the CloudHSM API's pattern for a
// subnet id ("subnet-" and 8 to 17 hexadecimal digits). Providers refuse
// other ids with ErrInvalid.
func ValidSubnetID(id string) bool { return subnetIDRequestRE.MatchString(id) }

// ValidVPCID reports whether id is shaped like an EC2 VPC id
// ("vpc-" and 8 or 17 lowercase hexadecimal digits).
func ValidVPCID(id string) bool { return vpcIDRE.MatchString(id) }

// ValidSecurityGroupID reports whether id is shaped like an EC2 security group
// id ("sg-" and 8 or 17 lowercase hexadecimal digits).
func ValidSecurityGroupID(id string) bool { return sgIDRE.MatchString(id) }

// ValidENIID reports whether id is shaped like an EC2 network interface id
// ("eni-" and 8 or 17 lowercase hexadecimal digits).
func ValidENIID(id string) bool { return eniIDRE.MatchString(id) }

// RegionOfAZ returns the region of an Availability Zone name (the name minus
// its final letter) and whether az is well formed.
func RegionOfAZ(az string) (string, bool) {
	if !azRE.MatchString(az) {
		return "", false
	}
	return az[:len(az)-1], true
}

func validRegion(r string) bool { return regionRE.MatchString(r) }

// NewENIID returns a fresh network interface id: "eni-" and 17 lowercase hex digits.
func NewENIID() string { return newID("eni-") }

// NewSecurityGroupID returns a fresh security group id: "sg-" and 17 lowercase hex digits.
func NewSecurityGroupID() string { return newID("sg-") }

// NewVPCID returns a fresh VPC id: "vpc-" and 17 lowercase hex digits.
func NewVPCID() string { return newID("vpc-") }

// NewSubnetID returns a fresh subnet id: "subnet-" and 17 lowercase hex digits.
func NewSubnetID() string { return newID("subnet-") }

func newID(prefix string) string {
	var b [9]byte
	rand.Read(b[:]) // never fails (crypto/rand.Read crashes the program instead)
	return prefix + hex.EncodeToString(b[:])[:17]
}

// newInterface is the interface behaviour shared by the providers that do
// not manage real interfaces: a fresh id, the addresses left to the caller.
func newInterface(ctx context.Context) (Interface, error) {
	if err := ctx.Err(); err != nil {
		return Interface{}, err
	}
	return Interface{ID: NewENIID()}, nil
}

// newSecurityGroup is the security group behaviour shared by the providers
// that do not manage real security groups.
func newSecurityGroup(ctx context.Context, vpcID string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if vpcID == "" {
		return "", errorf(ErrInvalid, "A VPC id is required to create a security group.")
	}
	return NewSecurityGroupID(), nil
}
