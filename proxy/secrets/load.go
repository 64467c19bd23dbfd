package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Where a value comes from, as [Source.Kind] and the ledger's
// secret_provided name it.
const (
	SourceFile    = "file"
	SourceEnv     = "env"
	SourceCommand = "command"
)

// MaxValueLen bounds a secret's value, in bytes: tokens and keys are a few
// hundred bytes; a larger file is more likely a mistake (a directory of
// keys, a log) than a secret, and each value costs the scrubber patterns.
const MaxValueLen = 64 << 10

// DefaultCommandTimeout bounds a command source that does not say
// otherwise: a password manager that waits for a person to unlock it has
// this long.
const DefaultCommandTimeout = 30 * time.Second

// Errors of [Load], wrapped in a [*LoadError].
var (
	ErrNotRegular    = errors.New("not a regular file")
	ErrSymlink       = errors.New("is a symbolic link")
	ErrNotOwner      = errors.New("not owned by you")
	ErrNotPrivate    = errors.New("readable or writable by others")
	ErrTooLarge      = fmt.Errorf("larger than %d bytes", MaxValueLen)
	ErrEmpty         = errors.New("empty")
	ErrUnset         = errors.New("not set in vm-run's environment")
	ErrCommandFailed = errors.New("command failed")
)

// Source is where one secret's value is read: exactly one of File, Env and
// Command.
type Source struct {
	// Name is the secret's name in the profile; errors start with it.
	Name string
	// File is a path, or "~/..." under the caller's home.
	File string
	// Env is a variable of the caller's environment.
	Env string
	// Command is a program and its arguments that print the value.
	Command []string
}

// Kind is SourceFile, SourceEnv or SourceCommand.
func (s Source) Kind() string {
	switch {
	case s.File != "":
		return SourceFile
	case s.Env != "":
		return SourceEnv
	}
	return SourceCommand
}

// where names the source in messages: the path, variable or command line
// as the profile says them. None of it is secret.
func (s Source) where() string {
	switch s.Kind() {
	case SourceFile:
		return fmt.Sprintf("file %q", s.File)
	case SourceEnv:
		return fmt.Sprintf("variable %s", s.Env)
	}
	return fmt.Sprintf("command %q", strings.Join(s.Command, " "))
}

// Options are what [Load] takes from its surroundings; the zero value is
// the caller's own process.
type Options struct {
	// Home is what "~/" in a file source stands for (default: the caller's
	// home, os.UserHomeDir).
	Home string
	// LookupEnv reads a variable (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Stderr receives a command's stderr (default os.Stderr): a password
	// manager's prompt or error is for the person running vm-run.
	Stderr io.Writer
	// Timeout bounds a command (default DefaultCommandTimeout).
	Timeout time.Duration
}

// LoadError is a secret that could not be loaded. Its message names the
// secret and its source and never holds the value, nor anything read from
// the source: a file's or a command's output is shown nowhere, since a
// value that fails a check is still someone's secret.
type LoadError struct {
	Name   string
	Source Source
	// Path is the file opened, "~/" expanded (file sources).
	Path string
	Err  error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("secret %q (%s): %v", e.Name, e.Source.where(), e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Hint says what fixes the error, for the launcher's "hint:" line.
func (e *LoadError) Hint() string {
	p := e.Path
	switch {
	case errors.Is(e.Err, ErrNotPrivate):
		return fmt.Sprintf("chmod 600 %s (a secret's file may be readable by you alone)", shellWord(p))
	case errors.Is(e.Err, ErrNotOwner):
		return fmt.Sprintf("the file must be yours (uid %d): copy it to a file of your own with mode 0600 and name that in the profile", os.Geteuid())
	case errors.Is(e.Err, ErrSymlink):
		return fmt.Sprintf("name the file itself in the profile: %s", shellWord(e.linkTarget()))
	case errors.Is(e.Err, os.ErrNotExist):
		return fmt.Sprintf("create it: (umask 077; cat > %s), paste the value, then Ctrl-D", shellWord(p))
	case errors.Is(e.Err, ErrUnset), errors.Is(e.Err, ErrEmpty) && e.Source.Kind() == SourceEnv:
		return fmt.Sprintf("set %s in the environment vm-run starts in (your MCP client's server entry has an env section)", e.Source.Env)
	case errors.Is(e.Err, ErrShortSecret):
		return fmt.Sprintf("a value shorter than %d bytes would be found in ordinary text and could not be scrubbed from the server's answers; use a real token", MinSecretLen)
	case e.Source.Kind() == SourceCommand:
		return fmt.Sprintf("run %s yourself to see why (its stderr is above)", shellWord(strings.Join(e.Source.Command, " ")))
	case e.Source.Kind() == SourceFile:
		return fmt.Sprintf("put the value in %s, one line, mode 0600", shellWord(p))
	}
	return ""
}

func (e *LoadError) linkTarget() string {
	if t, err := filepath.EvalSymlinks(e.Path); err == nil {
		return t
	}
	return e.Path
}

func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-~+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Load reads the value of one secret from src, as the caller and outside
// any sandbox, and checks it:
//
//   - a file must be a regular file, not a symbolic link, owned by the
//     effective uid and without any group or other permission bit (mode
//     0600 or stricter). It is opened with O_NOFOLLOW and the checks are
//     made on the descriptor opened (fstat), so a file swapped between
//     check and read is never the one read. One trailing newline ("\n"
//     or "\r\n") is taken off.
//   - a variable must be set and not empty.
//   - a command runs with stdin /dev/null, stdout captured, stderr on
//     Options.Stderr, for at most Options.Timeout; a non-zero exit is an
//     error that names the command, not what it printed. One trailing
//     newline is taken off, as for a file.
//
// The value must be MinSecretLen to MaxValueLen bytes: a shorter one could
// not be scrubbed ([NewScrubber] refuses it), so it is refused here, before
// anything is started. Errors are [*LoadError]s.
//
// The caller owns the returned slice and should overwrite it once the
// value is handed on; Load overwrites its own buffers before it returns.
func Load(ctx context.Context, src Source, o Options) ([]byte, error) {
	fail := func(path string, err error) ([]byte, error) {
		return nil, &LoadError{Name: src.Name, Source: src, Path: path, Err: err}
	}
	var v []byte
	switch src.Kind() {
	case SourceFile:
		path, err := expandHome(src.File, o.Home)
		if err != nil {
			return fail(src.File, err)
		}
		if v, err = readPrivate(path); err != nil {
			return fail(path, err)
		}
	case SourceEnv:
		lookup := o.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		s, ok := lookup(src.Env)
		switch {
		case !ok:
			return fail("", ErrUnset)
		case s == "":
			return fail("", ErrEmpty)
		}
		v = []byte(s)
	default:
		var err error
		if v, err = runCommand(ctx, src.Command, o); err != nil {
			return fail("", err)
		}
	}
	if len(v) < MinSecretLen {
		Wipe(v)
		return fail("", ErrShortSecret)
	}
	return v, nil
}

// Wipe overwrites b with zeros. Go may have left copies of a value where
// the garbage collector moved or grew a buffer; Wipe clears the one the
// caller still holds.
func Wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

func expandHome(path, home string) (string, error) {
	rest, ok := strings.CutPrefix(path, "~/")
	if !ok {
		return path, nil
	}
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find your home for %q: %w", path, err)
		}
		home = h
	}
	if !filepath.IsAbs(home) {
		return "", fmt.Errorf("your home %q is not an absolute path", home)
	}
	return filepath.Join(home, rest), nil
}

// readPrivate reads a file that only its owner, the caller, may read or
// change. O_NONBLOCK keeps a FIFO from blocking the open (open(2)); it is
// then refused as not regular.
func readPrivate(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		if err == syscall.ELOOP {
			return nil, ErrSymlink
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return nil, ErrNotRegular
	case int(st.Uid) != os.Geteuid():
		return nil, fmt.Errorf("%w (owner uid %d)", ErrNotOwner, st.Uid)
	case st.Mode&0o077 != 0:
		return nil, fmt.Errorf("%w (mode %04o)", ErrNotPrivate, st.Mode&0o7777)
	case st.Size > MaxValueLen:
		return nil, ErrTooLarge
	}
	return readValue(f)
}

// readValue reads at most MaxValueLen bytes and takes off one trailing
// newline. The buffer is allocated once at its largest, so no smaller copy
// of the value is left behind as it grows.
func readValue(r io.Reader) ([]byte, error) {
	buf := make([]byte, MaxValueLen+1)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		Wipe(buf[:n])
		return nil, fmt.Errorf("read: %w", err)
	}
	return trimValue(buf[:n])
}

// trimValue takes one trailing newline off v and checks its size; it
// returns a copy of exactly the value's length and wipes v.
func trimValue(v []byte) ([]byte, error) {
	defer Wipe(v)
	if len(v) > MaxValueLen {
		return nil, ErrTooLarge
	}
	w := v
	if bytes.HasSuffix(w, []byte("\n")) {
		w = w[:len(w)-1]
		w = bytes.TrimSuffix(w, []byte("\r"))
	}
	if len(w) == 0 {
		return nil, ErrEmpty
	}
	return bytes.Clone(w), nil
}

// capped collects a command's stdout up to MaxValueLen bytes; beyond that
// it fails the write, which ends the copy and leaves the command a closed
// pipe.
type capped struct {
	buf  []byte
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if len(c.buf)+len(p) > MaxValueLen {
		c.over = true
		return 0, ErrTooLarge
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// runCommand runs a command source. It inherits vm-run's environment and
// working directory: `pass`, `op` and `secret-tool` find their stores and
// agents as they would in the caller's shell.
func runCommand(ctx context.Context, argv []string, o Options) ([]byte, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out := &capped{buf: make([]byte, 0, MaxValueLen+1)}
	cmd.Stdin = nil // /dev/null (os/exec)
	cmd.Stdout = out
	cmd.Stderr = o.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	// A child the command leaves behind holding stdout must not hold
	// vm-run past the timeout.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	defer Wipe(out.buf)
	var exit *exec.ExitError
	switch {
	case out.over:
		return nil, ErrTooLarge
	case ctx.Err() == context.DeadlineExceeded:
		return nil, fmt.Errorf("%w: it did not finish within %v", ErrCommandFailed, timeout)
	case errors.As(err, &exit):
		return nil, fmt.Errorf("%w: it exited with %s", ErrCommandFailed, exitText(exit))
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrCommandFailed, err)
	}
	return trimValue(out.buf)
}

func exitText(e *exec.ExitError) string {
	if ws, ok := e.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("status %d", e.ExitCode())
}
