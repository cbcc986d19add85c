package snapshot

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// locate decodes data as plain JSON and walks it against the type doc
// points to, returning the first value encoding/json would refuse, named
// by its path; nil when it finds none. Field names match exactly, or in
// any case when fold is set (as encoding/json matches them).
func locate(data []byte, doc any, fold bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	w := walker{fold: fold, legacy: reflect.TypeOf(doc) == reflect.TypeFor[*legacyDocument]()}
	return w.walk(v, reflect.TypeOf(doc).Elem(), "")
}

var (
	timeType   = reflect.TypeFor[time.Time]()
	prefixType = reflect.TypeFor[netip.Prefix]()
)

type walker struct {
	fold   bool
	legacy bool // the document is of version 0 or 1 (for hints)
}

// walk checks v against t. A null is the zero value, as encoding/json
// reads it (null list entries are refused after decoding).
func (w walker) walk(v any, t reflect.Type, path string) error {
	if v == nil {
		return nil
	}
	switch t {
	case timeType:
		s, ok := v.(string)
		if !ok {
			return wrongType(path, v, "a time (an RFC 3339 string)")
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("%s: %q is not an RFC 3339 time (like 2026-01-02T15:04:05Z)", path, s)
		}
		return nil
	case prefixType:
		s, ok := v.(string)
		if !ok {
			return wrongType(path, v, "a CIDR block (a string)")
		}
		if _, err := netip.ParsePrefix(s); s != "" && err != nil {
			return fmt.Errorf("%s: %q is not a CIDR block (like 10.0.1.0/24)", path, s)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return w.walk(v, t.Elem(), path)
	case reflect.Struct:
		return w.object(v, t, path)
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return wrongType(path, v, "a list")
		}
		for i, e := range list {
			if err := w.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return wrongType(path, v, "an object")
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if err := w.walk(m[k], t.Elem(), join(path, k)); err != nil {
				return err
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return wrongType(path, v, "a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return wrongType(path, v, "true or false")
		}
	case reflect.Int, reflect.Int64:
		return number(v, path, func(s string) error { _, err := strconv.ParseInt(s, 10, t.Bits()); return err })
	case reflect.Uint64:
		return number(v, path, func(s string) error { _, err := strconv.ParseUint(s, 10, 64); return err })
	}
	return nil
}

func (w walker) object(v any, t reflect.Type, path string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return wrongType(path, v, "an object")
	}
	fields := fieldsOf(t)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == k })
		if i < 0 && w.fold {
			i = slices.IndexFunc(fields, func(f field) bool { return strings.EqualFold(f.name, k) })
		}
		if i < 0 {
			return w.unknown(path, k, fields)
		}
		if err := w.walk(m[k], fields[i].typ, join(path, k)); err != nil {
			return err
		}
	}
	return nil
}

// unknown refuses field k of the object at path, whose fields are fields,
// with a hint when k is the name of another version or in another case.
func (w walker) unknown(path, k string, fields []field) error {
	where := path
	if where == "" {
		where = "the document"
	}
	hint := "see docs/snapshot-format.md for the fields"
	if i := slices.IndexFunc(fields, func(f field) bool { return strings.EqualFold(f.name, k) }); i >= 0 {
		hint = fmt.Sprintf("did you mean %q? names match exactly, in the case the format gives", fields[i].name)
	} else if w.legacy && namesOf(false)[k] {
		hint = fmt.Sprintf("%q is a field of version %d: give the document \"version\": %d to write that version", k, Version, Version)
	} else if !w.legacy && namesOf(true)[strings.ToLower(k)] {
		hint = fmt.Sprintf("%q is a name of versions 0 and 1, not of version %d: see docs/snapshot-format.md for the names of version %d", k, Version, Version)
	}
	return fmt.Errorf("%s: unknown field %q (%s)", where, k, hint)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func number(v any, path string, parse func(string) error) error {
	n, ok := v.(json.Number)
	if !ok {
		return wrongType(path, v, "a whole number")
	}
	if err := parse(n.String()); err != nil {
		return fmt.Errorf("%s: %s is not a whole number in range", path, n)
	}
	return nil
}

func wrongType(path string, v any, want string) error {
	got := "null"
	switch v.(type) {
	case string:
		got = "a string"
	case json.Number:
		got = "a number"
	case bool:
		got = "true or false"
	case []any:
		got = "a list"
	case map[string]any:
		got = "an object"
	}
	return fmt.Errorf("%s: %s where %s is expected", path, got, want)
}

// field is a JSON field of a struct type.
type field struct {
	name string
	typ  reflect.Type
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists the JSON fields of struct type t, as encoding/json names
// them (the tag's name, or the Go name).
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		fs = append(fs, field{name: cmp.Or(name, f.Name), typ: f.Type})
	}
	fieldCache.Store(t, fs)
	return fs
}

// namesOf returns every JSON field name of version 2's types, or (legacy,
// in lower case) of versions 0 and 1's.
func namesOf(legacy bool) map[string]bool {
	if legacy {
		return legacyNames()
	}
	return v2Names()
}

var (
	v2Names     = sync.OnceValue(func() map[string]bool { return allNames(reflect.TypeFor[Document](), false) })
	legacyNames = sync.OnceValue(func() map[string]bool { return allNames(reflect.TypeFor[legacyDocument](), true) })
)

// allNames collects the JSON field names of t and of the struct types it
// holds.
func allNames(t reflect.Type, lower bool) map[string]bool {
	names, seen := map[string]bool{}, map[reflect.Type]bool{}
	var visit func(reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == timeType || t == prefixType || seen[t] {
			return
		}
		seen[t] = true
		for _, f := range fieldsOf(t) {
			n := f.name
			if lower {
				n = strings.ToLower(n)
			}
			names[n] = true
			visit(f.typ)
		}
	}
	visit(t)
	return names
}
