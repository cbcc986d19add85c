package testkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	// AWSJSONContentType is the Content-Type of AWS JSON 1.1 requests and
	// answers.
	AWSJSONContentType = "application/x-amz-json-1.1"
	// TargetPrefix prefixes the operation name in X-Amz-Target.
	TargetPrefix = "BaldrApiService."
	// AnySecret is the secret key the tests sign with where the server
	// does not check signatures (outside strict authentication any secret
	// is accepted and the access key id names the account).
	AnySecret = "cloudhsm-local-secret"
)

// NewAWSJSONRequest builds an unsigned CloudHSM v2 request as the SDKs send
// it: POST endpoint+"/" with the AWS JSON 1.1 content type and X-Amz-Target
// BaldrApiService.<operation>.
func NewAWSJSONRequest(endpoint, operation string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", AWSJSONContentType)
	req.Header.Set("X-Amz-Target", TargetPrefix+operation)
	return req, nil
}

// PayloadSHA256 is the hex SHA-256 of a request body, as SigV4 signs it.
func PayloadSHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// SignAsAccount signs req with SigV4 for service cloudhsm in region, with
// access key id account and AnySecret: the tenant account/region of a
// server that does not check signatures. payloadHash is PayloadSHA256 of
// the body, or "UNSIGNED-PAYLOAD".
func SignAsAccount(req *http.Request, payloadHash, account, region string) error {
	creds := aws.Credentials{AccessKeyID: account, SecretAccessKey: AnySecret}
	return v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, "cloudhsm", region, time.Now())
}
