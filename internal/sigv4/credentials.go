package sigv4

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
)

// Credential is one long-term access key known to the emulator, and the
// account it belongs to.
type Credential struct {
	AccessKeyID     string
	SecretAccessKey string
	Account         string // 12 digits
}

// Credentials finds the secret of an access key id.
type Credentials interface {
	Lookup(accessKeyID string) (Credential, bool)
}

// StaticCredentials is a fixed set of credentials keyed by access key id.
type StaticCredentials map[string]Credential

// Lookup implements Credentials.
func (s StaticCredentials) Lookup(accessKeyID string) (Credential, bool) {
	c, ok := s[accessKeyID]
	return c, ok
}

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	// IAM's AccessKeyId shape is [\w]+ of at most 128 characters. The
	// minimum of 16 is not enforced so that short local keys ("test")
	// remain usable.
	accessKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,128}$`)
)

type credentialEntry struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	Account         string `json:"account"`
}

// LoadCredentialsFile reads a JSON credentials file:
//
//	{"credentials":[{"accessKeyId":"AKIA...","secretAccessKey":"...","account":"111122223333"}]}
//
// It is strict: unknown fields, trailing data, an empty list, empty fields,
// an access key id that is not [A-Za-z0-9_]{1,128}, an account that is not
// 12 digits and duplicate access key ids are all errors.
func LoadCredentialsFile(path string) (StaticCredentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sigv4: credentials file: %w", err)
	}
	creds, err := ParseCredentials(data)
	if err != nil {
		return nil, fmt.Errorf("sigv4: credentials file %s: %w", path, err)
	}
	return creds, nil
}

// ParseCredentials parses and validates the content of a credentials file;
// see LoadCredentialsFile.
func ParseCredentials(data []byte) (StaticCredentials, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f struct {
		Credentials *[]credentialEntry `json:"credentials"`
	}
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: unexpected data after the top-level object")
	}
	if f.Credentials == nil {
		return nil, errors.New(`missing "credentials" array`)
	}
	if len(*f.Credentials) == 0 {
		return nil, errors.New(`"credentials" is empty`)
	}
	out := make(StaticCredentials, len(*f.Credentials))
	for i, e := range *f.Credentials {
		switch {
		case e.AccessKeyID == "":
			return nil, fmt.Errorf("credentials[%d]: accessKeyId is empty", i)
		case !accessKeyPattern.MatchString(e.AccessKeyID):
			return nil, fmt.Errorf("credentials[%d]: accessKeyId %q must be 1 to 128 letters, digits or underscores", i, e.AccessKeyID)
		case e.SecretAccessKey == "":
			return nil, fmt.Errorf("credentials[%d] (%s): secretAccessKey is empty", i, e.AccessKeyID)
		case e.Account == "":
			return nil, fmt.Errorf("credentials[%d] (%s): account is empty", i, e.AccessKeyID)
		case !accountPattern.MatchString(e.Account):
			return nil, fmt.Errorf("credentials[%d] (%s): account %q is not 12 digits", i, e.AccessKeyID, e.Account)
		}
		if _, dup := out[e.AccessKeyID]; dup {
			return nil, fmt.Errorf("credentials[%d]: duplicate accessKeyId %q", i, e.AccessKeyID)
		}
		out[e.AccessKeyID] = Credential(e)
	}
	return out, nil
}
