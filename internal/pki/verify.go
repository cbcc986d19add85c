package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// InitError is a refusal of InitializeCluster's certificate checks. Reason
// is a full sentence, fit to send to the user in a
// CloudHsmInvalidRequestException, saying exactly what to fix.
type InitError struct {
	Reason string
	// Internal is true when the failure is the emulator's own fault (the
	// stored cluster CSR is unusable) rather than a problem with the request.
	Internal bool
}

// Error returns Reason.
func (e *InitError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &InitError{Reason: fmt.Sprintf(format, args...)}
}

// timeLayout is how times appear in InitError reasons.
const timeLayout = time.RFC3339

// VerifyInitialization applies InitializeCluster's certificate checks. It
// returns nil or an *InitError.
//
// TrustAnchor must be a self-signed root CA certificate (RSA 2048 or RSA
// 4096; if it has X509v3 extensions, Basic Constraints with CA:TRUE), or a
// PEM chain of certificates whose last certificate is such a root and whose
// other certificates are CAs that chain up to it. SignedCert must be one PEM
// certificate issued by the root or by one of the chain's intermediates,
// must carry exactly the public key of the cluster CSR, and must be within
// its validity period at now.
func VerifyInitialization(csrPEM, signedCertPEM, trustAnchorPEM string, now time.Time) error {
	csrKey, err := parseClusterCSR(csrPEM)
	if err != nil {
		return &InitError{
			Reason:   fmt.Sprintf("The cluster CSR is invalid (%v); this is an internal error of cloudhsm-local, not a problem with your request.", err),
			Internal: true,
		}
	}
	cert, err := parseSignedCert(signedCertPEM)
	if err != nil {
		return err
	}
	anchor, err := parseTrustAnchor(trustAnchorPEM)
	if err != nil {
		return err
	}
	if err := checkRoot(anchor[len(anchor)-1]); err != nil {
		return err
	}
	if err := checkIntermediates(anchor); err != nil {
		return err
	}
	if err := checkAnchorValidity(anchor, now); err != nil {
		return err
	}
	if err := checkIssued(cert, anchor); err != nil {
		return err
	}
	if !samePublicKey(csrKey, cert) {
		return refuse("SignedCert's public key does not match the cluster CSR's public key; " +
			"issue the certificate from the cluster's CSR (DescribeClusters Certificates.ClusterCsr) and keep its public key unchanged.")
	}
	if now.Before(cert.NotBefore) {
		return refuse("SignedCert is not valid until %s (current time is %s); issue a certificate whose validity period has already started.",
			cert.NotBefore.UTC().Format(timeLayout), now.UTC().Format(timeLayout))
	}
	if now.After(cert.NotAfter) {
		return refuse("SignedCert expired at %s (current time is %s); issue a new certificate for the cluster CSR.",
			cert.NotAfter.UTC().Format(timeLayout), now.UTC().Format(timeLayout))
	}
	return nil
}

// parseClusterCSR parses the stored CSR, checks its signature and returns
// its public key.
func parseClusterCSR(csrPEM string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil {
		return nil, errors.New("not PEM-encoded")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("PEM block type %q", block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	if csr.PublicKey == nil {
		return nil, errors.New("unsupported public key")
	}
	return csr.PublicKey, nil
}

// pemBlocks splits s into its PEM blocks; text around blocks is ignored,
// as openssl does.
func pemBlocks(s string) []*pem.Block {
	var blocks []*pem.Block
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return blocks
		}
		blocks = append(blocks, b)
	}
}

func parseSignedCert(s string) (*x509.Certificate, error) {
	blocks := pemBlocks(s)
	switch {
	case len(blocks) == 0:
		return nil, refuse("SignedCert is not PEM-encoded; it must be one X.509 certificate between " +
			"-----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines.")
	case blocks[0].Type != "CERTIFICATE":
		return nil, refuse("SignedCert is a PEM %q block; it must be a CERTIFICATE block holding the certificate you issued for the cluster CSR%s.",
			blocks[0].Type, keyWarning(blocks[0].Type))
	case len(blocks) > 1:
		return nil, refuse("SignedCert contains %d PEM blocks; it must contain only the certificate you issued for the cluster CSR "+
			"(put intermediate and root CA certificates in TrustAnchor).", len(blocks))
	}
	cert, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		return nil, refuse("SignedCert is not an X.509 certificate: its PEM block does not hold a valid DER certificate (%s).", errText(err))
	}
	return cert, nil
}

func parseTrustAnchor(s string) ([]*x509.Certificate, error) {
	blocks := pemBlocks(s)
	if len(blocks) == 0 {
		return nil, refuse("TrustAnchor is not PEM-encoded; it must be your root CA certificate, or a chain of certificates ending with your root CA, " +
			"each between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines.")
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, refuse("TrustAnchor contains a PEM %q block (block %d of %d); it must contain only CERTIFICATE blocks%s.",
				b.Type, i+1, len(blocks), keyWarning(b.Type))
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			if len(blocks) == 1 {
				return nil, refuse("TrustAnchor is not an X.509 certificate: its PEM block does not hold a valid DER certificate (%s).", errText(err))
			}
			return nil, refuse("TrustAnchor is not an X.509 certificate chain: certificate %d of %d does not hold a valid DER certificate (%s).",
				i+1, len(blocks), errText(err))
		}
		certs = append(certs, c)
	}
	// Drop exact duplicates, keeping the last copy (so a repeated root
	// stays at the end).
	deduped := certs[:0:0]
	for i, c := range certs {
		dup := false
		for _, later := range certs[i+1:] {
			if c.Equal(later) {
				dup = true
				break
			}
		}
		if !dup {
			deduped = append(deduped, c)
		}
	}
	return deduped, nil
}

const rootRule = "the last certificate of TrustAnchor must be a root CA whose issuer equals its subject and whose signature verifies with its own key"

// checkRoot applies the trust anchor rules to the root (the last
// certificate of TrustAnchor).
func checkRoot(root *x509.Certificate) error {
	if !bytes.Equal(root.RawIssuer, root.RawSubject) {
		return refuse("TrustAnchor is not self-signed: %s, but its issuer %q differs from its subject %q.",
			rootRule, nameText(root.Issuer.String()), nameText(root.Subject.String()))
	}
	if rk, ok := root.PublicKey.(*rsa.PublicKey); !ok || (rk.N.BitLen() != 2048 && rk.N.BitLen() != 4096) {
		return refuse("TrustAnchor key must be RSA 2048 or RSA 4096, got %s.", describeKey(root))
	}
	if err := root.CheckSignature(root.SignatureAlgorithm, root.RawTBSCertificate, root.Signature); err != nil {
		return refuse("TrustAnchor is not self-signed: %s, but its signature does not verify with its own key (%s).", rootRule, errText(err))
	}
	if len(root.Extensions) > 0 {
		if !root.BasicConstraintsValid {
			return refuse("TrustAnchor has X509v3 extensions but no Basic Constraints extension; a root CA certificate with extensions must have Basic Constraints with CA:TRUE.")
		}
		if !root.IsCA {
			return refuse("TrustAnchor has Basic Constraints with CA:FALSE; the root CA certificate must have CA:TRUE.")
		}
	}
	if root.KeyUsage != 0 && root.KeyUsage&x509.KeyUsageCertSign == 0 {
		return refuse("TrustAnchor has a Key Usage extension without keyCertSign, which conflicts with CA:TRUE; the root CA certificate must be allowed to sign certificates.")
	}
	return nil
}

// checkAnchorValidity checks that every certificate of TrustAnchor is within
// its validity period at now, as path validation (and openssl verify) does.
func checkAnchorValidity(anchor []*x509.Certificate, now time.Time) error {
	for i, c := range anchor {
		if now.Before(c.NotBefore) {
			return refuse("TrustAnchor certificate %d of %d (subject %q) is not valid until %s (current time is %s).",
				i+1, len(anchor), nameText(c.Subject.String()), c.NotBefore.UTC().Format(timeLayout), now.UTC().Format(timeLayout))
		}
		if now.After(c.NotAfter) {
			return refuse("TrustAnchor certificate %d of %d (subject %q) expired at %s (current time is %s).",
				i+1, len(anchor), nameText(c.Subject.String()), c.NotAfter.UTC().Format(timeLayout), now.UTC().Format(timeLayout))
		}
	}
	return nil
}

// checkIntermediates checks that every certificate of TrustAnchor before
// the root is a CA that chains up to the root within TrustAnchor.
func checkIntermediates(anchor []*x509.Certificate) error {
	n := len(anchor)
	for i, c := range anchor[:n-1] {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
			return refuse("TrustAnchor certificate %d of %d (subject %q) is a self-signed root; only the last certificate of TrustAnchor may be a root, the others must be intermediate CAs.",
				i+1, n, nameText(c.Subject.String()))
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return refuse("TrustAnchor certificate %d of %d (subject %q) is not a CA; every intermediate certificate must have Basic Constraints with CA:TRUE.",
				i+1, n, nameText(c.Subject.String()))
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return refuse("TrustAnchor certificate %d of %d (subject %q) has a Key Usage extension without keyCertSign; every CA certificate must be allowed to sign certificates.",
				i+1, n, nameText(c.Subject.String()))
		}
	}
	// reaches[i]: anchor[i] chains up to the root. Grow the set until it
	// stops changing; the chain is tiny, so this is cheap.
	reaches := make([]bool, n)
	reaches[n-1] = true
	checked := make(map[[2]int]bool)
	for changed := true; changed; {
		changed = false
		for i := 0; i < n-1; i++ {
			if reaches[i] {
				continue
			}
			for j := 0; j < n; j++ {
				if j == i || !reaches[j] || checked[[2]int{i, j}] {
					continue
				}
				checked[[2]int{i, j}] = true
				if issuedBy(anchor[i], anchor[j]) == nil {
					reaches[i], changed = true, true
					break
				}
			}
		}
	}
	for i := 0; i < n-1; i++ {
		if !reaches[i] {
			return refuse("TrustAnchor certificate %d of %d (subject %q) does not chain up to the root CA at the end of TrustAnchor; "+
				"every intermediate must be issued by the root or by another intermediate in TrustAnchor.",
				i+1, n, nameText(anchor[i].Subject.String()))
		}
	}
	return nil
}

// checkIssued checks that cert was issued by a certificate of anchor (all of
// which chain up to the root once checkIntermediates passed).
func checkIssued(cert *x509.Certificate, anchor []*x509.Certificate) error {
	var named *x509.Certificate
	for _, ca := range anchor {
		if !bytes.Equal(cert.RawIssuer, ca.RawSubject) {
			continue
		}
		if issuedBy(cert, ca) == nil {
			return nil
		}
		if named == nil {
			named = ca
		}
	}
	if named == nil {
		return refuse("SignedCert was not issued by TrustAnchor: its issuer %q is not the subject of any certificate in TrustAnchor.",
			nameText(cert.Issuer.String()))
	}
	return refuse("SignedCert was not issued by TrustAnchor: its issuer name matches %q in TrustAnchor, but its signature does not verify with that certificate's key.",
		nameText(named.Subject.String()))
}

// issuedBy reports (as nil) whether parent's key signed child. Unlike
// x509.Certificate.CheckSignatureFrom it does not apply CA and key-usage
// constraints (callers check what the rules require) and accepts SHA-1.
func issuedBy(child, parent *x509.Certificate) error {
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return errors.New("issuer mismatch")
	}
	return parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
}

func samePublicKey(csrKey crypto.PublicKey, cert *x509.Certificate) bool {
	k, ok := csrKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && cert.PublicKey != nil && k.Equal(cert.PublicKey)
}

// describeKey names a certificate's key for error messages, e.g. "RSA 1024".
func describeKey(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		if k.Curve != nil {
			return "ECDSA " + k.Curve.Params().Name
		}
		return "ECDSA"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	if c.PublicKeyAlgorithm == x509.UnknownPublicKeyAlgorithm {
		return "an unsupported key algorithm"
	}
	return c.PublicKeyAlgorithm.String()
}

// keyWarning adds a reminder to messages about misplaced private keys.
func keyWarning(pemType string) string {
	if strings.Contains(pemType, "PRIVATE KEY") {
		return " (never send a private key; keep it secret and, since it was exposed, consider replacing it)"
	}
	return ""
}

// errText shortens a Go error for a user-facing sentence.
func errText(err error) string {
	return strings.TrimPrefix(err.Error(), "x509: ")
}

// nameText bounds a distinguished name's length in messages.
func nameText(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
