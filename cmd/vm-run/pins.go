package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/vm-run/vm-run/proxy/pins"
	"github.com/vm-run/vm-run/sandbox"
)

// pinsCmd manages the tool definitions vm-run pins per profile and server
// command (package proxy/pins): the defence against a server that changes
// what its tools say once they have been approved.
type pinsCmd struct {
	List   pinsListCmd   `cmd:"" help:"List the pinned tools of a server, or every profile and command with pins when no command is given."`
	Show   pinsShowCmd   `cmd:"" help:"Show a tool's pinned definition and, if it changed, the definition last seen and what differs."`
	Accept pinsAcceptCmd `cmd:"" help:"Pin the definition last seen of a changed tool (or of every changed tool with --all)."`
}

// pinsKey selects a pin file as vm-run would for a run: the profile as
// given with --profile and the server command as given after --.
type pinsKey struct {
	Profile string   `short:"p" default:"strict" help:"The profile the server runs under, as given to vm-run --profile." placeholder:"NAME|PATH"`
	Cmd     []string `arg:"" optional:"" passthrough:"" help:"The server command and its arguments, after --, exactly as given to vm-run."`
}

// key is the pin key of the profile and command; a command is required
// unless optional.
func (k *pinsKey) key(optional bool) (pins.Key, bool, error) {
	if len(k.Cmd) > 0 && k.Cmd[0] == "--" {
		k.Cmd = k.Cmd[1:]
	}
	if len(k.Cmd) == 0 {
		if optional {
			return pins.Key{}, false, nil
		}
		return pins.Key{}, false, &sandbox.SetupError{Code: sandbox.ExitSetup, Msg: "no server command given",
			Hint: "name the server as you run it: vm-run pins show TOOL --profile strict -- npx -y @modelcontextprotocol/server-everything"}
	}
	key, err := pinKey(k.Profile, k.Cmd)
	return key, true, err
}

// pinKey is the key of a run's pins: the profile name as given, or the
// absolute path of a profile file (so that a relative --profile names one
// file from any directory), and the command exactly as given.
func pinKey(profile string, argv []string) (pins.Key, error) {
	// A path as profiles.Load tells one from a name.
	if strings.Contains(profile, "/") || strings.HasSuffix(profile, ".yaml") || strings.HasSuffix(profile, ".yml") {
		abs, err := filepath.Abs(profile)
		if err != nil {
			return pins.Key{}, fmt.Errorf("resolve profile path %q: %w", profile, err)
		}
		profile = abs
	}
	return pins.Key{Profile: profile, Argv: slices.Clone(argv)}, nil
}

// openPinStore opens the caller's pin store.
func openPinStore() (*pins.Store, error) {
	dir, err := pins.DefaultDir()
	if err != nil {
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "pins", Msg: err.Error(),
			Hint: "set HOME or XDG_STATE_HOME to an absolute path"}
	}
	return pins.OpenStore(dir)
}

// pinsDir is the pin store's directory, for the paths the sandbox must
// not reach: a server that could write its own pins could pre-accept its
// next definition.
func pinsDir() []string {
	dir, err := pins.DefaultDir()
	if err != nil {
		return nil // openPins refuses the launch
	}
	return []string{dir}
}

// storeReachable rewords the sandbox's refusal of a profile that grants
// the pin store or the approvals directory, which it words for the ledger.
func storeReachable(err error) error {
	var se *sandbox.SetupError
	if !errors.As(err, &se) {
		return err
	}
	for _, s := range []struct {
		dirs       []string
		name, hint string
	}{
		{pinsDir(), "the pin store", "keep the pin store outside every path the profile grants (XDG_STATE_HOME moves it to $XDG_STATE_HOME/vm-run/pins)"},
		{approvalsDir(), "the approvals directory", "keep the runtime directory outside every path the profile grants (it is $XDG_RUNTIME_DIR, else /run/user/UID)"},
	} {
		if len(s.dirs) == 0 || !strings.Contains(se.Msg, strconv.Quote(s.dirs[0])) {
			continue
		}
		out := *se
		out.Msg = strings.Replace(se.Msg, "the ledger", s.name, 1)
		out.Hint = s.hint
		return &out
	}
	return err
}

// openPins opens the pins of a run before it starts: a pin file vm-run
// cannot trust stops the launch (fail closed).
func openPins(profile string, argv []string) (*pins.Set, error) {
	key, err := pinKey(profile, argv)
	if err != nil {
		return nil, err
	}
	store, err := openPinStore()
	if err != nil {
		return nil, err
	}
	return store.Open(key)
}

// file opens the pin store and reads the pin file of the key the command
// line names, which must exist.
func (k *pinsKey) file() (pins.Key, *pins.Store, *pins.File, error) {
	key, _, err := k.key(false)
	if err != nil {
		return key, nil, nil, err
	}
	store, err := openPinStore()
	if err != nil {
		return key, nil, nil, err
	}
	pf, err := loadPins(store, key)
	return key, store, pf, err
}

// loadPins reads the pin file of a key, which must exist.
func loadPins(store *pins.Store, key pins.Key) (*pins.File, error) {
	pf, err := store.Load(key)
	if err != nil {
		return nil, err
	}
	if len(pf.Tools) == 0 {
		return nil, &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "pins",
			Msg:  fmt.Sprintf("no tools are pinned for profile %q and command %q", key.Profile, strings.Join(key.Argv, " ")),
			Hint: "vm-run pins list (without a command) lists what is pinned; vm-run pins a server's tools the first time it lists them"}
	}
	return pf, nil
}

type pinsListCmd struct {
	pinsKey `embed:""`
}

func (c *pinsListCmd) Run(stdout io.Writer) error {
	key, given, err := c.key(true)
	if err != nil {
		return err
	}
	store, err := openPinStore()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !given {
		files, err := store.List()
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "PROFILE\tTOOLS\tCHANGED\tCOMMAND")
		for _, pf := range files {
			changed := 0
			for _, p := range pf.Tools {
				if p.Changed() {
					changed++
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", pf.Profile, len(pf.Tools), changed, quoteArgv(pf.Argv))
		}
		return tw.Flush()
	}
	pf, err := loadPins(store, key)
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "TOOL\tPINNED\tSINCE\tSTATE")
	changed := 0
	for _, name := range slices.Sorted(maps.Keys(pf.Tools)) {
		p := pf.Tools[name]
		state := "as pinned"
		if p.Changed() {
			changed++
			fields, _ := pins.Diff(p.Definition, p.Seen.Definition)
			state = fmt.Sprintf("CHANGED %s (%s, seen %s)", strings.Join(fields, ", "), short(p.Seen.SHA256), p.Seen.At.Local().Format(time.DateTime))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(name), short(p.SHA256), p.At.Local().Format(time.DateTime), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if changed > 0 {
		fmt.Fprintf(stdout, "\n%d changed: review with `%s`, accept with `%s`\n", changed,
			key.Command("show", "TOOL"), key.Command("accept", "TOOL"))
	}
	return nil
}

type pinsShowCmd struct {
	Tool    string `arg:"" help:"The tool's name." placeholder:"TOOL"`
	pinsKey `embed:""`
}

func (c *pinsShowCmd) Run(stdout io.Writer) error {
	key, store, pf, err := c.file()
	if err != nil {
		return err
	}
	p := pf.Tools[c.Tool]
	if p == nil {
		return &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "pins", Msg: fmt.Sprintf("tool %q has no pin", c.Tool),
			Hint: "`" + key.Command("list") + "` lists the pinned tools"}
	}
	fmt.Fprintf(stdout, "tool:     %s\nprofile:  %s\ncommand:  %s\nfile:     %s\n", printable(c.Tool), key.Profile, quoteArgv(key.Argv), store.Path(key))
	fmt.Fprintf(stdout, "pinned:   sha256 %s, %s\n", p.SHA256, p.At.Local().Format(time.DateTime))
	if !p.Changed() {
		fmt.Fprintln(stdout, "state:    its last listing matched its pin")
		return writeDefinition(stdout, "pinned definition", p.Definition)
	}
	fields, summary := pins.Diff(p.Definition, p.Seen.Definition)
	fmt.Fprintf(stdout, "seen:     sha256 %s, %s\n", p.Seen.SHA256, p.Seen.At.Local().Format(time.DateTime))
	fmt.Fprintf(stdout, "changed:  %s\nsummary:  %s\n", strings.Join(fields, ", "), summary)
	if err := writeDefinition(stdout, "pinned definition", p.Definition); err != nil {
		return err
	}
	if err := writeDefinition(stdout, "definition last seen (what `accept` pins)", p.Seen.Definition); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nif the change is expected: %s\n", key.Command("accept", c.Tool))
	return nil
}

// writeDefinition prints a kept definition indented. JSON escapes every
// control character, so what a server wrote cannot drive the terminal.
func writeDefinition(w io.Writer, label string, def json.RawMessage) error {
	fmt.Fprintf(w, "\n%s:\n", label)
	if def == nil {
		_, err := fmt.Fprintf(w, "  (not kept: over %d KiB; only its hash is pinned)\n", pins.MaxDefinition>>10)
		return err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, def, "  ", "  "); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "  %s\n", b.String())
	return err
}

type pinsAcceptCmd struct {
	Tool    string `arg:"" optional:"" help:"The tool whose definition last seen to pin." placeholder:"TOOL"`
	All     bool   `help:"Accept every changed tool of the server."`
	pinsKey `embed:""`
}

// untangle undoes what the parser does with `accept --all -- CMD...`: an
// optional TOOL takes the command's first word. What follows "--" on the
// command line is the command, whole.
func (c *pinsAcceptCmd) untangle(args []string) {
	i := slices.Index(args, "--")
	if i < 0 || c.Tool == "" {
		return
	}
	after := args[i+1:]
	cmd := c.Cmd
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	if len(after) > 0 && after[0] == c.Tool && slices.Equal(cmd, after[1:]) {
		c.Tool, c.Cmd = "", slices.Clone(after)
	}
}

func (c *pinsAcceptCmd) validate() error {
	if (c.Tool == "") == !c.All {
		return &sandbox.SetupError{Code: sandbox.ExitSetup, Msg: "name one TOOL or give --all",
			Hint: "vm-run pins accept TOOL --profile NAME -- COMMAND..., or vm-run pins accept --all --profile NAME -- COMMAND..."}
	}
	return nil
}

func (c *pinsAcceptCmd) Run(kctx *kong.Context, stdout io.Writer) error {
	c.untangle(kctx.Args)
	if err := c.validate(); err != nil {
		return err
	}
	key, store, pf, err := c.file()
	if err != nil {
		return err
	}
	var names []string
	if !c.All {
		names = []string{c.Tool}
	}
	// Accepting makes a new definition trusted in every later session:
	// a person at a terminal decides it, never a tool shell (terminal.go).
	if err := confirmAccept(pf, names, key); err != nil {
		return err
	}
	done, err := store.Accept(key, names)
	if errors.Is(err, pins.ErrNothingToAccept) {
		return &sandbox.SetupError{Code: sandbox.ExitSetup, Op: "pins", Msg: err.Error(),
			Hint: "`" + key.Command("list") + "` shows which tools changed"}
	}
	if err != nil {
		return err
	}
	if len(done) == 0 {
		fmt.Fprintln(stdout, "no tool of this server has a changed definition to accept")
	}
	for _, a := range done {
		fmt.Fprintf(stdout, "accepted %s: pin %s → %s (%s: %s)\n", printable(a.Tool), short(a.From), short(a.To), strings.Join(a.Changed, ", "), a.Summary)
	}
	return nil
}

// short is a hash as `vm-run pins` shows it in tables.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// printable quotes a name a server chose if it holds anything but
// printable characters.
func printable(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return fmt.Sprintf("%+q", s)
		}
	}
	return s
}

func quoteArgv(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = printable(a)
		if strings.ContainsAny(a, " \t'\"") {
			out[i] = fmt.Sprintf("%q", a)
		}
	}
	return strings.Join(out, " ")
}

// confirmAccept shows on the terminal what accepting would trust, and
// returns nil only when the person there types back the code shown.
func confirmAccept(pf *pins.File, names []string, key pins.Key) error {
	hint := "run `" + key.Command("accept") + " TOOL` yourself, in a terminal: an agent's tool shell cannot accept a changed definition"
	tty, err := openTerminal("accepting a changed tool definition", hint)
	if err != nil {
		return err
	}
	defer tty.Close()
	n := 0
	for name, p := range pf.Tools {
		if p.Seen == nil || (len(names) > 0 && !slices.Contains(names, name)) {
			continue
		}
		n++
		fmt.Fprintf(tty, "accept the new definition of %s: pin %s -> %s\n", printable(name), short(p.SHA256), short(p.Seen.SHA256))
		fmt.Fprintf(tty, "  review it first with: %s\n", key.Command("show", name))
	}
	if n == 0 {
		return nil // Accept says there is nothing to accept
	}
	ok, err := askCode(tty, newCode(), "To trust it from now on")
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintf(tty, "Not accepted: that is not the code.\n")
		return fmt.Errorf("nothing accepted: the code typed is not the one shown")
	}
	return nil
}
