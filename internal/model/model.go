// Package model owns the AWS CloudHSM v2 service model (botocore
// service-2.json, API version 2017-04-28) and the single table of input
// constraints derived from it. Every request body is checked against that
// table by (*Model).Check before any handler sees it.
//
// The model is embedded in the binary and parsed once (see Load). The
// resulting *Model is immutable and safe for concurrent use.
package model

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

//go:embed cloudhsmv2-2017-04-28.service-2.json
var serviceJSON []byte

// load parses the embedded model exactly once.
var load = sync.OnceValues(func() (*Model, error) { return parse(serviceJSON) })

// Load returns the embedded CloudHSM v2 model, parsed and compiled once per
// process. The returned *Model is shared and must be treated as read-only.
func Load() (*Model, error) { return load() }

// Model is the compiled CloudHSM v2 service model: its operations and a
// constraint table for every shape. It is immutable after construction.
type Model struct {
	apiVersion   string
	targetPrefix string
	ops          []string          // sorted operation names
	inputs       map[string]*shape // operation name -> input shape (nil: no input)
	shapes       map[string]*shape // shape name -> compiled shape
	tapes        sync.Pool         // of *[]node: parse tapes reused across checks
}

// Operations returns the names of all operations in the model, sorted. The
// slice is a fresh copy.
func (m *Model) Operations() []string { return append([]string(nil), m.ops...) }

// HasOperation reports whether op names an operation of the model
// (case-sensitive, e.g. "CreateCluster").
func (m *Model) HasOperation(op string) bool {
	_, ok := m.inputs[op]
	return ok
}

// APIVersion returns the model's API version ("2017-04-28").
func (m *Model) APIVersion() string { return m.apiVersion }

// TargetPrefix returns the JSON protocol target prefix ("BaldrApiService"),
// i.e. the part before the dot in the X-Amz-Target header.
func (m *Model) TargetPrefix() string { return m.targetPrefix }

// kind is the type of a shape.
type kind uint8

const (
	kindString kind = iota + 1
	kindInteger
	kindLong
	kindBoolean
	kindFloat // float and double
	kindTimestamp
	kindBlob
	kindList
	kindMap
	kindStructure
)

var kindNames = map[string]kind{
	"string":    kindString,
	"integer":   kindInteger,
	"long":      kindLong,
	"boolean":   kindBoolean,
	"float":     kindFloat,
	"double":    kindFloat,
	"timestamp": kindTimestamp,
	"blob":      kindBlob,
	"list":      kindList,
	"map":       kindMap,
	"structure": kindStructure,
}

// shape is one compiled entry of the constraint table.
type shape struct {
	name string
	kind kind

	// Structures: members in declaration order.
	members []member

	// Lists: element shape. Maps: key and value shapes.
	elem, key, value *shape

	// Length (strings: code points; lists and maps: entries) or value
	// (integers) bounds.
	hasMin, hasMax bool
	min, max       int64

	pattern string   // as written in the model
	re      *matcher // pattern compiled for whole-value matching
	enum    []string // in model order

	// Precomputed constraint texts ("Member must ...").
	minMsg, maxMsg, patternMsg, enumMsg string
}

// member is one member of a structure shape.
type member struct {
	name     string // JSON member name, e.g. "ClusterId"
	path     string // validation path element, e.g. "clusterId"
	shape    *shape
	required bool
}

// memberIndex returns the index of the member whose JSON name is name, or -1.
func (s *shape) memberIndex(name []byte) int {
	for i := range s.members {
		if s.members[i].name == string(name) {
			return i
		}
	}
	return -1
}

// hasStringConstraints reports whether a string value of s can fail
// validation at all.
func (s *shape) hasStringConstraints() bool {
	return s.hasMin || s.hasMax || s.re != nil || len(s.enum) > 0
}

// Raw JSON structures of the botocore model (only what is needed).
type rawRef struct {
	Shape string `json:"shape"`
}

type rawMember struct {
	name string
	ref  rawRef
}

// rawMembers preserves the declaration order of a structure's members,
// which determines the order in which violations are reported.
type rawMembers []rawMember

func (rm *rawMembers) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("members is not an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		var ref rawRef
		if err := dec.Decode(&ref); err != nil {
			return fmt.Errorf("member %s: %w", name, err)
		}
		*rm = append(*rm, rawMember{name: name, ref: ref})
	}
	_, err = dec.Token()
	return err
}

type rawShape struct {
	Type     string      `json:"type"`
	Required []string    `json:"required"`
	Members  rawMembers  `json:"members"`
	Member   *rawRef     `json:"member"`
	Key      *rawRef     `json:"key"`
	Value    *rawRef     `json:"value"`
	Min      json.Number `json:"min"`
	Max      json.Number `json:"max"`
	Pattern  *string     `json:"pattern"`
	Enum     []string    `json:"enum"`
	// Sparse is Smithy's sparse trait (a list or map that may hold nulls),
	// should a model document carry it. Check refuses every null in a list
	// or map, so a model with a sparse shape is refused rather than read
	// wrongly.
	Sparse bool `json:"sparse"`
}

type rawOperation struct {
	Name  string  `json:"name"`
	Input *rawRef `json:"input"`
}

type rawModel struct {
	Metadata struct {
		APIVersion   string `json:"apiVersion"`
		Protocol     string `json:"protocol"`
		TargetPrefix string `json:"targetPrefix"`
	} `json:"metadata"`
	Operations map[string]rawOperation `json:"operations"`
	Shapes     map[string]rawShape     `json:"shapes"`
}

// parse builds a Model from a botocore service-2.json document. The
// constraint table is derived entirely from the document.
func parse(doc []byte) (*Model, error) {
	var raw rawModel
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("model: parsing service model: %w", err)
	}
	if raw.Metadata.Protocol != "json" {
		return nil, fmt.Errorf("model: unsupported protocol %q", raw.Metadata.Protocol)
	}
	m := &Model{
		apiVersion:   raw.Metadata.APIVersion,
		targetPrefix: raw.Metadata.TargetPrefix,
		inputs:       make(map[string]*shape, len(raw.Operations)),
		shapes:       make(map[string]*shape, len(raw.Shapes)),
	}
	// Pass 1: allocate every shape so references can be resolved in any order.
	for name, rs := range raw.Shapes {
		k, ok := kindNames[rs.Type]
		if !ok {
			return nil, fmt.Errorf("model: shape %s: unknown type %q", name, rs.Type)
		}
		m.shapes[name] = &shape{name: name, kind: k}
	}
	// Pass 2: compile constraints and wire references.
	for name, rs := range raw.Shapes {
		s := m.shapes[name]
		if err := s.compileConstraints(rs); err != nil {
			return nil, fmt.Errorf("model: shape %s: %w", name, err)
		}
		if err := m.link(s, rs); err != nil {
			return nil, err
		}
	}
	if err := m.compileOperations(raw.Operations); err != nil {
		return nil, err
	}
	return m, nil
}

// resolve returns the shape a reference of shape (or operation) from names.
func (m *Model) resolve(from string, ref *rawRef) (*shape, error) {
	if ref == nil {
		return nil, fmt.Errorf("model: shape %s: missing shape reference", from)
	}
	s, ok := m.shapes[ref.Shape]
	if !ok {
		return nil, fmt.Errorf("model: shape %s: reference to unknown shape %q", from, ref.Shape)
	}
	return s, nil
}

// compileConstraints fills in s's bounds, pattern and enum, and the texts
// of their violations.
func (s *shape) compileConstraints(rs rawShape) error {
	var err error
	if s.hasMin, s.min, err = bound(rs.Min); err != nil {
		return fmt.Errorf("min: %w", err)
	}
	if s.hasMax, s.max, err = bound(rs.Max); err != nil {
		return fmt.Errorf("max: %w", err)
	}
	switch s.kind {
	case kindString, kindBlob, kindList, kindMap:
		s.minMsg = "Member must have length greater than or equal to " + strconv.FormatInt(s.min, 10)
		s.maxMsg = "Member must have length less than or equal to " + strconv.FormatInt(s.max, 10)
	default:
		s.minMsg = "Member must have value greater than or equal to " + strconv.FormatInt(s.min, 10)
		s.maxMsg = "Member must have value less than or equal to " + strconv.FormatInt(s.max, 10)
	}
	if rs.Pattern != nil {
		if s.kind != kindString {
			return fmt.Errorf("pattern on a %s shape", rs.Type)
		}
		re, err := compileJavaPattern(*rs.Pattern)
		if err != nil {
			return err
		}
		s.pattern, s.re = *rs.Pattern, re
		s.patternMsg = "Member must satisfy regular expression pattern: " + *rs.Pattern
	}
	if rs.Enum != nil {
		s.enum = append([]string(nil), rs.Enum...)
		s.enumMsg = "Member must satisfy enum value set: [" + strings.Join(s.enum, ", ") + "]"
	}
	return nil
}

// link resolves the shapes that s refers to: a list's element, a map's
// key and value, a structure's members.
func (m *Model) link(s *shape, rs rawShape) error {
	if rs.Sparse {
		return fmt.Errorf("model: shape %s: sparse %s shapes are not supported: Check refuses every null in a list or map", s.name, rs.Type)
	}
	var err error
	switch s.kind {
	case kindList:
		s.elem, err = m.resolve(s.name, rs.Member)
	case kindMap:
		if s.key, err = m.resolve(s.name, rs.Key); err == nil {
			s.value, err = m.resolve(s.name, rs.Value)
		}
	case kindStructure:
		err = m.linkMembers(s, rs)
	}
	return err
}

// linkMembers compiles the members of structure s in declaration order.
func (m *Model) linkMembers(s *shape, rs rawShape) error {
	required := make(map[string]bool, len(rs.Required))
	for _, r := range rs.Required {
		required[r] = true
	}
	seen := make(map[string]bool, len(rs.Members))
	for _, rm := range rs.Members {
		if seen[rm.name] {
			return fmt.Errorf("model: shape %s: duplicate member %s", s.name, rm.name)
		}
		seen[rm.name] = true
		ms, err := m.resolve(s.name+"."+rm.name, &rm.ref)
		if err != nil {
			return err
		}
		s.members = append(s.members, member{
			name:     rm.name,
			path:     lowerFirst(rm.name),
			shape:    ms,
			required: required[rm.name],
		})
	}
	for _, r := range rs.Required {
		if !seen[r] {
			return fmt.Errorf("model: shape %s: required member %s is not declared", s.name, r)
		}
	}
	return nil
}

// compileOperations records each operation's input shape and the sorted
// list of operation names.
func (m *Model) compileOperations(ops map[string]rawOperation) error {
	for name, op := range ops {
		var in *shape
		if op.Input != nil {
			s, err := m.resolve("operation "+name, op.Input)
			if err != nil {
				return err
			}
			if s.kind != kindStructure {
				return fmt.Errorf("model: operation %s: input shape %s is not a structure", name, s.name)
			}
			in = s
		}
		m.inputs[name] = in
		m.ops = append(m.ops, name)
	}
	sort.Strings(m.ops)
	return nil
}

// bound parses an optional integral min/max value.
func bound(n json.Number) (bool, int64, error) {
	if n == "" {
		return false, 0, nil
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return false, 0, err
	}
	return true, v, nil
}

// lowerFirst lower-cases the first letter of a member name, as AWS does in
// validation paths (ClusterId -> clusterId).
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}
