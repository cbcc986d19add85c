package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// tokens makes and reads NextToken values. A token is opaque to clients:
// base64url(version | position | MAC), where the MAC (HMAC-SHA256 with the
// data directory's secret) covers the position and the query it belongs to
// (operation, account, region, filters). A token from another account,
// region or query, or a tampered one, fails the MAC check.
type tokens struct{ secret []byte }

const tokenVersion = 1

func (t tokens) mac(query string, tenant cloudhsm.Tenant, pos []byte) []byte {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte(tenant.Account))
	m.Write([]byte{0})
	m.Write([]byte(tenant.Region))
	m.Write([]byte{0})
	m.Write([]byte(query))
	m.Write([]byte{0})
	m.Write(pos)
	return m.Sum(nil)[:16]
}

func (t tokens) make(query string, tenant cloudhsm.Tenant, pos []byte) string {
	b := make([]byte, 0, 1+len(pos)+16)
	b = append(b, tokenVersion)
	b = append(b, pos...)
	b = append(b, t.mac(query, tenant, pos)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// read returns the position in a token, or an error for anything not made
// by make for the same query and tenant.
func (t tokens) read(token, query string, tenant cloudhsm.Tenant) ([]byte, error) {
	bad := invalid("The NextToken is not valid for this request: pass back the NextToken exactly as the previous response gave it, with the same filters, account and region.")
	// Only the base64url alphabet: the decoder would skip line breaks, and
	// a token must be exactly what make produced.
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, bad
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) < 1+16 || b[0] != tokenVersion {
		return nil, bad
	}
	pos := b[1 : len(b)-16]
	if !hmac.Equal(b[len(b)-16:], t.mac(query, tenant, pos)) {
		return nil, bad
	}
	return pos, nil
}

func (t tokens) makeSeq(query string, tenant cloudhsm.Tenant, seq uint64) string {
	return t.make(query, tenant, binary.BigEndian.AppendUint64(nil, seq))
}

func (t tokens) readSeq(token, query string, tenant cloudhsm.Tenant) (uint64, error) {
	pos, err := t.read(token, query, tenant)
	if err != nil {
		return 0, err
	}
	if len(pos) != 8 {
		return 0, invalid("The NextToken is not valid for this request: pass back the NextToken exactly as the previous response gave it, with the same filters, account and region.")
	}
	return binary.BigEndian.Uint64(pos), nil
}
