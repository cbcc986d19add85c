//go:build unix

package cloudhsmlocal_test

// Issue "Fidelity": beside an EC2 neighbour, every HSM gets a real network
// interface there (Terraform reads hsm_eni_id and looks it up). These
// tests run against a real moto_server, through a proxy that can make EC2
// hang up or refuse DeleteNetworkInterface for a while.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// neighbourENI is what moto's DescribeNetworkInterfaces says of an interface.
type neighbourENI struct {
	ID          string   `xml:"networkInterfaceId"`
	SubnetID    string   `xml:"subnetId"`
	Description string   `xml:"description"`
	PrivateIP   string   `xml:"privateIpAddress"`
	Groups      []string `xml:"groupSet>item>groupId"`
}

// describeENIs lists the interfaces of a subnet, by id.
func (m *neighbourMoto) describeENIs(t *testing.T, subnetID string) map[string]neighbourENI {
	t.Helper()
	var resp struct {
		Items []neighbourENI `xml:"networkInterfaceSet>item"`
	}
	if err := m.Call("DescribeNetworkInterfaces", url.Values{"Filter.1.Name": {"subnet-id"}, "Filter.1.Value.1": {subnetID}}, &resp); err != nil {
		t.Fatalf("moto DescribeNetworkInterfaces in %s: %v", subnetID, err)
	}
	out := map[string]neighbourENI{}
	for _, it := range resp.Items {
		out[it.ID] = it
	}
	return out
}

// createENI creates an interface in moto that is not an HSM's.
func (m *neighbourMoto) createENI(t *testing.T, subnetID, ip string) string {
	t.Helper()
	var resp struct {
		ID string `xml:"networkInterface>networkInterfaceId"`
	}
	if err := m.Call("CreateNetworkInterface", url.Values{"SubnetId": {subnetID}, "PrivateIpAddress": {ip}}, &resp); err != nil {
		t.Fatalf("moto CreateNetworkInterface %s %s: %v", subnetID, ip, err)
	}
	return resp.ID
}

// wantHsmENI checks that moto lists the HSM's interface as AWS would have it.
func (m *neighbourMoto) wantHsmENI(t *testing.T, clusterID, sg string, h *types.Hsm) {
	t.Helper()
	eniID := aws.ToString(h.EniId)
	eni, ok := m.describeENIs(t, aws.ToString(h.SubnetId))[eniID]
	switch {
	case !ok:
		t.Errorf("HSM %s: moto does not list its EniId %q in %s", aws.ToString(h.HsmId), eniID, aws.ToString(h.SubnetId))
	case eni.PrivateIP != aws.ToString(h.EniIp) || len(eni.Groups) != 1 || eni.Groups[0] != sg:
		t.Errorf("HSM %s (EniIp %s): moto's %s = %+v, want its address and group %s", aws.ToString(h.HsmId), aws.ToString(h.EniIp), eniID, eni, sg)
	case eni.Description != "CloudHSM ENI for HSM "+aws.ToString(h.HsmId)+" of cluster "+clusterID:
		t.Errorf("HSM %s: moto's %s is described %q", aws.ToString(h.HsmId), eniID, eni.Description)
	}
}

// ec2Proxy stands between cloudhsm-local and moto.
type ec2Proxy struct {
	URL string
	mu  sync.Mutex
	// down hangs up on every call; loseCreates forwards
	// CreateNetworkInterface to moto and hangs up before answering;
	// refuseDeletes is how many DeleteNetworkInterface calls to refuse.
	down, loseCreates bool
	refuseDeletes     int
	// beforeCreate, if set, runs before CreateNetworkInterface is forwarded.
	beforeCreate func()
	calls        map[string][]string // action -> NetworkInterfaceId of each call
}

func newEC2Proxy(t *testing.T, motoURL string) *ec2Proxy {
	target, _ := url.Parse(motoURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &ec2Proxy{calls: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		action := form.Get("Action")
		p.mu.Lock()
		p.calls[action] = append(p.calls[action], form.Get("NetworkInterfaceId"))
		down, lose := p.down, p.loseCreates && action == "CreateNetworkInterface"
		refuse := action == "DeleteNetworkInterface" && p.refuseDeletes > 0
		if refuse {
			p.refuseDeletes--
		}
		hook := p.beforeCreate
		p.mu.Unlock()
		if hook != nil && action == "CreateNetworkInterface" {
			hook()
		}
		switch {
		case refuse:
			w.WriteHeader(400)
			io.WriteString(w, `<Response><Errors><Error><Code>InvalidNetworkInterface.InUse</Code><Message>Interface: [`+
				form.Get("NetworkInterfaceId")+`] in use.</Message></Error></Errors></Response>`)
		case down:
			hangUp(w)
		case lose:
			rp.ServeHTTP(httptest.NewRecorder(), r)
			hangUp(w)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func hangUp(w http.ResponseWriter) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

func (p *ec2Proxy) set(f func(p *ec2Proxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// deletesOf counts the DeleteNetworkInterface calls for eniID.
func (p *ec2Proxy) deletesOf(eniID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, id := range p.calls["DeleteNetworkInterface"] {
		if id == eniID {
			n++
		}
	}
	return n
}

func (p *ec2Proxy) count(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls[action])
}

// waitENIGone waits (real time: the server retries with backoff) until
// moto no longer lists eniID in subnetID.
func (m *neighbourMoto) waitENIGone(t *testing.T, subnetID, eniID string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, ok := m.describeENIs(t, subnetID)[eniID]; !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto still lists %s after %s", eniID, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNeighbourMotoHsmInterfaces(t *testing.T) {
	moto := neighbourStartMoto(t)
	vpc := moto.createVPC(t, "10.60.0.0/16")
	subA := moto.createSubnet(t, vpc, "us-east-1a", "10.60.1.0/24")
	subB := moto.createSubnet(t, vpc, "us-east-1b", "10.60.2.0/24")
	px := newEC2Proxy(t, moto.URL)
	var logs testkit.LockedBuffer
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithEC2Endpoint(px.URL, "test", "test"),
		cloudhsmlocal.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	c := client(srv)

	// ---- every HSM's EniId is an interface in moto ----------------------
	cl, first := activeClusterWith(t, srv, c, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{subA, subB}})
	id, sg := aws.ToString(cl.ClusterId), aws.ToString(cl.SecurityGroup)
	moto.wantHsmENI(t, id, sg, first)
	if ip := aws.ToString(first.EniIp); ip != "10.60.1.4" {
		t.Errorf("the first HSM's EniIp is %s, want 10.60.1.4 (the first address AWS does not reserve)", ip)
	}

	// ---- moto decides which addresses are taken ------------------------
	other := moto.createENI(t, subB, "10.60.2.4") // not an HSM's
	h := mustCreateHsm(t, c, id, "us-east-1b", "")
	if ip := aws.ToString(h.EniIp); ip != "10.60.2.5" {
		t.Errorf("EniIp %s, want 10.60.2.5: 10.60.2.4 is taken in moto", ip)
	}
	moto.wantHsmENI(t, id, sg, h)
	requested := mustCreateHsm(t, c, id, "us-east-1b", "10.60.2.40")
	moto.wantHsmENI(t, id, sg, requested)
	before := len(moto.describeENIs(t, subB))
	for _, ip := range []string{"10.60.2.4", "10.60.2.40"} {
		_, err := c.CreateHsm(ctx, createHsmInput(id, "us-east-1b", ip))
		wantAPIError(t, err, "CloudHsmInvalidRequestException", "IP address "+ip+" is already in use in subnet "+subB)
	}
	// Two HSMs never share an address.
	seen := map[string]string{"10.60.2.4": other}
	for _, x := range []*types.Hsm{h, requested, mustCreateHsm(t, c, id, "us-east-1b", ""), mustCreateHsm(t, c, id, "us-east-1b", "")} {
		ip := aws.ToString(x.EniIp)
		if o, dup := seen[ip]; dup {
			t.Errorf("HSM %s has address %s, like %s", aws.ToString(x.HsmId), ip, o)
		}
		seen[ip] = aws.ToString(x.HsmId)
	}
	if n := len(moto.describeENIs(t, subB)); n != before+2 {
		t.Errorf("%d interfaces in %s, want %d: a refused CreateHsm made one", n, subB, before+2)
	}
	srv.Advance(time.Minute)

	// ---- EC2 away: CreateHsm fails and leaves nothing ------------------
	hsms := len(describe(t, c, id).Hsms)
	for _, mode := range []string{"EC2 hangs up", "EC2's answer is lost"} {
		before := len(moto.describeENIs(t, subA))
		creates := px.count("CreateNetworkInterface")
		px.set(func(p *ec2Proxy) { p.down, p.loseCreates = mode == "EC2 hangs up", mode != "EC2 hangs up" })
		_, err := c.CreateHsm(ctx, createHsmInput(id, "us-east-1a", ""))
		px.set(func(p *ec2Proxy) { p.down, p.loseCreates = false, false })
		code, msg := apiErrorOf(t, err)
		t.Logf("%s: %s: %s", mode, code, msg)
		if code != "CloudHsmServiceException" || !strings.Contains(msg, "The EC2 endpoint "+px.URL+" did not answer") || !strings.Contains(msg, "--ec2-endpoint") {
			t.Errorf("%s: %s %q, want CloudHsmServiceException naming the EC2 endpoint", mode, code, msg)
		}
		if n := len(describe(t, c, id).Hsms); n != hsms {
			t.Errorf("%s: %d HSMs after the failed CreateHsm, want %d", mode, n, hsms)
		}
		if n := len(moto.describeENIs(t, subA)); n != before {
			t.Errorf("%s: %d interfaces in %s after the failed CreateHsm, want %d", mode, n, subA, before)
		}
		if mode != "EC2 hangs up" && px.count("CreateNetworkInterface") == creates {
			t.Errorf("%s: moto was never asked to create the interface", mode)
		}
	}

	// ---- DeleteHsm deletes the interface -------------------------------
	deleteHsm := func(x *types.Hsm) {
		t.Helper()
		if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(id), HsmId: x.HsmId}); err != nil {
			t.Fatalf("DeleteHsm %s: %v", aws.ToString(x.HsmId), err)
		}
	}
	deleteHsm(h)
	if _, ok := moto.describeENIs(t, subB)[aws.ToString(h.EniId)]; ok {
		t.Errorf("moto still lists %s when DeleteHsm has answered", aws.ToString(h.EniId))
	}

	// ---- refused at first: retried until it goes, each try logged ------
	px.set(func(p *ec2Proxy) { p.refuseDeletes = 2 })
	deleteHsm(requested)
	eni := aws.ToString(requested.EniId)
	moto.waitENIGone(t, subB, eni, 30*time.Second)
	srv.Advance(time.Minute) // both HSMs leave
	cl = describe(t, c, id)
	if hsmInCluster(cl, aws.ToString(h.HsmId)) != nil || hsmInCluster(cl, aws.ToString(requested.HsmId)) != nil {
		t.Errorf("deleted HSMs still in cluster %s: %+v", id, cl.Hsms)
	}
	if n := px.deletesOf(eni); n != 3 {
		t.Errorf("%d DeleteNetworkInterface calls for %s, want 3 (2 refused)", n, eni)
	}
	if n := px.deletesOf(aws.ToString(h.EniId)); n != 1 {
		t.Errorf("%d DeleteNetworkInterface calls for %s, want 1 (none when its HSM left)", n, aws.ToString(h.EniId))
	}
	l := logs.String()
	for _, try := range []string{"try=1", "try=2"} {
		re := regexp.MustCompile(`level=WARN msg="the HSM's network interface was not deleted; retrying" hsm=` + aws.ToString(requested.HsmId) +
			` cluster=` + id + ` eni=` + eni + ` ` + try + ` err=".*InvalidNetworkInterface.InUse`)
		if !re.MatchString(l) {
			t.Errorf("no warning for %s of %s:\n%s", try, eni, l)
		}
	}
	if !strings.Contains(l, "eni="+eni+" tries=3") {
		t.Errorf("the deletion after 3 tries is not logged:\n%s", l)
	}

	// ---- a reset deletes the HSMs' interfaces, then the group ----------
	cl = describe(t, c, id)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/_cloudhsm-local/reset", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reset: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, x := range cl.Hsms {
		if _, ok := moto.describeENIs(t, aws.ToString(x.SubnetId))[aws.ToString(x.EniId)]; ok {
			t.Errorf("after the reset, moto still lists %s of HSM %s", aws.ToString(x.EniId), aws.ToString(x.HsmId))
		}
	}
	if _, err := moto.describeGroup(sg); err == nil {
		t.Errorf("after the reset, moto still has the group %s", sg)
	}
	if _, ok := moto.describeENIs(t, subB)[other]; !ok {
		t.Errorf("the reset deleted %s, which is not an HSM's", other)
	}
	if strings.Contains(logs.String(), "left behind") {
		t.Errorf("an interface was left behind:\n%s", logs.String())
	}
}

// TestNeighbourMotoInterfaceRetriesStop: retries end when the server
// closes, saying what is left behind; a server restarted while the HSM is
// still DELETE_IN_PROGRESS deletes the interface when the HSM leaves.
func TestNeighbourMotoInterfaceRetriesStop(t *testing.T) {
	moto := neighbourStartMoto(t)
	vpc := moto.createVPC(t, "10.70.0.0/16")
	subA := moto.createSubnet(t, vpc, "us-east-1a", "10.70.1.0/24")
	px := newEC2Proxy(t, moto.URL)
	dir := t.TempDir()
	var logs testkit.LockedBuffer
	opts := []cloudhsmlocal.Option{cloudhsmlocal.WithDataDir(dir), cloudhsmlocal.WithEC2Endpoint(px.URL, "test", "test"),
		cloudhsmlocal.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
	srv1 := cloudhsmlocal.Start(t, append(opts, cloudhsmlocal.WithStartTime(firstStart))...)
	c1 := client(srv1)
	cl, h := clusterWithCSR(t, srv1, c1, &cloudhsmv2.CreateClusterInput{SubnetIds: []string{subA}})
	id, eni := aws.ToString(cl.ClusterId), aws.ToString(h.EniId)

	px.set(func(p *ec2Proxy) { p.refuseDeletes = 1 << 20 })
	if _, err := c1.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(id), HsmId: h.HsmId}); err != nil {
		t.Fatal(err)
	}
	// Wait for a retry, so that Close stops a running retry loop.
	for deadline := time.Now().Add(30 * time.Second); px.deletesOf(eni) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("%d DeleteNetworkInterface calls for %s after 30s, want a retry", px.deletesOf(eni), eni)
		}
		time.Sleep(20 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { srv1.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close hangs while an interface's deletion is retried")
	}
	if !regexp.MustCompile(`level=WARN msg=".*left behind.*" hsm=` + aws.ToString(h.HsmId) + ` cluster=` + id + ` eni=` + eni).MatchString(logs.String()) {
		t.Errorf("the interface left behind is not logged:\n%s", logs.String())
	}

	// Restarted while the HSM is DELETE_IN_PROGRESS, EC2 willing again.
	px.set(func(p *ec2Proxy) { p.refuseDeletes = 0 })
	srv2 := cloudhsmlocal.Start(t, append(opts, cloudhsmlocal.WithStartTime(firstStart))...)
	c2 := client(srv2)
	if got := hsmInCluster(describe(t, c2, id), aws.ToString(h.HsmId)); got == nil || got.State != types.HsmStateDeleteInProgress {
		t.Fatalf("after the restart, HSM %s = %+v, want DELETE_IN_PROGRESS", aws.ToString(h.HsmId), got)
	}
	if _, ok := moto.describeENIs(t, subA)[eni]; !ok {
		t.Fatalf("moto lost %s before the HSM left", eni)
	}
	srv2.Advance(time.Minute)
	if got := hsmInCluster(describe(t, c2, id), aws.ToString(h.HsmId)); got != nil {
		t.Fatalf("HSM %s still in the cluster: %+v", aws.ToString(h.HsmId), got)
	}
	if _, ok := moto.describeENIs(t, subA)[eni]; ok {
		t.Errorf("moto still lists %s once its HSM left the restarted server", eni)
	}
}

// TestNeighbourMotoCreateHsmLeavesNoStrayInterface: a CreateHsm that the
// commit refuses after EC2 made its interface (two CreateHsm calls race for
// the only place in an UNINITIALIZED cluster) deletes that interface, and
// a client that gives up while EC2 makes it does not leave one that no HSM
// records.
func TestNeighbourMotoCreateHsmLeavesNoStrayInterface(t *testing.T) {
	moto := neighbourStartMoto(t)
	vpc := moto.createVPC(t, "10.80.0.0/16")
	subA := moto.createSubnet(t, vpc, "us-east-1a", "10.80.1.0/24")
	subB := moto.createSubnet(t, vpc, "us-east-1b", "10.80.2.0/24")
	px := newEC2Proxy(t, moto.URL)
	done := requestsDone{ops: make(chan string, 1024)}
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithEC2Endpoint(px.URL, "test", "test"), cloudhsmlocal.WithLogger(slog.New(done)))
	c := client(srv)
	wantENIs := func(when, subnetID string, cl *types.Cluster) {
		t.Helper()
		want := map[string]bool{}
		for _, h := range cl.Hsms {
			if aws.ToString(h.SubnetId) == subnetID {
				want[aws.ToString(h.EniId)] = true
			}
		}
		got := moto.describeENIs(t, subnetID)
		if len(got) != len(want) {
			t.Errorf("%s: moto lists %d interfaces in %s, want the %d of the cluster's HSMs there", when, len(got), subnetID, len(want))
		}
		for id := range got {
			if !want[id] {
				t.Errorf("%s: moto lists %s, which no HSM records", when, id)
			}
		}
	}

	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{subA, subB}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Cluster.ClusterId)
	srv.Advance(time.Minute)

	// Both pass the checks and reach EC2 before either commits. Only the
	// first two calls meet: a retry (an attempt that timed out on a slow
	// moto, under load) goes straight on, where counting it as a third
	// arrival would fail the test for nothing.
	arrived, both := 0, make(chan struct{})
	px.set(func(p *ec2Proxy) {
		p.beforeCreate = func() {
			p.mu.Lock()
			if arrived++; arrived == 2 {
				close(both)
			}
			p.mu.Unlock()
			<-both
		}
	})
	errs := make(chan error, 2)
	for _, az := range []string{"us-east-1a", "us-east-1b"} {
		go func() { _, err := c.CreateHsm(ctx, createHsmInput(id, az, "")); errs <- err }()
	}
	var refused int
	for range 2 {
		if err := <-errs; err != nil {
			wantAPIError(t, err, "CloudHsmInvalidRequestException", "already contains an HSM")
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d of 2 racing CreateHsm calls refused, want 1", refused)
	}
	cl := describe(t, c, id)
	wantENIs("after the race", subA, cl)
	wantENIs("after the race", subB, cl)

	// A client that gives up while EC2 makes the interface.
	srv.Advance(time.Minute)
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(id), HsmId: cl.Hsms[0].HsmId}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(time.Minute)
	for len(done.ops) > 0 {
		<-done.ops
	}
	cctx, cancel := context.WithCancel(ctx)
	px.set(func(p *ec2Proxy) { p.beforeCreate = cancel })
	if _, err := c.CreateHsm(cctx, createHsmInput(id, "us-east-1a", "")); err == nil {
		t.Fatal("CreateHsm succeeded for a client that gave up")
	}
	for op := range done.ops { // the server is done with the abandoned request
		if op == "CreateHsm" {
			break
		}
	}
	px.set(func(p *ec2Proxy) { p.beforeCreate = nil })
	cl = describe(t, c, id)
	if len(cl.Hsms) != 1 {
		t.Errorf("%d HSMs after the abandoned CreateHsm, want 1 (the server carries it out)", len(cl.Hsms))
	}
	wantENIs("after the abandoned CreateHsm", subA, cl)
	wantENIs("after the abandoned CreateHsm", subB, cl)
}
