package model

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of JSON arrays and objects accepted in a
// request body; the top-level object is depth 1.
const maxDepth = 32

// nodeType is the JSON type of a tape node.
type nodeType uint8

const (
	nodeNull nodeType = iota
	nodeFalse
	nodeTrue
	nodeNumber
	nodeString
	nodeArray
	nodeObject
)

// node is one JSON value in the flattened parse tape. A container is
// followed by its children (for objects: key node, value subtree, key node,
// ...); next skips the whole subtree.
type node struct {
	typ nodeType
	esc bool // string: decoded text lives in parser.scratch, not in data
	// Strings: decoded text span. Numbers: literal span in data.
	start, end int32
	next       int32 // index of the node following this value's subtree
	n          int32 // arrays: elements; objects: members
}

// parser is a strict RFC 8259 JSON parser that flattens a document into a
// tape, rejecting duplicate keys and excessive nesting on the way.
type parser struct {
	data    []byte
	pos     int
	tape    []node
	scratch []byte // decoded strings that contained escapes
}

// text returns the decoded text of a string node or the literal of a number.
func (p *parser) text(i int32) []byte {
	nd := &p.tape[i]
	if nd.esc {
		return p.scratch[nd.start:nd.end]
	}
	return p.data[nd.start:nd.end]
}

// parse parses p.data as exactly one JSON object. An empty body is the
// empty object. It returns the root node index.
func (p *parser) parse() (int32, *SerializationError) {
	if len(p.data) > math.MaxInt32 {
		return 0, serErr("Request body is too large")
	}
	if !utf8.Valid(p.data) {
		return 0, serErr("Request body is not valid UTF-8")
	}
	if len(p.data) == 0 {
		p.tape = append(p.tape, node{typ: nodeObject, next: 1})
		return 0, nil
	}
	if err := p.value(0); err != nil {
		return 0, err
	}
	p.skipWS()
	if p.pos != len(p.data) {
		return 0, p.syntaxErr("unexpected data after the top-level value")
	}
	if p.tape[0].typ != nodeObject {
		return 0, serErr("Request body must be a JSON object but is " + article(p.tape[0].typ))
	}
	return 0, nil
}

func (p *parser) skipWS() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) *SerializationError {
	p.skipWS()
	if p.pos >= len(p.data) {
		return p.syntaxErr("unexpected end of input")
	}
	switch c := p.data[p.pos]; c {
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	case '"':
		return p.str()
	case 't':
		return p.literal("true", nodeTrue)
	case 'f':
		return p.literal("false", nodeFalse)
	case 'n':
		return p.literal("null", nodeNull)
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return p.syntaxErr("unexpected " + describeByte(p.data, p.pos) + " looking for the beginning of a value")
	}
}

func (p *parser) literal(lit string, t nodeType) *SerializationError {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(lit)) {
		return p.syntaxErr("invalid literal, expected " + lit)
	}
	p.tape = append(p.tape, node{typ: t, next: int32(len(p.tape) + 1)})
	p.pos += len(lit)
	return nil
}

func (p *parser) number() *SerializationError {
	d := p.data
	i := p.pos
	start := i
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return p.syntaxErr("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return p.syntaxErr("invalid number: expected a digit after the decimal point")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return p.syntaxErr("invalid number: expected a digit in the exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	p.tape = append(p.tape, node{typ: nodeNumber, start: int32(start), end: int32(i), next: int32(len(p.tape) + 1)})
	p.pos = i
	return nil
}

// str parses a string starting at the opening quote.
func (p *parser) str() *SerializationError {
	d := p.data
	start := p.pos + 1
	for i := start; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			p.tape = append(p.tape, node{typ: nodeString, start: int32(start), end: int32(i), next: int32(len(p.tape) + 1)})
			p.pos = i + 1
			return nil
		case c == '\\':
			return p.strEscaped(start, i)
		case c < 0x20:
			p.pos = i
			return p.syntaxErr("invalid control character in string")
		}
	}
	p.pos = len(d)
	return p.syntaxErr("unexpected end of input in string")
}

// strEscaped decodes a string containing escapes into p.scratch; i is the
// position of the first backslash.
func (p *parser) strEscaped(start, i int) *SerializationError {
	d := p.data
	sstart := len(p.scratch)
	p.scratch = append(p.scratch, d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.tape = append(p.tape, node{typ: nodeString, esc: true, start: int32(sstart), end: int32(len(p.scratch)), next: int32(len(p.tape) + 1)})
			p.pos = i + 1
			return nil
		case c < 0x20:
			p.pos = i
			return p.syntaxErr("invalid control character in string")
		case c != '\\':
			p.scratch = append(p.scratch, c)
			i++
			continue
		}
		// Escape sequence.
		if i+1 >= len(d) {
			break
		}
		e := d[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			p.scratch = append(p.scratch, e)
		case 'b':
			p.scratch = append(p.scratch, '\b')
		case 'f':
			p.scratch = append(p.scratch, '\f')
		case 'n':
			p.scratch = append(p.scratch, '\n')
		case 'r':
			p.scratch = append(p.scratch, '\r')
		case 't':
			p.scratch = append(p.scratch, '\t')
		case 'u':
			r, ok := hex4(d, i)
			if !ok {
				p.pos = i
				return p.syntaxErr(`invalid \u escape in string`)
			}
			i += 4
			if utf16.IsSurrogate(r) {
				// A valid pair combines; a lone surrogate becomes U+FFFD
				// (as encoding/json does).
				r2 := rune(-1)
				if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
					if v, ok := hex4(d, i+2); ok {
						r2 = v
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			p.scratch = utf8.AppendRune(p.scratch, r)
		default:
			p.pos = i - 2
			return p.syntaxErr("invalid escape sequence in string")
		}
	}
	p.pos = len(d)
	return p.syntaxErr("unexpected end of input in string")
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func (p *parser) array(depth int) *SerializationError {
	if depth > maxDepth {
		return serErr("Request body nests JSON arrays and objects deeper than " + strconv.Itoa(maxDepth) + " levels")
	}
	idx := len(p.tape)
	p.tape = append(p.tape, node{typ: nodeArray})
	p.pos++ // '['
	p.skipWS()
	n := int32(0)
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
	} else {
		for {
			if err := p.value(depth); err != nil {
				return err
			}
			n++
			p.skipWS()
			if p.pos >= len(p.data) {
				return p.syntaxErr("unexpected end of input in array")
			}
			c := p.data[p.pos]
			p.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				p.pos--
				return p.syntaxErr("unexpected " + describeByte(p.data, p.pos) + " after array element, expected ',' or ']'")
			}
		}
	}
	p.tape[idx].n = n
	p.tape[idx].next = int32(len(p.tape))
	return nil
}

func (p *parser) object(depth int) *SerializationError {
	if depth > maxDepth {
		return serErr("Request body nests JSON arrays and objects deeper than " + strconv.Itoa(maxDepth) + " levels")
	}
	idx := len(p.tape)
	p.tape = append(p.tape, node{typ: nodeObject})
	p.pos++ // '{'
	p.skipWS()
	n := int32(0)
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
	} else {
		for {
			p.skipWS()
			if p.pos >= len(p.data) {
				return p.syntaxErr("unexpected end of input in object")
			}
			if p.data[p.pos] != '"' {
				return p.syntaxErr("unexpected " + describeByte(p.data, p.pos) + " looking for an object key")
			}
			if err := p.str(); err != nil {
				return err
			}
			p.skipWS()
			if p.pos >= len(p.data) || p.data[p.pos] != ':' {
				if p.pos >= len(p.data) {
					return p.syntaxErr("unexpected end of input in object")
				}
				return p.syntaxErr("unexpected " + describeByte(p.data, p.pos) + " after object key, expected ':'")
			}
			p.pos++
			if err := p.value(depth); err != nil {
				return err
			}
			n++
			p.skipWS()
			if p.pos >= len(p.data) {
				return p.syntaxErr("unexpected end of input in object")
			}
			c := p.data[p.pos]
			p.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				p.pos--
				return p.syntaxErr("unexpected " + describeByte(p.data, p.pos) + " after object member, expected ',' or '}'")
			}
		}
	}
	p.tape[idx].n = n
	p.tape[idx].next = int32(len(p.tape))
	return p.checkDuplicates(int32(idx))
}

// checkDuplicates rejects an object with two members of the same (decoded)
// name.
func (p *parser) checkDuplicates(obj int32) *SerializationError {
	n := int(p.tape[obj].n)
	if n < 2 {
		return nil
	}
	const small = 16
	if n <= small {
		var keys [small]int32
		k := obj + 1
		for i := 0; i < n; i++ {
			kb := p.text(k)
			for _, prev := range keys[:i] {
				if bytes.Equal(p.text(prev), kb) {
					return duplicateKey(kb)
				}
			}
			keys[i] = k
			k = p.tape[k+1].next
		}
		return nil
	}
	seen := make(map[string]struct{}, n)
	k := obj + 1
	for i := 0; i < n; i++ {
		kb := p.text(k)
		if _, dup := seen[string(kb)]; dup {
			return duplicateKey(kb)
		}
		seen[string(kb)] = struct{}{}
		k = p.tape[k+1].next
	}
	return nil
}

func duplicateKey(k []byte) *SerializationError {
	return serErr("Duplicate key '" + truncate(k) + "' in JSON object")
}

func (p *parser) syntaxErr(msg string) *SerializationError {
	return serErr("Request body is not valid JSON: " + msg + " at offset " + strconv.Itoa(p.pos))
}

// describeByte names the character at data[i] for an error message.
func describeByte(data []byte, i int) string {
	r, _ := utf8.DecodeRune(data[i:])
	return "character " + strconv.QuoteRune(r)
}

// article names a JSON type with its indefinite article.
func article(t nodeType) string {
	switch t {
	case nodeNull:
		return "null"
	case nodeTrue, nodeFalse:
		return "a boolean"
	case nodeNumber:
		return "a number"
	case nodeString:
		return "a string"
	case nodeArray:
		return "an array"
	default:
		return "an object"
	}
}
