package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"
)

// HSMIdentity is everything the emulator must persist about one HSM's keys.
type HSMIdentity struct {
	HardwareKeyPEM  string // PKCS#8 PEM; the key both hardware certificates certify
	PartitionKeyPEM string // PKCS#8 PEM; the CSR and HsmCertificate key

	HsmCertificate                  string // PEM; partition key, issued by the hardware key
	AwsHardwareCertificate          string // PEM; hardware key, issued by the AWS CloudHSM root
	ManufacturerHardwareCertificate string // PEM; hardware key, issued by the manufacturer root

	Serial string // hardware serial like "RCN2345B07362", used in subjects
}

// IdentityOptions shapes the subjects of a new HSM identity. The zero value
// is an hsm2m HSM in FIPS mode, partition 0.
type IdentityOptions struct {
	// Partition, NonFIPS and HSM1 give the HsmCertificate the same subject
	// ClusterCSR produces for the same arguments.
	Partition int
	NonFIPS   bool
	HSM1      bool // hsm1.medium subject (O=Cavium, OU=N3FIPS) instead of hsm2m (O=Marvell, OU=LS2)

	// KeySource returns fresh RSA 2048 keys; nil generates them with
	// crypto/rand. KeyPool.Get fits here.
	KeySource func() (*rsa.PrivateKey, error)
}

// NewHSMIdentity creates the keys and certificates of one hsm2m HSM in FIPS
// mode (see NewHSMIdentityWithOptions). The serial is derived from hsmID, so
// the same ID always gets the same serial. It generates two RSA 2048 keys
// and is slow; call it outside any lock.
func (a *Authority) NewHSMIdentity(hsmID string, now time.Time) (*HSMIdentity, error) {
	return a.NewHSMIdentityWithOptions(hsmID, now, IdentityOptions{})
}

// NewHSMIdentityWithOptions creates the keys and certificates of one HSM:
// a hardware key certified (as a CA, same subject, same key) by both the
// manufacturer root and the AWS CloudHSM root, and a partition key certified
// by the hardware key in the HsmCertificate.
func (a *Authority) NewHSMIdentityWithOptions(hsmID string, now time.Time, opts IdentityOptions) (*HSMIdentity, error) {
	if opts.Partition < 0 {
		return nil, fmt.Errorf("pki: negative partition %d", opts.Partition)
	}
	newKey := opts.KeySource
	if newKey == nil {
		newKey = generateKey
	}
	hwKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("pki: hardware key: %w", err)
	}
	partKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("pki: partition key: %w", err)
	}
	serial := hardwareSerial(hsmID)

	hwSubject, err := asn1.Marshal(hardwareSubject(serial, opts.HSM1))
	if err != nil {
		return nil, err
	}
	hsmSubject, err := asn1.Marshal(partitionSubject(serial, opts.Partition, opts.NonFIPS, opts.HSM1))
	if err != nil {
		return nil, err
	}

	// Both hardware certificates: same subject, same key, same key ID.
	issueHW := func(root rootCA, skid []byte) (*x509.Certificate, error) {
		sn, err := randomSerial()
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          sn,
			RawSubject:            hwSubject,
			SubjectKeyId:          skid,
			NotBefore:             now.Add(-backdate).UTC(),
			NotAfter:              root.cert.NotAfter,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLen:            0,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, &hwKey.PublicKey, root.key)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	awsHW, err := issueHW(a.aws, nil)
	if err != nil {
		return nil, fmt.Errorf("pki: AWS hardware certificate: %w", err)
	}
	mfrHW, err := issueHW(a.manufacturer, awsHW.SubjectKeyId)
	if err != nil {
		return nil, fmt.Errorf("pki: manufacturer hardware certificate: %w", err)
	}

	notAfter := awsHW.NotAfter
	if mfrHW.NotAfter.Before(notAfter) {
		notAfter = mfrHW.NotAfter
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, err
	}
	hsmTmpl := &x509.Certificate{
		SerialNumber:          sn,
		RawSubject:            hsmSubject,
		NotBefore:             now.Add(-backdate).UTC(),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	hsmDER, err := x509.CreateCertificate(rand.Reader, hsmTmpl, awsHW, &partKey.PublicKey, hwKey)
	if err != nil {
		return nil, fmt.Errorf("pki: HSM certificate: %w", err)
	}

	hwPEM, err := marshalKeyPEM(hwKey)
	if err != nil {
		return nil, err
	}
	partPEM, err := marshalKeyPEM(partKey)
	if err != nil {
		return nil, err
	}
	return &HSMIdentity{
		HardwareKeyPEM:                  hwPEM,
		PartitionKeyPEM:                 partPEM,
		HsmCertificate:                  certPEM(hsmDER),
		AwsHardwareCertificate:          certPEM(awsHW.Raw),
		ManufacturerHardwareCertificate: certPEM(mfrHW.Raw),
		Serial:                          serial,
	}, nil
}

// hardwareSerial derives a serial shaped like "RCN2345B07362" (three
// letters, four digits, a letter, five digits) from hsmID, or a random one
// when hsmID is empty.
func hardwareSerial(hsmID string) string {
	var seed [32]byte
	if hsmID == "" {
		_, _ = rand.Read(seed[:])
	} else {
		seed = sha256.Sum256([]byte("cloudhsm-local hardware serial\x00" + hsmID))
	}
	const shape = "LLLDDDDLDDDDD"
	out := make([]byte, len(shape))
	for i, c := range []byte(shape) {
		if c == 'L' {
			out[i] = 'A' + seed[i]%26
		} else {
			out[i] = '0' + seed[i]%10
		}
	}
	return string(out)
}

var (
	oidCountry  = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidProvince = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidLocality = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidOrg      = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit  = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCN       = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// dn builds a distinguished name from (OID, value) pairs, keeping the exact
// attribute order of the real HSM subjects (pkix.Name would reorder them).
func dn(pairs ...any) pkix.RDNSequence {
	var seq pkix.RDNSequence
	for i := 0; i+1 < len(pairs); i += 2 {
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{
			Type:  pairs[i].(asn1.ObjectIdentifier),
			Value: pairs[i+1].(string),
		}})
	}
	return seq
}

// subjectAttrs returns the vendor attributes (everything but CN) of an HSM
// subject, in the order real HSMs use.
func subjectAttrs(hsm1 bool) []any {
	if hsm1 {
		return []any{oidCountry, "US", oidProvince, "CA", oidOrg, "Cavium", oidOrgUnit, "N3FIPS", oidLocality, "SanJose"}
	}
	return []any{oidCountry, "US", oidProvince, "CA", oidOrgUnit, "LS2", oidLocality, "SanJose", oidOrg, "Marvell"}
}

// hardwareSubject is the subject of both hardware certificates.
func hardwareSubject(serial string, hsm1 bool) pkix.RDNSequence {
	return dn(append(subjectAttrs(hsm1), oidCN, "HSM:"+serial)...)
}

// PartitionCommonName returns the CN of a cluster CSR and HsmCertificate,
// e.g. "HSM:RCN2345B07362:PARTN:0, for FIPS mode".
func PartitionCommonName(serial string, partition int, nonFIPS bool) string {
	mode := "FIPS"
	if nonFIPS {
		mode = "NON-FIPS"
	}
	return fmt.Sprintf("HSM:%s:PARTN:%d, for %s mode", serial, partition, mode)
}

// partitionSubject is the subject of the cluster CSR and the HsmCertificate.
func partitionSubject(serial string, partition int, nonFIPS, hsm1 bool) pkix.RDNSequence {
	return dn(append(subjectAttrs(hsm1), oidCN, PartitionCommonName(serial, partition, nonFIPS))...)
}
