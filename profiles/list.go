package profiles

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Info describes one profile file that a name lookup can find.
type Info struct {
	Name        string
	Description string
	// Source is the file's path, or "builtin:NAME".
	Source string
	// ShadowedBy is the Source that Load(Name) reads instead of this one,
	// because it comes earlier in the search order; "" when this one wins.
	ShadowedBy string
	// Err is set when the file cannot be read or does not parse; Load
	// reports the details, and also what only merging can find.
	Err error
}

// List lists the profiles of the default Loader; see [Loader.List].
func List() ([]Info, error) { return NewLoader().List() }

// List returns every profile in l.Dirs and the built-ins, sorted by name
// and, within a name, in search order, so the one Load uses comes first and
// the ones it shadows follow. A directory that does not exist is skipped;
// one that cannot be read is an error.
func (l *Loader) List() ([]Info, error) {
	var infos []Info
	for _, dir := range l.Dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list profiles in %q: %w", dir, unwrapPath(err))
		}
		for _, e := range entries {
			name, ok := strings.CutSuffix(e.Name(), ".yaml")
			if !ok || strings.HasPrefix(name, ".") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				continue
			}
			info := Info{Name: name, Source: path}
			data, err := readFile("profile", path)
			if err == nil {
				info.Description, err = describe(&source{id: path, file: path, data: data})
			}
			info.Err = err
			infos = append(infos, info)
		}
	}
	for _, name := range builtinNames() {
		data, _ := builtinFS.ReadFile(name + ".yaml") // listed, so present
		src := &source{id: "builtin:" + name, file: "builtin:" + name + ".yaml", builtin: true, data: data}
		info := Info{Name: name, Source: src.id}
		info.Description, info.Err = describe(src)
		infos = append(infos, info)
	}
	// Stable: the search order survives within a name.
	slices.SortStableFunc(infos, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(infos); i++ {
		if infos[i].Name == infos[i-1].Name {
			infos[i].ShadowedBy = infos[i-1].Source
			if infos[i-1].ShadowedBy != "" {
				infos[i].ShadowedBy = infos[i-1].ShadowedBy
			}
		}
	}
	return infos, nil
}

// describe parses and checks one file on its own and returns its
// description.
func describe(src *source) (string, error) {
	doc, _, err := newState().parse(src)
	if err != nil {
		return "", err
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "description" {
			return doc.Content[i+1].Value, nil
		}
	}
	return "", nil
}

// builtinFS holds the built-in profiles, one NAME.yaml each.
//
//go:embed *.yaml
var builtinFS embed.FS

// builtinNames lists the built-in profiles' names, sorted.
func builtinNames() []string {
	files, _ := fs.Glob(builtinFS, "*.yaml") // the pattern is valid
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = strings.TrimSuffix(f, ".yaml")
	}
	return names
}
