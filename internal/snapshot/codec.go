package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// Encode writes snap as a version 2 document, indented, every time in UTC.
func Encode(w io.Writer, snap *cloudhsm.Snapshot) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fromDomain(snap)); err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	return nil
}

// Decode reads a snapshot document of any version written so far (see the
// package comment) and returns the snapshot it holds, for
// cloudhsm.Service.Import. It refuses what is not the format, saying where:
// a syntax error by line and column, an unknown field, a value of the
// wrong type or a null list entry by its path (clusters[0].hsms[1].state).
// An error reading r is returned wrapped.
func Decode(r io.Reader) (*cloudhsm.Snapshot, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the snapshot is empty: it is a JSON object (see docs/snapshot-format.md)")
	}
	version, err := probeVersion(data)
	if err != nil {
		return nil, err
	}
	switch version {
	case 0, 1:
		var doc legacyDocument
		if err := strict(data, &doc, true); err != nil {
			return nil, err
		}
		if err := legacyNulls(&doc); err != nil {
			return nil, err
		}
		return doc.toV2().toDomain()
	case Version:
		var doc Document
		if err := strict(data, &doc, false); err != nil {
			return nil, err
		}
		if err := doc.nulls(); err != nil {
			return nil, err
		}
		return doc.toDomain()
	}
	return nil, fmt.Errorf("version: %d is not a snapshot version this server reads (0, 1 or %d; see docs/snapshot-format.md)", version, Version)
}

// probeVersion returns the document's version (0 when it has none), after
// checking that it is one JSON object.
func probeVersion(data []byte) (int, error) {
	var probe struct {
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			if strings.Contains(se.Error(), "after top-level value") {
				return 0, errors.New("invalid JSON: more than one JSON value")
			}
			if strings.Contains(se.Error(), "unexpected end") {
				return 0, errors.New("invalid JSON: the document ends early")
			}
			line, col := position(data, se.Offset)
			return 0, fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, se)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return 0, fmt.Errorf("the snapshot is a JSON %s, not an object (see docs/snapshot-format.md)", te.Value)
		}
		return 0, fmt.Errorf("invalid JSON: %w", err)
	}
	if len(probe.Version) == 0 || string(probe.Version) == "null" {
		return 0, nil
	}
	v, err := strconv.Atoi(string(probe.Version))
	if err != nil {
		return 0, fmt.Errorf("version: %s is not a version number (0, 1 or %d)", probe.Version, Version)
	}
	return v, nil
}

// position turns a byte offset into a line and column, both from 1.
func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, max(col, 1)
}

// strict decodes data into doc, refusing unknown fields. Version 2's
// names match exactly, which encoding/json cannot check (it matches in any
// case): a scan of the document's keys checks that first. Versions 0 and 1
// were read by encoding/json, and still are. When either fails, a walk of
// the document against doc's type finds what failed, to name its path
// (encoding/json names neither the path of an unknown field nor the index
// of a list entry).
func strict(data []byte, doc any, legacy bool) error {
	if !legacy && !keysAmong(data, v2Names()) {
		if err := locate(data, doc, false); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(doc); err != nil {
		if found := locate(data, doc, legacy); found != nil {
			return found
		}
		return fmt.Errorf("invalid snapshot: %w", err)
	}
	return nil
}

// keysAmong reports whether every object key of the JSON document data
// (valid JSON) is one of names, as written. A key with an escape sequence
// counts as not among them: the caller then looks closer.
func keysAmong(data []byte, names map[string]bool) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		start, escaped := i+1, false
		for i++; i < len(data) && data[i] != '"'; i++ {
			if data[i] == '\\' {
				escaped = true
				i++
			}
		}
		end := i
		j := i + 1
		for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
			j++
		}
		if j < len(data) && data[j] == ':' && (escaped || !names[string(data[start:end])]) {
			return false
		}
	}
	return true
}

// nulls refuses null entries of the document's lists.
func (doc *Document) nulls() error {
	for i, c := range doc.Clusters {
		if c == nil {
			return fmt.Errorf("clusters[%d] is null", i)
		}
		for j, h := range c.Hsms {
			if h == nil {
				return fmt.Errorf("clusters[%d].hsms[%d] is null", i, j)
			}
		}
	}
	for i, b := range doc.Backups {
		if b == nil {
			return fmt.Errorf("backups[%d] is null", i)
		}
	}
	return nil
}

func legacyNulls(doc *legacyDocument) error {
	for i, c := range doc.Clusters {
		if c == nil {
			return fmt.Errorf("clusters[%d] is null", i)
		}
		for j, h := range c.Hsms {
			if h == nil {
				return fmt.Errorf("clusters[%d].Hsms[%d] is null", i, j)
			}
		}
	}
	for i, b := range doc.Backups {
		if b == nil {
			return fmt.Errorf("backups[%d] is null", i)
		}
	}
	return nil
}
