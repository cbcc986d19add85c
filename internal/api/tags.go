package api

import (
	"context"
	"crypto/sha256"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// DefaultTagsPerPage is ListTags' page size when MaxResults is absent.
const DefaultTagsPerPage = 100

func (a *API) tagResource(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		ResourceId string
		TagList    []tagIn
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return nil, a.svc.TagResource(c.Tenant, in.ResourceId, tagsIn(in.TagList))
}

func (a *API) untagResource(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		ResourceId string
		TagKeyList []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return nil, a.svc.UntagResource(c.Tenant, in.ResourceId, in.TagKeyList)
}

// A ListTags token carries where the previous page ended: a prefix of the
// last key (at most maxTokenKeyBytes, so tokens stay within the model's
// 256-character NextToken limit: base64url of 1+8+167+16 = 192 bytes is
// 256 characters) and a hash of the whole key, which tells apart keys that
// share the prefix. Every key of ASCII characters (at most 128) fits whole,
// so its position survives its removal between pages.
const maxTokenKeyBytes = 167

func tagPosition(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	prefix := key
	if len(prefix) > maxTokenKeyBytes {
		prefix = prefix[:maxTokenKeyBytes]
	}
	return append(sum[:8], prefix...)
}

func (a *API) listTags(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		ResourceId string
		NextToken  string
		MaxResults *int32
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	query := "ListTags|" + in.ResourceId
	var after *cloudhsm.TagPosition
	if in.NextToken != "" {
		pos, err := a.tokens.read(in.NextToken, query, c.Tenant)
		if err != nil {
			return nil, err
		}
		if len(pos) < 8 {
			return nil, invalid("The NextToken is not valid for this request: pass back the NextToken exactly as the previous response gave it, with the same filters, account and region.")
		}
		after = &cloudhsm.TagPosition{Prefix: string(pos[8:]), Matches: func(key string) bool {
			sum := sha256.Sum256([]byte(key))
			return string(sum[:8]) == string(pos[:8])
		}}
	}
	tags, more, err := a.svc.ListTags(c.Tenant, in.ResourceId, after, pageSize(in.MaxResults, DefaultTagsPerPage))
	if err != nil {
		return nil, err
	}
	out := struct {
		TagList   []tagJSON `json:"TagList"`
		NextToken string    `json:"NextToken,omitempty"`
	}{TagList: make([]tagJSON, len(tags))}
	for i, t := range tags {
		out.TagList[i] = tagJSON{Key: t.Key, Value: t.Value}
	}
	if more && len(tags) > 0 {
		out.NextToken = a.tokens.make(query, c.Tenant, tagPosition(tags[len(tags)-1].Key))
	}
	return out, nil
}
