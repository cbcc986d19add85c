package testkit

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync/atomic"
	"testing"
	"time"
)

// CA is an organisation's certificate authority, made in the test, that
// signs cluster CSRs (InitializeCluster's SignedCert and TrustAnchor).
type CA struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
	PEM  string // Cert, PEM-encoded: the trust anchor

	serial atomic.Int64 // the last serial number issued
}

// NewCA makes a self-signed RSA 2048 root CA named commonName of
// organization, valid 2020 to 2040.
func NewCA(t testing.TB, commonName, organization string) *CA {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{organization}},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Key: key, Cert: cert, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// Sign checks the PEM CSR's signature and issues a certificate for its
// public key and subject, valid 2020 to 2036, PEM-encoded. Safe for
// concurrent use; each certificate has a serial number of its own.
func (ca *CA) Sign(csrPEM string) (string, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil {
		return "", fmt.Errorf("CSR is not PEM: %.80q", csrPEM)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", err
	}
	if err := csr.CheckSignature(); err != nil {
		return "", fmt.Errorf("CSR signature: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1000 + ca.serial.Add(1)),
		Subject:      csr.Subject,
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// MustSign is Sign failing the test on error.
func (ca *CA) MustSign(t testing.TB, csrPEM string) string {
	t.Helper()
	signed, err := ca.Sign(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}
