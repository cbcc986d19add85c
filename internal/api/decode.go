package api

import (
	"encoding/json"
	"reflect"

	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
)

// input is a request body that the model's check accepted.
type input struct {
	body []byte
	// knownMembers: every member name in body is declared by the model.
	knownMembers bool
}

// decode reads a checked body into v, a pointer to a struct whose field
// names are the operation's member names.
//
// Member names are matched exactly, as AWS does (encoding/json alone would
// match "clusterid" to ClusterId, letting a value bypass validation, which
// checked only the exact name). When the check saw only declared names,
// encoding/json is exact already and reads the body in one pass; otherwise
// decodeExact picks the members by exact name first. Null members are
// absent either way; the check has refused nulls anywhere else (in a list
// or as a map value), so handlers never see one.
func decode(in input, v any) error {
	if len(in.body) == 0 {
		return nil
	}
	var err error
	if in.knownMembers {
		err = json.Unmarshal(in.body, v)
	} else {
		err = decodeExact(in.body, v)
	}
	if err != nil {
		return &awsjson.Error{Code: awsjson.CodeSerialization, Message: "Could not decode the request body: " + err.Error()}
	}
	return nil
}

func decodeExact(data []byte, v any) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	rv := reflect.ValueOf(v).Elem()
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if !f.IsExported() {
			continue
		}
		raw, ok := members[f.Name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, rv.Field(i).Addr().Interface()); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalJSON matches Key and Value exactly.
func (t *tagIn) UnmarshalJSON(b []byte) error {
	type plain tagIn
	var p plain
	if err := decodeExact(b, &p); err != nil {
		return err
	}
	*t = tagIn(p)
	return nil
}

// UnmarshalJSON matches Type and Value exactly.
func (r *retentionIn) UnmarshalJSON(b []byte) error {
	type plain retentionIn
	var p plain
	if err := decodeExact(b, &p); err != nil {
		return err
	}
	*r = retentionIn(p)
	return nil
}
