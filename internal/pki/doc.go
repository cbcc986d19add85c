// Package pki owns the certificate side of cloudhsm-local: the simulated
// hardware roots (a "manufacturer" root and an "AWS CloudHSM root"), per-HSM
// identities and their certificates, cluster CSRs, and the checks
// InitializeCluster applies to a customer's SignedCert and TrustAnchor.
//
// The certificates are shaped so that the verification steps of the AWS
// CloudHSM user guide ("Verify the identity and authenticity of your
// cluster's HSM") succeed with the real openssl binary:
//
//	cat AWS_CloudHSM_Root-G1.crt <id>_AwsHardwareCertificate.crt > AWS_chain.crt
//	openssl verify -CAfile AWS_chain.crt <id>_HsmCertificate.crt
//	cat liquid_security_certificate.crt <id>_ManufacturerHardwareCertificate.crt > manufacturer_chain.crt
//	openssl verify -CAfile manufacturer_chain.crt <id>_HsmCertificate.crt
//
// and the public key of the HsmCertificate equals the public key of the
// cluster CSR. Each HSM has a hardware key, certified (as a CA) by both
// roots with the same subject, and a partition key, certified by the
// hardware key in the HsmCertificate and used to sign the cluster CSR.
//
// The package uses only the standard library. RSA key generation is slow
// (tens of milliseconds per key) and an identity takes four RSA signatures
// besides, so callers create identities outside their locks through an
// IdentitySource: LocalIdentities makes them in this process with keys a
// KeyPool generates ahead, IdentityProcess in a helper process at the
// lowest CPU priority (its only I/O: the helper's pipes).
package pki
