package model

import (
	"unicode/utf8"
)

// maxRendered is the longest rendering (in characters) of a value in a
// message; longer renderings are cut and end in "...".
const maxRendered = 256

// limitWriter accumulates at most maxRendered characters.
type limitWriter struct {
	b     []byte
	runes int
	full  bool
}

func (w *limitWriter) write(s []byte) {
	for len(s) > 0 && !w.full {
		if w.runes == maxRendered {
			w.full = true
			return
		}
		_, n := utf8.DecodeRune(s)
		w.b = append(w.b, s[:n]...)
		w.runes++
		s = s[n:]
	}
}

func (w *limitWriter) writeString(s string) {
	for len(s) > 0 && !w.full {
		if w.runes == maxRendered {
			w.full = true
			return
		}
		_, n := utf8.DecodeRuneInString(s)
		w.b = append(w.b, s[:n]...)
		w.runes++
		s = s[n:]
	}
}

func (w *limitWriter) String() string {
	if w.full {
		return string(w.b) + "..."
	}
	return string(w.b)
}

// truncate returns s cut to maxRendered characters (plus "...").
func truncate(s []byte) string {
	var w limitWriter
	w.write(s)
	return w.String()
}

// render formats the value at node i the way AWS (Java's toString) shows it
// in validation messages: strings raw, lists "[a, b]", maps "{k=v}",
// structures "{Key: k,Value: v}". s is the value's shape (nil if unknown).
func (c *checker) render(s *shape, i int32) string {
	var w limitWriter
	c.renderTo(&w, s, i)
	return w.String()
}

func (c *checker) renderTo(w *limitWriter, s *shape, i int32) {
	if w.full {
		return
	}
	nd := &c.p.tape[i]
	switch nd.typ {
	case nodeNull:
		w.writeString("null")
	case nodeTrue:
		w.writeString("true")
	case nodeFalse:
		w.writeString("false")
	case nodeNumber:
		lit := c.p.text(i)
		if v, ok := parseIntLiteral(lit); ok && v == 0 {
			lit = []byte("0") // "-0"
		}
		w.write(lit)
	case nodeString:
		w.write(c.p.text(i))
	case nodeArray:
		var elem *shape
		if s != nil && s.kind == kindList {
			elem = s.elem
		}
		w.writeString("[")
		first := true
		e := i + 1
		for k := 0; k < int(nd.n) && !w.full; k++ {
			if c.p.tape[e].typ != nodeNull {
				if !first {
					w.writeString(", ")
				}
				first = false
				c.renderTo(w, elem, e)
			}
			e = c.p.tape[e].next
		}
		w.writeString("]")
	case nodeObject:
		if s != nil && s.kind == kindStructure {
			c.renderStructure(w, s, i)
			return
		}
		var val *shape
		if s != nil && s.kind == kindMap {
			val = s.value
		}
		w.writeString("{")
		first := true
		k := i + 1
		for j := 0; j < int(nd.n) && !w.full; j++ {
			v := k + 1
			if c.p.tape[v].typ != nodeNull {
				if !first {
					w.writeString(", ")
				}
				first = false
				w.write(c.p.text(k))
				w.writeString("=")
				c.renderTo(w, val, v)
			}
			k = c.p.tape[v].next
		}
		w.writeString("}")
	}
}

// renderStructure renders the declared, non-null members of a structure in
// declaration order.
func (c *checker) renderStructure(w *limitWriter, s *shape, i int32) {
	nd := &c.p.tape[i]
	w.writeString("{")
	first := true
	for mi := range s.members {
		mem := &s.members[mi]
		k := i + 1
		for j := 0; j < int(nd.n); j++ {
			v := k + 1
			if c.p.tape[v].typ != nodeNull && string(c.p.text(k)) == mem.name {
				if !first {
					w.writeString(",")
				}
				first = false
				w.writeString(mem.name)
				w.writeString(": ")
				c.renderTo(w, mem.shape, v)
				break
			}
			k = c.p.tape[v].next
		}
	}
	w.writeString("}")
}
