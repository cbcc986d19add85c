package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// ClusterCSR returns the PEM CSR signed by the identity's partition key,
// with the subject real HSMs use, e.g. for hsm2m in FIPS mode
//
//	C=US, ST=CA, OU=LS2, L=SanJose, O=Marvell, CN=HSM:<serial>:PARTN:<n>, for FIPS mode
//
// and for hsm1 (hsm1 true)
//
//	C=US, ST=CA, O=Cavium, OU=N3FIPS, L=SanJose, CN=HSM:<serial>:PARTN:<n>, for FIPS mode
//
// nonFIPS writes ", for NON-FIPS mode" instead. The result is deterministic
// for a given identity and arguments.
func ClusterCSR(id *HSMIdentity, partition int, nonFIPS bool, hsm1 bool) (string, error) {
	if id == nil {
		return "", errors.New("pki: ClusterCSR: nil identity")
	}
	if partition < 0 {
		return "", fmt.Errorf("pki: ClusterCSR: negative partition %d", partition)
	}
	key, err := parseRSAKeyPEM(id.PartitionKeyPEM)
	if err != nil {
		return "", fmt.Errorf("pki: ClusterCSR: partition key: %w", err)
	}
	subject, err := asn1.Marshal(partitionSubject(id.Serial, partition, nonFIPS, hsm1))
	if err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		RawSubject:         subject,
		SignatureAlgorithm: x509.SHA256WithRSA,
	}, key)
	if err != nil {
		return "", fmt.Errorf("pki: ClusterCSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}
