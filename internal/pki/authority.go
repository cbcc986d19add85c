package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

const (
	// keyBits is the size of every RSA key the emulator generates.
	keyBits = 2048
	// rootValidity is how long the simulated roots are valid.
	rootValidity = 20 * 365 * 24 * time.Hour
	// backdate is subtracted from "now" for every NotBefore the package
	// writes, so that certificates issued under an emulated clock that runs
	// ahead of the wall clock still verify with openssl (which uses the wall
	// clock). Real hardware certificates predate the HSM's use anyway.
	backdate = 30 * 24 * time.Hour
)

// PEM header values used by MarshalBinary / ParseAuthority.
const (
	pemRoleHeader    = "Role"
	roleManufacturer = "manufacturer-root"
	roleAWS          = "aws-cloudhsm-root"
)

// Authority holds the two simulated roots: "manufacturer" and
// "AWS CloudHSM root". It is immutable after creation and safe for
// concurrent use.
type Authority struct {
	manufacturer rootCA
	aws          rootCA
}

// rootCA is one self-signed root and its key.
type rootCA struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// Subjects of the simulated roots. They say plainly that they are simulated.
var (
	manufacturerRootSubject = pkix.Name{
		Country:            []string{"US"},
		Province:           []string{"CA"},
		Locality:           []string{"SanJose"},
		Organization:       []string{"Marvell Semiconductors, Inc. (simulated by cloudhsm-local)"},
		OrganizationalUnit: []string{"LiquidSecurity"},
		CommonName:         "LiquidSecurity Root CA (cloudhsm-local simulation)",
	}
	awsRootSubject = pkix.Name{
		Country:            []string{"US"},
		Province:           []string{"Washington"},
		Locality:           []string{"Seattle"},
		Organization:       []string{"Amazon Web Services (simulated by cloudhsm-local)"},
		OrganizationalUnit: []string{"CloudHSM"},
		CommonName:         "AWS CloudHSM Root G1 (cloudhsm-local simulation)",
	}
)

// NewAuthority generates both roots (RSA 2048), valid for about 20 years
// from now.
func NewAuthority(now time.Time) (*Authority, error) {
	m, err := newRootCA(manufacturerRootSubject, now)
	if err != nil {
		return nil, fmt.Errorf("pki: manufacturer root: %w", err)
	}
	a, err := newRootCA(awsRootSubject, now)
	if err != nil {
		return nil, fmt.Errorf("pki: AWS CloudHSM root: %w", err)
	}
	return &Authority{manufacturer: m, aws: a}, nil
}

func newRootCA(subject pkix.Name, now time.Time) (rootCA, error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return rootCA{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return rootCA{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-backdate).UTC(),
		NotAfter:              now.Add(rootValidity).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return rootCA{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return rootCA{}, err
	}
	return rootCA{key: key, cert: cert}, nil
}

// ManufacturerRootPEM returns the manufacturer root certificate in PEM form
// (the guide's liquid_security_certificate.crt).
func (a *Authority) ManufacturerRootPEM() string { return certPEM(a.manufacturer.cert.Raw) }

// AWSRootPEM returns the AWS CloudHSM root certificate in PEM form (the
// guide's AWS_CloudHSM_Root-G1.crt).
func (a *Authority) AWSRootPEM() string { return certPEM(a.aws.cert.Raw) }

// MarshalBinary returns a PEM bundle of both roots' keys (PKCS#8) and
// certificates, each block tagged with a "Role" header, for persistence.
// ParseAuthority reads it back.
func (a *Authority) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	for _, r := range []struct {
		role string
		ca   rootCA
	}{{roleManufacturer, a.manufacturer}, {roleAWS, a.aws}} {
		keyDER, err := x509.MarshalPKCS8PrivateKey(r.ca.key)
		if err != nil {
			return nil, fmt.Errorf("pki: marshal %s key: %w", r.role, err)
		}
		hdr := map[string]string{pemRoleHeader: r.role}
		if err := pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Headers: hdr, Bytes: keyDER}); err != nil {
			return nil, err
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Headers: hdr, Bytes: r.ca.cert.Raw}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// ParseAuthority reads the output of MarshalBinary. It checks that each
// root's key matches its certificate and that the certificate is a
// self-signed CA.
func ParseAuthority(data []byte) (*Authority, error) {
	keys := map[string]*rsa.PrivateKey{}
	certs := map[string]*x509.Certificate{}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		role := block.Headers[pemRoleHeader]
		if role != roleManufacturer && role != roleAWS {
			return nil, fmt.Errorf("pki: authority bundle: PEM block %q has unknown role %q", block.Type, role)
		}
		switch block.Type {
		case "PRIVATE KEY":
			if keys[role] != nil {
				return nil, fmt.Errorf("pki: authority bundle: duplicate %s key", role)
			}
			k, err := parseRSAKeyDER(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pki: authority bundle: %s key: %w", role, err)
			}
			keys[role] = k
		case "CERTIFICATE":
			if certs[role] != nil {
				return nil, fmt.Errorf("pki: authority bundle: duplicate %s certificate", role)
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pki: authority bundle: %s certificate: %w", role, err)
			}
			certs[role] = c
		default:
			return nil, fmt.Errorf("pki: authority bundle: unexpected PEM block type %q", block.Type)
		}
	}
	var a Authority
	for _, r := range []struct {
		role string
		dst  *rootCA
	}{{roleManufacturer, &a.manufacturer}, {roleAWS, &a.aws}} {
		k, c := keys[r.role], certs[r.role]
		if k == nil || c == nil {
			return nil, fmt.Errorf("pki: authority bundle: missing %s key or certificate", r.role)
		}
		if !k.PublicKey.Equal(c.PublicKey) {
			return nil, fmt.Errorf("pki: authority bundle: %s key does not match its certificate", r.role)
		}
		if !c.IsCA || c.CheckSignatureFrom(c) != nil {
			return nil, fmt.Errorf("pki: authority bundle: %s certificate is not a self-signed CA", r.role)
		}
		*r.dst = rootCA{key: k, cert: c}
	}
	return &a, nil
}

// parseRSAKeyDER parses a PKCS#8 (or, leniently, PKCS#1) RSA private key.
func parseRSAKeyDER(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want RSA", k)
		}
		return rk, nil
	}
	return x509.ParsePKCS1PrivateKey(der)
}

// parseRSAKeyPEM parses a PEM-encoded PKCS#8 RSA private key.
func parseRSAKeyPEM(s string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not PEM-encoded")
	}
	return parseRSAKeyDER(block.Bytes)
}

// marshalKeyPEM returns key as a PKCS#8 "PRIVATE KEY" PEM block.
func marshalKeyPEM(key *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func certPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// randomSerial returns a random positive 127-bit certificate serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
