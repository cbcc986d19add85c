package cloudhsmlocal_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// requireOpenSSL returns the openssl binary: a missing binary fails the
// test in CI and skips it (loudly) elsewhere.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required in CI but not found in PATH: %v", err)
		}
		t.Skipf("SKIPPED: openssl not found in PATH (%v): the AWS user guide's verification and signing steps are NOT tested. Install openssl to run this test.", err)
	}
	return path
}

// runOpenSSL runs the binary in dir and returns its combined output, failing
// the test on a non-zero exit.
func runOpenSSL(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	out, err := runOpenSSLErr(bin, dir, args...)
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runOpenSSLErr(bin, dir string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeOpenSSLFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readOpenSSLFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpenSSLVerifyHsmIdentityAndInitialize follows the AWS user guide
// with the real openssl binary: verify the HSM certificate against both
// chains, compare the public keys of the HSM certificate and the CSR, sign
// the CSR with a self-made CA and initialize the cluster with the files.
func TestOpenSSLVerifyHsmIdentityAndInitialize(t *testing.T) {
	t.Parallel()
	bin := requireOpenSSL(t)
	// openssl stamps certificates with the real time: the server clock
	// starts at the real time too, so that SignedCert is not "not yet valid".
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithStartTime(time.Now()))
	c := client(srv)
	cl, _ := clusterWithCSR(t, srv, c, nil)
	id := *cl.ClusterId
	certs := cl.Certificates
	dir := t.TempDir()
	writeOpenSSLFile(t, dir, "csr.pem", *certs.ClusterCsr)
	writeOpenSSLFile(t, dir, "hsm.crt", *certs.HsmCertificate)
	writeOpenSSLFile(t, dir, "AWS_CloudHSM_Root-G1.crt", srv.AWSRootPEM())
	writeOpenSSLFile(t, dir, "liquid_security_certificate.crt", srv.ManufacturerRootPEM())
	writeOpenSSLFile(t, dir, "aws_hardware.crt", *certs.AwsHardwareCertificate)
	writeOpenSSLFile(t, dir, "manufacturer_hardware.crt", *certs.ManufacturerHardwareCertificate)

	chains := []struct{ name, root, hardware string }{
		{"AWS", "AWS_CloudHSM_Root-G1.crt", "aws_hardware.crt"},
		{"manufacturer", "liquid_security_certificate.crt", "manufacturer_hardware.crt"},
	}
	for _, ch := range chains {
		t.Run("verify "+ch.name+" chain", func(t *testing.T) {
			// cat root hardware > chain.crt
			chain := ch.name + "_chain.crt"
			writeOpenSSLFile(t, dir, chain, readOpenSSLFile(t, dir, ch.root)+readOpenSSLFile(t, dir, ch.hardware))
			if out := runOpenSSL(t, bin, dir, "verify", "-CAfile", chain, "hsm.crt"); strings.TrimSpace(out) != "hsm.crt: OK" {
				t.Errorf("openssl verify printed %q, want \"hsm.crt: OK\"", out)
			}
			// Control: the root alone does not verify the HSM certificate.
			if out, err := runOpenSSLErr(bin, dir, "verify", "-CAfile", ch.root, "hsm.crt"); err == nil {
				t.Errorf("openssl verify with the root only succeeded: %s", out)
			}
		})
	}
	t.Run("public keys", func(t *testing.T) {
		hsmKey := runOpenSSL(t, bin, dir, "x509", "-noout", "-pubkey", "-in", "hsm.crt")
		csrKey := runOpenSSL(t, bin, dir, "req", "-noout", "-pubkey", "-in", "csr.pem")
		if !strings.Contains(hsmKey, "BEGIN PUBLIC KEY") || hsmKey != csrKey {
			t.Errorf("public keys differ:\nhsm.crt:\n%s\ncsr.pem:\n%s", hsmKey, csrKey)
		}
		if out := runOpenSSL(t, bin, dir, "req", "-noout", "-verify", "-in", "csr.pem"); !strings.Contains(out, "verify OK") {
			t.Errorf("openssl req -verify: %s", out)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	runOpenSSL(t, bin, dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=Test-CA", "-days", "3650")
	runOpenSSL(t, bin, dir, "x509", "-req", "-days", "3650", "-in", "csr.pem", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "signed.crt")
	signed, anchor := readOpenSSLFile(t, dir, "signed.crt"), readOpenSSLFile(t, dir, "ca.crt")
	// openssl's NotBefore is the real time of signing, a little after the
	// frozen server clock's start: bring the clock up to the real time.
	if d := time.Until(srv.Now()); d < 0 {
		srv.Advance(-d + time.Second)
	}
	out, err := c.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: &id, SignedCert: &signed, TrustAnchor: &anchor})
	if err != nil {
		t.Fatalf("InitializeCluster with openssl's signed.crt and ca.crt: %v", err)
	}
	if out.State != types.ClusterStateInitializeInProgress || aws.ToString(out.StateMessage) != initializingMessage {
		t.Errorf("InitializeCluster answered %s %q", out.State, aws.ToString(out.StateMessage))
	}
	srv.Advance(stepDelay)
	cl = describe(t, c, id)
	if cl.State != types.ClusterStateInitialized || cl.Certificates == nil || aws.ToString(cl.Certificates.ClusterCertificate) != signed {
		t.Fatalf("after initialization: %s, certificates %v", cl.State, certificatesPresent(cl.Certificates))
	}
	// The cluster certificate verifies against the CA with openssl too.
	writeOpenSSLFile(t, dir, "cluster.crt", *cl.Certificates.ClusterCertificate)
	if out := runOpenSSL(t, bin, dir, "verify", "-CAfile", "ca.crt", "cluster.crt"); strings.TrimSpace(out) != "cluster.crt: OK" {
		t.Errorf("openssl verify of the ClusterCertificate printed %q", out)
	}
}
