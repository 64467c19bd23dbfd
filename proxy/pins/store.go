package pins

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits of a pin file. A server chooses how many tools it lists and how
// long their definitions are; these keep its pin file bounded.
const (
	// MaxDefinition bounds the canonical definition a pin keeps in bytes;
	// a longer one is pinned by its hash alone.
	MaxDefinition = 64 << 10
	// MaxTools bounds the tools pinned per key; a tool beyond it cannot be
	// pinned and is treated as changed.
	MaxTools = 4096
	// maxFile bounds a pin file read back: MaxTools pins of two full
	// definitions fit well below it.
	maxFile = 1 << 30
	// fileVersion is the format of the pin file.
	fileVersion = 1
)

// Errors of the store. Each error the store returns that concerns a file
// wraps one of them and has a Hint.
var (
	// ErrUnsafe: a pin file or directory is not the caller's, or others
	// may read or write it.
	ErrUnsafe = errors.New("unsafe pin store")
	// ErrCorrupt: a pin file does not parse, or does not belong to its key.
	ErrCorrupt = errors.New("corrupt pin file")
)

// StoreError is an error of the pin store with what to do about it.
type StoreError struct {
	Path string
	Err  error
	hint string
}

func (e *StoreError) Error() string { return fmt.Sprintf("pins: %s: %v", e.Path, e.Err) }
func (e *StoreError) Unwrap() error { return e.Err }

// Hint says what the user can do.
func (e *StoreError) Hint() string { return e.hint }

// Key names the pins of one profile and server command.
type Key struct {
	// Profile is the profile as vm-run was given it: a name, or the
	// absolute path of a file.
	Profile string `json:"profile"`
	// Argv is the server command exactly as given after --, not resolved
	// through PATH: "node server.js" and "/usr/bin/node server.js" are
	// two keys.
	Argv []string `json:"argv"`
}

// ID is the key's file name stem: the hex SHA-256 of the JSON array
// ["vm-run pins v1", profile, argv...], an encoding in which no two keys
// meet (JSON strings are delimited and escaped).
func (k Key) ID() string {
	b, _ := json.Marshal(append([]string{"vm-run pins v1", k.Profile}, k.Argv...))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// File is the content of a pin file.
type File struct {
	Version int `json:"version"`
	Key
	// Tools are the pins by tool name.
	Tools map[string]*Pin `json:"tools"`
}

// Pin is the definition a tool is held to, and the definition last seen
// that differs from it, until that is accepted or the server returns to
// the pinned one.
type Pin struct {
	// SHA256 is the hash of the pinned definition.
	SHA256 string `json:"sha256"`
	// Definition is the pinned definition in canonical form; absent when
	// over MaxDefinition.
	Definition json.RawMessage `json:"definition,omitempty"`
	// At is when it was pinned or accepted.
	At time.Time `json:"at"`
	// Seen is the last definition seen that differs from the pin.
	Seen *Seen `json:"seen,omitempty"`
}

// Seen is a definition seen that differs from its pin.
type Seen struct {
	SHA256     string          `json:"sha256"`
	Definition json.RawMessage `json:"definition,omitempty"`
	At         time.Time       `json:"at"`
}

// Changed reports whether the tool's last listing differed from its pin.
func (p *Pin) Changed() bool { return p.Seen != nil }

// Store is a directory of pin files, one per [Key], each beside a lock
// file: <id>.json and <id>.lock.
type Store struct {
	dir string
}

// DefaultDir is $XDG_STATE_HOME/vm-run/pins, or ~/.local/state/vm-run/pins
// when XDG_STATE_HOME is unset or relative.
func DefaultDir() (string, error) {
	state := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(state) {
		home := os.Getenv("HOME")
		if !filepath.IsAbs(home) {
			return "", errors.New("pins: neither XDG_STATE_HOME nor HOME is an absolute path, so the pin store has no place")
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "vm-run", "pins"), nil
}

// OpenStore opens the store in dir. A directory that is there must be
// the caller's and closed to others; one that is not is created (with
// missing parents, mode 0700) when the first pin is written, so that
// opening a store leaves nothing behind.
func OpenStore(dir string) (*Store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("pins: store %q is not an absolute path", dir)
	}
	s := &Store{dir: dir}
	if err := s.checkDir(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return s, nil
}

// checkDir checks the store's directory.
func (s *Store) checkDir() error {
	st, err := os.Lstat(s.dir)
	if err != nil {
		return &StoreError{Path: s.dir, Err: err}
	}
	if err := owned(st, true); err != nil {
		return &StoreError{Path: s.dir, Err: err,
			hint: fmt.Sprintf("the pin store must be a directory of uid %d with mode 0700: chown and chmod 0700 it", os.Geteuid())}
	}
	return nil
}

// create makes the store's directory if it is missing, and checks it.
func (s *Store) create() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return &StoreError{Path: s.dir, Err: fmt.Errorf("create: %w", err),
			hint: "set XDG_STATE_HOME to a directory of yours that vm-run may write"}
	}
	return s.checkDir()
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path is the pin file of k.
func (s *Store) Path(k Key) string { return filepath.Join(s.dir, k.ID()+".json") }

// owned checks that st is the caller's and closed to group and others.
func owned(st fs.FileInfo, dir bool) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: no owner to check", ErrUnsafe)
	}
	switch {
	case dir && !st.IsDir():
		return fmt.Errorf("%w: not a directory", ErrUnsafe)
	case !dir && !st.Mode().IsRegular():
		return fmt.Errorf("%w: not a regular file", ErrUnsafe)
	case int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("%w: owned by uid %d, not by uid %d", ErrUnsafe, sys.Uid, os.Geteuid())
	case st.Mode().Perm()&0o077 != 0:
		want := "0600"
		if dir {
			want = "0700"
		}
		return fmt.Errorf("%w: mode %04o lets others in, want %s", ErrUnsafe, st.Mode().Perm(), want)
	}
	return nil
}

// Load reads the pins of k. A key with no pin file has an empty File.
// An unsafe or corrupt file is an error: the caller must not treat its
// tools as unpinned.
func (s *Store) Load(k Key) (*File, error) {
	return s.read(k)
}

func (s *Store) read(k Key) (*File, error) {
	path := s.Path(k)
	data, err := s.readRaw(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{Version: fileVersion, Key: k, Tools: map[string]*Pin{}}, nil
	}
	if err != nil {
		return nil, err
	}
	pf, err := decodeFile(data, k)
	if err != nil {
		return nil, s.fileError(path, err)
	}
	return pf, nil
}

// decodeFile parses a pin file strictly and checks it belongs to k.
func decodeFile(data []byte, k Key) (*File, error) {
	var pf File
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	switch {
	case pf.Version != fileVersion:
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, pf.Version, fileVersion)
	case pf.Profile != k.Profile || !slices.Equal(pf.Argv, k.Argv):
		return nil, fmt.Errorf("%w: it names profile %q and command %q, not this key", ErrCorrupt, pf.Profile, pf.Argv)
	case pf.Tools == nil:
		return nil, fmt.Errorf("%w: no tools member", ErrCorrupt)
	}
	for name, p := range pf.Tools {
		if p == nil || !isHash(p.SHA256) || p.Seen != nil && !isHash(p.Seen.SHA256) {
			return nil, fmt.Errorf("%w: tool %q: a pin without a SHA-256", ErrCorrupt, name)
		}
		var err error
		if p.Definition, err = checked(p.Definition, p.SHA256); err == nil && p.Seen != nil {
			p.Seen.Definition, err = checked(p.Seen.Definition, p.Seen.SHA256)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: tool %q: %v", ErrCorrupt, name, err)
		}
	}
	return &pf, nil
}

// checked returns a kept definition in canonical form (the file holds it
// indented), after checking that it is the one its hash names.
func checked(def json.RawMessage, hash string) (json.RawMessage, error) {
	if def == nil {
		return nil, nil
	}
	c, err := Canonical(def)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(c); hex.EncodeToString(sum[:]) != hash {
		return nil, errors.New("the definition kept is not the one its sha256 names")
	}
	return c, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func (s *Store) fileError(path string, err error) error {
	hint := fmt.Sprintf("read it (it is JSON) and restore it from a backup; if you cannot tell what happened to it, "+
		"move it away (mv %s %s.bad): the next session pins every tool afresh, trusting what the server presents then", path, path)
	if errors.Is(err, ErrUnsafe) {
		hint = fmt.Sprintf("a pin file must be a regular file of uid %d with mode 0600 (chmod 600 %s); "+
			"if someone else put it there, find out why before you trust it", os.Geteuid(), path)
	}
	return &StoreError{Path: path, Err: err, hint: hint}
}

// Update runs fn on the pins of k under an exclusive lock on the key, and
// writes the file back if fn reports a change. Other processes updating
// the same key wait (flock(2) on <id>.lock, which outlives the renames of
// the pin file). Update returns once the new file and its directory entry
// are on disk (fsync of both), or with the error that kept them off it;
// the file is then as it was before.
func (s *Store) Update(k Key, fn func(*File) (changed bool, err error)) error {
	if err := s.create(); err != nil {
		return err
	}
	unlock, err := s.lock(k)
	if err != nil {
		return err
	}
	defer unlock()
	pf, err := s.read(k)
	if err != nil {
		return err
	}
	changed, err := fn(pf)
	if err != nil || !changed {
		return err
	}
	return s.write(k, pf)
}

// lock takes the exclusive lock of k and returns its release.
func (s *Store) lock(k Key) (func(), error) {
	path := filepath.Join(s.dir, k.ID()+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, s.fileError(path, fmt.Errorf("open lock: %w", err))
	}
	st, err := f.Stat()
	if err == nil {
		err = owned(st, false)
	}
	if err != nil {
		f.Close()
		return nil, s.fileError(path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, s.fileError(path, &os.SyscallError{Syscall: "flock", Err: err})
	}
	return func() { f.Close() }, nil // closing the last fd releases the lock
}

// write replaces the pin file of k with pf atomically: a temporary file in
// the same directory, synced, renamed over the old one, and the directory
// synced, so that a crash leaves the old file or the new one, never half.
func (s *Store) write(k Key, pf *File) error {
	path := s.Path(k)
	data, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return s.fileError(path, err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(s.dir, k.ID()+".tmp-*")
	if err != nil {
		return s.fileError(path, fmt.Errorf("create temporary file: %w", err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes 0600 files; the umask cannot widen that.
	if _, err := tmp.Write(data); err != nil {
		return s.fileError(path, fmt.Errorf("write %s: %w", tmp.Name(), err))
	}
	if err := tmp.Sync(); err != nil {
		return s.fileError(path, fmt.Errorf("fsync %s: %w", tmp.Name(), err))
	}
	if err := tmp.Close(); err != nil {
		return s.fileError(path, fmt.Errorf("close %s: %w", tmp.Name(), err))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return s.fileError(path, err)
	}
	done = true
	d, err := os.Open(s.dir)
	if err != nil {
		return s.fileError(path, fmt.Errorf("open directory to fsync: %w", err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return s.fileError(path, fmt.Errorf("fsync directory %s: %w", s.dir, err))
	}
	return nil
}

// List reads every pin file in the store, sorted by profile and command.
// A file that cannot be read safely is an error that names it.
func (s *Store) List() ([]*File, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &StoreError{Path: s.dir, Err: err}
	}
	var out []*File
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !isHash(id) {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		data, err := s.readRaw(path)
		if err != nil {
			return nil, err
		}
		var hdr struct{ Key }
		if json.Unmarshal(data, &hdr) != nil || hdr.Key.ID() != id {
			return nil, s.fileError(path, fmt.Errorf("%w: its profile and command do not give its name", ErrCorrupt))
		}
		pf, err := decodeFile(data, hdr.Key)
		if err != nil {
			return nil, s.fileError(path, err)
		}
		out = append(out, pf)
	}
	slices.SortFunc(out, func(a, b *File) int {
		if c := strings.Compare(a.Profile, b.Profile); c != 0 {
			return c
		}
		return slices.Compare(a.Argv, b.Argv)
	})
	return out, nil
}

// readRaw reads a pin file after the checks Load makes.
func (s *Store) readRaw(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, s.fileError(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err == nil {
		err = owned(st, false)
	}
	if err != nil {
		return nil, s.fileError(path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err == nil && len(data) > maxFile {
		err = fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxFile)
	}
	if err != nil {
		return nil, s.fileError(path, err)
	}
	return data, nil
}
