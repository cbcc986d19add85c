package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtures are generated once per test binary: RSA key generation is slow,
// especially under -race.
type fixtureSet struct {
	now  time.Time
	auth *Authority
	id   *HSMIdentity
	csr  string // cluster CSR of id (hsm2m, FIPS, partition 0)

	// A customer's CA hierarchy: root -> intermediate.
	rootKey, interKey, otherKey *rsa.PrivateKey
	rsa1024                     *rsa.PrivateKey
	rsa4096                     *rsa.PrivateKey
	ecKey                       *ecdsa.PrivateKey
	root, inter                 *x509.Certificate
	rootPEM, interPEM           string
	csrKey                      crypto.PublicKey
}

var (
	fxOnce sync.Once
	fx     fixtureSet
	fxErr  error
)

func fixtures(tb testing.TB) *fixtureSet {
	tb.Helper()
	fxOnce.Do(func() { fxErr = buildFixtures(&fx) })
	if fxErr != nil {
		tb.Fatalf("building fixtures: %v", fxErr)
	}
	return &fx
}

func buildFixtures(f *fixtureSet) error {
	f.now = time.Now().UTC().Truncate(time.Second)
	var err error
	// Generate the independent keys concurrently.
	keys := make([]*rsa.PrivateKey, 3)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = rsa.GenerateKey(rand.Reader, 2048) })
	}
	wg.Go(func() { f.rsa1024, errs[3] = rsa.GenerateKey(rand.Reader, 1024) })
	wg.Go(func() {
		f.auth, errs[4] = NewAuthority(f.now)
		if errs[4] == nil {
			f.id, errs[4] = f.auth.NewHSMIdentity("hsm-fixture1", f.now)
		}
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f.rootKey, f.interKey, f.otherKey = keys[0], keys[1], keys[2]
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	raw, err := os.ReadFile("testdata/rsa4096.testing-key")
	if err != nil {
		return err
	}
	if f.rsa4096, err = parseRSAKeyPEM(strings.ReplaceAll(string(raw), "TESTING KEY", "PRIVATE KEY")); err != nil {
		return err
	}
	if f.csr, err = ClusterCSR(f.id, 0, false, false); err != nil {
		return err
	}
	if f.csrKey, err = parseClusterCSR(f.csr); err != nil {
		return err
	}
	if f.root, err = issue(caTemplate("Customer Root CA"), nil, f.rootKey, &f.rootKey.PublicKey); err != nil {
		return err
	}
	if f.inter, err = issue(caTemplate("Customer Intermediate CA"), f.root, f.rootKey, &f.interKey.PublicKey); err != nil {
		return err
	}
	f.rootPEM, f.interPEM = certPEM(f.root.Raw), certPEM(f.inter.Raw)
	return nil
}

// caTemplate is a CA certificate template valid around the fixtures' now.
func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{Organization: []string{"Example Corp"}, CommonName: cn},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// leafTemplate is the certificate a customer issues for the cluster CSR.
func leafTemplate() *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "HSM:cluster"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
	}
}

// issue signs tmpl with signerKey; parent nil means self-signed.
func issue(tmpl, parent *x509.Certificate, signerKey crypto.Signer, pub crypto.PublicKey) (*x509.Certificate, error) {
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signerKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func mustIssuePEM(t testing.TB, tmpl, parent *x509.Certificate, signerKey crypto.Signer, pub crypto.PublicKey) string {
	t.Helper()
	c, err := issue(tmpl, parent, signerKey, pub)
	if err != nil {
		t.Fatalf("issue %q: %v", tmpl.Subject.CommonName, err)
	}
	return certPEM(c.Raw)
}

func parseCertPEM(t testing.TB, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", s)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseCSRPEM(t testing.TB, s string) *x509.CertificateRequest {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("not a PEM CSR: %q", s)
	}
	c, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentityChains(t *testing.T) {
	f := fixtures(t)
	hsm := parseCertPEM(t, f.id.HsmCertificate)
	awsHW := parseCertPEM(t, f.id.AwsHardwareCertificate)
	mfrHW := parseCertPEM(t, f.id.ManufacturerHardwareCertificate)

	for _, tc := range []struct {
		name     string
		rootPEM  string
		hardware *x509.Certificate
	}{
		{"AWS CloudHSM root", f.auth.AWSRootPEM(), awsHW},
		{"manufacturer root", f.auth.ManufacturerRootPEM(), mfrHW},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := parseCertPEM(t, tc.rootPEM)
			if !tc.hardware.IsCA {
				t.Error("hardware certificate is not a CA")
			}
			if err := tc.hardware.CheckSignatureFrom(root); err != nil {
				t.Errorf("hardware certificate not issued by root: %v", err)
			}
			roots, inters := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(root)
			inters.AddCert(tc.hardware)
			chains, err := hsm.Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inters, CurrentTime: f.now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			})
			if err != nil {
				t.Fatalf("HsmCertificate does not verify: %v", err)
			}
			if got := len(chains[0]); got != 3 {
				t.Errorf("chain length %d, want 3 (HSM, hardware, root)", got)
			}
		})
	}

	if !bytes.Equal(awsHW.RawSubject, mfrHW.RawSubject) {
		t.Errorf("hardware certificates have different subjects: %s vs %s", awsHW.Subject, mfrHW.Subject)
	}
	if !bytes.Equal(awsHW.RawSubjectPublicKeyInfo, mfrHW.RawSubjectPublicKeyInfo) {
		t.Error("hardware certificates have different public keys")
	}
	hwKey, err := parseRSAKeyPEM(f.id.HardwareKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !hwKey.PublicKey.Equal(awsHW.PublicKey) {
		t.Error("HardwareKeyPEM does not match the hardware certificates")
	}
	partKey, err := parseRSAKeyPEM(f.id.PartitionKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !partKey.PublicKey.Equal(hsm.PublicKey) {
		t.Error("PartitionKeyPEM does not match the HsmCertificate")
	}
	if partKey.N.BitLen() != 2048 || hwKey.N.BitLen() != 2048 {
		t.Errorf("key sizes %d/%d, want 2048", hwKey.N.BitLen(), partKey.N.BitLen())
	}

	csr := parseCSRPEM(t, f.csr)
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if !bytes.Equal(csr.RawSubjectPublicKeyInfo, hsm.RawSubjectPublicKeyInfo) {
		t.Error("HsmCertificate key differs from the cluster CSR key")
	}
	if !bytes.Equal(csr.RawSubject, hsm.RawSubject) {
		t.Errorf("HsmCertificate subject %s differs from CSR subject %s", hsm.Subject, csr.Subject)
	}
	if !regexp.MustCompile(`^[A-Z]{3}[0-9]{4}[A-Z][0-9]{5}$`).MatchString(f.id.Serial) {
		t.Errorf("serial %q does not look like RCN2345B07362", f.id.Serial)
	}
	if got := hardwareSerial("hsm-fixture1"); got != f.id.Serial {
		t.Errorf("serial not derived from the HSM ID: %q vs %q", got, f.id.Serial)
	}
	if hardwareSerial("hsm-other") == f.id.Serial {
		t.Error("different HSM IDs got the same serial")
	}
}

// rdnStrings lists a raw subject's attributes in encoded order as "OID=value".
func rdnStrings(t *testing.T, raw []byte) []string {
	t.Helper()
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		t.Fatal(err)
	}
	short := map[string]string{"2.5.4.6": "C", "2.5.4.8": "ST", "2.5.4.7": "L", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.3": "CN"}
	var out []string
	for _, rdn := range seq {
		for _, a := range rdn {
			out = append(out, short[a.Type.String()]+"="+a.Value.(string))
		}
	}
	return out
}

func TestClusterCSRSubject(t *testing.T) {
	f := fixtures(t)
	s := f.id.Serial
	for _, tc := range []struct {
		name      string
		partition int
		nonFIPS   bool
		hsm1      bool
		want      string
	}{
		{"hsm2m FIPS", 0, false, false, "C=US, ST=CA, OU=LS2, L=SanJose, O=Marvell, CN=HSM:" + s + ":PARTN:0, for FIPS mode"},
		{"hsm2m non-FIPS", 3, true, false, "C=US, ST=CA, OU=LS2, L=SanJose, O=Marvell, CN=HSM:" + s + ":PARTN:3, for NON-FIPS mode"},
		{"hsm1 FIPS", 2, false, true, "C=US, ST=CA, O=Cavium, OU=N3FIPS, L=SanJose, CN=HSM:" + s + ":PARTN:2, for FIPS mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csrPEM, err := ClusterCSR(f.id, tc.partition, tc.nonFIPS, tc.hsm1)
			if err != nil {
				t.Fatal(err)
			}
			csr := parseCSRPEM(t, csrPEM)
			if err := csr.CheckSignature(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rdnStrings(t, csr.RawSubject), ", "); got != tc.want {
				t.Errorf("subject\n got %s\nwant %s", got, tc.want)
			}
			again, err := ClusterCSR(f.id, tc.partition, tc.nonFIPS, tc.hsm1)
			if err != nil || again != csrPEM {
				t.Errorf("ClusterCSR is not deterministic (err %v)", err)
			}
		})
	}
	if _, err := ClusterCSR(&HSMIdentity{PartitionKeyPEM: "junk"}, 0, false, false); err == nil {
		t.Error("ClusterCSR accepted an identity without a partition key")
	}
}

// TestOpenSSL runs the user guide's verification commands with the real
// openssl binary, then a customer's signing flow (openssl req -x509 and
// openssl x509 -req) against VerifyInitialization.
func TestOpenSSL(t *testing.T) {
	for _, tool := range []string{"openssl", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			t.Skipf("!!!!! SKIPPING the openssl interoperability test: %s not found in PATH (%v). "+
				"Install openssl to check the certificates the way AWS users do. !!!!!", tool, err)
		}
	}
	f := fixtures(t)
	dir := t.TempDir()
	const id = "cluster-fixture1"
	files := map[string]string{
		"AWS_CloudHSM_Root-G1.crt":                  f.auth.AWSRootPEM(),
		"liquid_security_certificate.crt":           f.auth.ManufacturerRootPEM(),
		id + "_AwsHardwareCertificate.crt":          f.id.AwsHardwareCertificate,
		id + "_ManufacturerHardwareCertificate.crt": f.id.ManufacturerHardwareCertificate,
		id + "_HsmCertificate.crt":                  f.id.HsmCertificate,
		id + "_ClusterCsr.csr":                      f.csr,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(t *testing.T, script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}

	t.Run("AWS chain", func(t *testing.T) {
		run(t, "cat AWS_CloudHSM_Root-G1.crt "+id+"_AwsHardwareCertificate.crt > AWS_chain.crt")
		out := run(t, "openssl verify -CAfile AWS_chain.crt "+id+"_HsmCertificate.crt")
		if !strings.Contains(out, id+"_HsmCertificate.crt: OK") {
			t.Errorf("openssl verify: %s", out)
		}
	})
	t.Run("manufacturer chain", func(t *testing.T) {
		run(t, "cat liquid_security_certificate.crt "+id+"_ManufacturerHardwareCertificate.crt > manufacturer_chain.crt")
		out := run(t, "openssl verify -CAfile manufacturer_chain.crt "+id+"_HsmCertificate.crt")
		if !strings.Contains(out, id+"_HsmCertificate.crt: OK") {
			t.Errorf("openssl verify: %s", out)
		}
	})
	t.Run("public keys match", func(t *testing.T) {
		run(t, "openssl x509 -in "+id+"_HsmCertificate.crt -pubkey -noout > "+id+"_HsmCertificate.pub")
		run(t, "openssl req -in "+id+"_ClusterCsr.csr -pubkey -noout > "+id+"_ClusterCsr.pub")
		run(t, "diff "+id+"_HsmCertificate.pub "+id+"_ClusterCsr.pub")
		if pub := run(t, "cat "+id+"_ClusterCsr.pub"); !strings.Contains(pub, "BEGIN PUBLIC KEY") {
			t.Errorf("openssl printed no public key: %q", pub)
		}
	})
	t.Run("CSR subject and signature", func(t *testing.T) {
		out := run(t, "openssl req -in "+id+"_ClusterCsr.csr -noout -verify -subject -nameopt compat")
		want := "subject=/C=US/ST=CA/OU=LS2/L=SanJose/O=Marvell/CN=HSM:" + f.id.Serial + ":PARTN:0, for FIPS mode"
		if !strings.Contains(out, want) {
			t.Errorf("openssl req -subject:\n%s\nwant %s", out, want)
		}
	})
	t.Run("customer signs the CSR", func(t *testing.T) {
		// The guide's initialize-cluster steps, without the passphrase.
		run(t, "openssl genrsa -out customerCA.key 2048 2>/dev/null")
		run(t, "openssl req -new -x509 -days 3652 -key customerCA.key -out customerCA.crt -subj '/C=US/O=Example Corp/CN=Example Root CA'")
		run(t, "openssl x509 -req -days 3652 -in "+id+"_ClusterCsr.csr -CA customerCA.crt -CAkey customerCA.key -CAcreateserial -out "+id+"_CustomerHsmCertificate.crt 2>&1")
		signed, err := os.ReadFile(filepath.Join(dir, id+"_CustomerHsmCertificate.crt"))
		if err != nil {
			t.Fatal(err)
		}
		anchor, err := os.ReadFile(filepath.Join(dir, "customerCA.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyInitialization(f.csr, string(signed), string(anchor), time.Now()); err != nil {
			t.Errorf("VerifyInitialization refused openssl-made certificates: %v", err)
		}
		// A CSR signed by the customer with a different key pair is refused.
		run(t, "openssl req -new -newkey rsa:2048 -nodes -keyout other.key -out other.csr -subj '/CN=other' 2>/dev/null")
		run(t, "openssl x509 -req -days 30 -in other.csr -CA customerCA.crt -CAkey customerCA.key -CAcreateserial -out other.crt 2>&1")
		other, err := os.ReadFile(filepath.Join(dir, "other.crt"))
		if err != nil {
			t.Fatal(err)
		}
		err = VerifyInitialization(f.csr, string(other), string(anchor), time.Now())
		if err == nil || !strings.Contains(err.Error(), "public key does not match") {
			t.Errorf("certificate for another key: got %v", err)
		}
	})
}

func TestVerifyInitialization(t *testing.T) {
	f := fixtures(t)
	pub := f.csrKey
	leaf := func(mod func(*x509.Certificate)) *x509.Certificate {
		l := leafTemplate()
		if mod != nil {
			mod(l)
		}
		return l
	}
	signedByRoot := mustIssuePEM(t, leaf(nil), f.root, f.rootKey, pub)
	signedByInter := mustIssuePEM(t, leaf(nil), f.inter, f.interKey, pub)

	// A second intermediate level, listed out of order: [inter, inter2, root].
	inter2, err := issue(caTemplate("Customer Issuing CA"), f.inter, f.interKey, &f.otherKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	signedByInter2 := mustIssuePEM(t, leaf(nil), inter2, f.otherKey, pub)

	root4096 := mustIssuePEM(t, caTemplate("Customer Root CA 4096"), nil, f.rsa4096, &f.rsa4096.PublicKey)
	signedBy4096 := mustIssuePEM(t, leaf(nil), parseCertPEM(t, root4096), f.rsa4096, pub)

	noExtTmpl := caTemplate("Customer Root CA without extensions")
	noExtTmpl.BasicConstraintsValid, noExtTmpl.IsCA, noExtTmpl.KeyUsage = false, false, 0
	noExtRoot := mustIssuePEM(t, noExtTmpl, nil, f.rootKey, &f.rootKey.PublicKey)
	if c := parseCertPEM(t, noExtRoot); len(c.Extensions) != 0 {
		t.Fatalf("root without extensions has %d extensions", len(c.Extensions))
	}
	signedByNoExt := mustIssuePEM(t, leaf(nil), parseCertPEM(t, noExtRoot), f.rootKey, pub)

	// Refused anchors.
	ecRoot := mustIssuePEM(t, caTemplate("EC Root"), nil, f.ecKey, &f.ecKey.PublicKey)
	smallRoot := mustIssuePEM(t, caTemplate("Small Root"), nil, f.rsa1024, &f.rsa1024.PublicKey)
	signedBySmall := mustIssuePEM(t, leaf(nil), parseCertPEM(t, smallRoot), f.rsa1024, pub)
	noBCTmpl := caTemplate("Root without Basic Constraints")
	noBCTmpl.BasicConstraintsValid, noBCTmpl.IsCA = false, false
	noBCRoot := mustIssuePEM(t, noBCTmpl, nil, f.rootKey, &f.rootKey.PublicKey)
	notCATmpl := caTemplate("Root with CA:FALSE")
	notCATmpl.IsCA = false
	notCARoot := mustIssuePEM(t, notCATmpl, nil, f.rootKey, &f.rootKey.PublicKey)
	// Issuer equals subject, but signed by another key.
	forgedTmpl := caTemplate("Customer Root CA")
	forgedRoot := mustIssuePEM(t, forgedTmpl, caTemplate("Customer Root CA"), f.otherKey, &f.rootKey.PublicKey)
	// Another CA with the same name as the customer's root, and one with another name.
	impostor := mustIssuePEM(t, caTemplate("Customer Root CA"), nil, f.otherKey, &f.otherKey.PublicKey)
	otherRoot := mustIssuePEM(t, caTemplate("Other Root CA"), nil, f.otherKey, &f.otherKey.PublicKey)
	signedByOther := mustIssuePEM(t, leaf(nil), parseCertPEM(t, otherRoot), f.otherKey, pub)
	signedByImpostor := mustIssuePEM(t, leaf(nil), parseCertPEM(t, impostor), f.otherKey, pub)
	// An intermediate issued by the other root, not by the anchor's root.
	strayInter := mustIssuePEM(t, caTemplate("Stray Intermediate"), parseCertPEM(t, otherRoot), f.otherKey, &f.interKey.PublicKey)
	// A non-CA "intermediate" issued by the root.
	nonCATmpl := caTemplate("Not a CA")
	nonCATmpl.IsCA = false
	nonCAInter := mustIssuePEM(t, nonCATmpl, f.root, f.rootKey, &f.interKey.PublicKey)

	wrongKey := mustIssuePEM(t, leaf(nil), f.root, f.rootKey, &f.otherKey.PublicKey)
	notYet := mustIssuePEM(t, leaf(func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = f.now.Add(48*time.Hour), f.now.Add(96*time.Hour)
	}), f.root, f.rootKey, pub)
	expired := mustIssuePEM(t, leaf(func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = f.now.Add(-96*time.Hour), f.now.Add(-48*time.Hour)
	}), f.root, f.rootKey, pub)

	garbage := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("definitely not DER")}))
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

	cases := []struct {
		name, signed, anchor string
		want                 string // prefix of the InitError reason; "" means accepted
	}{
		{"root signs directly", signedByRoot, f.rootPEM, ""},
		{"intermediate + root chain", signedByInter, f.interPEM + f.rootPEM, ""},
		{"two intermediates out of order", signedByInter2, f.interPEM + certPEM(inter2.Raw) + f.rootPEM, ""},
		{"root signs with intermediate also in chain", signedByRoot, f.interPEM + f.rootPEM, ""},
		{"RSA 4096 root", signedBy4096, root4096, ""},
		{"root without extensions", signedByNoExt, noExtRoot, ""},
		{"CRLF line endings and surrounding text", crlf(signedByRoot), "subject=Customer Root CA\n" + crlf(f.rootPEM) + "\n", ""},
		{"repeated root", signedByInter, f.rootPEM + f.interPEM + f.rootPEM, ""},

		{"SignedCert empty", "", f.rootPEM, "SignedCert is not PEM-encoded"},
		{"SignedCert not PEM", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", f.rootPEM, "SignedCert is not PEM-encoded"},
		{"SignedCert is the CSR", f.csr, f.rootPEM, `SignedCert is a PEM "CERTIFICATE REQUEST" block`},
		{"SignedCert with chain", signedByInter + f.interPEM, f.interPEM + f.rootPEM, "SignedCert contains 2 PEM blocks"},
		{"SignedCert garbage DER", garbage, f.rootPEM, "SignedCert is not an X.509 certificate"},
		{"TrustAnchor empty", signedByRoot, "", "TrustAnchor is not PEM-encoded"},
		{"TrustAnchor not PEM", signedByRoot, "Customer Root CA", "TrustAnchor is not PEM-encoded"},
		{"TrustAnchor is a key", signedByRoot, f.id.HardwareKeyPEM, `TrustAnchor contains a PEM "PRIVATE KEY" block`},
		{"TrustAnchor garbage DER", signedByRoot, garbage, "TrustAnchor is not an X.509 certificate:"},
		{"TrustAnchor chain with garbage DER", signedByRoot, garbage + f.rootPEM, "TrustAnchor is not an X.509 certificate chain: certificate 1 of 2"},
		{"TrustAnchor not self-signed", signedByInter, f.interPEM, "TrustAnchor is not self-signed"},
		{"TrustAnchor chain in reverse order", signedByInter, f.rootPEM + f.interPEM, "TrustAnchor is not self-signed"},
		{"TrustAnchor self-issued with bad signature", signedByRoot, forgedRoot, "TrustAnchor is not self-signed"},
		{"TrustAnchor EC key", signedByRoot, ecRoot, "TrustAnchor key must be RSA 2048 or RSA 4096, got ECDSA P-256."},
		{"TrustAnchor RSA 1024", signedBySmall, smallRoot, "TrustAnchor key must be RSA 2048 or RSA 4096, got RSA 1024."},
		{"TrustAnchor without basic constraints", signedByRoot, noBCRoot, "TrustAnchor has X509v3 extensions but no Basic Constraints extension"},
		{"TrustAnchor CA:FALSE", signedByRoot, notCARoot, "TrustAnchor has Basic Constraints with CA:FALSE"},
		{"intermediate not a CA", signedByRoot, nonCAInter + f.rootPEM, "TrustAnchor certificate 1 of 2 (subject \"CN=Not a CA,O=Example Corp\") is not a CA"},
		{"intermediate from another root", signedByRoot, strayInter + f.rootPEM, "TrustAnchor certificate 1 of 2 (subject \"CN=Stray Intermediate,O=Example Corp\") does not chain up"},
		{"second root in chain", signedByRoot, otherRoot + f.rootPEM, "TrustAnchor certificate 1 of 2 (subject \"CN=Other Root CA,O=Example Corp\") is a self-signed root"},
		{"signed by another CA", signedByOther, f.rootPEM, "SignedCert was not issued by TrustAnchor: its issuer \"CN=Other Root CA,O=Example Corp\" is not the subject"},
		{"signed by a CA with the same name", signedByImpostor, f.rootPEM, "SignedCert was not issued by TrustAnchor: its issuer name matches"},
		{"intermediate cert without intermediate", signedByInter, f.rootPEM, "SignedCert was not issued by TrustAnchor"},
		{"wrong public key", wrongKey, f.rootPEM, "SignedCert's public key does not match the cluster CSR's public key"},
		{"not yet valid", notYet, f.rootPEM, "SignedCert is not valid until " + f.now.Add(48*time.Hour).Format(time.RFC3339)},
		{"expired", expired, f.rootPEM, "SignedCert expired at " + f.now.Add(-48*time.Hour).Format(time.RFC3339)},
	}
	reasons := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyInitialization(f.csr, tc.signed, tc.anchor, f.now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ie *InitError
			if !errors.As(err, &ie) {
				t.Fatalf("got %T %v, want *InitError", err, err)
			}
			t.Log(ie.Reason)
			if !strings.HasPrefix(ie.Reason, tc.want) {
				t.Errorf("reason\n got %s\nwant prefix %s", ie.Reason, tc.want)
			}
			if !strings.HasSuffix(ie.Reason, ".") || ie.Error() != ie.Reason || ie.Internal {
				t.Errorf("reason is not a complete user-facing sentence: %q (internal %v)", ie.Reason, ie.Internal)
			}
			if prev, ok := reasons[ie.Reason]; ok && prev != tc.want {
				t.Errorf("reason not distinct: also produced where %q was expected: %s", prev, ie.Reason)
			}
			reasons[ie.Reason] = tc.want
		})
	}

	t.Run("invalid cluster CSR is internal", func(t *testing.T) {
		for _, csr := range []string{"", "junk", signedByRoot, strings.Replace(f.csr, "MII", "MIJ", 1)} {
			err := VerifyInitialization(csr, signedByRoot, f.rootPEM, f.now)
			var ie *InitError
			if !errors.As(err, &ie) || !ie.Internal || !strings.HasPrefix(ie.Reason, "The cluster CSR is invalid") {
				t.Errorf("CSR %.20q: got %v", csr, err)
			}
		}
	})
}

func TestAuthorityRoundTrip(t *testing.T) {
	f := fixtures(t)
	data, err := f.auth.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAuthority(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.AWSRootPEM() != f.auth.AWSRootPEM() || got.ManufacturerRootPEM() != f.auth.ManufacturerRootPEM() {
		t.Error("root certificates changed in the round trip")
	}
	if got.AWSRootPEM() == got.ManufacturerRootPEM() {
		t.Error("the two roots are the same certificate")
	}
	again, err := got.MarshalBinary()
	if err != nil || !bytes.Equal(again, data) {
		t.Errorf("second MarshalBinary differs (err %v)", err)
	}
	// The parsed authority issues certificates that chain to the original roots.
	id, err := got.NewHSMIdentityWithOptions("hsm-roundtrip", f.now, IdentityOptions{Partition: 1, HSM1: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := parseCertPEM(t, id.AwsHardwareCertificate).CheckSignatureFrom(parseCertPEM(t, f.auth.AWSRootPEM())); err != nil {
		t.Errorf("AWS hardware certificate from parsed authority: %v", err)
	}
	if err := parseCertPEM(t, id.ManufacturerHardwareCertificate).CheckSignatureFrom(parseCertPEM(t, f.auth.ManufacturerRootPEM())); err != nil {
		t.Errorf("manufacturer hardware certificate from parsed authority: %v", err)
	}
	if cn := parseCertPEM(t, id.HsmCertificate).Subject.CommonName; cn != "HSM:"+id.Serial+":PARTN:1, for FIPS mode" {
		t.Errorf("HsmCertificate CN %q", cn)
	}

	other, err := ParseAuthority(bytes.Replace(data, []byte(roleAWS), []byte("nobody"), 1))
	if err == nil || other != nil {
		t.Error("ParseAuthority accepted an unknown role")
	}
	// Swap the AWS certificate for the manufacturer one: key no longer matches.
	blocks := pemBlocks(string(data))
	blocks[3].Bytes = blocks[1].Bytes
	var swapped bytes.Buffer
	for _, b := range blocks {
		_ = pem.Encode(&swapped, b)
	}
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("garbage"),
		"only two":       data[:bytes.Index(data, []byte("-----BEGIN PRIVATE KEY-----\n"+pemRoleHeader+": "+roleAWS))],
		"mismatched key": swapped.Bytes(),
	} {
		if _, err := ParseAuthority(bad); err == nil {
			t.Errorf("ParseAuthority accepted %s input", name)
		}
	}
}

func TestKeyPool(t *testing.T) {
	p := NewKeyPool(1)
	defer p.Close()
	f := fixtures(t)
	id, err := f.auth.NewHSMIdentityWithOptions("hsm-pool", f.now, IdentityOptions{KeySource: p.Get})
	if err != nil {
		t.Fatal(err)
	}
	if id.HardwareKeyPEM == id.PartitionKeyPEM {
		t.Error("pool handed out the same key twice")
	}
	p.Close()
	if k, err := p.Get(); err != nil || k.N.BitLen() != 2048 {
		t.Errorf("Get after Close: %v", err)
	}
}

func FuzzVerifyInitialization(f *testing.F) {
	fx := fixtures(f)
	signed, err := issue(leafTemplate(), fx.root, fx.rootKey, fx.csrKey)
	if err != nil {
		f.Fatal(err)
	}
	signedPEM := certPEM(signed.Raw)
	viaInter, err := issue(leafTemplate(), fx.inter, fx.interKey, fx.csrKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signedPEM, fx.rootPEM)
	f.Add(certPEM(viaInter.Raw), fx.interPEM+fx.rootPEM)
	f.Add(fx.rootPEM, signedPEM)
	f.Add(signedPEM, fx.interPEM)
	f.Add(fx.id.HsmCertificate, fx.auth.AWSRootPEM()+fx.id.AwsHardwareCertificate)
	f.Add(fx.csr, fx.id.PartitionKeyPEM)
	f.Add("", "")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
	f.Add(signedPEM[:len(signedPEM)/2], fx.rootPEM[10:])
	f.Fuzz(func(t *testing.T, signedCert, trustAnchor string) {
		err := VerifyInitialization(fx.csr, signedCert, trustAnchor, fx.now)
		if err == nil {
			return
		}
		var ie *InitError
		if !errors.As(err, &ie) || ie.Reason == "" || ie.Internal {
			t.Fatalf("got %T %v, want a user-facing *InitError", err, err)
		}
	})
}

func BenchmarkNewHSMIdentity(b *testing.B) {
	f := fixtures(b)
	for b.Loop() {
		if _, err := f.auth.NewHSMIdentity("hsm-bench", f.now); err != nil {
			b.Fatal(err)
		}
	}
}
