package profiles

import (
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// state is what one Load knows about the files it read: which file each
// node came from and the files' lines, for error positions.
type state struct {
	origin map[*yaml.Node]string
	lines  map[string][]string
	// layers maps a merged tools: node to the tools: nodes of the files
	// it merges, base first (see mergeTools).
	layers map[*yaml.Node][]*yaml.Node
}

func newState() *state {
	return &state{origin: map[*yaml.Node]string{}, lines: map[string][]string{},
		layers: map[*yaml.Node][]*yaml.Node{}}
}

func (st *state) at(n *yaml.Node) pos {
	return pos{file: st.origin[n], line: n.Line, col: n.Column}
}

// register records file as the origin of n and every node beneath it.
func (st *state) register(n *yaml.Node, file string) {
	st.origin[n] = file
	for _, c := range n.Content {
		st.register(c, file)
	}
}

// like returns an empty node of n's kind that errors place where n is.
func (st *state) like(n *yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: n.Kind, Tag: n.Tag, Style: n.Style, Line: n.Line, Column: n.Column}
	st.origin[out] = st.origin[n]
	return out
}

// Top-level keys that belong to one file and are not inherited.
var ownKeys = []string{"extends", "name", "description"}

// mergeDoc lays the document over on top of base (nil for none): scalars
// override, mappings merge key by key, lists append. See doc.go, "Extends".
func (st *state) mergeDoc(base, over *yaml.Node) (*yaml.Node, error) {
	if base != nil {
		inherited := st.like(base)
		for i := 0; i+1 < len(base.Content); i += 2 {
			if !slices.Contains(ownKeys, base.Content[i].Value) {
				inherited.Content = append(inherited.Content, base.Content[i], base.Content[i+1])
			}
		}
		base = inherited
	}
	return st.merge(base, over, documentType, "")
}

// merge combines the checked nodes base (nil when nothing is inherited) and
// over, both of type t. Removals ("!entry", null) in over that find nothing
// in base are errors: they are typos or stale.
func (st *state) merge(base, over *yaml.Node, t reflect.Type, path string) (*yaml.Node, error) {
	if t == policyType {
		return st.mergeTools(base, over), nil
	}
	if t == secretType {
		return st.mergeSecret(base, over, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		return st.mergeMapping(base, over, path, func(key string) reflect.Type {
			f, _ := lookupField(t, key) // checked: the key exists
			return f.typ
		})
	case reflect.Map:
		return st.mergeMapping(base, over, path, func(string) reflect.Type { return t.Elem() })
	case reflect.Slice:
		return st.mergeList(base, over, t, path)
	case reflect.Pointer:
		return st.merge(base, over, t.Elem(), path)
	}
	return over, nil
}

func (st *state) mergeMapping(base, over *yaml.Node, path string, typeOf func(string) reflect.Type) (*yaml.Node, error) {
	out := st.like(over)
	index := map[string]int{} // key → index of the key node in out.Content
	if base != nil {
		for i := 0; i+1 < len(base.Content); i += 2 {
			index[base.Content[i].Value] = len(out.Content)
			out.Content = append(out.Content, base.Content[i], base.Content[i+1])
		}
	}
	removed := map[int]bool{}
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		p := joinPath(path, k.Value)
		j, inherited := index[k.Value]
		if isNull(v) {
			if !inherited {
				return nil, st.at(v).errorf("%s: null removes an inherited value, but none is inherited", p)
			}
			if t := typeOf(k.Value); t == policyType || t.Kind() == reflect.Pointer && t.Elem() == policyType {
				// Deny rules accumulate and nothing removes them: a
				// null tools: is an empty section, which drops what
				// was allowed and keeps what was denied.
				empty := st.like(v)
				empty.Kind, empty.Tag, empty.Value = yaml.MappingNode, "!!map", ""
				out.Content[j], out.Content[j+1] = k, st.mergeTools(out.Content[j+1], empty)
				continue
			}
			removed[j] = true
			continue
		}
		var b *yaml.Node
		if inherited {
			b = out.Content[j+1]
		}
		m, err := st.merge(b, v, typeOf(k.Value), p)
		if err != nil {
			return nil, err
		}
		if inherited {
			out.Content[j], out.Content[j+1] = k, m
		} else {
			index[k.Value] = len(out.Content)
			out.Content = append(out.Content, k, m)
		}
	}
	if len(removed) > 0 {
		kept := out.Content[:0:0]
		for i := 0; i+1 < len(out.Content); i += 2 {
			if !removed[i] {
				kept = append(kept, out.Content[i], out.Content[i+1])
			}
		}
		out.Content = kept
	}
	return out, nil
}

// mergeList appends over's entries to base's, skipping entries base already
// has. In a list of scalars an entry "!x" removes the inherited entry x
// (for paths, x with or without the optional "?"); lists of mappings only
// append.
func (st *state) mergeList(base, over *yaml.Node, t reflect.Type, path string) (*yaml.Node, error) {
	out := st.like(over)
	if base != nil {
		out.Content = slices.Clone(base.Content)
	}
	if !isScalarList(t) {
		out.Content = append(out.Content, over.Content...)
		return out, nil
	}
	var adds []*yaml.Node
	for i, item := range over.Content {
		target, removal := strings.CutPrefix(item.Value, "!")
		if !removal || item.ShortTag() != "!!str" {
			adds = append(adds, item)
			continue
		}
		n := len(out.Content)
		out.Content = slices.DeleteFunc(out.Content, func(have *yaml.Node) bool {
			return sameEntry(have.Value, target, t.Elem())
		})
		if len(out.Content) == n {
			return nil, st.at(item).errorf("%s: %q removes nothing: no inherited entry %q",
				indexPath(path, i), item.Value, target)
		}
	}
	for _, item := range adds {
		if !slices.ContainsFunc(out.Content, func(have *yaml.Node) bool { return have.Value == item.Value }) {
			out.Content = append(out.Content, item)
		}
	}
	return out, nil
}

// sameEntry reports whether the removal target matches the entry have.
// Strings match ignoring a trailing optional marker; numbers by value.
func sameEntry(have, target string, elem reflect.Type) bool {
	if elem.Kind() == reflect.String {
		h, _ := SplitOptional(have)
		t, _ := SplitOptional(target)
		return h == t
	}
	a, errA := strconv.ParseUint(have, 10, 64)
	b, errB := strconv.ParseUint(target, 10, 64)
	return errA == nil && errB == nil && a == b
}
