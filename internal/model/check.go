package model

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SerializationError reports a request body that cannot be deserialized
// into the operation's input: malformed JSON, duplicate keys, excessive
// nesting, or a member of the wrong JSON type. AWS answers such requests
// with "SerializationException".
type SerializationError struct {
	Message string
}

func (e *SerializationError) Error() string { return e.Message }

func serErr(msg string) *SerializationError { return &SerializationError{Message: msg} }

// Violation is one failed constraint, e.g. Path "clusterId" and Message
// "Value 'abc' at 'clusterId' failed to satisfy constraint: Member must
// satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}".
type Violation struct {
	Path    string // AWS validation path, e.g. "tagList.2.member.key"
	Message string // the complete "Value ... at 'path' failed to satisfy constraint: ..." item
}

// ValidationError reports a well-formed request whose members violate the
// model's constraints. AWS CloudHSM answers such requests with
// "CloudHsmInvalidRequestException" and the text of Error().
type ValidationError struct {
	Violations []Violation // in the order members are declared in the model
}

// Error returns AWS's wording, e.g. "1 validation error detected: Value 'abc'
// at 'clusterId' failed to satisfy constraint: ..."; several violations are
// joined with "; " after "N validation errors detected: ".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(e.Violations)))
	if len(e.Violations) == 1 {
		b.WriteString(" validation error detected: ")
	} else {
		b.WriteString(" validation errors detected: ")
	}
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Message)
	}
	return b.String()
}

// UnknownOperationError is returned by Check for an operation that is not
// in the model; callers should reject those before (see HasOperation).
type UnknownOperationError struct {
	Operation string
}

func (e *UnknownOperationError) Error() string {
	return "model: unknown operation " + strconv.Quote(e.Operation)
}

// Check reads a request body for operation op (already read into memory)
// and checks it against op's input shape. It returns nil, a
// *SerializationError, or a *ValidationError (or an *UnknownOperationError
// if op is not in the model).
//
// JSON null as the value of an object member means the member is absent
// (as AWS JSON 1.1 servers read it); null as a list element or a map value
// is a *SerializationError, because no list or map of the model is sparse
// (Smithy's server SDKs refuse nulls in non-sparse collections alike).
// Members unknown to the model are ignored but must still be well-formed
// JSON. An empty body is {}. Serialization errors take precedence over
// validation errors.
func (m *Model) Check(op string, body []byte) error {
	_, err := m.Validate(op, body)
	return err
}

// Validate is Check that also reports whether every member name in the
// body is one the model declares (exactly, case included). When it is, a
// case-insensitive decoder such as encoding/json reads the body the way
// the check did; otherwise an unknown name such as "clusterid" could reach
// a field the check never saw under that name.
func (m *Model) Validate(op string, body []byte) (knownMembers bool, err error) {
	in, ok := m.inputs[op]
	if !ok {
		return false, &UnknownOperationError{Operation: op}
	}
	var c checker
	tape := m.getTape(len(body))
	c.p = parser{data: body, tape: (*tape)[:0]}
	defer func() { *tape = c.p.tape; m.putTape(tape) }()
	root, serr := c.p.parse()
	if serr != nil {
		return false, serr
	}
	if in == nil {
		return true, nil
	}
	if serr := c.structure(in, root); serr != nil {
		return false, serr
	}
	if len(c.violations) > 0 {
		return false, &ValidationError{Violations: c.violations}
	}
	return !c.unknown, nil
}

// getTape returns a tape with room for a body of n bytes, reused from an
// earlier check when one is free.
func (m *Model) getTape(n int) *[]node {
	want := tapeCapacity(n)
	if t, ok := m.tapes.Get().(*[]node); ok && cap(*t) >= want {
		return t
	}
	t := make([]node, 0, want)
	return &t
}

// putTape keeps a tape of ordinary size for the next check.
func (m *Model) putTape(t *[]node) {
	if cap(*t) <= 4096 {
		m.tapes.Put(t)
	}
}

// tapeCapacity guesses the number of tape nodes for a body of n bytes, so
// that a typical request needs a single, pointer-free allocation.
func tapeCapacity(n int) int {
	return min(16+n/6, 4096)
}

// segment is one step of the path from the input structure to the value
// being checked. Paths are rendered only when an error is reported.
type segment struct {
	mem   *member // structure member, or nil
	index int32   // list element: 1-based index in the JSON array
	key   int32   // map entry: tape index of the key node, else -1
}

// validationPath renders AWS's path of the current value:
// tagList.2.member.key, subnetIds.1.member, filters.<key>.member.
func (c *checker) validationPath() string {
	var b strings.Builder
	for i := range c.nseg {
		sg := &c.segs[i]
		if i > 0 {
			b.WriteByte('.')
		}
		switch {
		case sg.mem != nil:
			b.WriteString(sg.mem.path)
		case sg.key >= 0:
			b.WriteString(truncate(c.p.text(sg.key)))
			b.WriteString(".member")
		default:
			b.WriteString(strconv.Itoa(int(sg.index)))
			b.WriteString(".member")
		}
	}
	return b.String()
}

// jsonPath renders the path of the current value in terms of the request
// document, for serialization errors: TagList[0].Key, Filters["states"][1].
func (c *checker) jsonPath() string {
	var b strings.Builder
	for i := range c.nseg {
		sg := &c.segs[i]
		switch {
		case sg.mem != nil:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(sg.mem.name)
		case sg.key >= 0:
			b.WriteByte('[')
			b.WriteString(strconv.Quote(truncate(c.p.text(sg.key))))
			b.WriteByte(']')
		default:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(int(sg.index) - 1))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// checker walks the parse tape along the input shape. It lives on the
// stack of Check; only the tape (pointer-free) is allocated on the heap.
type checker struct {
	p    parser
	segs [maxDepth]segment // path of the value being checked; the parser bounds nesting
	nseg int
	// violations found so far, in declaration order.
	violations []Violation
	// unknown is set when an object holds a member the model does not declare.
	unknown bool
}

func (c *checker) push(sg segment) { c.segs[c.nseg] = sg; c.nseg++ }
func (c *checker) pop()            { c.nseg-- }

// violate records a constraint failure of the value at node i.
func (c *checker) violate(s *shape, i int32, constraint string) {
	c.violations = append(c.violations, newViolation(c.validationPath(), "'"+c.render(s, i)+"'", constraint))
}

func newViolation(path, value, constraint string) Violation {
	return Violation{
		Path:    path,
		Message: "Value " + value + " at '" + path + "' failed to satisfy constraint: " + constraint,
	}
}

// typeErr reports a member of the wrong JSON type.
func (c *checker) typeErr(want string, got nodeType) *SerializationError {
	return serErr("Expected " + want + " for member '" + c.jsonPath() + "' but found " + article(got))
}

// value checks the non-null value at node i against shape s.
func (c *checker) value(s *shape, i int32) *SerializationError {
	nd := &c.p.tape[i]
	switch s.kind {
	case kindString:
		if nd.typ != nodeString {
			return c.typeErr("a JSON string", nd.typ)
		}
		if s.hasStringConstraints() {
			if f := stringFailures(s, c.p.text(i)); f != 0 {
				for _, msg := range s.failureMessages(f) {
					c.violate(s, i, msg)
				}
			}
		}
	case kindBlob:
		if nd.typ != nodeString {
			return c.typeErr("a base64-encoded JSON string", nd.typ)
		}
	case kindBoolean:
		if nd.typ != nodeTrue && nd.typ != nodeFalse {
			return c.typeErr("a JSON boolean", nd.typ)
		}
	case kindInteger, kindLong:
		return c.integer(s, i)
	case kindFloat, kindTimestamp:
		if nd.typ != nodeNumber {
			return c.typeErr("a JSON number", nd.typ)
		}
	case kindList:
		return c.list(s, i)
	case kindMap:
		return c.mapValue(s, i)
	case kindStructure:
		return c.structure(s, i)
	}
	return nil
}

// Failed string constraints, as a bit set.
const (
	failMax uint8 = 1 << iota
	failMin
	failPattern
	failEnum
)

// stringFailures evaluates the constraints of string shape s on v.
func stringFailures(s *shape, v []byte) uint8 {
	var f uint8
	if s.hasMin || s.hasMax {
		n := int64(utf8.RuneCount(v))
		if s.hasMax && n > s.max {
			f |= failMax
		}
		if s.hasMin && n < s.min {
			f |= failMin
		}
	}
	if s.re != nil && !s.re.match(v) {
		f |= failPattern
	}
	if len(s.enum) > 0 {
		found := false
		for _, e := range s.enum {
			if e == string(v) {
				found = true
				break
			}
		}
		if !found {
			f |= failEnum
		}
	}
	return f
}

// failureMessages returns the constraint texts of the failures in f, in
// AWS's order: length max, length min, pattern, enum.
func (s *shape) failureMessages(f uint8) []string {
	var msgs []string
	if f&failMax != 0 {
		msgs = append(msgs, s.maxMsg)
	}
	if f&failMin != 0 {
		msgs = append(msgs, s.minMsg)
	}
	if f&failPattern != 0 {
		msgs = append(msgs, s.patternMsg)
	}
	if f&failEnum != 0 {
		msgs = append(msgs, s.enumMsg)
	}
	return msgs
}

func (c *checker) integer(s *shape, i int32) *SerializationError {
	nd := &c.p.tape[i]
	if nd.typ != nodeNumber {
		return c.typeErr("an integer", nd.typ)
	}
	lit := c.p.text(i)
	v, ok := parseIntLiteral(lit)
	if !ok {
		for _, ch := range lit {
			if ch == '.' || ch == 'e' || ch == 'E' {
				return serErr("Expected an integer for member '" + c.jsonPath() + "' but found the number " + truncate(lit))
			}
		}
	}
	lo, hi := int64(-1<<31), int64(1<<31-1)
	if s.kind == kindLong {
		lo, hi = -1<<63, 1<<63-1
	}
	if !ok || v < lo || v > hi {
		bits := "32"
		if s.kind == kindLong {
			bits = "64"
		}
		return serErr("Number " + truncate(lit) + " for member '" + c.jsonPath() + "' is out of range for a " + bits + "-bit integer")
	}
	if s.hasMax && v > s.max {
		c.violate(s, i, s.maxMsg)
	}
	if s.hasMin && v < s.min {
		c.violate(s, i, s.minMsg)
	}
	return nil
}

// parseIntLiteral parses a JSON number literal without fraction or exponent
// as an int64.
func parseIntLiteral(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		u = u*10 + uint64(ch-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

func (c *checker) list(s *shape, i int32) *SerializationError {
	nd := &c.p.tape[i]
	if nd.typ != nodeArray {
		return c.typeErr("a JSON array", nd.typ)
	}
	n := int64(nd.n)
	if s.hasMax && n > s.max {
		c.violate(s, i, s.maxMsg)
	}
	if s.hasMin && n < s.min {
		c.violate(s, i, s.minMsg)
	}
	e := i + 1
	for k := int32(0); k < nd.n; k++ {
		if c.p.tape[e].typ == nodeNull {
			return serErr("Member '" + c.jsonPath() + "' holds null at index " + strconv.Itoa(int(k)) +
				": a list in a request cannot contain null; remove the element" + nullNote)
		}
		c.push(segment{index: k + 1, key: -1})
		err := c.value(s.elem, e)
		c.pop()
		if err != nil {
			return err
		}
		e = c.p.tape[e].next
	}
	return nil
}

// nullNote ends the message refusing a null in a list or map.
const nullNote = " (only a member of an object may be null, which means it is absent)"

func (c *checker) mapValue(s *shape, i int32) *SerializationError {
	nd := &c.p.tape[i]
	if nd.typ != nodeObject {
		return c.typeErr("a JSON object", nd.typ)
	}
	n := int64(nd.n)
	if s.hasMax && n > s.max {
		c.violate(s, i, s.maxMsg)
	}
	if s.hasMin && n < s.min {
		c.violate(s, i, s.minMsg)
	}
	// Keys: one violation for the whole map listing every failed key
	// constraint, as AWS does ("Map keys must satisfy constraint: [...]").
	if s.key.hasStringConstraints() {
		var failed uint8
		k := i + 1
		for j := int32(0); j < nd.n; j++ {
			failed |= stringFailures(s.key, c.p.text(k))
			k = c.p.tape[k+1].next
		}
		if failed != 0 {
			c.violate(s, i, "Map keys must satisfy constraint: ["+strings.Join(s.key.failureMessages(failed), ", ")+"]")
		}
	}
	k := i + 1
	for j := int32(0); j < nd.n; j++ {
		v := k + 1
		if c.p.tape[v].typ == nodeNull {
			return serErr("Member '" + c.jsonPath() + "' holds null for key " + strconv.Quote(truncate(c.p.text(k))) +
				": a map in a request cannot contain null values; remove the entry" + nullNote)
		}
		c.push(segment{key: k})
		err := c.value(s.value, v)
		c.pop()
		if err != nil {
			return err
		}
		k = c.p.tape[v].next
	}
	return nil
}

func (c *checker) structure(s *shape, i int32) *SerializationError {
	nd := &c.p.tape[i]
	if nd.typ != nodeObject {
		return c.typeErr("a JSON object", nd.typ)
	}
	// Locate each declared member's value (-1: absent or null).
	var local [16]int32
	var vals []int32
	if len(s.members) <= len(local) {
		vals = local[:len(s.members)]
	} else {
		vals = make([]int32, len(s.members))
	}
	for j := range vals {
		vals[j] = -1
	}
	total := int(nd.n)
	k := i + 1
	for j := 0; j < total; j++ {
		v := k + 1
		if c.p.tape[v].typ != nodeNull {
			if mi := s.memberIndex(c.p.text(k)); mi >= 0 {
				vals[mi] = v
			} else {
				c.unknown = true
			}
		} else if s.memberIndex(c.p.text(k)) < 0 {
			c.unknown = true
		}
		k = c.p.tape[v].next
	}
	for mi := range s.members {
		mem := &s.members[mi]
		if vals[mi] < 0 && !mem.required {
			continue
		}
		c.push(segment{mem: mem, key: -1})
		var err *SerializationError
		if vals[mi] < 0 {
			c.violations = append(c.violations, newViolation(c.validationPath(), "null", "Member must not be null"))
		} else {
			err = c.value(mem.shape, vals[mi])
		}
		c.pop()
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckString returns the constraints of the model's string shape name
// that v fails, in AWS's words ("Member must satisfy regular expression
// pattern: ..."), or nil when v satisfies them all. It is for values that
// do not arrive in a request body (an imported snapshot) but must obey
// the same table. An unknown or non-string shape is an error.
func (m *Model) CheckString(name, v string) ([]string, error) {
	s := m.shapes[name]
	if s == nil || s.kind != kindString {
		return nil, fmt.Errorf("model: %q is not a string shape", name)
	}
	return s.failureMessages(stringFailures(s, []byte(v))), nil
}
