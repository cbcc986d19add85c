package cloudhsmlocal_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

const initializingMessage = "Cluster is initializing. State will change to INITIALIZED upon completion."

// ---- certificate helpers ----

var certSerial atomic.Int64

// certIssuer is a CA made in the test: any key type, any extensions.
type certIssuer struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

func certToPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// issueCert signs tmpl for pub with parent (nil: self-signed with key).
func issueCert(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey, parent *certIssuer, key crypto.Signer) *certIssuer {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(certSerial.Add(1) + 1000)
	parentCert, signer := tmpl, key
	if parent != nil {
		parentCert, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, pub, signer)
	if err != nil {
		t.Fatalf("create certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certIssuer{cert: cert, key: key, pem: certToPEM(der)}
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// RSA 2048 key generation dominates these tests' CPU time (the server's own
// HSM keys come on top), so CA keys are made once per test binary and
// shared: tests only need keys to differ within one test.
var (
	sharedKeys     [6]*rsa.PrivateKey
	sharedKeysOnce [6]sync.Once
)

// sharedKey returns the i-th shared RSA 2048 key (0 <= i < 6).
func sharedKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	sharedKeysOnce[i].Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		sharedKeys[i] = k
	})
	return sharedKeys[i]
}

// caTemplate is a CA certificate valid from 2020 to 2040.
func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Test Org"}},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// newRoot makes a self-signed root with key and an optional template change.
func newRoot(t *testing.T, cn string, key crypto.Signer, change func(*x509.Certificate)) *certIssuer {
	t.Helper()
	tmpl := caTemplate(cn)
	if change != nil {
		change(tmpl)
	}
	return issueCert(t, tmpl, key.Public(), nil, key)
}

// newIntermediate makes a CA issued by parent.
func newIntermediate(t *testing.T, cn string, parent *certIssuer) *certIssuer {
	t.Helper()
	key := sharedKey(t, 1)
	return issueCert(t, caTemplate(cn), key.Public(), parent, key)
}

// leaf issues a certificate for pub with the CSR's subject, valid in
// [notBefore, notAfter].
func (ca *certIssuer) leaf(t *testing.T, subject pkix.Name, pub crypto.PublicKey, notBefore, notAfter time.Time) string {
	t.Helper()
	return issueCert(t, &x509.Certificate{Subject: subject, NotBefore: notBefore, NotAfter: notAfter}, pub, ca, nil).pem
}

// signCSR issues a certificate for the CSR, valid 2020-2036.
func (ca *certIssuer) signCSR(t *testing.T, csrPEM string) string {
	t.Helper()
	csr := parseCSR(t, csrPEM)
	return ca.leaf(t, csr.Subject, csr.PublicKey, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC))
}

func parseCertPEM(t *testing.T, name, s string) *x509.Certificate {
	t.Helper()
	b, rest := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s is not a PEM certificate: %q", name, s)
	}
	if strings.TrimSpace(string(rest)) != "" {
		t.Errorf("%s has data after its PEM block: %q", name, rest)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func parseCSR(t *testing.T, s string) *x509.CertificateRequest {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("ClusterCsr is not a PEM CERTIFICATE REQUEST: %q", s)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	return csr
}

// verifyChain verifies leaf against root with intermediate, at now.
func verifyChain(t *testing.T, leafPEM, rootPEM, intermediatePEM string, now time.Time) error {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(rootPEM)) {
		t.Fatalf("root is not PEM: %q", rootPEM)
	}
	if !inter.AppendCertsFromPEM([]byte(intermediatePEM)) {
		t.Fatalf("intermediate is not PEM: %q", intermediatePEM)
	}
	_, err := parseCertPEM(t, "leaf", leafPEM).Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// certificatesPresent lists which members of Certificates are set.
func certificatesPresent(c *types.Certificates) []string {
	var out []string
	if c == nil {
		return out
	}
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"ClusterCsr", c.ClusterCsr}, {"HsmCertificate", c.HsmCertificate}, {"AwsHardwareCertificate", c.AwsHardwareCertificate},
		{"ManufacturerHardwareCertificate", c.ManufacturerHardwareCertificate}, {"ClusterCertificate", c.ClusterCertificate},
	} {
		if f.v != nil {
			out = append(out, f.name)
		}
	}
	return out
}

func wantCertificates(t *testing.T, when string, c *types.Certificates, want ...string) {
	t.Helper()
	if got := certificatesPresent(c); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: Certificates has %v, want %v", when, got, want)
	}
}

// ---- Certificates ----

// TestClusterCertificatesBeforeInitialization checks the CSR and the three
// HSM certificates an UNINITIALIZED cluster shows, and that initialization
// replaces them with the cluster certificate.
func TestClusterCertificatesBeforeInitialization(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		in     cloudhsmv2.CreateClusterInput
		cnMode string
	}{
		{"hsm2m FIPS by default", cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium")}, "FIPS"},
		{"hsm2m NON_FIPS", cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), Mode: types.ClusterModeNonFips}, "NON-FIPS"},
		{"hsm1 FIPS", cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium")}, "FIPS"},
	}
	// One server for all cases (sequential): each server costs RSA keys.
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			cl := clusterWithoutHsm(t, srv, c, &in)
			id := *cl.ClusterId
			wantCertificates(t, "UNINITIALIZED without HSM", cl.Certificates)
			mustCreateHsm(t, c, id, sortedAZsOf(cl)[0], "")
			wantCertificates(t, "HSM CREATE_IN_PROGRESS", describe(t, c, id).Certificates)
			srv.Advance(stepDelay)
			cl = describe(t, c, id)
			certs := cl.Certificates
			wantCertificates(t, "HSM ACTIVE", certs, "ClusterCsr", "HsmCertificate", "AwsHardwareCertificate", "ManufacturerHardwareCertificate")
			if t.Failed() {
				t.FailNow()
			}

			csr := parseCSR(t, *certs.ClusterCsr)
			hsmCert := parseCertPEM(t, "HsmCertificate", *certs.HsmCertificate)
			if k, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(hsmCert.PublicKey) {
				t.Errorf("CSR public key differs from HsmCertificate's")
			}
			cnRe := regexp.MustCompile(`^HSM:[A-Z0-9]+:PARTN:\d+, for ` + tc.cnMode + ` mode$`)
			if cn := csr.Subject.CommonName; !cnRe.MatchString(cn) {
				t.Errorf("CSR CN %q does not match %s", cn, cnRe)
			}
			if hsmCert.Subject.String() != csr.Subject.String() {
				t.Errorf("HsmCertificate subject %q differs from the CSR's %q", hsmCert.Subject, csr.Subject)
			}
			if srv.AWSRootPEM() == srv.ManufacturerRootPEM() {
				t.Fatalf("the AWS and manufacturer roots are the same certificate")
			}
			now := srv.Now()
			if err := verifyChain(t, *certs.HsmCertificate, srv.AWSRootPEM(), *certs.AwsHardwareCertificate, now); err != nil {
				t.Errorf("HsmCertificate does not verify with AWS root + AwsHardwareCertificate: %v", err)
			}
			if err := verifyChain(t, *certs.HsmCertificate, srv.ManufacturerRootPEM(), *certs.ManufacturerHardwareCertificate, now); err != nil {
				t.Errorf("HsmCertificate does not verify with manufacturer root + ManufacturerHardwareCertificate: %v", err)
			}
			// Control: the hardware certificates are bound to their own roots.
			if err := verifyChain(t, *certs.HsmCertificate, srv.AWSRootPEM(), *certs.ManufacturerHardwareCertificate, now); err == nil {
				t.Errorf("HsmCertificate verifies with the AWS root and the manufacturer's hardware certificate")
			}
			if err := verifyChain(t, *certs.HsmCertificate, srv.ManufacturerRootPEM(), *certs.AwsHardwareCertificate, now); err == nil {
				t.Errorf("HsmCertificate verifies with the manufacturer root and the AWS hardware certificate")
			}

			ca := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
			signed := ca.signCSR(t, *certs.ClusterCsr)
			if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &signed, TrustAnchor: &ca.pem}); err != nil {
				t.Fatal(err)
			}
			for _, st := range []types.ClusterState{types.ClusterStateInitializeInProgress, types.ClusterStateInitialized, types.ClusterStateActive} {
				cl = describe(t, c, id)
				if cl.State != st {
					t.Fatalf("cluster is %s, want %s", cl.State, st)
				}
				wantCertificates(t, string(st), cl.Certificates, "ClusterCertificate")
				if cl.Certificates != nil && aws.ToString(cl.Certificates.ClusterCertificate) != signed {
					t.Errorf("%s: ClusterCertificate is not the SignedCert", st)
				}
				srv.Advance(stepDelay)
			}
		})
	}
}

// ---- InitializeCluster ----

// TestInitializeClusterRefusals sends certificates that break one rule each;
// every refusal says what is wrong and leaves the cluster as it was.
func TestInitializeClusterRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := clusterWithCSR(t, srv, c, nil)
	id := *cl.ClusterId
	csrPEM := *cl.Certificates.ClusterCsr
	csr := parseCSR(t, csrPEM)
	now := srv.Now()

	root := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
	good := root.signCSR(t, csrPEM)
	inter := newIntermediate(t, "Test Org Issuing CA", root) // key 1
	otherRoot := newRoot(t, "Other Org Root CA", sharedKey(t, 2), nil)
	impostor := newRoot(t, "Test Org Root CA", sharedKey(t, 2), nil) // same name as root, other key
	weak := newRoot(t, "Weak Root CA", rsaKey(t, 1024), nil)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecRoot := newRoot(t, "EC Root CA", ecKey, nil)
	noBC := newRoot(t, "No BasicConstraints Root CA", sharedKey(t, 3), func(c *x509.Certificate) {
		c.BasicConstraintsValid, c.IsCA = false, false
		c.KeyUsage = x509.KeyUsageDigitalSignature
	})
	notCA := newRoot(t, "Not a CA Root", sharedKey(t, 3), func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature })
	keyDER, err := x509.MarshalPKCS8PrivateKey(root.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	garbage := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("this is not DER at all, just some bytes")}))
	const notPEM = "TUlJQ2xqQ0NBWDRDQVFBd0RURUxNQWtHQTFVRUF3d0NZV0V3Z2dFaU1BMEdDU3FHU0liM0RRRUI="
	strangerKey := sharedKey(t, 4)

	cases := []struct {
		name, signed, anchor string
		contains             []string
	}{
		{"SignedCert not PEM", notPEM, root.pem, []string{"SignedCert", "PEM"}},
		{"TrustAnchor not PEM", good, notPEM, []string{"TrustAnchor", "PEM"}},
		{"SignedCert is the CSR", csrPEM, root.pem, []string{"SignedCert", "CERTIFICATE REQUEST"}},
		{"TrustAnchor is a private key", good, keyPEM, []string{"TrustAnchor", "PRIVATE KEY"}},
		{"SignedCert garbage DER", garbage, root.pem, []string{"SignedCert", "X.509"}},
		{"TrustAnchor garbage DER", good, garbage, []string{"TrustAnchor", "X.509"}},
		{"SignedCert with its chain", good + root.pem, root.pem, []string{"SignedCert", "2 PEM blocks"}},
		{"anchor is an intermediate", inter.signCSR(t, csrPEM), inter.pem, []string{"TrustAnchor", "self-signed"}},
		{"anchor RSA 1024", weak.signCSR(t, csrPEM), weak.pem, []string{"TrustAnchor", "RSA 1024", "RSA 2048"}},
		{"anchor EC P-256", ecRoot.signCSR(t, csrPEM), ecRoot.pem, []string{"TrustAnchor", "ECDSA", "RSA 2048"}},
		{"anchor with extensions but no BasicConstraints", noBC.signCSR(t, csrPEM), noBC.pem, []string{"TrustAnchor", "Basic Constraints"}},
		{"anchor CA:FALSE", notCA.signCSR(t, csrPEM), notCA.pem, []string{"TrustAnchor", "CA:TRUE"}},
		{"issued by a different CA", otherRoot.signCSR(t, csrPEM), root.pem, []string{"SignedCert", "not issued by TrustAnchor"}},
		{"issued by a CA with the anchor's name but another key", impostor.signCSR(t, csrPEM), root.pem, []string{"SignedCert", "not issued by TrustAnchor", "signature"}},
		{"different public key", root.leaf(t, csr.Subject, strangerKey.Public(), now.Add(-time.Hour), now.Add(time.Hour)), root.pem, []string{"SignedCert", "public key", "CSR"}},
		{"not yet valid", root.leaf(t, csr.Subject, csr.PublicKey, now.Add(time.Hour), now.Add(48*time.Hour)), root.pem,
			[]string{"SignedCert", "not valid until", now.Add(time.Hour).UTC().Format(time.RFC3339)}},
		{"expired", root.leaf(t, csr.Subject, csr.PublicKey, now.Add(-48*time.Hour), now.Add(-time.Hour)), root.pem,
			[]string{"SignedCert", "expired", now.Add(-time.Hour).UTC().Format(time.RFC3339)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: aws.String(tc.signed), TrustAnchor: aws.String(tc.anchor)})
			wantAPIError(t, err, codeInvalidRequest, tc.contains...)
			_, msg := apiErrorOf(t, err)
			t.Logf("message: %s", msg)
			after := describe(t, c, id)
			if after.State != types.ClusterStateUninitialized || after.Certificates == nil || aws.ToString(after.Certificates.ClusterCsr) != csrPEM ||
				after.Certificates.ClusterCertificate != nil {
				t.Fatalf("refused InitializeCluster changed the cluster: %s, certificates %v", after.State, certificatesPresent(after.Certificates))
			}
		})
	}
	// Control: the same cluster accepts the well-formed pair.
	out, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &good, TrustAnchor: &root.pem})
	if err != nil {
		t.Fatalf("well-formed InitializeCluster after the refusals: %v", err)
	}
	if out.State != types.ClusterStateInitializeInProgress {
		t.Fatalf("state %s", out.State)
	}
}

// TestInitializeClusterWrongState: only an UNINITIALIZED cluster with a CSR
// can be initialized.
func TestInitializeClusterWrongState(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithManualActivation())
	c := client(srv)
	root := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
	// A certificate for some key: the state is checked, not the certificate.
	someCert := root.leaf(t, pkix.Name{CommonName: "x"}, sharedKey(t, 4).Public(),
		time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC))

	noHsm := createCluster(t, c, 2)
	hsmCreating := createCluster(t, c, 2)
	done := createCluster(t, c, 2)
	srv.Advance(stepDelay) // all three UNINITIALIZED
	dc := describe(t, c, *done.ClusterId)
	mustCreateHsm(t, c, *dc.ClusterId, sortedAZsOf(dc)[0], "")
	srv.Advance(stepDelay) // done's HSM ACTIVE
	hc := describe(t, c, *hsmCreating.ClusterId)
	mustCreateHsm(t, c, *hc.ClusterId, sortedAZsOf(hc)[0], "") // stays CREATE_IN_PROGRESS until the next Advance
	dc = describe(t, c, *done.ClusterId)
	signedDone := root.signCSR(t, *dc.Certificates.ClusterCsr)
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: dc.ClusterId, SignedCert: &signedDone, TrustAnchor: &root.pem}); err != nil {
		t.Fatal(err)
	}
	inCreate := createCluster(t, c, 2)

	type refusal struct {
		name, clusterID, signed, code string
		contains                      []string
	}
	run := func(cases ...refusal) {
		t.Helper()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := describeOrNil(t, c, tc.clusterID)
				_, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &tc.clusterID, SignedCert: &tc.signed, TrustAnchor: &root.pem})
				wantAPIError(t, err, tc.code, tc.contains...)
				after := describeOrNil(t, c, tc.clusterID)
				if before != nil && (after.State != before.State ||
					strings.Join(certificatesPresent(after.Certificates), ",") != strings.Join(certificatesPresent(before.Certificates), ",")) {
					t.Fatalf("refused InitializeCluster changed the cluster: %s %v -> %s %v", before.State, certificatesPresent(before.Certificates),
						after.State, certificatesPresent(after.Certificates))
				}
			})
		}
	}
	run(
		refusal{"CREATE_IN_PROGRESS", *inCreate.ClusterId, someCert, codeInvalidRequest, []string{*inCreate.ClusterId, "CREATE_IN_PROGRESS"}},
		refusal{"UNINITIALIZED without HSM", *noHsm.ClusterId, someCert, codeInvalidRequest, []string{*noHsm.ClusterId, "CSR"}},
		refusal{"UNINITIALIZED with its HSM CREATE_IN_PROGRESS", *hsmCreating.ClusterId, someCert, codeInvalidRequest, []string{*hsmCreating.ClusterId, "CSR"}},
		refusal{"INITIALIZE_IN_PROGRESS, same certificate again", *dc.ClusterId, signedDone, codeInvalidRequest, []string{*dc.ClusterId, "INITIALIZE_IN_PROGRESS"}},
		refusal{"unknown cluster", "cluster-abcdefghijk", someCert, codeNotFound, []string{"cluster-abcdefghijk"}},
	)
	srv.Advance(stepDelay)
	run(refusal{"INITIALIZED, same certificate again", *dc.ClusterId, signedDone, codeInvalidRequest, []string{*dc.ClusterId, "INITIALIZED"}})
	if err := srv.Activate(cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, *dc.ClusterId); err != nil {
		t.Fatal(err)
	}
	run(refusal{"ACTIVE, same certificate again", *dc.ClusterId, signedDone, codeInvalidRequest, []string{*dc.ClusterId, "ACTIVE"}})
}

// describeOrNil describes a cluster, or returns nil if it does not exist.
func describeOrNil(t *testing.T, c *cloudhsmv2.Client, id string) *types.Cluster {
	t.Helper()
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil {
		t.Fatalf("DescribeClusters: %v", err)
	}
	if len(out.Clusters) == 0 {
		return nil
	}
	return &out.Clusters[0]
}

// TestInitializeClusterSuccess initializes with a root anchor and with a
// chain whose intermediate signed the CSR.
func TestInitializeClusterSuccess(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	root := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
	inter := newIntermediate(t, "Test Org Issuing CA", root)
	bare := newRoot(t, "Bare Root CA", sharedKey(t, 2), func(c *x509.Certificate) {
		c.BasicConstraintsValid, c.IsCA, c.KeyUsage = false, false, 0
	})
	if len(bare.cert.Extensions) != 0 {
		t.Fatalf("the bare root has extensions: %v", bare.cert.Extensions)
	}
	cases := []struct {
		name   string
		signer *certIssuer
		anchor string
	}{
		{"self-signed root", root, root.pem},
		{"intermediate + root chain", inter, inter.pem + root.pem},
		{"root without X509v3 extensions", bare, bare.pem},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, _ := clusterWithCSR(t, srv, c, nil)
			id := *cl.ClusterId
			signed := tc.signer.signCSR(t, *cl.Certificates.ClusterCsr)
			rec, recorder := recordingClient(srv)
			out, err := rec.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &signed, TrustAnchor: &tc.anchor})
			if err != nil {
				t.Fatalf("InitializeCluster: %v", err)
			}
			if out.State != types.ClusterStateInitializeInProgress || aws.ToString(out.StateMessage) != initializingMessage {
				t.Errorf("InitializeCluster answered %s %q", out.State, aws.ToString(out.StateMessage))
			}
			if got, want := strings.TrimSpace(string(recorder.lastBody())), `{"State":"INITIALIZE_IN_PROGRESS","StateMessage":"`+initializingMessage+`"}`; got != want {
				t.Errorf("InitializeCluster body\n%s\nwant\n%s", got, want)
			}
			if st := describe(t, c, id).State; st != types.ClusterStateInitializeInProgress {
				t.Fatalf("cluster is %s, want INITIALIZE_IN_PROGRESS", st)
			}
			srv.Advance(stepDelay)
			cl = describe(t, c, id)
			if cl.State != types.ClusterStateInitialized {
				t.Fatalf("cluster is %s, want INITIALIZED", cl.State)
			}
			wantCertificates(t, "INITIALIZED", cl.Certificates, "ClusterCertificate")
			if cl.Certificates != nil && aws.ToString(cl.Certificates.ClusterCertificate) != signed {
				t.Errorf("ClusterCertificate is not the SignedCert")
			}
		})
	}
}

// ---- Activation ----

// TestActivationAutomatic: by default an INITIALIZED cluster becomes ACTIVE
// after the configured delay, and activation takes a backup.
func TestActivationAutomatic(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		opts  []cloudhsmlocal.Option
		delay time.Duration
	}{
		{"default delay", nil, stepDelay},
		{"WithDelay 3s", []cloudhsmlocal.Option{cloudhsmlocal.WithDelay(3 * time.Second)}, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := cloudhsmlocal.Start(t, tc.opts...)
			c := client(srv)
			out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets(2)})
			if err != nil {
				t.Fatal(err)
			}
			id := *out.Cluster.ClusterId
			srv.Advance(tc.delay)
			cl := describe(t, c, id)
			h := mustCreateHsm(t, c, id, sortedAZsOf(cl)[0], "")
			srv.Advance(tc.delay)
			cl = describe(t, c, id)
			if hsmInCluster(cl, *h.HsmId).State != types.HsmStateActive {
				t.Fatalf("HSM not ACTIVE after %v", tc.delay)
			}
			ca := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
			if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id,
				SignedCert: aws.String(ca.signCSR(t, *cl.Certificates.ClusterCsr)), TrustAnchor: &ca.pem}); err != nil {
				t.Fatal(err)
			}
			srv.Advance(tc.delay)
			if st := describe(t, c, id).State; st != types.ClusterStateInitialized {
				t.Fatalf("cluster is %s, want INITIALIZED", st)
			}
			if bs := backupsOf(t, c, id); len(bs) != 0 {
				t.Fatalf("INITIALIZED cluster has backups %v", states(bs))
			}
			srv.Advance(tc.delay - time.Millisecond)
			if st := describe(t, c, id).State; st != types.ClusterStateInitialized {
				t.Fatalf("1ms before the delay the cluster is %s, want INITIALIZED", st)
			}
			srv.Advance(time.Millisecond)
			if st := describe(t, c, id).State; st != types.ClusterStateActive {
				t.Fatalf("after the delay the cluster is %s, want ACTIVE", st)
			}
			bs := backupsOf(t, c, id)
			if len(bs) != 1 || bs[0].BackupState != types.BackupStateCreateInProgress {
				t.Fatalf("activation should start one backup, got %v", states(bs))
			}
			srv.Advance(tc.delay)
			if bs := backupsOf(t, c, id); len(bs) != 1 || bs[0].BackupState != types.BackupStateReady {
				t.Fatalf("activation backup should be READY, got %v", states(bs))
			}
		})
	}
}

// TestActivationManual: WithManualActivation keeps INITIALIZED clusters
// until srv.Activate, which refuses clusters that are not INITIALIZED.
func TestActivationManual(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithManualActivation())
	c := client(srv)
	cl, _ := clusterWithCSR(t, srv, c, nil)
	id := *cl.ClusterId
	ca := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id,
		SignedCert: aws.String(ca.signCSR(t, *cl.Certificates.ClusterCsr)), TrustAnchor: &ca.pem}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Activate(cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, id); err == nil {
		t.Errorf("Activate accepted an INITIALIZE_IN_PROGRESS cluster")
	}
	srv.Advance(stepDelay)
	srv.Advance(time.Hour)
	cl = describe(t, c, id)
	if cl.State != types.ClusterStateInitialized {
		t.Fatalf("an hour after initialization the cluster is %s, want INITIALIZED", cl.State)
	}
	if bs := backupsOf(t, c, id); len(bs) != 0 {
		t.Fatalf("INITIALIZED cluster has backups %v", states(bs))
	}
	other := clusterWithoutHsm(t, srv, c, nil)
	refusals := []struct{ name, account, region, id string }{
		{"UNINITIALIZED cluster", cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, *other.ClusterId},
		{"unknown cluster", cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, "cluster-abcdefghijk"},
		{"other account", "210987654321", cloudhsmlocal.DefaultRegion, id},
		{"other Region", cloudhsmlocal.DefaultAccount, "eu-west-1", id},
	}
	for _, r := range refusals {
		if err := srv.Activate(r.account, r.region, r.id); err == nil {
			t.Errorf("Activate of %s (%s/%s/%s) succeeded", r.name, r.account, r.region, r.id)
		}
	}
	if st := describe(t, c, *other.ClusterId).State; st != types.ClusterStateUninitialized {
		t.Errorf("refused Activate changed the UNINITIALIZED cluster to %s", st)
	}
	if st := describe(t, c, id).State; st != types.ClusterStateInitialized {
		t.Fatalf("refused Activate calls changed the cluster to %s", st)
	}
	if err := srv.Activate(cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, id); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	cl = describe(t, c, id)
	if cl.State != types.ClusterStateActive {
		t.Fatalf("after Activate the cluster is %s", cl.State)
	}
	wantCertificates(t, "ACTIVE", cl.Certificates, "ClusterCertificate")
	if bs := backupsOf(t, c, id); len(bs) != 1 {
		t.Fatalf("activation should start one backup, got %v", states(bs))
	}
	srv.Advance(stepDelay)
	if bs := backupsOf(t, c, id); len(bs) != 1 || bs[0].BackupState != types.BackupStateReady {
		t.Fatalf("activation backup should be READY, got %v", states(bs))
	}
	if err := srv.Activate(cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, id); err == nil {
		t.Errorf("Activate of an ACTIVE cluster succeeded")
	}
	if bs := backupsOf(t, c, id); len(bs) != 1 {
		t.Errorf("refused Activate took a backup: %v", states(bs))
	}
}

// TestReplacingFirstHsmReplacesCSR: the CSR belongs to the first HSM's key.
// Deleting that HSM before initialization removes the CSR; the next HSM
// brings a new one, and a certificate for the old CSR is refused.
func TestReplacingFirstHsmReplacesCSR(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, h := clusterWithCSR(t, srv, c, nil)
	id := *cl.ClusterId
	oldCSR := *cl.Certificates.ClusterCsr
	if _, err := c.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: &id, HsmId: h.HsmId}); err != nil {
		t.Fatal(err)
	}
	srv.Advance(stepDelay)
	cl = describe(t, c, id)
	if len(cl.Hsms) != 0 {
		t.Fatalf("HSM not gone: %+v", cl.Hsms)
	}
	wantCertificates(t, "UNINITIALIZED after its only HSM was deleted", cl.Certificates)
	root := newRoot(t, "Test Org Root CA", sharedKey(t, 0), nil)
	oldSigned := root.signCSR(t, oldCSR)
	_, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &oldSigned, TrustAnchor: &root.pem})
	wantAPIError(t, err, codeInvalidRequest, "CSR")

	mustCreateHsm(t, c, id, sortedAZsOf(cl)[0], "")
	srv.Advance(stepDelay)
	cl = describe(t, c, id)
	wantCertificates(t, "UNINITIALIZED with a new ACTIVE HSM", cl.Certificates, "ClusterCsr", "HsmCertificate", "AwsHardwareCertificate", "ManufacturerHardwareCertificate")
	if t.Failed() {
		t.FailNow()
	}
	newCSR := parseCSR(t, *cl.Certificates.ClusterCsr)
	if newCSR.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(parseCSR(t, oldCSR).PublicKey) {
		t.Fatalf("the new HSM's CSR has the old HSM's key")
	}
	_, err = c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &oldSigned, TrustAnchor: &root.pem})
	wantAPIError(t, err, codeInvalidRequest, "public key")
	newSigned := root.signCSR(t, *cl.Certificates.ClusterCsr)
	if _, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &newSigned, TrustAnchor: &root.pem}); err != nil {
		t.Fatalf("InitializeCluster with the new CSR: %v", err)
	}
}

// TrustAnchors that RFC 5280 path validation (and the guide's last step,
// `openssl verify -CAfile customerCA.crt <cluster>_ClusterCertificate.crt`)
// rejects are refused: expired or not yet valid CA certificates, and a CA
// whose Key Usage leaves out certificate signing.
func TestTrustAnchorValidityAndKeyUsage(t *testing.T) {
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	now := srv.Now()
	year := 365 * 24 * time.Hour
	root := newRoot(t, "Probe Root", sharedKey(t, 0), nil)
	expiredRoot := newRoot(t, "Expired Root", sharedKey(t, 2), func(x *x509.Certificate) {
		x.NotBefore, x.NotAfter = now.Add(-10*year), now.Add(-24*time.Hour)
	})
	futureRoot := newRoot(t, "Future Root", sharedKey(t, 2), func(x *x509.Certificate) {
		x.NotBefore, x.NotAfter = now.Add(24*time.Hour), now.Add(10*year)
	})
	noCertSign := newRoot(t, "No keyCertSign Root", sharedKey(t, 3), func(x *x509.Certificate) {
		x.KeyUsage = x509.KeyUsageDigitalSignature
	})
	expiredInterTmpl := caTemplate("Expired Issuing")
	expiredInterTmpl.NotBefore, expiredInterTmpl.NotAfter = now.Add(-10*year), now.Add(-24*time.Hour)
	expiredInter := issueCert(t, expiredInterTmpl, sharedKey(t, 1).Public(), root, sharedKey(t, 1))
	for _, k := range []struct {
		name   string
		issuer *certIssuer
		anchor string
	}{
		{"expired root", expiredRoot, expiredRoot.pem},
		{"not-yet-valid root", futureRoot, futureRoot.pem},
		{"expired intermediate", expiredInter, expiredInter.pem + root.pem},
		{"root whose Key Usage lacks keyCertSign", noCertSign, noCertSign.pem},
	} {
		t.Run(k.name, func(t *testing.T) {
			cl, _ := clusterWithCSR(t, srv, c, nil)
			signed := k.issuer.signCSR(t, *cl.Certificates.ClusterCsr)
			_, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{
				ClusterId: cl.ClusterId, SignedCert: aws.String(signed), TrustAnchor: aws.String(k.anchor)})
			wantAPIError(t, err, codeInvalidRequest, "TrustAnchor")
		})
	}
}
