package profiles

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// A Loader finds, reads and merges profiles. The zero Loader knows only the
// built-in profiles; [NewLoader] adds the standard search directories.
// A Loader is safe for concurrent use.
type Loader struct {
	// Dirs are searched in order for NAME.yaml before the built-ins.
	Dirs []string
}

// NewLoader returns a Loader that searches [DefaultDirs].
func NewLoader() *Loader { return &Loader{Dirs: DefaultDirs()} }

// DefaultDirs returns the profile directories in search order, as the
// environment says now: $XDG_CONFIG_HOME/vm-run/profiles (or
// ~/.config/vm-run/profiles), then /etc/vm-run/profiles. A relative
// $XDG_CONFIG_HOME is ignored, as the XDG Base Directory Specification asks.
func DefaultDirs() []string {
	var dirs []string
	config := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(config) {
		config = ""
		if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
			config = filepath.Join(home, ".config")
		}
	}
	if config != "" {
		dirs = append(dirs, filepath.Join(config, "vm-run", "profiles"))
	}
	return append(dirs, "/etc/vm-run/profiles")
}

// Load loads a profile with the default Loader; see [Loader.Load].
func Load(ref string, v Vars) (*Profile, error) { return NewLoader().Load(ref, v) }

// Load reads the profile ref, merges it over the profiles it extends,
// expands variables with v and validates the result. ref is a path if it
// contains "/" or ends in ".yaml" or ".yml", else a name looked up in
// l.Dirs and then among the built-ins. Problems in a file are *Error values
// naming file:line:column; an unknown name wraps [ErrNotFound].
func (l *Loader) Load(ref string, v Vars) (*Profile, error) {
	var src *source
	var err error
	if isPath(ref) {
		src, err = l.readPath(ref)
	} else {
		if !profileName.MatchString(ref) {
			return nil, fmt.Errorf("profile name %q: use letters, digits, \".\", \"_\" and \"-\", or give a path", ref)
		}
		src, err = l.lookup(ref, 0, false)
	}
	if err != nil {
		return nil, err
	}
	return l.load(src, v)
}

// Parse loads a profile from data as if read from file, which names it in
// errors and anchors relative extends: paths; l resolves extends: names.
func (l *Loader) Parse(file string, data []byte, v Vars) (*Profile, error) {
	id := file
	if abs, err := filepath.Abs(file); err == nil {
		id = abs
	}
	src := &source{id: id, file: file, dir: filepath.Dir(id), data: data}
	l.place(src)
	return l.load(src, v)
}

// source is one profile file, read.
type source struct {
	id   string // what Profile.Source lists: the path, or "builtin:NAME"
	file string // what errors name: the path, or "builtin:NAME.yaml"
	dir  string // where relative extends: paths start; "" for built-ins
	// name and rank say where a name lookup found the file: Dirs[rank],
	// or the built-ins at rank len(Dirs). rank is -1 for other files.
	name    string
	rank    int
	builtin bool
	data    []byte
}

func isPath(ref string) bool {
	return strings.Contains(ref, "/") || strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml")
}

// maxFileSize bounds a profile file; profiles are a few kilobytes.
const maxFileSize = 1 << 20

// readPath reads a profile file given by path.
func (l *Loader) readPath(path string) (*source, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w", path, err)
	}
	data, err := readFile("profile", abs)
	if err != nil {
		return nil, err
	}
	src := &source{id: abs, file: path, dir: filepath.Dir(abs), data: data}
	l.place(src)
	return src, nil
}

// place sets the name and rank of a file that sits in one of l.Dirs, so
// that its extends: of its own name skips it (see lookup).
func (l *Loader) place(src *source) {
	src.rank = -1
	abs, err := filepath.Abs(src.file)
	if err != nil {
		return
	}
	name, ok := strings.CutSuffix(filepath.Base(abs), ".yaml")
	for i, dir := range l.Dirs {
		if d, err := filepath.Abs(dir); ok && err == nil && d == filepath.Dir(abs) {
			src.name, src.rank = name, i
			return
		}
	}
}

// readFile reads a regular file of at most maxFileSize bytes; what names it
// in errors ("profile"). O_NONBLOCK keeps a FIFO named as a profile from
// blocking the open (open(2)).
func readFile(what, path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s %q: %w", what, path, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s %q: %w", what, path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s %q: not a regular file", what, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %q: %w", what, path, unwrapPath(err))
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read %s %q: larger than %d bytes", what, path, maxFileSize)
	}
	return data, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// lookup finds the profile name, searching l.Dirs from index from and then
// the built-ins (or only the built-ins).
func (l *Loader) lookup(name string, from int, builtinOnly bool) (*source, error) {
	if !builtinOnly {
		for i := from; i < len(l.Dirs); i++ {
			path := filepath.Join(l.Dirs[i], name+".yaml")
			data, err := readFile("profile", path)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			if err != nil { // unreadable is not absent: no fallback
				return nil, err
			}
			return &source{id: path, file: path, dir: l.Dirs[i], name: name, rank: i, data: data}, nil
		}
	}
	if data, err := builtinFS.ReadFile(name + ".yaml"); err == nil {
		return &source{id: "builtin:" + name, file: "builtin:" + name + ".yaml", name: name,
			rank: len(l.Dirs), builtin: true, data: data}, nil
	}
	var where []string
	if !builtinOnly {
		where = append(where, l.Dirs[min(from, len(l.Dirs)):]...)
	}
	where = append(where, "the built-ins ("+strings.Join(builtinNames(), ", ")+")")
	return nil, fmt.Errorf("%w: %q (searched %s)", ErrNotFound, name, strings.Join(where, ", "))
}

// maxDepth bounds extends: chains.
const maxDepth = 16

// load reads the extends: chain from src, merges it and decodes the result.
func (l *Loader) load(src *source, v Vars) (*Profile, error) {
	st := newState()
	var chain []*source
	var docs []*yaml.Node
	for cur := src; cur != nil; {
		doc, extends, err := st.parse(cur)
		if err != nil {
			return nil, err
		}
		chain, docs = append(chain, cur), append(docs, doc)
		if extends == nil {
			break
		}
		if cur, err = l.resolve(st, cur, extends); err != nil {
			return nil, err
		}
		for i, c := range chain {
			if c.id == cur.id {
				var ids []string
				for _, c := range chain[i:] {
					ids = append(ids, c.id)
				}
				return nil, st.at(extends).errorf("extends: cycle: %s -> %s", strings.Join(ids, " -> "), cur.id)
			}
		}
		if len(chain) == maxDepth {
			return nil, st.at(extends).errorf("extends: chain longer than %d profiles", maxDepth)
		}
	}
	var merged *yaml.Node
	for i := len(docs) - 1; i >= 0; i-- {
		var err error
		if merged, err = st.mergeDoc(merged, docs[i]); err != nil {
			return nil, err
		}
	}
	d := newDecoder(st, v)
	var doc document
	if err := d.decode(merged, reflect.ValueOf(&doc).Elem(), opts{}, ""); err != nil {
		return nil, err
	}
	p := &doc.Profile
	if p.Name == "" {
		p.Name = defaultName(src)
		if !profileName.MatchString(p.Name) {
			return nil, &Error{File: src.file, Msg: fmt.Sprintf(
				"the file name gives the profile no valid name (%q); add a name: key", p.Name)}
		}
	}
	for _, c := range chain {
		p.Source = append(p.Source, c.id)
	}
	if err := d.validate(p); err != nil {
		return nil, err
	}
	return p, nil
}

// defaultName names a profile whose file has no name: key.
func defaultName(src *source) string {
	if src.name != "" {
		return src.name
	}
	base := filepath.Base(src.file)
	for _, ext := range []string{".yaml", ".yml"} {
		if n, ok := strings.CutSuffix(base, ext); ok {
			return n
		}
	}
	return base
}

// parse parses and checks one file. It returns the top-level mapping and
// the extends: value, if any.
func (st *state) parse(src *source) (doc, extends *yaml.Node, err error) {
	root, more, err := parseYAML(src.data)
	if err != nil {
		return nil, nil, syntaxError(src.file, src.data, err)
	}
	if root == nil || len(root.Content) == 0 {
		return nil, nil, &Error{File: src.file, Msg: "empty profile; write {} for a profile that grants nothing"}
	}
	if more != nil {
		return nil, nil, &Error{File: src.file, Line: more.Line, Column: more.Column,
			Msg: "a profile file holds one YAML document; this is a second"}
	}
	st.lines[src.file] = strings.Split(strings.ReplaceAll(string(src.data), "\r\n", "\n"), "\n")
	doc = root.Content[0]
	st.register(doc, src.file)
	if err := st.check(doc, documentType, opts{}, ""); err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "extends" {
			extends = doc.Content[i+1]
		}
	}
	return doc, extends, nil
}

// resolve finds the profile that cur's extends: names. Built-ins extend
// built-ins only. A file found by name that extends its own name gets the
// next one down the search order: ~/.config/vm-run/profiles/strict.yaml
// saying "extends: strict" refines the built-in strict.
func (l *Loader) resolve(st *state, cur *source, n *yaml.Node) (*source, error) {
	ref := n.Value
	fail := func(err error) (*source, error) {
		return nil, &Error{File: st.at(n).file, Line: n.Line, Column: n.Column, Msg: "extends: " + err.Error(), Err: err}
	}
	if isPath(ref) {
		if cur.builtin {
			return fail(errors.New("a built-in profile extends by name only"))
		}
		if !filepath.IsAbs(ref) {
			ref = filepath.Join(cur.dir, ref)
		}
		src, err := l.readPath(ref)
		if err != nil {
			return fail(err)
		}
		return src, nil
	}
	if !profileName.MatchString(ref) {
		return fail(fmt.Errorf("%q is neither a profile name nor a path", ref))
	}
	from := 0
	if ref == cur.name && cur.rank >= 0 {
		from = cur.rank + 1
	}
	src, err := l.lookup(ref, from, cur.builtin)
	if err != nil {
		return fail(err)
	}
	return src, nil
}
