package api

import (
	"bytes"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

func TestTokenRoundTripAndBinding(t *testing.T) {
	tk := tokens{secret: []byte("secret")}
	a := cloudhsm.Tenant{Account: "111122223333", Region: "us-east-1"}
	tok := tk.makeSeq("q", a, 42)
	if len(tok) > 256 {
		t.Fatalf("token of %d characters exceeds the model's 256", len(tok))
	}
	if seq, err := tk.readSeq(tok, "q", a); err != nil || seq != 42 {
		t.Fatalf("round trip: %d %v", seq, err)
	}
	for _, tc := range []struct {
		name   string
		token  string
		query  string
		tenant cloudhsm.Tenant
		secret string
	}{
		{"other query", tok, "q2", a, "secret"},
		{"other account", tok, "q", cloudhsm.Tenant{Account: "444455556666", Region: "us-east-1"}, "secret"},
		{"other region", tok, "q", cloudhsm.Tenant{Account: a.Account, Region: "eu-west-1"}, "secret"},
		{"other data directory", tok, "q", a, "another secret"},
		{"garbage", "!!!", "q", a, "secret"},
		{"empty payload", "AQ", "q", a, "secret"},
		{"flipped character", flip(tok), "q", a, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := (tokens{secret: []byte(tc.secret)}).readSeq(tc.token, tc.query, tc.tenant); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// ListTags positions are bounded whatever the key length.
	long := string(bytes.Repeat([]byte("é"), 128))
	if tok := tk.make("ListTags|cluster-aaaaaaaaaaa", a, tagPosition(long)); len(tok) > 256 {
		t.Fatalf("ListTags token of %d characters", len(tok))
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[3] == 'A' {
		b[3] = 'B'
	} else {
		b[3] = 'A'
	}
	return string(b)
}

// FuzzPageToken: reading arbitrary tokens never panics, and only tokens
// made for the same query and tenant are accepted.
func FuzzPageToken(f *testing.F) {
	tk := tokens{secret: []byte("secret")}
	a := cloudhsm.Tenant{Account: "111122223333", Region: "us-east-1"}
	f.Add(tk.makeSeq("q", a, 1), "q")
	f.Add(tk.make("ListTags|x", a, tagPosition("key")), "ListTags|x")
	f.Add("", "q")
	f.Fuzz(func(t *testing.T, token, query string) {
		pos, err := tk.read(token, query, a)
		if err != nil {
			return
		}
		if tk.make(query, a, pos) != token {
			// A valid token must be exactly what make produces for its position.
			t.Fatalf("accepted a token make would not produce: %q", token)
		}
	})
}
