package console

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// CertView is one certificate (or the CSR) of a cluster, decoded, with
// the console's verdict on its chain.
type CertView struct {
	Name     string // file name stem, e.g. "hsm-certificate"
	Title    string
	PEM      string
	Shown    bool // DescribeClusters shows it now
	Subject  string
	Issuer   string
	NotAfter time.Time
	From     time.Time
	Key      string
	Serial   string
	// Verdicts say what was checked, each ok or not.
	Verdicts []Verdict
	Err      string // could not be decoded
}

// Verdict is one check of a certificate chain.
type Verdict struct {
	OK   bool
	Text string
}

func keyText(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func parseCert(p string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, fmt.Errorf("not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

func sameKey(a, b any) bool {
	if k, ok := a.(interface{ Equal(crypto.PublicKey) bool }); ok {
		return k.Equal(b)
	}
	return false
}

// clusterCerts decodes a cluster's CSR and certificates and checks them:
// the CSR's signature, the HSM certificate against the hardware
// certificates, those against the simulated roots, and the cluster
// certificate's key against the CSR's.
func clusterCerts(v ClusterView, awsRoot, manufacturerRoot string, now time.Time) []CertView {
	var hsm HsmView
	for _, h := range v.Hsms {
		if h.ID == v.CsrHsmID {
			hsm = h
		}
	}
	var out []CertView
	var csrKey any
	if v.Csr != "" {
		cv := CertView{Name: "cluster-csr", Title: "Cluster CSR", PEM: v.Csr, Shown: v.Shown.ClusterCsr != ""}
		block, _ := pem.Decode([]byte(v.Csr))
		if block == nil {
			cv.Err = "not PEM"
		} else if csr, err := x509.ParseCertificateRequest(block.Bytes); err != nil {
			cv.Err = err.Error()
		} else {
			csrKey = csr.PublicKey
			cv.Subject, cv.Key = csr.Subject.String(), keyText(csr.PublicKey)
			cv.Verdicts = append(cv.Verdicts, Verdict{csr.CheckSignature() == nil, "signed by its own key"})
			if hc, err := parseCert(hsm.HsmCertificate); err == nil {
				cv.Verdicts = append(cv.Verdicts, Verdict{sameKey(hc.PublicKey, csr.PublicKey), "its key is the HSM certificate's (made by HSM " + hsm.ID + ")"})
			}
		}
		out = append(out, cv)
	}
	hw, _ := parseCert(hsm.AwsHardwareCertificate)
	if hsm.HsmCertificate != "" {
		cv := decode("hsm-certificate", "HSM certificate", hsm.HsmCertificate, v.Shown.HsmCertificate != "")
		if c, err := parseCert(hsm.HsmCertificate); err == nil && hw != nil {
			cv.Verdicts = append(cv.Verdicts, Verdict{c.CheckSignatureFrom(hw) == nil && bytes.Equal(c.RawIssuer, hw.RawSubject), "issued by the HSM's hardware key (the AWS hardware certificate)"})
		}
		out = append(out, cv)
	}
	if hsm.AwsHardwareCertificate != "" {
		cv := decode("aws-hardware-certificate", "AWS hardware certificate", hsm.AwsHardwareCertificate, v.Shown.AwsHardwareCertificate != "")
		cv.Verdicts = append(cv.Verdicts, chainVerdict(hsm.AwsHardwareCertificate, awsRoot, now, "chains to the simulated AWS CloudHSM root"))
		out = append(out, cv)
	}
	if hsm.ManufacturerCertificate != "" {
		cv := decode("manufacturer-hardware-certificate", "Manufacturer hardware certificate", hsm.ManufacturerCertificate, v.Shown.ManufacturerHardwareCertificate != "")
		cv.Verdicts = append(cv.Verdicts, chainVerdict(hsm.ManufacturerCertificate, manufacturerRoot, now, "chains to the simulated manufacturer root"))
		out = append(out, cv)
	}
	if v.ClusterCertificate != "" {
		cv := decode("cluster-certificate", "Cluster certificate (signed by your CA)", v.ClusterCertificate, v.Shown.ClusterCertificate != "")
		if c, err := parseCert(v.ClusterCertificate); err == nil {
			if csrKey != nil {
				cv.Verdicts = append(cv.Verdicts, Verdict{sameKey(c.PublicKey, csrKey), "carries the cluster CSR's key"})
			}
			cv.Verdicts = append(cv.Verdicts, Verdict{!now.Before(c.NotBefore) && !now.After(c.NotAfter), "valid now"},
				Verdict{true, "its trust anchor was checked by InitializeCluster and is not kept by the service"})
		}
		out = append(out, cv)
	}
	return out
}

func decode(name, title, p string, shown bool) CertView {
	cv := CertView{Name: name, Title: title, PEM: p, Shown: shown}
	c, err := parseCert(p)
	if err != nil {
		cv.Err = err.Error()
		return cv
	}
	cv.Subject, cv.Issuer, cv.From, cv.NotAfter = c.Subject.String(), c.Issuer.String(), c.NotBefore, c.NotAfter
	cv.Key, cv.Serial = keyText(c.PublicKey), c.SerialNumber.Text(16)
	return cv
}

func chainVerdict(certPEM, rootPEM string, now time.Time, text string) Verdict {
	c, err := parseCert(certPEM)
	root, err2 := parseCert(rootPEM)
	if err != nil || err2 != nil {
		return Verdict{false, text + ": cannot be read"}
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	_, err = c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return Verdict{false, text + ": " + err.Error()}
	}
	return Verdict{true, text}
}

// testCA is a certificate authority made for one click: it signs a
// cluster's CSR as the AWS guide's customer CA does (openssl req -x509,
// then openssl x509 -req). Its key is not kept.
func signWithTestCA(csrPEM string, notBefore, notAfter time.Time) (signed, anchor string, err error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil {
		return "", "", fmt.Errorf("the cluster CSR is not PEM")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", "", fmt.Errorf("read the cluster CSR: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("make the test CA's key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", "", err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cloudhsm-local console test CA", Organization: []string{"cloudhsm-local"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("make the test CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: new(big.Int).Add(serial, big.NewInt(1)), Subject: csr.Subject, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, csr.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("sign the cluster CSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), nil
}
