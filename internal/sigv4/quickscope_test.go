package sigv4

import "testing"

// quickScope must agree with ParseAuthorization wherever it answers.
func FuzzQuickScope(f *testing.F) {
	for _, h := range []string{
		"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cloudhsm/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
		"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cloudhsm/aws4_request,SignedHeaders=host,Signature=abc",
		"AWS4-HMAC-SHA256 Credential=AKID//us-east-1/cloudhsm/aws4_request, SignedHeaders=host, Signature=abc",
		"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cloudhsm/aws5_request, SignedHeaders=host, Signature=abc",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/e/aws4_request, SignedHeaders=host, Signature=abc",
		"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cloudhsm/aws4_request",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		q, ok := quickScope(h)
		if !ok {
			return
		}
		a, err := ParseAuthorization(h)
		if err != nil {
			t.Fatalf("quickScope accepted %q, ParseAuthorization refused it: %v", h, err)
		}
		if a.Scope != q {
			t.Fatalf("scopes differ for %q: %+v vs %+v", h, q, a.Scope)
		}
	})
}

func TestQuickScope(t *testing.T) {
	q, ok := quickScope("AWS4-HMAC-SHA256 Credential=111122223333/20260101/eu-west-1/cloudhsm/aws4_request, SignedHeaders=host, Signature=ab")
	if !ok || q != (Scope{"111122223333", "20260101", "eu-west-1", "cloudhsm"}) {
		t.Fatalf("%v %+v", ok, q)
	}
}
