package profiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vm-run/vm-run/netns/egress"
)

// YAML returns the profile as a profile file: merged and expanded, keys in
// schema order, map keys sorted, empty values left out, sizes in binary
// units. A literal "$" is written "$$" (except in tools:, which is not
// expanded), so the output loads back (with any Vars) into a profile equal
// to p but for Source and for the password of network.upstream_proxy,
// which is written "xxxxx" ([RedactURL]): the output is for showing and
// sharing, and never carries that secret. This is what "vm-run profiles
// show" prints.
func (p *Profile) YAML() ([]byte, error) {
	n := encode(reflect.ValueOf(p).Elem(), opts{}, false)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode profile %q: %w", p.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode profile %q: %w", p.Name, err)
	}
	return b.Bytes(), nil
}

// Hash identifies what the profile enforces, tool policy included:
// "sha256:" and the hex SHA-256 of its JSON encoding without Source, so the
// same rules loaded from different files hash the same. The upstream
// proxy's password is hashed as "xxxxx": the hash goes to the ledger, and
// a weak password must not be guessable from it. encoding/json writes struct fields in
// declaration order and map keys sorted, which makes the encoding canonical
// for a given vm-run version.
func (p *Profile) Hash() string {
	c := *p
	c.Source = nil
	c.Network.UpstreamProxy = RedactURL(c.Network.UpstreamProxy)
	b, err := json.Marshal(&c)
	if err != nil { // strings, numbers, bools and maps with string keys cannot fail
		panic("profiles: encode profile for hashing: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// encode builds the YAML node for v, or nil when v is empty and can be left
// out. keepZero keeps a zero number: a set limit of 0 differs from none.
func encode(v reflect.Value, o opts, keepZero bool) *yaml.Node {
	if v.Type() == policyType {
		return encodeTools(v)
	}
	if v.Type() == ruleType {
		return encodeRule(v.Interface().(egress.Rule))
	}
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, f := range fieldsOf(v.Type()) {
			if c := encode(v.FieldByIndex(f.index), f.opts, false); c != nil {
				n.Content = append(n.Content, str(f.key), c)
			}
		}
		if len(n.Content) == 0 {
			return nil
		}
		return n
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range keys {
			n.Content = append(n.Content, str(k.String()), encode(v.MapIndex(k), o, true))
		}
		return n
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if isScalarList(v.Type()) && v.Type().Elem().Kind() != reflect.String {
			n.Style = yaml.FlowStyle // ports: [80, 443]
		}
		for i := range v.Len() {
			n.Content = append(n.Content, encode(v.Index(i), o, true))
		}
		return n
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return encode(v.Elem(), o, true)
	case reflect.String:
		s := v.String()
		if s == "" && !keepZero {
			return nil
		}
		if !o.literal {
			s = unmarkSecrets(strings.ReplaceAll(s, "$", "$$"))
		}
		if o.redact {
			s = RedactURL(s)
		}
		return str(s)
	case reflect.Bool:
		if !v.Bool() {
			return nil
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"}
	case reflect.Uint16, reflect.Uint64:
		if v.Uint() == 0 && !keepZero {
			return nil
		}
		return formatNumber(v.Uint(), o)
	}
	panic("profiles: no YAML form for Go type " + v.Type().String())
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
