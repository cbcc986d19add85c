package cloudhsm_test

// Cluster and HSM state machines: the states in order, each lasting its
// own delay, and what each state allows.

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// step is one moment of a lifecycle: do something (or nothing), then the
// cluster must be in state and pass check.
type step struct {
	name  string
	do    func()
	state string
	check func(c *cloudhsm.Cluster) error
}

func (e *env) runSteps(id string, steps []step) {
	e.t.Helper()
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		c := e.cluster(id)
		if c.State != s.state {
			e.t.Fatalf("%s: cluster is %s, want %s", s.name, c.State, s.state)
		}
		if s.check != nil {
			if err := s.check(c); err != nil {
				e.t.Fatalf("%s: %v", s.name, err)
			}
		}
	}
}

// noCSR fails when the cluster shows a CSR or HSM certificates.
func noCSR(c *cloudhsm.Cluster) error {
	if v := c.Certificates(); v.ClusterCsr != "" || v.HsmCertificate != "" {
		return fmt.Errorf("Certificates show a CSR or HSM certificate: %+v", v)
	}
	return nil
}

func backupCount(e *env, id string, want int) func(*cloudhsm.Cluster) error {
	return func(*cloudhsm.Cluster) error {
		if bs := e.backups(id); len(bs) != want {
			return fmt.Errorf("%d backups (%v), want %d", len(bs), states(bs), want)
		}
		return nil
	}
}

// The cluster goes CREATE_IN_PROGRESS -> UNINITIALIZED -> (first HSM
// ACTIVE, CSR appears) -> INITIALIZE_IN_PROGRESS -> INITIALIZED -> ACTIVE,
// each in-progress state lasting exactly its delay; activation is
// automatic after ClusterActivate, or waits for Activate when manual.
func TestClusterStatesInOrder(t *testing.T) {
	for _, manualActivation := range []bool{false, true} {
		t.Run(fmt.Sprintf("manual=%v", manualActivation), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *cloudhsm.Config) { c.ManualActivation = manualActivation })
			d := testDelays()
			created := e.createCluster()
			if created.State != cloudhsm.ClusterCreateInProgress || len(created.Hsms) != 0 || created.ShowSecurityGroup() || created.Certificates() != (cloudhsm.CertificatesView{}) {
				t.Fatalf("CreateCluster answered %s, %d HSMs, security group shown %v, %+v", created.State, len(created.Hsms), created.ShowSecurityGroup(), created.Certificates())
			}
			id := created.ID
			var h *cloudhsm.Hsm
			e.runSteps(id, []step{
				{"just before ClusterCreate", func() { e.advance(d.ClusterCreate - time.Millisecond) }, cloudhsm.ClusterCreateInProgress, nil},
				{"after ClusterCreate", func() { e.advance(time.Millisecond) }, cloudhsm.ClusterUninitialized, func(c *cloudhsm.Cluster) error {
					if !c.ShowSecurityGroup() || c.SecurityGroup == "" {
						return fmt.Errorf("no security group once UNINITIALIZED")
					}
					return noCSR(c) // no HSM, no CSR
				}},
				{"first HSM created", func() { h = e.createHsm(id, 0) }, cloudhsm.ClusterUninitialized, noCSR},
				{"HSM not yet ACTIVE", func() { e.advance(d.HsmCreate - time.Millisecond) }, cloudhsm.ClusterUninitialized, noCSR},
				{"first HSM ACTIVE", func() { e.advance(time.Millisecond) }, cloudhsm.ClusterUninitialized, func(c *cloudhsm.Cluster) error {
					return csrOfHsm(c, h.ID)
				}},
				{"InitializeCluster", func() {
					got := e.initialize(id)
					if got.State != cloudhsm.ClusterInitializeInProgress || got.StateMessage != "Cluster is initializing. State will change to INITIALIZED upon completion." {
						t.Fatalf("InitializeCluster answered %s %q", got.State, got.StateMessage)
					}
				}, cloudhsm.ClusterInitializeInProgress, func(c *cloudhsm.Cluster) error {
					if v := c.Certificates(); v.ClusterCsr != "" || v.ClusterCertificate == "" {
						return fmt.Errorf("once initialized the CSR must go and the cluster certificate show: %+v", v)
					}
					return nil
				}},
				{"just before ClusterInitialize", func() { e.advance(d.ClusterInitialize - time.Millisecond) }, cloudhsm.ClusterInitializeInProgress, nil},
				{"after ClusterInitialize", func() { e.advance(time.Millisecond) }, cloudhsm.ClusterInitialized, func(c *cloudhsm.Cluster) error {
					if c.StateMessage != "" || c.ManualActivationPending != manualActivation {
						return fmt.Errorf("StateMessage %q, ManualActivationPending %v", c.StateMessage, c.ManualActivationPending)
					}
					return backupCount(e, id, 0)(c)
				}},
				{"just before ClusterActivate", func() { e.advance(d.ClusterActivate - time.Millisecond) }, cloudhsm.ClusterInitialized, nil},
			})
			if manualActivation {
				e.runSteps(id, []step{
					{"ten days later", func() { e.advance(10 * day) }, cloudhsm.ClusterInitialized, backupCount(e, id, 0)},
					{"Activate", func() {
						if _, err := e.svc.Activate(tenantA, id); err != nil {
							t.Fatal(err)
						}
					}, cloudhsm.ClusterActive, backupCount(e, id, 1)},
				})
			} else {
				e.runSteps(id, []step{{"after ClusterActivate", func() { e.advance(time.Millisecond) }, cloudhsm.ClusterActive, backupCount(e, id, 1)}})
			}
			_, err := e.svc.Activate(tenantA, id)
			wantErr(t, err, cloudhsm.KindInvalidRequest, "only an INITIALIZED cluster can be activated")
		})
	}
}

// csrOfHsm checks that the cluster shows a CSR signed by HSM hsmID's key
// (its public key is the HsmCertificate's) and that HSM's certificates.
func csrOfHsm(c *cloudhsm.Cluster, hsmID string) error {
	v := c.Certificates()
	if v.ClusterCsr == "" || v.HsmCertificate == "" || v.AwsHardwareCertificate == "" || v.ManufacturerHardwareCertificate == "" || v.ClusterCertificate != "" {
		return fmt.Errorf("Certificates of an UNINITIALIZED cluster with an ACTIVE HSM: %+v", v)
	}
	if c.CsrHsmID != hsmID {
		return fmt.Errorf("CSR of HSM %s, want %s", c.CsrHsmID, hsmID)
	}
	b, _ := pem.Decode([]byte(v.ClusterCsr))
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return err
	}
	if err := csr.CheckSignature(); err != nil {
		return err
	}
	b, _ = pem.Decode([]byte(v.HsmCertificate))
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey) {
		return fmt.Errorf("the CSR's key is not the HSM certificate's key")
	}
	return nil
}

// Activate is the manual trigger; it refuses every state but INITIALIZED.
func TestActivateRefusedOutsideInitialized(t *testing.T) {
	t.Parallel()
	e := newEnv(t, manual)
	c := e.createCluster()
	_, err := e.svc.Activate(tenantA, c.ID)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "is CREATE_IN_PROGRESS")
	e.advance(testDelays().ClusterCreate)
	_, err = e.svc.Activate(tenantA, c.ID)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "is UNINITIALIZED")
	_, err = e.svc.Activate(tenantA, "cluster-aaaaaaaaaaa")
	wantErr(t, err, cloudhsm.KindNotFound)
}

// InitializeCluster refuses what is not a certificate for the cluster's
// CSR from the given trust anchor, and every state but UNINITIALIZED with
// a CSR; a refusal changes nothing.
func TestInitializeClusterRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.uninitialized()
	stranger := mustCA(t, strangerCA)
	otherCSR := csrFor(t, mustKeys(t)[hsmKeyCount+1])
	noHsm := e.createCluster() // UNINITIALIZED once created, never an HSM
	e.advance(testDelays().ClusterCreate)
	pending := e.createCluster()
	cases := []struct {
		name, cluster, cert, anchor string
		kind                        cloudhsm.ErrorKind
		want                        string
	}{
		{"issued by another CA", c.ID, stranger.MustSign(t, c.Csr), e.ca.PEM, cloudhsm.KindInvalidRequest, "SignedCert was not issued by TrustAnchor"},
		{"another key", c.ID, e.ca.MustSign(t, otherCSR), e.ca.PEM, cloudhsm.KindInvalidRequest, "public key does not match"},
		{"anchor not PEM", c.ID, e.ca.MustSign(t, c.Csr), "not a certificate", cloudhsm.KindInvalidRequest, "TrustAnchor"},
		{"signed cert not PEM", c.ID, "garbage", e.ca.PEM, cloudhsm.KindInvalidRequest, "SignedCert"},
		{"cluster still being created", pending.ID, "x", e.ca.PEM, cloudhsm.KindInvalidRequest, "only an UNINITIALIZED cluster"},
		{"no HSM, no CSR", noHsm.ID, "x", e.ca.PEM, cloudhsm.KindInvalidRequest, "has no CSR yet"},
		{"unknown cluster", "cluster-aaaaaaaaaaa", "x", e.ca.PEM, cloudhsm.KindNotFound, "not found"},
	}
	for _, tc := range cases {
		_, err := e.svc.InitializeCluster(tenantA, tc.cluster, tc.cert, tc.anchor)
		if err == nil {
			t.Fatalf("%s: accepted", tc.name)
		}
		t.Run(tc.name, func(t *testing.T) { wantErr(t, err, tc.kind, tc.want) })
	}
	e.wantClusterState(c.ID, cloudhsm.ClusterUninitialized)
	e.initialize(c.ID)
	_, err := e.svc.InitializeCluster(tenantA, c.ID, e.ca.MustSign(t, c.Csr), e.ca.PEM)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "is INITIALIZE_IN_PROGRESS")
}

// csrFor makes a CSR signed by key.
func csrFor(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// The CSR belongs to the key of the HSM that made it: deleting that HSM
// of an UNINITIALIZED cluster takes the CSR away, and the next HSM brings
// a CSR of its own key.
func TestCsrGoesWithItsHsm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, h := e.uninitialized()
	e.deleteHsm(c.ID, h.ID)
	e.advance(testDelays().HsmDelete)
	got := e.wantClusterState(c.ID, cloudhsm.ClusterUninitialized)
	if err := noCSR(got); err != nil || got.Csr != "" {
		t.Fatalf("after its HSM is gone: %v (Csr %q)", err, got.Csr)
	}
	h2 := e.createHsm(c.ID, 1)
	e.advance(testDelays().HsmCreate)
	got = e.wantClusterState(c.ID, cloudhsm.ClusterUninitialized)
	if err := csrOfHsm(got, h2.ID); err != nil {
		t.Fatal(err)
	}
	if got.Csr == c.Csr {
		t.Fatal("the new HSM shows the deleted HSM's CSR")
	}
}

// A cluster from a backup goes CREATE_IN_PROGRESS -> ACTIVE with no HSM,
// the backup's cluster certificate shown from the start, no
// initialization; it then takes HSMs without the first-HSM rule.
func TestClusterFromBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, _ := e.active()
	b := e.backups(src.ID)[0]
	c := e.createCluster(func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID = b.ID })
	if c.State != cloudhsm.ClusterCreateInProgress || c.SourceBackupID != b.ID || c.Certificates().ClusterCertificate != src.ClusterCertificate || src.ClusterCertificate == "" {
		t.Fatalf("CreateCluster from a backup answered %s, source %q, certificate shown %v", c.State, c.SourceBackupID, c.Certificates().ClusterCertificate != "")
	}
	e.advance(testDelays().ClusterCreate - time.Millisecond)
	e.wantClusterState(c.ID, cloudhsm.ClusterCreateInProgress)
	e.advance(time.Millisecond)
	got := e.wantClusterState(c.ID, cloudhsm.ClusterActive)
	if len(got.Hsms) != 0 || got.Certificates().ClusterCsr != "" || got.Mode != cloudhsm.ModeFIPS {
		t.Fatalf("restored cluster: %d HSMs, %+v, mode %s", len(got.Hsms), got.Certificates(), got.Mode)
	}
	_, err := e.svc.InitializeCluster(tenantA, c.ID, "x", e.ca.PEM)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "only an UNINITIALIZED cluster")
	e.createHsm(c.ID, 0)
	e.createHsm(c.ID, 1) // no first-HSM rule in an ACTIVE cluster
}

// CreateCluster from a backup refuses backups it cannot restore.
func TestClusterFromBackupRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	snap := &cloudhsm.Snapshot{Backups: []*cloudhsm.Backup{
		{Tenant: tenantA, ID: "backup-fipsfipsfip", ClusterID: "cluster-aaaaaaaaaaa", HsmType: cloudhsm.HsmTypeHsm2m, Mode: cloudhsm.ModeFIPS},
		{Tenant: tenantA, ID: "backup-nonfipsnonf", ClusterID: "cluster-aaaaaaaaaaa", HsmType: cloudhsm.HsmTypeHsm2m, Mode: cloudhsm.ModeNonFIPS, ClusterCertificate: "nonfips-cert"},
		{Tenant: tenantA, ID: "backup-hsmonehsmon", ClusterID: "cluster-aaaaaaaaaaa", HsmType: cloudhsm.HsmTypeHsm1, Mode: cloudhsm.ModeFIPS},
		{Tenant: tenantA, ID: "backup-pendingpend", ClusterID: "cluster-aaaaaaaaaaa", State: cloudhsm.BackupPendingDeletion},
		{Tenant: cloudhsm.Tenant{Account: acctA, Region: region2}, ID: "backup-elsewhereel", ClusterID: "cluster-aaaaaaaaaaa"},
	}}
	mustOK(t, e.svc.Import(snap))
	from := func(ref, hsmType, mode string) func(*cloudhsm.CreateClusterInput) {
		return func(in *cloudhsm.CreateClusterInput) { in.SourceBackupID, in.HsmType, in.Mode = ref, hsmType, mode }
	}
	cases := []struct {
		name string
		in   func(*cloudhsm.CreateClusterInput)
		kind cloudhsm.ErrorKind
		want string
	}{
		{"NON_FIPS cluster from a FIPS backup", from("backup-fipsfipsfip", cloudhsm.HsmTypeHsm2m, cloudhsm.ModeNonFIPS), cloudhsm.KindInvalidRequest, "FIPS mode"},
		{"FIPS cluster from a NON_FIPS backup", from("backup-nonfipsnonf", cloudhsm.HsmTypeHsm2m, cloudhsm.ModeFIPS), cloudhsm.KindInvalidRequest, "NON_FIPS"},
		{"hsm1 cluster from an hsm2m backup", from("backup-fipsfipsfip", cloudhsm.HsmTypeHsm1, ""), cloudhsm.KindInvalidRequest, "hsm2m.medium"},
		{"backup pending deletion", from("backup-pendingpend", cloudhsm.HsmTypeHsm2m, ""), cloudhsm.KindInvalidRequest, "only from a READY backup"},
		{"backup of another region by ARN", from("arn:aws:cloudhsm:eu-west-1:"+acctA+":backup/backup-elsewhereel", cloudhsm.HsmTypeHsm2m, ""), cloudhsm.KindInvalidRequest, "CopyBackupToRegion"},
		{"backup of another region by id", from("backup-elsewhereel", cloudhsm.HsmTypeHsm2m, ""), cloudhsm.KindNotFound, "not found"},
		{"not an ARN", from("arn:aws:cloudhsm:us-east-1:1:cluster/x", cloudhsm.HsmTypeHsm2m, ""), cloudhsm.KindInvalidRequest, "not a valid backup ARN"},
		{"unknown backup", from("backup-aaaaaaaaaaa", cloudhsm.HsmTypeHsm2m, ""), cloudhsm.KindNotFound, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.createClusterIn(tenantA, tc.in)
			wantErr(t, err, tc.kind, tc.want)
		})
	}
	// Restorable: an hsm1 backup into hsm2m (the migration's direction), and
	// a NON_FIPS backup's mode when Mode is left out.
	e.createCluster(from("backup-hsmonehsmon", cloudhsm.HsmTypeHsm2m, ""))
	c := e.createCluster(from("backup-nonfipsnonf", cloudhsm.HsmTypeHsm2m, ""))
	if c.Mode != cloudhsm.ModeNonFIPS || c.ClusterCertificate != "nonfips-cert" {
		t.Fatalf("cluster from a NON_FIPS backup: mode %s, certificate %q", c.Mode, c.ClusterCertificate)
	}
}

// DeleteCluster refuses while HSMs exist (also one being deleted) and in
// the in-progress states; then DELETE_IN_PROGRESS -> DELETED, which is
// listed but no longer usable, -> gone after DeletedRetention.
func TestDeleteCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := testDelays()
	c, h := e.active()
	_, err := e.svc.DeleteCluster(tenantA, c.ID)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "still contains 1 HSM(s)", h.ID)
	e.deleteHsm(c.ID, h.ID)
	_, err = e.svc.DeleteCluster(tenantA, c.ID)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "still contains 1 HSM(s)")
	e.advance(d.HsmDelete)
	got, err := e.svc.DeleteCluster(tenantA, c.ID)
	mustOK(t, err)
	if got.State != cloudhsm.ClusterDeleteInProgress || got.StateMessage != "The cluster is being deleted." {
		t.Fatalf("DeleteCluster answered %s %q", got.State, got.StateMessage)
	}
	_, err = e.svc.DeleteCluster(tenantA, c.ID)
	wantErr(t, err, cloudhsm.KindInvalidRequest, "already being deleted")
	e.runSteps(c.ID, []step{
		{"just before ClusterDelete", func() { e.advance(d.ClusterDelete - time.Millisecond) }, cloudhsm.ClusterDeleteInProgress, nil},
		{"after ClusterDelete", func() { e.advance(time.Millisecond) }, cloudhsm.ClusterDeleted, nil},
		{"just before DeletedRetention", func() { e.advance(time.Hour - time.Millisecond) }, cloudhsm.ClusterDeleted, nil},
	})
	// A DELETED cluster is listed, but no operation finds it.
	for name, err := range map[string]error{
		"DeleteCluster": second(e.svc.DeleteCluster(tenantA, c.ID)),
		"CreateHsm":     second(e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: az(0)})),
		"ModifyCluster": second(e.svc.ModifyCluster(tenantA, cloudhsm.ModifyClusterInput{ClusterID: c.ID, RetentionDays: 30})),
		"TagResource":   e.svc.TagResource(tenantA, c.ID, []cloudhsm.Tag{{Key: "k"}}),
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, err, cloudhsm.KindNotFound, c.ID) })
	}
	e.advance(time.Millisecond)
	if e.clusterOf(tenantA, c.ID) != nil {
		t.Fatal("DELETED cluster still listed after DeletedRetention")
	}
	n := len(e.backups(c.ID))
	e.advance(3 * day)
	if len(e.backups(c.ID)) != n {
		t.Fatal("a deleted cluster was backed up")
	}
}

func second[T any](_ T, err error) error { return err }

// DeleteCluster (of a cluster without HSMs) waits out the in-progress
// states, refuses a cluster being deleted, and accepts the others.
func TestDeleteClusterByState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const wait = "wait until the operation completes"
	cases := []struct{ state, want string }{
		{cloudhsm.ClusterCreateInProgress, cloudhsm.ClusterCreateInProgress + "; " + wait},
		{cloudhsm.ClusterInitializeInProgress, cloudhsm.ClusterInitializeInProgress + "; " + wait},
		{cloudhsm.ClusterModifyInProgress, cloudhsm.ClusterModifyInProgress + "; " + wait},
		{cloudhsm.ClusterRollbackInProgress, cloudhsm.ClusterRollbackInProgress + "; " + wait},
		{cloudhsm.ClusterUpdateInProgress, cloudhsm.ClusterUpdateInProgress + "; " + wait},
		{cloudhsm.ClusterDeleteInProgress, "already being deleted"},
		{cloudhsm.ClusterUninitialized, ""},
		{cloudhsm.ClusterInitialized, ""},
		{cloudhsm.ClusterActive, ""},
	}
	for _, tc := range cases {
		t.Run(tc.state, func(t *testing.T) {
			c := snapCluster(tenantA, cloudhsm.HsmTypeHsm1, tc.state, 0, "")
			switch tc.state { // a migration has a target
			case cloudhsm.ClusterModifyInProgress:
				c.TargetHsmType, c.PreviousHsmType = cloudhsm.HsmTypeHsm2m, cloudhsm.HsmTypeHsm1
			case cloudhsm.ClusterRollbackInProgress:
				c.HsmType, c.TargetHsmType, c.PreviousHsmType = cloudhsm.HsmTypeHsm2m, cloudhsm.HsmTypeHsm1, cloudhsm.HsmTypeHsm1
			}
			id := e.on(t).importCluster(c)
			got, err := e.svc.DeleteCluster(tenantA, id)
			if tc.want != "" {
				wantErr(t, err, cloudhsm.KindInvalidRequest, tc.want)
				return
			}
			if err != nil || got.State != cloudhsm.ClusterDeleteInProgress {
				t.Fatalf("DeleteCluster of an %s cluster: %v", tc.state, err)
			}
		})
	}
}

// An HSM goes CREATE_IN_PROGRESS -> ACTIVE ("HSM created.") after
// HsmCreate with an address of its AZ's subnet, and DELETE_IN_PROGRESS ->
// gone from Hsms after HsmDelete, freeing its address.
func TestHsmStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := testDelays()
	c, first := e.active()
	h := e.createHsm(c.ID, 1)
	if h.State != cloudhsm.HsmCreateInProgress || h.AZ != az(1) || h.SubnetID != subnetIDs[1] || h.ID == first.ID {
		t.Fatalf("CreateHsm answered %+v", h)
	}
	sn := c.Subnets[1]
	if a, err := netip.ParseAddr(h.EniIP); err != nil || !sn.CIDR.Contains(a) {
		t.Fatalf("EniIP %s is not in subnet %s (%s)", h.EniIP, sn.ID, sn.CIDR)
	}
	_, err := e.svc.DeleteHsm(tenantA, cloudhsm.DeleteHsmInput{ClusterID: c.ID, HsmID: h.ID})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "still being created")
	e.advance(d.HsmCreate - time.Millisecond)
	if got := e.hsm(c.ID, h.ID); got.State != cloudhsm.HsmCreateInProgress {
		t.Fatalf("HSM %s before HsmCreate", got.State)
	}
	e.advance(time.Millisecond)
	if got := e.hsm(c.ID, h.ID); got.State != cloudhsm.HsmActive || got.StateMessage != "HSM created." {
		t.Fatalf("HSM %s %q after HsmCreate", got.State, got.StateMessage)
	}
	id, err := e.svc.DeleteHsm(tenantA, cloudhsm.DeleteHsmInput{ClusterID: c.ID, EniIP: h.EniIP})
	if err != nil || id != h.ID {
		t.Fatalf("DeleteHsm by EniIP: %q, %v", id, err)
	}
	_, err = e.svc.DeleteHsm(tenantA, cloudhsm.DeleteHsmInput{ClusterID: c.ID, HsmID: h.ID})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "already being deleted")
	_, err = e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: az(1), IPAddress: h.EniIP})
	wantErr(t, err, cloudhsm.KindInvalidRequest, h.EniIP)
	e.advance(d.HsmDelete - time.Millisecond)
	if got := e.hsm(c.ID, h.ID); got == nil || got.State != cloudhsm.HsmDeleteInProgress {
		t.Fatalf("HSM before HsmDelete: %+v", got)
	}
	e.advance(time.Millisecond)
	if got := e.hsm(c.ID, h.ID); got != nil {
		t.Fatalf("HSM still listed after HsmDelete: %s", got.State)
	}
	again, err := e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: az(1), IPAddress: h.EniIP})
	if err != nil || again.EniIP != h.EniIP {
		t.Fatalf("the deleted HSM's address is not free again: %v", err)
	}
}

// DeleteHsm names its HSM by exactly one of HsmId, EniId, EniIp.
func TestDeleteHsmSelectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, h := e.active()
	cases := []struct {
		name string
		in   cloudhsm.DeleteHsmInput
		kind cloudhsm.ErrorKind
		want string
	}{
		{"none", cloudhsm.DeleteHsmInput{ClusterID: c.ID}, cloudhsm.KindInvalidRequest, "exactly one"},
		{"two", cloudhsm.DeleteHsmInput{ClusterID: c.ID, HsmID: h.ID, EniIP: h.EniIP}, cloudhsm.KindInvalidRequest, "exactly one"},
		{"unknown id", cloudhsm.DeleteHsmInput{ClusterID: c.ID, HsmID: "hsm-aaaaaaaaaaa"}, cloudhsm.KindNotFound, "hsm-aaaaaaaaaaa"},
		{"unknown ENI", cloudhsm.DeleteHsmInput{ClusterID: c.ID, EniID: "eni-00000000000000000"}, cloudhsm.KindNotFound, "eni-00000000000000000"},
		{"unknown cluster", cloudhsm.DeleteHsmInput{ClusterID: "cluster-aaaaaaaaaaa", HsmID: h.ID}, cloudhsm.KindNotFound, "cluster-aaaaaaaaaaa"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.DeleteHsm(tenantA, tc.in)
			wantErr(t, err, tc.kind, tc.want)
		})
	}
	id, err := e.svc.DeleteHsm(tenantA, cloudhsm.DeleteHsmInput{ClusterID: c.ID, EniID: h.EniID})
	if err != nil || id != h.ID {
		t.Fatalf("DeleteHsm by EniID: %q, %v", id, err)
	}
}

// Before activation a cluster holds one HSM: a second is refused with
// AWS's message in UNINITIALIZED, INITIALIZE_IN_PROGRESS and INITIALIZED
// (without making an identity); no HSM before UNINITIALIZED; any number
// (up to 28) once ACTIVE.
func TestFirstHsmRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, manual)
	d := testDelays()
	const notActivated = "already contains an HSM but has not yet been fully activated"
	c := e.createCluster()
	tryHsm := func(stage, want string) {
		t.Helper()
		made := e.ids.made.Load()
		_, err := e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: az(1)})
		if want == "" {
			if err != nil {
				t.Fatalf("%s: %v", stage, err)
			}
			return
		}
		wantErr(t, err, cloudhsm.KindInvalidRequest, want)
		if e.ids.made.Load() != made {
			t.Fatalf("%s: a refused CreateHsm made an HSM identity", stage)
		}
	}
	tryHsm("CREATE_IN_PROGRESS", "is CREATE_IN_PROGRESS")
	e.advance(d.ClusterCreate)
	e.createHsm(c.ID, 0)
	tryHsm("UNINITIALIZED, first HSM being created", "Cluster '"+c.ID+"' "+notActivated)
	e.advance(d.HsmCreate)
	tryHsm("UNINITIALIZED", notActivated)
	e.initialize(c.ID)
	tryHsm("INITIALIZE_IN_PROGRESS", notActivated)
	e.advance(d.ClusterInitialize)
	tryHsm("INITIALIZED", notActivated)
	if _, err := e.svc.Activate(tenantA, c.ID); err != nil {
		t.Fatal(err)
	}
	tryHsm("ACTIVE", "")
	tryHsm("ACTIVE, third", "")
	_, err := e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: c.ID, AZ: region + "f"})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "not mapped to a subnet")
}

// A cluster holds at most 28 HSMs.
func TestHsmsPerCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.importCluster(snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, cloudhsm.MaxHsmsPerCluster-1, cloudhsm.HsmActive))
	if _, err := e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: id, AZ: testSubnet.AZ}); err != nil {
		t.Fatalf("HSM number 28: %v", err)
	}
	_, err := e.svc.CreateHsm(context.Background(), tenantA, cloudhsm.CreateHsmInput{ClusterID: id, AZ: testSubnet.AZ})
	wantErr(t, err, cloudhsm.KindInvalidRequest, "already has 28 HSMs")
	if n := len(e.cluster(id).Hsms); n != 28 {
		t.Fatalf("%d HSMs", n)
	}
}
