package network

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// testENI is what DescribeNetworkInterfaces says of an interface.
type testENI struct {
	ID          string   `xml:"networkInterfaceId"`
	SubnetID    string   `xml:"subnetId"`
	Description string   `xml:"description"`
	PrivateIP   string   `xml:"privateIpAddress"`
	IPv6        []string `xml:"ipv6AddressesSet>item>ipv6Address"`
	Groups      []string `xml:"groupSet>item>groupId"`
}

// describeENIs lists the interfaces of a subnet through the EC2 Query API.
func describeENIs(t *testing.T, e *EC2, region, subnetID string) map[string]testENI {
	t.Helper()
	var resp struct {
		Items []testENI `xml:"networkInterfaceSet>item"`
	}
	err := e.call(context.Background(), region, "DescribeNetworkInterfaces",
		url.Values{"Filter.1.Name": {"subnet-id"}, "Filter.1.Value.1": {subnetID}}, &resp)
	if err != nil {
		t.Fatalf("DescribeNetworkInterfaces in %s: %v", subnetID, err)
	}
	out := map[string]testENI{}
	for _, it := range resp.Items {
		out[it.ID] = it
	}
	return out
}

func TestEC2InterfacesMoto(t *testing.T) {
	moto := startMoto(t)
	logger, logs := testLogger()
	e := NewEC2(EC2Config{Endpoint: moto.URL, Logger: logger, Timeout: time.Second, Attempts: 2})
	const region, cluster = "us-east-1", "cluster-abcdefghijk"
	ctx := context.Background()
	vpc := createVPC(t, e, region, "10.50.0.0/16", true)
	sub := createSubnet(t, e, region, vpc.ID, "us-east-1a", "10.50.1.0/24", netip.PrefixFrom(vpc.IPv6.Addr(), 64).String())
	resolved, err := e.Resolve(ctx, tenantA, []string{sub})
	if err != nil {
		t.Fatal(err)
	}
	sn := resolved[0]
	sg, err := e.CreateSecurityGroup(ctx, tenantA, vpc.ID, cluster)
	if err != nil {
		t.Fatal(err)
	}
	request := func(hsm, ip string, ipv6 bool, inUse ...string) InterfaceRequest {
		r := InterfaceRequest{Subnet: sn, ClusterID: cluster, HsmID: hsm, SecurityGroup: sg, IPv6: ipv6}
		if ip != "" {
			r.IP = netip.MustParseAddr(ip)
		}
		r.InUse = func(a netip.Addr) bool {
			for _, u := range inUse {
				if a.String() == u {
					return true
				}
			}
			return false
		}
		return r
	}
	create := func(r InterfaceRequest, wantIP string) Interface {
		t.Helper()
		got, err := e.CreateInterface(ctx, tenantA, r)
		if err != nil {
			t.Fatalf("CreateInterface(%s, %v): %v", r.HsmID, r.IP, err)
		}
		if !ValidENIID(got.ID) || got.IP.String() != wantIP {
			t.Fatalf("CreateInterface(%s) = %+v, want an eni- id and %s", r.HsmID, got, wantIP)
		}
		eni, ok := describeENIs(t, e, region, sub)[got.ID]
		switch {
		case !ok:
			t.Fatalf("DescribeNetworkInterfaces does not list %s", got.ID)
		case eni.SubnetID != sub || eni.PrivateIP != wantIP || len(eni.Groups) != 1 || eni.Groups[0] != sg:
			t.Errorf("EC2's %s = %+v, want subnet %s, address %s, group %s", got.ID, eni, sub, wantIP, sg)
		case eni.Description != "CloudHSM ENI for HSM "+r.HsmID+" of cluster "+cluster:
			t.Errorf("EC2's %s is described %q", got.ID, eni.Description)
		}
		return got
	}

	// The lowest free address, as EC2 sees the subnet.
	a := create(request("hsm-aaaaaaaaaaa", "", false), "10.50.1.4")
	var other struct {
		ID string `xml:"networkInterface>networkInterfaceId"`
	}
	if err := e.call(ctx, region, "CreateNetworkInterface", url.Values{"SubnetId": {sub}, "PrivateIpAddress": {"10.50.1.5"}}, &other); err != nil {
		t.Fatal(err)
	}
	// .5 is another user's in EC2, .6 the caller's own.
	b := create(request("hsm-bbbbbbbbbbb", "", false, "10.50.1.6"), "10.50.1.7")
	create(request("hsm-ccccccccccc", "10.50.1.20", false), "10.50.1.20")

	// A requested address taken in EC2 is refused; nothing is created.
	before := len(describeENIs(t, e, region, sub))
	for _, ip := range []string{"10.50.1.20", "10.50.1.5"} {
		_, err := e.CreateInterface(ctx, tenantA, request("hsm-ddddddddddd", ip, false))
		wantKind(t, err, ErrInvalid, "IP address "+ip+" is already in use in subnet "+sub)
	}
	if n := len(describeENIs(t, e, region, sub)); n != before {
		t.Errorf("%d interfaces after the refusals, want %d", n, before)
	}

	// IPv6, in the subnet's block.
	d, err := e.CreateInterface(ctx, tenantA, request("hsm-eeeeeeeeeee", "", true))
	if err != nil {
		t.Fatal(err)
	}
	if want := sn.IPv6CIDR.Addr().Next().Next().Next().Next(); d.IPv6 != want {
		t.Errorf("IPv6 = %v, want %v", d.IPv6, want)
	}
	if eni := describeENIs(t, e, region, sub)[d.ID]; len(eni.IPv6) != 1 || eni.IPv6[0] != d.IPv6.String() {
		t.Errorf("EC2's %s has IPv6 %v, want %v", d.ID, eni.IPv6, d.IPv6)
	}

	// Deleted; deleting again, or for another HSM, changes nothing.
	if err := e.DeleteInterface(ctx, tenantA, a.ID, cluster, "hsm-aaaaaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteInterface(ctx, tenantA, a.ID, cluster, "hsm-aaaaaaaaaaa"); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if err := e.DeleteInterface(ctx, tenantA, b.ID, cluster, "hsm-zzzzzzzzzzz"); err != nil {
		t.Fatal(err)
	}
	enis := describeENIs(t, e, region, sub)
	if _, ok := enis[a.ID]; ok {
		t.Errorf("%s is still in EC2 after DeleteInterface", a.ID)
	}
	if _, ok := enis[b.ID]; !ok {
		t.Errorf("%s was deleted for another HSM", b.ID)
	}

	// A provider that did not create them (a restart) deletes an HSM's
	// interface, and not another user's.
	e2 := NewEC2(EC2Config{Endpoint: moto.URL, Logger: logger})
	if err := e2.DeleteInterface(ctx, tenantA, b.ID, cluster, "hsm-bbbbbbbbbbb"); err != nil {
		t.Fatal(err)
	}
	if err := e2.DeleteInterface(ctx, tenantA, other.ID, cluster, "hsm-bbbbbbbbbbb"); err != nil {
		t.Fatal(err)
	}
	if err := e2.DeleteInterface(ctx, tenantA, NewENIID(), cluster, "hsm-bbbbbbbbbbb"); err != nil {
		t.Fatalf("a made-up id: %v", err)
	}
	enis = describeENIs(t, e, region, sub)
	if _, ok := enis[b.ID]; ok {
		t.Errorf("%s is still in EC2 after a restarted provider deleted it", b.ID)
	}
	if _, ok := enis[other.ID]; !ok {
		t.Errorf("another user's interface %s was deleted", other.ID)
	}
	if !strings.Contains(logs.String(), "another description") {
		t.Errorf("the interface left alone is not logged:\n%s", logs)
	}

	moto.Stop()
	_, err = e.CreateInterface(ctx, tenantA, request("hsm-fffffffffff", "", false))
	wantKind(t, err, ErrUnavailable, "The EC2 endpoint "+moto.URL+" did not answer DescribeNetworkInterfaces", "--ec2-endpoint")
	err = e.DeleteInterface(ctx, tenantA, d.ID, cluster, "hsm-eeeeeeeeeee")
	wantKind(t, err, ErrUnavailable, moto.URL, "DeleteNetworkInterface")
}

// scriptedENIs is a fake EC2 for CreateNetworkInterface: answer decides
// each CreateNetworkInterface (nil: success, echoing the address asked).
type scriptedENIs struct {
	mu      sync.Mutex
	creates []url.Values
	deleted []string
	listed  string // a networkInterfaceSet item for DescribeNetworkInterfaces with a description filter
}

func (s *scriptedENIs) handler(answer func(n int, form url.Values) (status int, body string)) func(http.ResponseWriter, *http.Request, url.Values) {
	return func(w http.ResponseWriter, r *http.Request, form url.Values) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch form.Get("Action") {
		case "DescribeNetworkInterfaces":
			items := ""
			if form.Get("Filter.2.Name") == "description" {
				items = s.listed
			}
			fmt.Fprintf(w, `<DescribeNetworkInterfacesResponse><networkInterfaceSet>%s</networkInterfaceSet></DescribeNetworkInterfacesResponse>`, items)
		case "CreateNetworkInterface":
			s.creates = append(s.creates, form)
			if status, body := answer(len(s.creates), form); status != 0 {
				w.WriteHeader(status)
				io.WriteString(w, body)
				return
			}
			fmt.Fprintf(w, `<CreateNetworkInterfaceResponse><networkInterface><networkInterfaceId>eni-0123456789abcdef%d</networkInterfaceId>`+
				`<privateIpAddress>%s</privateIpAddress></networkInterface></CreateNetworkInterfaceResponse>`, len(s.creates)%10, form.Get("PrivateIpAddress"))
		case "DeleteNetworkInterface":
			s.deleted = append(s.deleted, form.Get("NetworkInterfaceId"))
			io.WriteString(w, `<DeleteNetworkInterfaceResponse><return>true</return></DeleteNetworkInterfaceResponse>`)
		default:
			w.WriteHeader(400)
			io.WriteString(w, `<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>no</Message></Error></Errors></Response>`)
		}
	}
}

func ec2Refusal(code string) (int, string) {
	return 400, `<Response><Errors><Error><Code>` + code + `</Code><Message>refused</Message></Error></Errors></Response>`
}

var fakeENISubnet = Subnet{ID: "subnet-0ab1c79de3e0a0a01", VpcID: "vpc-0ee975135d0e0a0a0", AZ: "eu-west-2a", CIDR: netip.MustParsePrefix("10.0.1.0/24")}

func TestEC2CreateInterfaceRefusals(t *testing.T) {
	const sg = "sg-0123456789abcdef0"
	req := InterfaceRequest{Subnet: fakeENISubnet, ClusterID: "cluster-abcdefghijk", HsmID: "hsm-abcdefghijk", SecurityGroup: sg}
	tenant := Tenant{Account: "111111111111", Region: "eu-west-2"}
	cases := []struct {
		name   string
		req    func(InterfaceRequest) InterfaceRequest
		answer func(n int, form url.Values) (int, string)
		// wantIPs are the addresses asked in turn, wantGroups whether each
		// call named the group; wantErr is empty for a success.
		wantIPs    []string
		wantGroups []bool
		wantErr    string
		wantLog    string
	}{
		{
			name: "taken meanwhile: the next address",
			answer: func(n int, _ url.Values) (int, string) {
				if n < 3 {
					return ec2Refusal("InvalidIPAddress.InUse")
				}
				return 0, ""
			},
			wantIPs: []string{"10.0.1.4", "10.0.1.5", "10.0.1.6"}, wantGroups: []bool{true, true, true},
		},
		{
			name:    "taken again and again",
			answer:  func(int, url.Values) (int, string) { return ec2Refusal("InvalidIPAddress.InUse") },
			wantIPs: []string{"10.0.1.4", "10.0.1.5", "10.0.1.6"}, wantGroups: []bool{true, true, true},
			wantErr: "IP address 10.0.1.6 is already in use in subnet subnet-0ab1c79de3e0a0a01",
		},
		{
			name:    "requested address taken",
			req:     func(r InterfaceRequest) InterfaceRequest { r.IP = netip.MustParseAddr("10.0.1.9"); return r },
			answer:  func(int, url.Values) (int, string) { return ec2Refusal("InvalidIPAddress.InUse") },
			wantIPs: []string{"10.0.1.9"}, wantGroups: []bool{true},
			wantErr: "IP address 10.0.1.9 is already in use in subnet subnet-0ab1c79de3e0a0a01",
		},
		{
			name: "group unknown to EC2: the default group",
			answer: func(_ int, form url.Values) (int, string) {
				if form.Get("SecurityGroupId.1") != "" {
					return ec2Refusal("InvalidGroup.NotFound")
				}
				return 0, ""
			},
			wantIPs: []string{"10.0.1.4", "10.0.1.4"}, wantGroups: []bool{true, false},
			wantLog: "joins the VPC's default group",
		},
		{
			name:    "subnet unknown to EC2",
			answer:  func(int, url.Values) (int, string) { return ec2Refusal("InvalidSubnetID.NotFound") },
			wantIPs: []string{"10.0.1.4"}, wantGroups: []bool{true},
			wantErr: "Subnet subnet-0ab1c79de3e0a0a01 does not exist in eu-west-2",
		},
		{
			name:    "other refusal",
			answer:  func(int, url.Values) (int, string) { return ec2Refusal("UnauthorizedOperation") },
			wantIPs: []string{"10.0.1.4"}, wantGroups: []bool{true},
			wantErr: "refused CreateNetworkInterface: UnauthorizedOperation",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s scriptedENIs
			f := newFakeEC2(t, s.handler(tc.answer))
			logger, logs := testLogger()
			e := NewEC2(EC2Config{Endpoint: f.URL, Logger: logger})
			r := req
			if tc.req != nil {
				r = tc.req(r)
			}
			got, err := e.CreateInterface(context.Background(), tenant, r)
			if tc.wantErr == "" {
				if err != nil || got.IP.String() != tc.wantIPs[len(tc.wantIPs)-1] || !ValidENIID(got.ID) {
					t.Fatalf("CreateInterface = %+v, %v", got, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CreateInterface = %+v, %v; want an error saying %q", got, err, tc.wantErr)
			}
			var ips []string
			var groups []bool
			for _, form := range s.creates {
				ips = append(ips, form.Get("PrivateIpAddress"))
				groups = append(groups, form.Get("SecurityGroupId.1") == sg)
				if form.Get("Description") != "CloudHSM ENI for HSM hsm-abcdefghijk of cluster cluster-abcdefghijk" || form.Get("SubnetId") != fakeENISubnet.ID {
					t.Errorf("CreateNetworkInterface form %v", form)
				}
			}
			if fmt.Sprint(ips) != fmt.Sprint(tc.wantIPs) || fmt.Sprint(groups) != fmt.Sprint(tc.wantGroups) {
				t.Errorf("asked addresses %v with group %v, want %v %v", ips, groups, tc.wantIPs, tc.wantGroups)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log does not say %q:\n%s", tc.wantLog, logs)
			}
		})
	}
}

// TestEC2CreateInterfaceLostAnswer: when EC2 gives no usable answer, the
// interfaces it may have made meanwhile are found by their description and
// deleted; the retried call carries one ClientToken.
func TestEC2CreateInterfaceLostAnswer(t *testing.T) {
	const made = "eni-0aaaaaaaaaaaaaaa1"
	s := scriptedENIs{listed: `<item><networkInterfaceId>` + made + `</networkInterfaceId>` +
		`<description>CloudHSM ENI for HSM hsm-abcdefghijk of cluster cluster-abcdefghijk</description></item>`}
	f := newFakeEC2(t, s.handler(func(int, url.Values) (int, string) { return 503, "busy" }))
	e := NewEC2(EC2Config{Endpoint: f.URL, Attempts: 3})
	e.backoff = func(int) time.Duration { return 0 }
	req := InterfaceRequest{Subnet: fakeENISubnet, ClusterID: "cluster-abcdefghijk", HsmID: "hsm-abcdefghijk"}
	_, err := e.CreateInterface(context.Background(), Tenant{Account: "111111111111", Region: "eu-west-2"}, req)
	wantKind(t, err, ErrUnavailable, "did not answer CreateNetworkInterface", "HTTP 503", "(3 attempts)")
	if len(s.creates) != 3 {
		t.Fatalf("%d CreateNetworkInterface calls, want 3", len(s.creates))
	}
	token := s.creates[0].Get("ClientToken")
	for _, form := range s.creates {
		if token == "" || form.Get("ClientToken") != token {
			t.Errorf("ClientTokens %q and %q, want one, not empty", token, form.Get("ClientToken"))
		}
	}
	if fmt.Sprint(s.deleted) != "["+made+"]" {
		t.Errorf("deleted %v, want [%s]", s.deleted, made)
	}
}

// TestEC2CreateInterfaceDerivedGroup: a group id that exists only in
// cloudhsm-local (EC2 refused to create the cluster's group) is not sent.
func TestEC2CreateInterfaceDerivedGroup(t *testing.T) {
	var s scriptedENIs
	f := newFakeEC2(t, s.handler(func(int, url.Values) (int, string) { return 0, "" }))
	logger, logs := testLogger()
	e := NewEC2(EC2Config{Endpoint: f.URL, Logger: logger})
	tenant := Tenant{Account: "111111111111", Region: "eu-west-2"}
	sg, err := e.CreateSecurityGroup(context.Background(), tenant, fakeENISubnet.VpcID, "cluster-abcdefghijk")
	if err != nil {
		t.Fatal(err)
	}
	req := InterfaceRequest{Subnet: fakeENISubnet, ClusterID: "cluster-abcdefghijk", HsmID: "hsm-abcdefghijk", SecurityGroup: sg}
	if _, err := e.CreateInterface(context.Background(), tenant, req); err != nil {
		t.Fatal(err)
	}
	if len(s.creates) != 1 || s.creates[0].Has("SecurityGroupId.1") {
		t.Errorf("CreateNetworkInterface forms %v, want one without a group", s.creates)
	}
	if !strings.Contains(logs.String(), "exists only in cloudhsm-local") {
		t.Errorf("not logged:\n%s", logs)
	}
}
