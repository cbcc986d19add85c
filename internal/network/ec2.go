package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// EC2Config configures the EC2 provider.
type EC2Config struct {
	// Endpoint is the EC2 Query API endpoint, for example
	// http://127.0.0.1:5000 (moto_server) or http://localhost:4566
	// (LocalStack). A missing scheme means http://.
	Endpoint string
	// AccessKeyID and SecretAccessKey sign every EC2 call (SigV4, service
	// "ec2", the tenant's region). Both default to "test".
	AccessKeyID, SecretAccessKey string
	// CacheTTL is how long a subnet found by DescribeSubnets is remembered
	// (per account, region and subnet id). Default 30s; negative disables
	// the cache.
	CacheTTL time.Duration
	// Timeout bounds each attempt of an EC2 call. Default 2s.
	Timeout time.Duration
	// Attempts is the total number of attempts of an EC2 call when the
	// endpoint cannot be reached, does not answer in time or answers 5xx.
	// Default 3.
	Attempts int
	// HTTPClient sends the EC2 calls. Default: a client using
	// http.DefaultTransport (per-attempt deadlines come from Timeout).
	HTTPClient *http.Client
	// Logger receives warnings (a refused CreateSecurityGroup, a failed
	// DeleteSecurityGroup, a group or network interface left alone because
	// EC2 names it after something else). Default slog.Default().
	Logger *slog.Logger
}

// EC2 is the provider backed by an EC2 endpoint speaking the EC2 Query API
// (moto_server, LocalStack, or anything compatible): subnets are looked up
// with DescribeSubnets, cluster security groups are real EC2 security
// groups and HSMs' network interfaces real EC2 network interfaces (see
// ec2eni.go). One set of credentials is used for every tenant; the tenant's
// region selects the EC2 region (through the SigV4 credential scope) and the
// tenant's account only scopes the cache.
//
// An EC2 is safe for concurrent use.
type EC2 struct {
	endpoint    string   // as shown in messages
	target      *url.URL // nil if endpoint is unusable
	endpointErr error    // why target is nil
	creds       aws.Credentials
	ttl         time.Duration
	timeout     time.Duration
	attempts    int
	client      *http.Client
	log         *slog.Logger
	signer      *v4.Signer
	now         func() time.Time
	backoff     func(attempt int) time.Duration

	mu     sync.Mutex
	cache  map[ec2Key]ec2CachedSubnet
	groups map[string]ec2Group // security group id -> what this provider made it for
	enis   map[string]ec2ENI   // network interface id -> the HSM this provider made it for
}

var _ Provider = (*EC2)(nil)

type ec2Key struct {
	Tenant
	ID string
}

type ec2CachedSubnet struct {
	Subnet
	expires time.Time
}

// ec2Group is a security group id this provider returned since it started.
type ec2Group struct {
	Tenant
	ClusterID string
	InEC2     bool // created in EC2; false for a derived id
}

// ec2APIVersion is the EC2 Query API version spoken.
const ec2APIVersion = "2016-11-15"

// ec2MaxAnswer bounds how much of an EC2 answer is read.
const ec2MaxAnswer = 8 << 20

// ec2CacheSweep is the cache size above which expired entries are dropped.
const ec2CacheSweep = 4096

// NewEC2 returns an EC2 provider. It does not contact the endpoint; an
// unusable endpoint makes every call fail with ErrUnavailable.
func NewEC2(cfg EC2Config) *EC2 {
	e := &EC2{
		creds: aws.Credentials{
			AccessKeyID:     cfg.AccessKeyID,
			SecretAccessKey: cfg.SecretAccessKey,
			Source:          "cloudhsm-local EC2 provider",
		},
		ttl:      cfg.CacheTTL,
		timeout:  cfg.Timeout,
		attempts: cfg.Attempts,
		client:   cfg.HTTPClient,
		log:      cfg.Logger,
		signer:   v4.NewSigner(),
		now:      time.Now,
		backoff:  ec2Backoff,
		cache:    make(map[ec2Key]ec2CachedSubnet),
		groups:   make(map[string]ec2Group),
		enis:     make(map[string]ec2ENI),
	}
	if e.creds.AccessKeyID == "" {
		e.creds.AccessKeyID = "test"
	}
	if e.creds.SecretAccessKey == "" {
		e.creds.SecretAccessKey = "test"
	}
	if e.ttl == 0 {
		e.ttl = 30 * time.Second
	}
	if e.timeout <= 0 {
		e.timeout = 2 * time.Second
	}
	if e.attempts <= 0 {
		e.attempts = 3
	}
	if e.client == nil {
		e.client = &http.Client{}
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.endpoint, e.target, e.endpointErr = parseEC2Endpoint(cfg.Endpoint)
	return e
}

func parseEC2Endpoint(raw string) (string, *url.URL, error) {
	ep := strings.TrimSpace(raw)
	if ep == "" {
		return "(none)", nil, errors.New("no EC2 endpoint is configured")
	}
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	ep = strings.TrimRight(ep, "/")
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ep, nil, fmt.Errorf("%q is not an http:// or https:// URL", raw)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return ep, u, nil
}

func ec2Backoff(attempt int) time.Duration {
	return min(time.Duration(attempt)*100*time.Millisecond, time.Second)
}

// Endpoint returns the EC2 endpoint in use, as it appears in messages.
func (e *EC2) Endpoint() string { return e.endpoint }

// Resolve implements Provider: subnets not in the cache are looked up with
// one DescribeSubnets call in the tenant's region.
func (e *EC2) Resolve(ctx context.Context, t Tenant, ids []string) ([]Subnet, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkRequestIDs(ids); err != nil {
		return nil, err
	}
	if !validRegion(t.Region) {
		return nil, errorf(ErrInvalid, "Region %q is not valid.", t.Region)
	}
	out := make([]Subnet, len(ids))
	var missing []string
	var missingAt []int
	now := e.now()
	e.mu.Lock()
	for i, id := range ids {
		c, ok := e.cache[ec2Key{t, id}]
		if ok && now.Before(c.expires) {
			out[i] = c.Subnet
			continue
		}
		missing = append(missing, id)
		missingAt = append(missingAt, i)
	}
	e.mu.Unlock()

	if len(missing) > 0 {
		found, err := e.describeSubnets(ctx, t, missing)
		if err != nil {
			return nil, err
		}
		expires := e.now().Add(e.ttl)
		e.mu.Lock()
		if len(e.cache) > ec2CacheSweep {
			for k, c := range e.cache {
				if !now.Before(c.expires) {
					delete(e.cache, k)
				}
			}
		}
		for j, s := range found {
			out[missingAt[j]] = s
			if e.ttl > 0 {
				e.cache[ec2Key{t, missing[j]}] = ec2CachedSubnet{Subnet: s, expires: expires}
			}
		}
		e.mu.Unlock()
	}
	if err := CheckClusterSubnets(out); err != nil {
		return nil, err
	}
	return out, nil
}

// The parts of DescribeSubnetsResponse that matter.
type ec2DescribeSubnetsResponse struct {
	Subnets []ec2SubnetItem `xml:"subnetSet>item"`
}

type ec2SubnetItem struct {
	SubnetID         string `xml:"subnetId"`
	VpcID            string `xml:"vpcId"`
	AvailabilityZone string `xml:"availabilityZone"`
	CidrBlock        string `xml:"cidrBlock"`
	IPv6             []struct {
		CidrBlock string `xml:"ipv6CidrBlock"`
		State     string `xml:"ipv6CidrBlockState>state"`
	} `xml:"ipv6CidrBlockAssociationSet>item"`
}

var ec2SubnetIDInTextRE = regexp.MustCompile(`subnet-[0-9a-fA-F]+`)

// describeSubnets looks ids up and returns them in the same order.
func (e *EC2) describeSubnets(ctx context.Context, t Tenant, ids []string) ([]Subnet, error) {
	const action = "DescribeSubnets"
	params := url.Values{}
	for i, id := range ids {
		params.Set("SubnetId."+strconv.Itoa(i+1), id)
	}
	var resp ec2DescribeSubnetsResponse
	err := e.call(ctx, t.Region, action, params, &resp)
	var apiErr *ec2APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && apiErr.Code == "InvalidSubnetID.NotFound":
		return nil, e.subnetsNotFound(t, ids, apiErr.Message)
	case errors.As(err, &apiErr) && (apiErr.Code == "InvalidSubnetID.Malformed" || apiErr.Code == "InvalidSubnetId"):
		return nil, &Error{Kind: ErrInvalid, cause: err, Message: fmt.Sprintf(
			"The EC2 endpoint %s refused the subnet ids %s: %s", e.endpoint, strings.Join(ids, ", "), sentence(apiErr.Message))}
	default:
		return nil, e.failure(action, "to look up subnets", err)
	}

	byID := make(map[string]Subnet, len(resp.Subnets))
	for _, item := range resp.Subnets {
		s, err := item.subnet()
		if err != nil {
			return nil, &Error{Kind: ErrUnavailable, cause: err, Message: fmt.Sprintf(
				"The EC2 endpoint %s answered %s with an unusable subnet: %v. cloudhsm-local uses it (--ec2-endpoint) to look up subnets.",
				e.endpoint, action, err)}
		}
		byID[strings.ToLower(s.ID)] = s
	}
	out := make([]Subnet, len(ids))
	var absent []string
	for i, id := range ids {
		s, ok := byID[strings.ToLower(id)]
		if !ok {
			absent = append(absent, id)
			continue
		}
		out[i] = s
	}
	if len(absent) > 0 {
		return nil, e.subnetsNotFound(t, absent, "")
	}
	return out, nil
}

func (item ec2SubnetItem) subnet() (Subnet, error) {
	s := Subnet{ID: item.SubnetID, VpcID: item.VpcID, AZ: item.AvailabilityZone}
	if s.ID == "" {
		return Subnet{}, errors.New("a subnet without subnetId")
	}
	if s.VpcID == "" {
		return Subnet{}, fmt.Errorf("subnet %s has no vpcId", s.ID)
	}
	if s.AZ == "" {
		return Subnet{}, fmt.Errorf("subnet %s has no availabilityZone", s.ID)
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(item.CidrBlock))
	if err != nil || !p.Addr().Is4() {
		return Subnet{}, fmt.Errorf("subnet %s has cidrBlock %q, not an IPv4 CIDR block", s.ID, item.CidrBlock)
	}
	s.CIDR = p.Masked()
	for _, a := range item.IPv6 {
		if !ipv6Associated(a.State) {
			continue
		}
		p, err := netip.ParsePrefix(strings.TrimSpace(a.CidrBlock))
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return Subnet{}, fmt.Errorf("subnet %s has ipv6CidrBlock %q, not an IPv6 CIDR block", s.ID, a.CidrBlock)
		}
		s.IPv6CIDR = p.Masked()
		break
	}
	return s, nil
}

// ipv6Associated reports whether an ipv6CidrBlockState/state value means the
// block is in use. moto 5 writes the state as a Python dict,
// "{'State': 'associated'}" (and lists only associated blocks).
func ipv6Associated(state string) bool {
	state = strings.TrimSpace(state)
	return state == "associated" || strings.Contains(state, "'associated'")
}

// subnetsNotFound builds the refusal for subnets EC2 does not know. ec2Msg,
// if not empty, is EC2's own message; the subnets it names (among ids) are
// the ones reported.
func (e *EC2) subnetsNotFound(t Tenant, ids []string, ec2Msg string) *Error {
	named := ids
	if ec2Msg != "" {
		requested := make(map[string]string, len(ids))
		for _, id := range ids {
			requested[strings.ToLower(id)] = id
		}
		var inMsg []string
		seen := map[string]bool{}
		for _, m := range ec2SubnetIDInTextRE.FindAllString(ec2Msg, -1) {
			if id, ok := requested[strings.ToLower(m)]; ok && !seen[id] {
				seen[id] = true
				inMsg = append(inMsg, id)
			}
		}
		if len(inMsg) > 0 {
			named = inMsg
		}
	}
	where := fmt.Sprintf("in %s (according to the EC2 endpoint %s)", t.Region, e.endpoint)
	if len(named) == 1 {
		return errorf(ErrNotFound, "Subnet %s does not exist %s.", named[0], where)
	}
	return errorf(ErrNotFound, "Subnets %s do not exist %s.", strings.Join(named, ", "), where)
}

// failure turns an EC2 call error into an *Error of kind ErrUnavailable.
// purpose completes "cloudhsm-local uses it (--ec2-endpoint) ...".
func (e *EC2) failure(action, purpose string, err error) *Error {
	var apiErr *ec2APIError
	if errors.As(err, &apiErr) {
		return &Error{Kind: ErrUnavailable, cause: err, Message: fmt.Sprintf(
			"The EC2 endpoint %s refused %s: %s: %s cloudhsm-local uses it (--ec2-endpoint) %s.",
			e.endpoint, action, apiErr.Code, sentence(apiErr.Message), purpose)}
	}
	return &Error{Kind: ErrUnavailable, cause: err, Message: fmt.Sprintf(
		"The EC2 endpoint %s did not answer %s: %v. cloudhsm-local uses it (--ec2-endpoint) %s.",
		e.endpoint, action, err, purpose)}
}

// sentence returns s ending with a period.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "(no message)."
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// ec2GroupName and ec2GroupDescription are what CloudHSM names a cluster's
// security group.
func ec2GroupName(clusterID string) string { return "cloudhsm-cluster-" + clusterID + "-sg" }

func ec2GroupDescription(clusterID string) string {
	return "Security group for CloudHSM cluster " + clusterID
}

// CreateSecurityGroup implements Provider: it creates the security group
// "cloudhsm-cluster-<clusterID>-sg" in vpcID through EC2, allowing TCP
// 2223-2225 between its members as CloudHSM does. If EC2 refuses or cannot
// be reached, it logs a warning and returns a derived id instead: a cluster
// never fails for want of a security group.
func (e *EC2) CreateSecurityGroup(ctx context.Context, t Tenant, vpcID, clusterID string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if vpcID == "" {
		return "", errorf(ErrInvalid, "A VPC id is required to create a security group.")
	}
	id, err := e.createGroup(ctx, t, vpcID, clusterID)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		derived := NewSecurityGroupID()
		e.mu.Lock()
		e.groups[derived] = ec2Group{Tenant: t, ClusterID: clusterID}
		e.mu.Unlock()
		e.log.Warn("EC2 did not create the cluster security group; using a derived id that exists only in cloudhsm-local",
			"endpoint", e.endpoint, "region", t.Region, "vpc", vpcID, "cluster", clusterID,
			"securityGroup", derived, "reason", err)
		return derived, nil
	}
	e.mu.Lock()
	e.groups[id] = ec2Group{Tenant: t, ClusterID: clusterID, InEC2: true}
	e.mu.Unlock()

	ingress := url.Values{
		"GroupId":                              {id},
		"IpPermissions.1.IpProtocol":           {"tcp"},
		"IpPermissions.1.FromPort":             {"2223"},
		"IpPermissions.1.ToPort":               {"2225"},
		"IpPermissions.1.Groups.1.GroupId":     {id},
		"IpPermissions.1.Groups.1.Description": {"CloudHSM cluster " + clusterID},
	}
	// CloudHSM sets both: inbound from, and outbound to, the group itself.
	for _, action := range []string{"AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress"} {
		if err := e.call(ctx, t.Region, action, ingress, nil); err != nil {
			var apiErr *ec2APIError
			if !errors.As(err, &apiErr) || apiErr.Code != "InvalidPermission.Duplicate" {
				e.log.Warn("EC2 did not add a CloudHSM rule (TCP 2223-2225) to the cluster security group",
					"action", action, "endpoint", e.endpoint, "region", t.Region, "securityGroup", id, "cluster", clusterID, "reason", err)
			}
		}
	}
	return id, nil
}

type ec2CreateSecurityGroupResponse struct {
	GroupID string `xml:"groupId"`
}

type ec2DescribeSecurityGroupsResponse struct {
	Groups []struct {
		GroupID   string `xml:"groupId"`
		GroupName string `xml:"groupName"`
		VpcID     string `xml:"vpcId"`
	} `xml:"securityGroupInfo>item"`
}

func (e *EC2) createGroup(ctx context.Context, t Tenant, vpcID, clusterID string) (string, error) {
	const action = "CreateSecurityGroup"
	name := ec2GroupName(clusterID)
	var resp ec2CreateSecurityGroupResponse
	err := e.call(ctx, t.Region, action, url.Values{
		"GroupName":        {name},
		"GroupDescription": {ec2GroupDescription(clusterID)},
		"VpcId":            {vpcID},
	}, &resp)
	var apiErr *ec2APIError
	if errors.As(err, &apiErr) && apiErr.Code == "InvalidGroup.Duplicate" {
		// An earlier attempt (or an earlier run) already created it: the
		// group named after this cluster is this cluster's group.
		return e.findGroup(ctx, t, vpcID, name)
	}
	if err != nil {
		return "", e.failure(action, "to create cluster security groups", err)
	}
	if !ValidSecurityGroupID(resp.GroupID) {
		return "", &Error{Kind: ErrUnavailable, Message: fmt.Sprintf(
			"The EC2 endpoint %s answered %s with the group id %q, which is not a security group id.", e.endpoint, action, resp.GroupID)}
	}
	return resp.GroupID, nil
}

func (e *EC2) findGroup(ctx context.Context, t Tenant, vpcID, name string) (string, error) {
	const action = "DescribeSecurityGroups"
	var resp ec2DescribeSecurityGroupsResponse
	err := e.call(ctx, t.Region, action, url.Values{
		"Filter.1.Name":    {"group-name"},
		"Filter.1.Value.1": {name},
		"Filter.2.Name":    {"vpc-id"},
		"Filter.2.Value.1": {vpcID},
	}, &resp)
	if err != nil {
		return "", e.failure(action, "to create cluster security groups", err)
	}
	for _, g := range resp.Groups {
		if g.GroupName == name && g.VpcID == vpcID && ValidSecurityGroupID(g.GroupID) {
			return g.GroupID, nil
		}
	}
	return "", &Error{Kind: ErrUnavailable, Message: fmt.Sprintf(
		"The EC2 endpoint %s says security group %s already exists in %s but does not list it.", e.endpoint, name, vpcID)}
}

// DeleteSecurityGroup implements Provider: it deletes groupID through EC2
// if it is clusterID's group there, and leaves any other group alone.
//
// A group this provider returned since it started is deleted only if it was
// created in EC2 for the same tenant and cluster; a derived id is never sent
// to EC2. Any other id (a group created before a restart, a derived or
// made-up id from an earlier run or another provider) is looked up with
// DescribeSecurityGroups in the tenant's region and deleted only if EC2
// names it "cloudhsm-cluster-<clusterID>-sg". A group EC2 does not know
// counts as deleted. Failures are logged and returned.
func (e *EC2) DeleteSecurityGroup(ctx context.Context, t Tenant, groupID, clusterID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	g, known := e.groups[groupID]
	e.mu.Unlock()
	switch {
	case known && (g.Tenant != t || g.ClusterID != clusterID):
		return nil // made for another tenant or cluster
	case known && !g.InEC2:
		e.forgetGroup(groupID)
		return nil
	case !known:
		ours, err := e.clusterGroupInEC2(ctx, t, groupID, clusterID)
		if err != nil {
			e.log.Warn("EC2 did not say whether it holds the cluster security group; it is not deleted",
				"endpoint", e.endpoint, "region", t.Region, "securityGroup", groupID, "cluster", clusterID, "reason", err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if !ours {
			return nil
		}
	}
	const action = "DeleteSecurityGroup"
	err := e.call(ctx, t.Region, action, url.Values{"GroupId": {groupID}}, nil)
	var apiErr *ec2APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Code == "InvalidGroup.NotFound") {
		e.log.Warn("EC2 did not delete the cluster security group",
			"endpoint", e.endpoint, "region", t.Region, "securityGroup", groupID, "cluster", clusterID, "reason", err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return e.failure(action, "to delete cluster security groups", err)
	}
	e.forgetGroup(groupID)
	return nil
}

func (e *EC2) forgetGroup(groupID string) {
	e.mu.Lock()
	delete(e.groups, groupID)
	e.mu.Unlock()
}

// clusterGroupInEC2 reports whether EC2 holds groupID in t's region under
// clusterID's group name. An id EC2 does not know, or does not accept as a
// group id, is not the cluster's group (it may be a derived id, or already
// deleted). A group with another name is logged and left alone.
func (e *EC2) clusterGroupInEC2(ctx context.Context, t Tenant, groupID, clusterID string) (bool, error) {
	if !ValidSecurityGroupID(groupID) {
		return false, nil
	}
	const action = "DescribeSecurityGroups"
	var resp ec2DescribeSecurityGroupsResponse
	// The group-id filter rather than GroupId.N: an unknown id is then an
	// empty answer rather than an error.
	err := e.call(ctx, t.Region, action, url.Values{
		"Filter.1.Name":    {"group-id"},
		"Filter.1.Value.1": {groupID},
	}, &resp)
	var apiErr *ec2APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && (apiErr.Code == "InvalidGroup.NotFound" || apiErr.Code == "InvalidGroupId.Malformed"):
		return false, nil
	default:
		return false, e.failure(action, "to delete cluster security groups", err)
	}
	want := ec2GroupName(clusterID)
	for _, g := range resp.Groups {
		if g.GroupID != groupID {
			continue
		}
		if g.GroupName == want {
			return true, nil
		}
		e.log.Warn("EC2 holds a security group with the cluster's security group id but another name; it is not deleted",
			"endpoint", e.endpoint, "region", t.Region, "securityGroup", groupID, "groupName", g.GroupName,
			"cluster", clusterID, "wantName", want)
		return false, nil
	}
	return false, nil
}

// ec2APIError is an error document EC2 answered with.
type ec2APIError struct {
	Status        int
	Code, Message string
}

func (a *ec2APIError) Error() string {
	return fmt.Sprintf("HTTP %d: %s: %s", a.Status, a.Code, a.Message)
}

// ec2ErrorDocument is EC2's error answer,
// <Response><Errors><Error><Code/><Message/></Error></Errors></Response>, or
// the <ErrorResponse><Error/></ErrorResponse> shape some emulators use.
type ec2ErrorDocument struct {
	XMLName xml.Name
	Errors  []ec2ErrorItem `xml:"Errors>Error"`
	Error   []ec2ErrorItem `xml:"Error"`
}

type ec2ErrorItem struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func parseEC2Error(status int, body []byte) (*ec2APIError, bool) {
	var doc ec2ErrorDocument
	if xml.Unmarshal(body, &doc) != nil {
		return nil, false
	}
	items := append(doc.Errors, doc.Error...)
	if len(items) == 0 || items[0].Code == "" {
		return nil, false
	}
	return &ec2APIError{Status: status, Code: items[0].Code, Message: items[0].Message}, true
}

// ec2Throttled are the error codes of a throttled call (EC2's own and the
// generic AWS ones), retried like a 5xx.
var ec2Throttled = map[string]bool{
	"RequestLimitExceeded": true, "Throttling": true, "ThrottlingException": true, "RequestThrottled": true,
}

// ec2RetryableError is a failed attempt worth repeating.
type ec2RetryableError struct{ err error }

func (r *ec2RetryableError) Error() string { return r.err.Error() }
func (r *ec2RetryableError) Unwrap() error { return r.err }

// call performs action in region and decodes the answer into out (which may
// be nil). It makes up to e.attempts attempts, each bounded by e.timeout,
// while the endpoint cannot be reached, does not answer in time or answers
// 5xx. It returns an *ec2APIError when EC2 answered with an error document
// (4xx), or another error saying why no usable answer came.
func (e *EC2) call(ctx context.Context, region, action string, params url.Values, out any) error {
	if e.target == nil {
		return e.endpointErr
	}
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("Action", action)
	form.Set("Version", ec2APIVersion)
	body := form.Encode()

	for attempt := 1; ; attempt++ {
		err := e.attempt(ctx, region, action, body, out)
		var retry *ec2RetryableError
		if !errors.As(err, &retry) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= e.attempts {
			if e.attempts > 1 {
				return fmt.Errorf("%w (%d attempts)", retry.err, attempt)
			}
			return retry.err
		}
		timer := time.NewTimer(e.backoff(attempt))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

func (e *EC2) attempt(ctx context.Context, region, action, body string, out any) error {
	actx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, e.target.String(), strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := e.signer.SignHTTP(actx, e.creds, req, hex.EncodeToString(sum[:]), "ec2", region, e.now().UTC()); err != nil {
		return fmt.Errorf("signing the request: %w", err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return e.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, ec2MaxAnswer))
	if err != nil {
		return e.transportError(ctx, actx, err)
	}

	if resp.StatusCode >= 500 {
		if apiErr, ok := parseEC2Error(resp.StatusCode, data); ok {
			// Not an *ec2APIError once the attempts are spent: EC2 did
			// not refuse, it failed.
			return &ec2RetryableError{errors.New(apiErr.Error())}
		}
		return &ec2RetryableError{fmt.Errorf("HTTP %s", resp.Status)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if apiErr, ok := parseEC2Error(resp.StatusCode, data); ok {
			if ec2Throttled[apiErr.Code] {
				// Throttling is retried whatever its status, as the SDKs do.
				return &ec2RetryableError{errors.New(apiErr.Error())}
			}
			return apiErr
		}
		return fmt.Errorf("HTTP %s with an answer that is not an EC2 error document", resp.Status)
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("its answer is not XML (%v)", err)
	}
	if want := action + "Response"; root.XMLName.Local != want {
		return fmt.Errorf("its answer is <%s>, not <%s>", root.XMLName.Local, want)
	}
	if out != nil {
		if err := xml.Unmarshal(data, out); err != nil {
			return fmt.Errorf("its answer could not be read (%v)", err)
		}
	}
	return nil
}

// transportError describes a failed exchange; all are retryable unless the
// caller's own context ended.
func (e *EC2) transportError(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return &ec2RetryableError{fmt.Errorf("no answer within %s", e.timeout)}
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return &ec2RetryableError{err}
}

// Restore implements Provider: EC2 owns its subnets.
func (*EC2) Restore(Tenant, Subnet) {}

// Adopt implements Provider: EC2 owns its subnets.
func (*EC2) Adopt(Tenant, []Subnet) error { return nil }
