package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The schema is the Go types: a YAML mapping decodes into a struct (keys are
// the yaml tags) or a map, a sequence into a slice, a scalar into a string,
// bool or unsigned integer. A new section is a new struct field; the checker,
// merger, decoder and encoder below follow it without further code. Extra
// struct tags steer them: unit:"count|bytes|seconds" says how a number may
// be written (see parseNumber), expand:"no" exempts a string from variable
// expansion, short:"KEY" lets a mapping be written as a scalar that stands
// for {KEY: scalar} ("network: none"), null:"removes" lets an extending
// profile remove an inherited value that is not a pointer with null, and
// redact:"url" has the encoder write a URL's password as "xxxxx".
//
// One section is delegated: tools: is a [policy.Policy], whose schema and
// decoder belong to package policy. The walkers stop at it: check looks only
// at its YAML form and has policy decode it, merge keeps each file's node,
// and the decoder hands them to policy in order (see tools.go). The walkers
// also stop at an entry of network.allow, an [egress.Rule], which has two
// forms (see egress.go).

// document is what a profile file holds: a profile plus extends:.
type document struct {
	Extends string `yaml:"extends" expand:"no"`
	Profile `yaml:",inline"`
}

var documentType = reflect.TypeFor[document]()

// field is one key of a mapping that decodes into a struct.
type field struct {
	key   string
	index []int
	typ   reflect.Type
	opts  opts
}

// opts are the struct tags that travel down to the values of a field.
type opts struct {
	unit    string // for numbers: "count", "bytes" or "seconds"
	literal bool   // no variable expansion
	short   string // for mappings: the key a scalar value stands for
	// nullable: null removes the inherited value (pointers always may).
	nullable bool
	redact   bool // a URL whose password is never written out
}

// fieldsOf lists the YAML keys of struct type t in declaration order,
// flattening inline fields.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := schemaFields.Load(t); ok {
		return fs.([]field)
	}
	fs := structFields(t)
	schemaFields.Store(t, fs)
	return fs
}

// schemaFields caches fieldsOf by type: the reflection walk runs for every
// mapping of every profile loaded, and a struct's fields never change.
// Callers must not modify the slice they get.
var schemaFields sync.Map // reflect.Type -> []field

func structFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, flags, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if flags == "inline" {
			for _, sub := range structFields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{
			key:   name,
			index: []int{i},
			typ:   f.Type,
			opts: opts{unit: f.Tag.Get("unit"), literal: f.Tag.Get("expand") == "no",
				short: f.Tag.Get("short"), nullable: f.Tag.Get("null") == "removes",
				redact: f.Tag.Get("redact") == "url"},
		})
	}
	return out
}

func lookupField(t reflect.Type, key string) (field, bool) {
	for _, f := range fieldsOf(t) {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func keysOf(t reflect.Type) string {
	var keys []string
	for _, f := range fieldsOf(t) {
		keys = append(keys, f.key)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// parseYAML parses the one YAML document in data. doc is nil for a file
// without a document; more is the start of a second document, if any.
// yaml.v3 has panicked on malformed input before (CVE-2022-28948), and a
// profile is user input: a panic becomes an error.
func parseYAML(data []byte) (doc, more *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, more, err = nil, nil, fmt.Errorf("yaml: parser panic: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	doc = new(yaml.Node)
	if err := dec.Decode(doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	more = new(yaml.Node)
	if err := dec.Decode(more); err != nil {
		if errors.Is(err, io.EOF) {
			return doc, nil, nil
		}
		return nil, nil, err
	}
	return doc, more, nil
}

// joinPath extends a YAML path ("filesystem.read") by a key.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// label names a path in messages; the top level is "profile".
func label(path string) string {
	if path == "" {
		return "profile"
	}
	return path
}

// want describes what YAML type t takes, for messages.
func want(t reflect.Type, o opts) string {
	if t == ruleType {
		return ruleWant
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.Pointer:
		return want(t.Elem(), o)
	case reflect.Bool:
		return "true or false"
	case reflect.Uint16:
		return "a port number from 1 to 65535"
	case reflect.Uint64:
		switch o.unit {
		case "bytes":
			return `a size such as 4096, "64KiB" or "unlimited"`
		case "seconds":
			return `a time such as 30, "90s", "10m" or "unlimited"`
		}
		return `a whole number or "unlimited"`
	}
	return "a string"
}

// got describes what a node holds, for messages.
func got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// stringTags are the resolved tags a string field accepts: a string field
// takes `8080` or `true` as written.
var stringTags = []string{"!!str", "!!int", "!!float", "!!bool", "!!timestamp"}

// knownTags are the tags yaml.v3 resolves plain nodes to; any other tag was
// written out in the file.
var knownTags = append([]string{"!!null", "!!map", "!!seq"}, stringTags...)

// isScalarList reports whether t is a list of scalars, the kind of list
// whose entries can be removed with "!".
func isScalarList(t reflect.Type) bool {
	if t.Kind() != reflect.Slice {
		return false
	}
	switch t.Elem().Kind() {
	case reflect.String, reflect.Uint16, reflect.Uint64:
		return true
	}
	return false
}

// check verifies one file's node n against type t before any merging:
// structure, keys, scalar syntax and variable syntax. Everything that needs
// no other file is checked here, so a broken base profile is reported even
// where an extending profile overrides the broken value.
func (st *state) check(n *yaml.Node, t reflect.Type, o opts, path string) error {
	at := st.at(n)
	if n.Kind == yaml.AliasNode {
		return at.errorf("%s: aliases (*%s) are not supported", label(path), n.Value)
	}
	if n.Anchor != "" {
		return at.errorf("%s: anchors (&%s) are not supported", label(path), n.Anchor)
	}
	if tag := n.ShortTag(); !slices.Contains(knownTags, tag) {
		return at.errorf("%s: YAML tag %s is not supported", label(path), tag)
	}
	if t == policyType {
		return st.checkTools(n, path)
	}
	if t == ruleType {
		_, err := st.rule(n, path)
		return err
	}
	if o.short != "" && n.Kind == yaml.ScalarNode && !isNull(n) {
		st.expandShort(n, o.short) // the value is checked as KEY's
	}
	switch t.Kind() {
	case reflect.Struct:
		return st.checkMapping(n, path, func(k *yaml.Node) (reflect.Type, opts, bool, error) {
			f, ok := lookupField(t, k.Value)
			if !ok {
				return nil, opts{}, false, st.at(k).errorf("%s: unknown key %q; known keys: %s",
					label(path), k.Value, keysOf(t))
			}
			return f.typ, f.opts, f.typ.Kind() == reflect.Pointer || f.opts.nullable, nil
		})
	case reflect.Map:
		return st.checkMapping(n, path, func(*yaml.Node) (reflect.Type, opts, bool, error) {
			return t.Elem(), o, true, nil
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return at.errorf("%s: want %s, got %s", label(path), want(t, o), got(n))
		}
		for i, item := range n.Content {
			p := indexPath(path, i)
			if isNull(item) {
				return st.at(item).errorf("%s: want %s, got null", p, want(t.Elem(), o))
			}
			if tag := item.ShortTag(); isScalarList(t) && item.Kind == yaml.ScalarNode &&
				strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
				// "- !tcp" is YAML for the tag !tcp on an empty value,
				// not the removal entry the writer meant.
				entry := strings.TrimSpace(tag + " " + item.Value)
				return st.at(item).errorf(`%s: %s is a YAML tag; to remove an inherited entry, quote it: "%s"`,
					p, tag, entry)
			}
			if isScalarList(t) && item.Kind == yaml.ScalarNode && item.ShortTag() == "!!str" &&
				strings.HasPrefix(item.Value, "!") {
				if err := st.checkRemoval(item, t.Elem(), o, p); err != nil {
					return err
				}
				continue
			}
			if err := st.check(item, t.Elem(), o, p); err != nil {
				return err
			}
		}
		return nil
	case reflect.Pointer:
		return st.check(n, t.Elem(), o, path)
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return at.errorf("%s: want %s, got %s", label(path), want(t, o), got(n))
	}
	switch t.Kind() {
	case reflect.String:
		if !slices.Contains(stringTags, n.ShortTag()) {
			return at.errorf("%s: want %s, got %s", label(path), want(t, o), got(n))
		}
		if o.literal {
			if strings.Contains(n.Value, "${secret:") {
				return at.errorf("%v", errLiteralSecret(path))
			}
			return nil
		}
		_, err := st.expand(n, n.Value, 0, nil, path)
		return err
	case reflect.Bool:
		if n.ShortTag() != "!!bool" {
			return at.errorf("%s: want %s, got %s", label(path), want(t, o), got(n))
		}
		return nil
	case reflect.Uint16, reflect.Uint64:
		if _, err := parseNumber(n, t, o); err != nil {
			return at.errorf("%s: %v", label(path), err)
		}
		return nil
	}
	return at.errorf("%s: internal error: no YAML form for Go type %s", label(path), t)
}

// expandShort rewrites a scalar written for a mapping with a short:"KEY"
// tag into the mapping {KEY: scalar}, in place, so that merging and
// decoding see the long form. Both new nodes sit where the scalar was.
func (st *state) expandShort(n *yaml.Node, key string) {
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: n.Line, Column: n.Column}
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: n.Tag, Style: n.Style, Value: n.Value,
		Line: n.Line, Column: n.Column}
	st.origin[k], st.origin[v] = st.origin[n], st.origin[n]
	*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column,
		Content: []*yaml.Node{k, v}}
}

// checkRemoval checks a "!entry" list item: the entry must parse as the
// element type would.
func (st *state) checkRemoval(item *yaml.Node, elem reflect.Type, o opts, path string) error {
	rest := strings.TrimPrefix(item.Value, "!")
	if rest == "" {
		return st.at(item).errorf(`%s: "!" names no entry to remove`, path)
	}
	if elem.Kind() == reflect.String {
		if o.literal {
			return nil
		}
		_, err := st.expand(item, rest, 1, nil, path)
		return err
	}
	tmp := *item
	tmp.Value, tmp.Tag, tmp.Style = rest, "", 0
	if _, err := parseNumber(&tmp, elem, o); err != nil {
		return st.at(item).errorf("%s: %v", path, err)
	}
	return nil
}

// checkMapping checks the keys and values of a mapping node. elem returns
// the type of a key's value, whether a null value (remove the inherited
// value) is allowed, or the error for an unknown key.
func (st *state) checkMapping(n *yaml.Node, path string,
	elem func(k *yaml.Node) (reflect.Type, opts, bool, error)) error {
	if n.Kind != yaml.MappingNode {
		return st.at(n).errorf("%s: want a mapping, got %s", label(path), got(n))
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			return st.at(k).errorf("%s: merge keys (<<) are not supported; use extends:", label(path))
		}
		if k.Kind != yaml.ScalarNode || k.Anchor != "" || !slices.Contains(stringTags, k.ShortTag()) {
			return st.at(k).errorf("%s: keys must be plain strings", label(path))
		}
		if first, dup := seen[k.Value]; dup {
			return st.at(k).errorf("%s: duplicate key %q (first at line %d)", label(path), k.Value, first.Line)
		}
		seen[k.Value] = k
		t, o, nullable, err := elem(k)
		if err != nil {
			return err
		}
		p := joinPath(path, k.Value)
		if isNull(v) {
			if !nullable {
				return st.at(v).errorf("%s: want %s, got null", p, want(t, o))
			}
			continue
		}
		if err := st.check(v, t, o, p); err != nil {
			return err
		}
	}
	return nil
}
