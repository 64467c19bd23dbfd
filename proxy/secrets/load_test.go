package secrets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// value is what every source below holds, and what no error may show.
const value = "tok-3f9a2c71e5d84b06"

func writeSecret(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"TOKEN": value, "EMPTY": ""}
	opts := Options{Home: dir, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	tests := []struct {
		name string
		src  Source
		want string
	}{
		{"file", Source{File: writeSecret(t, dir, "a", value+"\n", 0o600)}, value},
		{"file 0400, CRLF", Source{File: writeSecret(t, dir, "b", value+"\r\n", 0o400)}, value},
		{"file, one newline only", Source{File: writeSecret(t, dir, "c", value+"\n\n", 0o600)}, value + "\n"},
		{"file under ~/", Source{File: "~/" + filepath.Base(writeSecret(t, dir, "d", value, 0o600))}, value},
		{"env", Source{Env: "TOKEN"}, value},
		{"command", Source{Command: []string{"printf", "%s\n", value}}, value},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.Name = "s"
			got, err := Load(context.Background(), tt.src, opts)
			if err != nil || string(got) != tt.want {
				t.Errorf("Load(%+v) = %q, %v, want %q", tt.src, got, err, tt.want)
			}
		})
	}
}

// TestLoadErrors checks each refusal, and that no error message or hint
// holds the value, nor any of what the source held.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"EMPTY": "", "SHORT": "abc"}
	var stderr bytes.Buffer
	opts := Options{Home: dir, Stderr: &stderr, Timeout: 500 * time.Millisecond,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(writeSecret(t, dir, "target", value, 0o600), link); err != nil {
		t.Fatal(err)
	}
	vf := writeSecret(t, dir, "value", value, 0o600)
	big := writeSecret(t, dir, "big", strings.Repeat(value, MaxValueLen/len(value)+1), 0o600)
	tests := []struct {
		name string
		src  Source
		want error
		msg  string // in the message
	}{
		{"group readable", Source{File: writeSecret(t, dir, "g", value, 0o640)}, ErrNotPrivate, "mode 0640"},
		{"world readable", Source{File: writeSecret(t, dir, "w", value, 0o644)}, ErrNotPrivate, "readable or writable by others"},
		{"group writable", Source{File: writeSecret(t, dir, "gw", value, 0o620)}, ErrNotPrivate, "mode 0620"},
		{"symlink", Source{File: link}, ErrSymlink, "symbolic link"},
		{"directory", Source{File: dir}, ErrNotRegular, "not a regular file"},
		{"missing", Source{File: filepath.Join(dir, "nope")}, os.ErrNotExist, "no such file"},
		{"empty file", Source{File: writeSecret(t, dir, "e", "\n", 0o600)}, ErrEmpty, "empty"},
		{"too large", Source{File: big}, ErrTooLarge, "larger than"},
		{"short file", Source{File: writeSecret(t, dir, "s", "abc\n", 0o600)}, ErrShortSecret, "shorter than 8 bytes"},
		{"unset", Source{Env: "NOPE"}, ErrUnset, "variable NOPE): not set"},
		{"empty env", Source{Env: "EMPTY"}, ErrEmpty, "empty"},
		{"short env", Source{Env: "SHORT"}, ErrShortSecret, "shorter"},
		{"command fails", Source{Command: []string{"sh", "-c", `cat "$0"; cat "$0" >&2; exit 3`, vf}}, ErrCommandFailed, "exited with status 3"},
		{"command missing", Source{Command: []string{"/nonexistent/pass"}}, ErrCommandFailed, "command failed"},
		{"command hangs", Source{Command: []string{"sh", "-c", `cat "$0"; sleep 5`, vf}}, ErrCommandFailed, "did not finish within 500ms"},
		{"command floods", Source{Command: []string{"sh", "-c", `yes "$(cat "$0")"`, vf}}, ErrTooLarge, "larger than"},
		{"command prints nothing", Source{Command: []string{"true"}}, ErrEmpty, "empty"},
	}
	if os.Geteuid() == 0 {
		owned := writeSecret(t, dir, "o", value, 0o600)
		if err := os.Chown(owned, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			src  Source
			want error
			msg  string
		}{"not the caller's", Source{File: owned}, ErrNotOwner, "owner uid 65534"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.Name = "github"
			o := opts
			if tt.name != "command hangs" {
				// Only the hanging command meets the timeout; the others end
				// on their own, and a loaded machine must not make them
				// meet it first.
				o.Timeout = DefaultCommandTimeout
			}
			got, err := Load(context.Background(), tt.src, o)
			var le *LoadError
			if got != nil || !errors.Is(err, tt.want) || !errors.As(err, &le) {
				t.Fatalf("Load(%+v) = %q, %v; want a *LoadError wrapping %v", tt.src, got, err, tt.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `secret "github" (`) || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q: want it to start with the secret's name and say %q", msg, tt.msg)
			}
			for _, s := range []string{msg, le.Hint()} {
				if strings.Contains(s, value) || strings.Contains(s, value[:8]) {
					t.Errorf("error or hint %q holds the value", s)
				}
			}
			if le.Hint() == "" {
				t.Errorf("error %q has no hint", msg)
			}
		})
	}
	// What the command said on stderr is for the person, not the error.
	if !strings.Contains(stderr.String(), value) {
		t.Errorf("the failing command's stderr %q did not reach Options.Stderr", stderr.String())
	}
}

func TestLoadHints(t *testing.T) {
	dir := t.TempDir()
	p := writeSecret(t, dir, "g", value, 0o644)
	_, err := Load(context.Background(), Source{Name: "g", File: p}, Options{})
	var le *LoadError
	if !errors.As(err, &le) || le.Hint() != "chmod 600 "+p+" (a secret's file may be readable by you alone)" {
		t.Fatalf("Load = %v, want the chmod hint", err)
	}
	// The hint works.
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := Load(context.Background(), Source{Name: "g", File: p}, Options{}); err != nil || string(v) != value {
		t.Errorf("after the hint: Load = %q, %v", v, err)
	}
}
