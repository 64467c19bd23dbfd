package profiles

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder turns a merged, checked node tree into Go values, expanding
// variables, and remembers where each value came from so that validation
// can point at it.
type decoder struct {
	st   *state
	vars Vars
	// value and key map a YAML path ("filesystem.read[2]", "env.set.FOO")
	// to the position of its value and, for mapping entries, of its key.
	value map[string]pos
	key   map[string]pos
}

func newDecoder(st *state, v Vars) *decoder {
	return &decoder{st: st, vars: v, value: map[string]pos{}, key: map[string]pos{}}
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, o opts, path string) error {
	d.value[path] = d.st.at(n)
	if v.Type() == policyType {
		pol, err := d.tools(n, path)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(pol).Elem())
		return nil
	}
	if v.Type() == ruleType {
		r, err := d.st.rule(n, path)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(r))
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := lookupField(v.Type(), k.Value)
			if !ok { // check let it through: a bug, not a user error
				return d.st.at(k).errorf("%s: internal error: unchecked key %q", label(path), k.Value)
			}
			p := joinPath(path, k.Value)
			d.key[p] = d.st.at(k)
			if err := d.decode(val, v.FieldByIndex(f.index), f.opts, p); err != nil {
				return err
			}
		}
	case reflect.Map:
		if len(n.Content) == 0 {
			return nil
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			d.key[p] = d.st.at(k)
			e := reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(val, e, o, p); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.Slice:
		if len(n.Content) == 0 {
			return nil
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), o, indexPath(path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.decode(n, p.Elem(), o, path); err != nil {
			return err
		}
		v.Set(p)
	case reflect.String:
		s := n.Value
		if !o.literal {
			var err error
			if s, err = d.st.expand(n, s, 0, &d.vars, path); err != nil {
				return err
			}
		}
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(strings.EqualFold(n.Value, "true"))
	case reflect.Uint16, reflect.Uint64:
		x, err := parseNumber(n, v.Type(), o)
		if err != nil {
			return d.st.at(n).errorf("%s: %v", label(path), err)
		}
		v.SetUint(x)
	default:
		return d.st.at(n).errorf("%s: internal error: no YAML form for Go type %s", label(path), v.Type())
	}
	return nil
}

// at returns the position of the value at path, or of the closest enclosing
// value that has one.
func (d *decoder) at(path string) pos {
	for {
		if p, ok := d.value[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.value[""]
		}
		path = path[:i]
	}
}

// keyAt returns the position of the key of path, or of its value when the
// path has no key (list entries, the defaults).
func (d *decoder) keyAt(path string) pos {
	if p, ok := d.key[path]; ok {
		return p
	}
	return d.at(path)
}

func (d *decoder) errorf(p pos, path, format string, args ...any) *Error {
	return p.errorf("%s: %s", label(path), fmt.Sprintf(format, args...))
}
