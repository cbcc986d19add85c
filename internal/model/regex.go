package model

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
	"unicode/utf8"
)

// matcher matches a whole value against a model pattern.
type matcher struct {
	re *regexp.Regexp
	// class, if set, is an equivalent and faster matcher for patterns that
	// are a single repeated character class (tag keys and values, Cert,
	// NextToken, Field, ...). Go's regexp is slow on large Unicode classes.
	class *classMatcher
}

func (m *matcher) match(b []byte) bool {
	if m.class != nil {
		return m.class.match(b)
	}
	return m.re.Match(b)
}

// classMatcher matches C* or C+ for a character class C.
type classMatcher struct {
	ascii  [2]uint64 // members below utf8.RuneSelf
	ranges []rune    // sorted inclusive [lo, hi] pairs, as in syntax.Regexp.Rune
	plus   bool      // at least one character required
}

func (m *classMatcher) match(b []byte) bool {
	if m.plus && len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if m.ascii[c>>6]&(1<<(c&63)) == 0 {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if !m.contains(r) {
			return false
		}
		i += n
	}
	return true
}

func (m *classMatcher) contains(r rune) bool {
	// Index of the first pair whose hi >= r.
	n := len(m.ranges) / 2
	j := sort.Search(n, func(k int) bool { return m.ranges[2*k+1] >= r })
	return j < n && m.ranges[2*j] <= r
}

// newClassMatcher recognizes a (translated, anchored) pattern of the form
// ^...(C*)...$ or ^...C+...$ and returns a matcher for it, or nil.
func newClassMatcher(anchored string) *classMatcher {
	re, err := syntax.Parse(anchored, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat {
		return nil
	}
	subs := re.Sub
	for len(subs) > 0 && subs[0].Op == syntax.OpBeginText {
		subs = subs[1:]
	}
	for len(subs) > 0 && subs[len(subs)-1].Op == syntax.OpEndText {
		subs = subs[:len(subs)-1]
	}
	if len(subs) != 1 || len(re.Sub)-len(subs) < 2 {
		return nil
	}
	x := subs[0]
	for x.Op == syntax.OpCapture {
		x = x.Sub[0]
	}
	if (x.Op != syntax.OpStar && x.Op != syntax.OpPlus) || x.Sub[0].Op != syntax.OpCharClass {
		return nil
	}
	m := &classMatcher{plus: x.Op == syntax.OpPlus, ranges: append([]rune(nil), x.Sub[0].Rune...)}
	for c := rune(0); c < utf8.RuneSelf; c++ {
		if m.contains(c) {
			m.ascii[c>>6] |= 1 << (c & 63)
		}
	}
	return m
}

// Java whitespace (\s without UNICODE_CHARACTER_CLASS) includes \x0B, which
// RE2's \s does not.
const javaSpaceClass = `\t\n\x0B\f\r `

// Java's '.' (without DOTALL) excludes every line terminator, RE2's only \n.
const javaDot = `[^\n\r\x{85}\x{2028}\x{2029}]`

// compileJavaPattern compiles a model pattern, written for java.util.regex,
// so that it matches like Java's Matcher.matches(): the whole value must
// match. The differences between Java and RE2 that matter for the constructs
// used in AWS models (\s, '.', \uXXXX) are translated; constructs RE2 cannot
// express are rejected so a model change cannot silently weaken validation.
func compileJavaPattern(p string) (*matcher, error) {
	t, err := translateJavaRegex(p)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, err)
	}
	anchored := `^(?:` + t + `)$`
	re, err := regexp.Compile(anchored)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, err)
	}
	return &matcher{re: re, class: newClassMatcher(anchored)}, nil
}

func translateJavaRegex(p string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			if i+1 >= len(p) {
				return "", fmt.Errorf("trailing backslash")
			}
			i++
			d := p[i]
			switch d {
			case 's':
				if inClass {
					b.WriteString(javaSpaceClass)
				} else {
					b.WriteString("[" + javaSpaceClass + "]")
				}
			case 'S':
				if inClass {
					return "", fmt.Errorf(`\S inside a character class is not supported`)
				}
				b.WriteString("[^" + javaSpaceClass + "]")
			case 'u':
				if i+4 >= len(p) {
					return "", fmt.Errorf(`truncated \u escape`)
				}
				b.WriteString(`\x{` + p[i+1:i+5] + `}`)
				i += 4
			case 'Q', 'E', 'G', 'Z', 'h', 'H', 'v', 'V', 'R', 'X', 'k', 'c', 'e', '0':
				return "", fmt.Errorf(`unsupported escape \%c`, d)
			default:
				b.WriteByte('\\')
				b.WriteByte(d)
			}
		case c == '[':
			if inClass {
				return "", fmt.Errorf("nested character classes are not supported")
			}
			inClass = true
			b.WriteByte(c)
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		case c == '.' && !inClass:
			b.WriteString(javaDot)
		default:
			b.WriteByte(c)
		}
	}
	if inClass {
		return "", fmt.Errorf("unterminated character class")
	}
	return b.String(), nil
}
