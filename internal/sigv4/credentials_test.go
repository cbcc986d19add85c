package sigv4

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	good := write("good.json", `{"credentials":[
		{"accessKeyId":"AKIAIOSFODNN7EXAMPLE","secretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","account":"111122223333"},
		{"accessKeyId":"test","secretAccessKey":"test","account":"000000000000"}
	]}`)
	creds, err := LoadCredentialsFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 {
		t.Fatalf("loaded %d credentials", len(creds))
	}
	c, ok := creds.Lookup("AKIAIOSFODNN7EXAMPLE")
	if !ok || c.Account != "111122223333" || c.SecretAccessKey != "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" || c.AccessKeyID != "AKIAIOSFODNN7EXAMPLE" {
		t.Fatalf("Lookup = %+v, %v", c, ok)
	}
	if _, ok := creds.Lookup("nobody"); ok {
		t.Fatal("Lookup of an unknown key succeeded")
	}
	var _ Credentials = creds

	for _, tc := range []struct{ name, content, errPart string }{
		{"not json", `{`, "invalid JSON"},
		{"unknown field", `{"credentials":[],"extra":1}`, "unknown field"},
		{"unknown entry field", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":"111122223333","region":"x"}]}`, "unknown field"},
		{"trailing data", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":"111122223333"}]} {}`, "after the top-level object"},
		{"no list", `{}`, `missing "credentials"`},
		{"null list", `{"credentials":null}`, `missing "credentials"`},
		{"empty list", `{"credentials":[]}`, "empty"},
		{"empty key", `{"credentials":[{"accessKeyId":"","secretAccessKey":"s","account":"111122223333"}]}`, "accessKeyId is empty"},
		{"key with slash", `{"credentials":[{"accessKeyId":"AK/IA","secretAccessKey":"s","account":"111122223333"}]}`, "letters, digits or underscores"},
		{"empty secret", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"","account":"111122223333"}]}`, "secretAccessKey is empty"},
		{"empty account", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":""}]}`, "account is empty"},
		{"short account", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":"12345"}]}`, "not 12 digits"},
		{"account letters", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":"11112222333a"}]}`, "not 12 digits"},
		{"account number", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":111122223333}]}`, "invalid JSON"},
		{"duplicate", `{"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":"111122223333"},{"accessKeyId":"A","secretAccessKey":"t","account":"444455556666"}]}`, `credentials[1]: duplicate accessKeyId "A"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "_")+".json", tc.content)
			_, err := LoadCredentialsFile(p)
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("err = %v, want one containing %q", err, tc.errPart)
			}
		})
	}
	if _, err := LoadCredentialsFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("missing file accepted")
	}
}
