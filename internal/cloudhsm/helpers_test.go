package cloudhsm_test

// The domain tests drive a Service through its exported API only, with a
// frozen clock that they advance, an in-memory store, the learned network
// and HSM identities made from a few fixed keys: every test runs in
// milliseconds (the simulated roots are made once per process).

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/records"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

var (
	ctx = context.Background()
	// t0 is when every test's clock starts.
	t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	acctA   = "111122223333"
	acctB   = "444455556666"
	acctC   = "777788889999"
	region  = "us-east-1"
	region2 = "eu-west-1"
	day     = 24 * time.Hour
)

var (
	tenantA = cloudhsm.Tenant{Account: acctA, Region: region}
	tenantB = cloudhsm.Tenant{Account: acctB, Region: region}
	tenantC = cloudhsm.Tenant{Account: acctC, Region: region}
)

// Subnet ids the learned network places on first use (per tenant): the
// first two land in <region>a and <region>b.
var subnetIDs = []string{"subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60712", "subnet-0a1b2c3d4e5f60713"}

// testDelays gives every in-progress state its own length, so that a test
// waiting out the wrong delay sees the wrong state.
func testDelays() cloudhsm.Delays {
	return cloudhsm.Delays{
		ClusterCreate:     1 * time.Minute,
		ClusterInitialize: 2 * time.Minute,
		ClusterActivate:   3 * time.Minute,
		ClusterDelete:     4 * time.Minute,
		HsmCreate:         5 * time.Minute,
		HsmDelete:         6 * time.Minute,
		BackupCreate:      7 * time.Minute,
		BackupCopy:        8 * time.Minute,
		ModifyPerHsm:      30 * time.Minute,
	}
}

func testConfig() cloudhsm.Config {
	return cloudhsm.Config{Delays: testDelays(), DeletedRetention: time.Hour, BackupInterval: day}
}

// ---- canned HSM identities ----

// hsmKeyCount keys of testdata/keys.testing-key are HSM keys; the next two
// are the customer's CA key and a stranger's.
const hsmKeyCount = 8

// testKeys parses the fixed keys once per test binary.
var testKeys = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	raw, err := os.ReadFile("testdata/keys.testing-key")
	if err != nil {
		return nil, err
	}
	raw = []byte(strings.ReplaceAll(string(raw), "TESTING KEY", "PRIVATE KEY"))
	var keys []*rsa.PrivateKey
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil {
			break
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(*rsa.PrivateKey))
	}
	if len(keys) < hsmKeyCount+2 {
		return nil, fmt.Errorf("testdata/keys.testing-key has %d keys, want %d", len(keys), hsmKeyCount+2)
	}
	return keys, nil
})

func mustKeys(t testing.TB) []*rsa.PrivateKey {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// cannedIdentities is a pki.IdentitySource that generates no key: each HSM
// gets the next two of the fixed HSM keys (four distinct identities, then
// they repeat), and its certificates and CSR are issued as the real
// sources issue them (pki's exported functions), so that InitializeCluster
// checks real certificates.
type cannedIdentities struct {
	keys []*rsa.PrivateKey
	made atomic.Int64
}

func (c *cannedIdentities) NewIdentity(a *pki.Authority, req pki.IdentityRequest) (*pki.HSMIdentity, string, error) {
	n := int(c.made.Add(1) - 1)
	next := 0
	keySource := func() (*rsa.PrivateKey, error) {
		k := c.keys[(2*n+next)%hsmKeyCount]
		next++
		return k, nil
	}
	id, err := a.NewHSMIdentityWithOptions(req.HsmID, req.Now, pki.IdentityOptions{
		Partition: req.Partition, NonFIPS: req.NonFIPS, HSM1: req.HSM1, KeySource: keySource,
	})
	if err != nil || !req.CSR {
		return id, "", err
	}
	csr, err := pki.ClusterCSR(id, req.Partition, req.NonFIPS, req.HSM1)
	return id, csr, err
}

func (c *cannedIdentities) Close() {}

// ---- the customer's CA (InitializeCluster) ----

// makeCA makes a self-signed CA from fixed key i, shaped as testkit.NewCA
// makes one (whose Sign it reuses).
func makeCA(keyIndex int, name string) (*testkit.CA, error) {
	keys, err := testKeys()
	if err != nil {
		return nil, err
	}
	key := keys[keyIndex]
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Domain tests"}},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testkit.CA{Key: key, Cert: cert, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}, nil
}

// The customer's CA and a stranger's, made once per test binary (a CA is
// safe for concurrent use).
var (
	customerCA = sync.OnceValues(func() (*testkit.CA, error) { return makeCA(hsmKeyCount, "Customer root CA") })
	strangerCA = sync.OnceValues(func() (*testkit.CA, error) { return makeCA(hsmKeyCount+1, "Stranger root CA") })
)

func mustCA(t testing.TB, make func() (*testkit.CA, error)) *testkit.CA {
	t.Helper()
	ca, err := make()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// ---- the environment of one test ----

type env struct {
	t   *testing.T
	svc *cloudhsm.Service
	clk *clock.Clock
	ids *cannedIdentities
	ca  *testkit.CA
}

// newEnv starts a Service on a clock frozen at t0 with testConfig, changed
// by mods.
func newEnv(t *testing.T, mods ...func(*cloudhsm.Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, m := range mods {
		m(&cfg)
	}
	return newEnvWith(t, cfg, store.NewMemory())
}

func newEnvWith(t *testing.T, cfg cloudhsm.Config, st store.Store) *env {
	t.Helper()
	ids := &cannedIdentities{keys: mustKeys(t)}
	clk := clock.NewFrozen(t0)
	svc, err := cloudhsm.New(cloudhsm.Options{
		Codec:      records.Codec{},
		Config:     cfg,
		Clock:      clk,
		Store:      st,
		Network:    network.NewLearned(nil),
		Identities: func() pki.IdentitySource { return ids },
	})
	if err != nil {
		t.Fatalf("cloudhsm.New: %v", err)
	}
	t.Cleanup(svc.Close)
	return &env{t: t, svc: svc, clk: clk, ids: ids, ca: mustCA(t, customerCA)}
}

// on returns e reporting to t: a subtest's failures must end the
// subtest, not its parent.
func (e *env) on(t *testing.T) *env {
	cp := *e
	cp.t = t
	return &cp
}

func manual(c *cloudhsm.Config) { c.ManualActivation = true }

// advance moves the clock by d and applies what fell due.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	e.clk.Advance(d)
	if err := e.svc.CatchUp(); err != nil {
		e.t.Fatalf("CatchUp: %v", err)
	}
}

// cluster returns tenant t's cluster id as DescribeClusters shows it (a
// DELETED one too), or nil when it is not listed.
func (e *env) clusterOf(t cloudhsm.Tenant, id string) *cloudhsm.Cluster {
	e.t.Helper()
	cs, _, err := e.describe(t, cloudhsm.ClusterFilter{IDs: []string{id}}, 25)
	if err != nil {
		e.t.Fatalf("DescribeClusters: %v", err)
	}
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}

func (e *env) cluster(id string) *cloudhsm.Cluster {
	e.t.Helper()
	c := e.clusterOf(tenantA, id)
	if c == nil {
		e.t.Fatalf("cluster %s is not listed", id)
	}
	return c
}

func (e *env) wantClusterState(id, want string) *cloudhsm.Cluster {
	e.t.Helper()
	c := e.cluster(id)
	if c.State != want {
		e.t.Fatalf("cluster %s is %s, want %s (at t0+%s)", id, c.State, want, e.clk.Now().Sub(t0))
	}
	return c
}

// hsm returns the HSM of cluster id, or nil.
func (e *env) hsm(clusterID, hsmID string) *cloudhsm.Hsm {
	e.t.Helper()
	for _, h := range e.cluster(clusterID).Hsms {
		if h.ID == hsmID {
			return h
		}
	}
	return nil
}

// backupsOf returns tenant t's backups of cluster id, oldest first.
func (e *env) backupsOf(t cloudhsm.Tenant, clusterID string) []*cloudhsm.Backup {
	e.t.Helper()
	bs, _, err := e.svc.DescribeBackups(t, cloudhsm.DescribeBackupsInput{Filter: cloudhsm.BackupFilter{ClusterIDs: []string{clusterID}}, Ascending: true, Limit: 1000})
	if err != nil {
		e.t.Fatalf("DescribeBackups: %v", err)
	}
	return bs
}

func (e *env) backups(clusterID string) []*cloudhsm.Backup {
	e.t.Helper()
	return e.backupsOf(tenantA, clusterID)
}

func (e *env) backup(t cloudhsm.Tenant, id string) *cloudhsm.Backup {
	e.t.Helper()
	bs, _, err := e.svc.DescribeBackups(t, cloudhsm.DescribeBackupsInput{Filter: cloudhsm.BackupFilter{IDs: []string{id}}, Limit: 10})
	if err != nil {
		e.t.Fatalf("DescribeBackups: %v", err)
	}
	if len(bs) == 0 {
		return nil
	}
	return bs[0]
}

// states lists the backups' states, oldest first.
func states(bs []*cloudhsm.Backup) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.State
	}
	return out
}

// createCluster creates an hsm2m.medium cluster of tenant A on the first
// two subnets, changed by mods.
func (e *env) createCluster(mods ...func(*cloudhsm.CreateClusterInput)) *cloudhsm.Cluster {
	e.t.Helper()
	c, err := e.createClusterIn(tenantA, mods...)
	if err != nil {
		e.t.Fatalf("CreateCluster: %v", err)
	}
	return c
}

func (e *env) createClusterIn(t cloudhsm.Tenant, mods ...func(*cloudhsm.CreateClusterInput)) (*cloudhsm.Cluster, error) {
	in := cloudhsm.CreateClusterInput{HsmType: cloudhsm.HsmTypeHsm2m, SubnetIDs: subnetIDs[:2]}
	for _, m := range mods {
		m(&in)
	}
	return e.svc.CreateCluster(ctx, t, in)
}

func hsm1(in *cloudhsm.CreateClusterInput) { in.HsmType = cloudhsm.HsmTypeHsm1 }

// az returns the i-th Availability Zone of a cluster made on subnetIDs.
func az(i int) string { return region + string(rune('a'+i)) }

func (e *env) createHsm(clusterID string, azIndex int) *cloudhsm.Hsm {
	e.t.Helper()
	h, err := e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: clusterID, AZ: az(azIndex)})
	if err != nil {
		e.t.Fatalf("CreateHsm: %v", err)
	}
	return h
}

func (e *env) deleteHsm(clusterID, hsmID string) {
	e.t.Helper()
	if _, err := e.svc.DeleteHsm(tenantA, cloudhsm.DeleteHsmInput{ClusterID: clusterID, HsmID: hsmID}); err != nil {
		e.t.Fatalf("DeleteHsm: %v", err)
	}
}

// uninitialized returns a cluster of tenant A that is UNINITIALIZED with
// its first HSM ACTIVE and its CSR.
func (e *env) uninitialized(mods ...func(*cloudhsm.CreateClusterInput)) (*cloudhsm.Cluster, *cloudhsm.Hsm) {
	e.t.Helper()
	c := e.createCluster(mods...)
	e.advance(testDelays().ClusterCreate)
	h := e.createHsm(c.ID, 0)
	e.advance(testDelays().HsmCreate)
	got := e.wantClusterState(c.ID, cloudhsm.ClusterUninitialized)
	if got.Certificates().ClusterCsr == "" {
		e.t.Fatalf("no CSR once the first HSM is ACTIVE")
	}
	return got, e.hsm(c.ID, h.ID)
}

// initialize signs the cluster's CSR with the customer's CA and calls
// InitializeCluster.
func (e *env) initialize(clusterID string) *cloudhsm.Cluster {
	e.t.Helper()
	csr := e.cluster(clusterID).Certificates().ClusterCsr
	c, err := e.svc.InitializeCluster(tenantA, clusterID, e.ca.MustSign(e.t, csr), e.ca.PEM)
	if err != nil {
		e.t.Fatalf("InitializeCluster: %v", err)
	}
	return c
}

// active returns a cluster of tenant A that went the whole way to ACTIVE
// (automatic activation) with one ACTIVE HSM and its activation backup
// READY.
func (e *env) active(mods ...func(*cloudhsm.CreateClusterInput)) (*cloudhsm.Cluster, *cloudhsm.Hsm) {
	e.t.Helper()
	c, h := e.uninitialized(mods...)
	e.initialize(c.ID)
	d := testDelays()
	e.advance(d.ClusterInitialize + d.ClusterActivate + d.BackupCreate)
	got := e.wantClusterState(c.ID, cloudhsm.ClusterActive)
	if bs := e.backups(c.ID); len(bs) != 1 || bs[0].State != cloudhsm.BackupReady {
		e.t.Fatalf("after activation, backups %v, want one READY", states(bs))
	}
	return got, h
}

// ---- snapshots (fast: no key generation) ----

var testSubnet = network.Subnet{ID: "subnet-0f0e0d0c0b0a09081", VpcID: "vpc-0f0e0d0c0b0a09081", AZ: region + "a", CIDR: netip.MustParsePrefix("10.9.1.0/24")}

// placeholder is an identity that makes Import generate no key (it cannot
// sign a CSR: only for clusters past UNINITIALIZED).
func placeholder(i int) *pki.HSMIdentity {
	return &pki.HSMIdentity{Serial: fmt.Sprintf("RCN%010d", i)}
}

// snapCluster is a snapshot cluster of tenant t in state with n HSMs in
// hsmState, on testSubnet.
func snapCluster(t cloudhsm.Tenant, hsmType, state string, n int, hsmState string) *cloudhsm.Cluster {
	c := &cloudhsm.Cluster{Tenant: t, HsmType: hsmType, State: state, Subnets: []network.Subnet{testSubnet}, VpcID: testSubnet.VpcID}
	for i := range n {
		c.Hsms = append(c.Hsms, &cloudhsm.Hsm{AZ: testSubnet.AZ, State: hsmState, Identity: placeholder(i)})
	}
	return c
}

// importCluster imports c and returns its id.
func (e *env) importCluster(c *cloudhsm.Cluster) string {
	e.t.Helper()
	if err := e.svc.Import(&cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{c}}); err != nil {
		e.t.Fatalf("Import: %v", err)
	}
	return c.ID // filled by Import; never changed after
}

// ---- errors ----

// wantErr asserts that err is a domain refusal of kind whose message holds
// every substring.
func wantErr(t testing.TB, err error, kind cloudhsm.ErrorKind, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want a refusal of kind %d containing %q", kind, contains)
	}
	var de *cloudhsm.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *cloudhsm.Error", err, err)
	}
	if de.Kind != kind {
		t.Fatalf("error kind %d, want %d: %s", de.Kind, kind, de.Message)
	}
	for _, c := range contains {
		if !strings.Contains(de.Message, c) {
			t.Fatalf("message lacks %q: %s", c, de.Message)
		}
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// describe lists up to limit clusters of t (as DescribeClusters does),
// copies the service may not change.
func (e *env) describe(t cloudhsm.Tenant, f cloudhsm.ClusterFilter, limit int) ([]*cloudhsm.Cluster, uint64, error) {
	var out []*cloudhsm.Cluster
	next, err := e.svc.VisitClusters(t, f, 0, limit, func(c *cloudhsm.Cluster) {
		cp := *c
		cp.Hsms = make([]*cloudhsm.Hsm, len(c.Hsms))
		for i, h := range c.Hsms {
			hc := *h
			cp.Hsms[i] = &hc
		}
		cp.Tags = append([]cloudhsm.Tag(nil), c.Tags...)
		out = append(out, &cp)
	})
	return out, next, err
}
