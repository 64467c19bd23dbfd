package pins

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Status is how a listed tool compares with its pin.
type Status int

// Statuses of a listed tool.
const (
	// Same: the definition is the pinned one.
	Same Status = iota
	// New: the tool had no pin; it is pinned now, quietly (the pin file
	// is the record; no ledger event, since nothing was decided).
	New
	// Changed: the definition differs from the pin, which stays.
	Changed
	// Unpinnable: the tool had no pin and the key holds MaxTools pins
	// already; it is treated as changed.
	Unpinnable
)

func (s Status) String() string {
	return [...]string{"same", "new", "changed", "unpinnable"}[s]
}

// Result is one listed tool compared with its pin.
type Result struct {
	Name   string
	Status Status
	// Pinned and Seen are the hashes of the pinned definition (empty for
	// New and Unpinnable) and of the one listed.
	Pinned, Seen string
	// Changed and Summary say what differs, for Changed and Unpinnable
	// ([Diff]).
	Changed []string
	Summary string
}

// Set is the pins of one key as a session uses them: [Set.Check] on every
// tools/list page, [Set.Lookup] for a call to a tool the session has not
// listed. It is safe for concurrent use.
type Set struct {
	store *Store
	key   Key
	now   func() time.Time

	mu   sync.Mutex
	last *File // the file as last read or written
}

// Open loads the pins of k. An unsafe or corrupt pin file is an error: a
// session cannot tell which of its tools changed, and vm-run refuses to
// start rather than trust them all.
func (s *Store) Open(k Key) (*Set, error) {
	pf, err := s.Load(k)
	if err != nil {
		return nil, err
	}
	return &Set{store: s, key: k, now: time.Now, last: pf}, nil
}

// Key is the set's key.
func (s *Set) Key() Key { return s.key }

// Path is the set's pin file.
func (s *Set) Path() string { return s.store.Path(s.key) }

// Check compares the tools of one tools/list page with their pins, under
// the key's lock and against the file as it is now (another session may
// have pinned or accepted since): a tool seen for the first time is
// pinned; a tool whose definition differs keeps its pin, and the
// definition is kept as last seen, for `vm-run pins show` and `accept`; a
// tool back at its pinned definition loses its last-seen one. Check
// returns once the file is on disk, with a Result per definition, in
// order. A tool whose pin is gone from the file is pinned again: the file
// is the user's to edit. On error nothing is known of any tool.
func (s *Set) Check(defs []Definition) ([]Result, error) {
	out := make([]Result, len(defs))
	now := s.now().UTC()
	var kept *File
	err := s.store.Update(s.key, func(pf *File) (bool, error) {
		changed := false
		for i, d := range defs {
			r := Result{Name: d.Name, Seen: d.SHA256}
			p := pf.Tools[d.Name]
			switch {
			case p == nil && len(pf.Tools) >= MaxTools:
				r.Status, r.Changed = Unpinnable, []string{"definition"}
				r.Summary = fmt.Sprintf("not pinned: the pin file holds %d tools already", MaxTools)
			case p == nil:
				r.Status = New
				pf.Tools[d.Name] = &Pin{SHA256: d.SHA256, Definition: keep(d.Canonical), At: now}
				changed = true
			case p.SHA256 == d.SHA256:
				r.Status, r.Pinned = Same, p.SHA256
				if p.Seen != nil {
					p.Seen, changed = nil, true
				}
			default:
				r.Status, r.Pinned = Changed, p.SHA256
				r.Changed, r.Summary = Diff(p.Definition, d.Canonical)
				if p.Seen == nil || p.Seen.SHA256 != d.SHA256 {
					p.Seen = &Seen{SHA256: d.SHA256, Definition: keep(d.Canonical), At: now}
					changed = true
				}
			}
			out[i] = r
		}
		kept = pf
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.last = kept
	s.mu.Unlock()
	return out, nil
}

// keep is what a pin keeps of a canonical definition.
func keep(c []byte) json.RawMessage {
	if len(c) > MaxDefinition {
		return nil
	}
	return json.RawMessage(c)
}

// Lookup returns a copy of the pin of a tool as the file was when last
// read or written by this set, or nil.
func (s *Set) Lookup(name string) *Pin {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.last.Tools[name]
	if p == nil {
		return nil
	}
	c := *p
	if p.Seen != nil {
		seen := *p.Seen
		c.Seen = &seen
	}
	return &c
}

// ErrNothingToAccept: accept named a tool that has no change waiting.
var ErrNothingToAccept = errors.New("no changed definition to accept")

// Accepted is a definition accepted as a tool's pin.
type Accepted struct {
	Tool string
	// From and To are the hashes of the old pin and the new one.
	From, To string
	// Changed and Summary say what differs ([Diff]).
	Changed []string
	Summary string
}

// Accept pins the definitions last seen of the named tools, or of every
// tool with one when names is empty, under the key's lock; the file is on
// disk when it returns. It returns what it accepted, as the file held it
// under the lock. A named tool without a last-seen definition is an error
// wrapping [ErrNothingToAccept], and nothing is accepted.
func (s *Store) Accept(k Key, names []string) ([]Accepted, error) {
	var done []Accepted
	now := time.Now().UTC()
	err := s.Update(k, func(pf *File) (bool, error) {
		done = nil
		todo := names
		if len(todo) == 0 {
			todo = slices.Sorted(maps.Keys(pf.Tools))
		}
		for _, n := range todo {
			p := pf.Tools[n]
			switch {
			case p == nil:
				return false, fmt.Errorf("tool %q: %w: it has no pin", n, ErrNothingToAccept)
			case p.Seen == nil && len(names) > 0:
				return false, fmt.Errorf("tool %q: %w: its last listing matched its pin", n, ErrNothingToAccept)
			case p.Seen == nil:
				continue
			}
			a := Accepted{Tool: n, From: p.SHA256, To: p.Seen.SHA256}
			a.Changed, a.Summary = Diff(p.Definition, p.Seen.Definition)
			pf.Tools[n] = &Pin{SHA256: p.Seen.SHA256, Definition: p.Seen.Definition, At: now}
			done = append(done, a)
		}
		return len(done) > 0, nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// Command is the vm-run command line that runs `vm-run pins` with args
// on this key, quoted for a POSIX shell: what hints tell the user to run.
func (k Key) Command(args ...string) string {
	words := append([]string{"vm-run", "pins"}, args...)
	words = append(words, "--profile", k.Profile, "--")
	words = append(words, k.Argv...)
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			// Control characters are not printed raw: bash's ANSI-C
			// quoting spells every byte.
			var b strings.Builder
			b.WriteString("$'")
			for _, c := range []byte(s) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
			return b.String() + "'"
		}
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
