// Package sdkhttp owns the HTTP client that aws-sdk-go-v2 should use to
// talk to a cloudhsm-local server on the same machine: cloudhsmlocal hands
// it to users in AWSConfig, and the test suites use it for their own SDK
// clients.
package sdkhttp

import (
	"bytes"
	"io"
	"net/http"
)

// PrivateBodies is an aws.HTTPClient that hands the transport a private
// in-memory copy of each request body.
//
// smithy-go closes a request's body as soon as Do returns. A server on
// loopback can answer before net/http's transport has finished with the
// body (after writing it, the transport reads once more to check for extra
// bytes); that read on the closed body makes the transport close the
// connection under the response being read, and the call fails with
// "deserialization failed ... use of closed network connection" on a 200
// (aws/aws-sdk-go-v2#1825, #2737). With retries off that looks like a lost
// answer; with the SDK's default retries, a write the server already made
// is sent again. The race detector's slowness makes it frequent for
// answers of tens of KB.
type PrivateBodies struct{ Client *http.Client }

// Do implements aws.HTTPClient.
func (c PrivateBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.ContentLength = int64(len(b))
	}
	return c.Client.Do(r)
}
