package profiles

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Error is a problem in a profile file, at a position in it. Built-in
// profiles are named "builtin:NAME.yaml". Line and Column count from 1;
// Column is 0 when only the line is known (some YAML syntax errors) and Line
// is 0 when the error concerns the whole file.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
	// Err is the underlying error, if any (for example [ErrNotFound] for
	// an extends: naming a profile that does not exist).
	Err error
}

// Error prints "file:line:col: msg", dropping the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotFound is wrapped by the error for a profile name that no search
// directory and no built-in profile has.
var ErrNotFound = errors.New("profile not found")

// pos is where a YAML node starts.
type pos struct {
	file      string
	line, col int
}

func (p pos) errorf(format string, args ...any) *Error {
	return &Error{File: p.file, Line: p.line, Column: p.col, Msg: fmt.Sprintf(format, args...)}
}

// yamlLine matches the line yaml.v3 puts in most syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntaxError turns a yaml.v3 parse error into an *Error. yaml.v3 reports no
// column for syntax errors, and its line is unreliable: absent for some
// errors, and for parser errors the 0-based line of the construct being
// parsed ("a: [x?]" on line 2 says "line 1"). So the line is that of
// the shortest prefix of the file that fails the same way; yaml.v3's line
// is the fallback.
func syntaxError(file string, data []byte, err error) *Error {
	msg, line := err.Error(), 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = m[2]
		line, _ = strconv.Atoi(m[1])
	}
	if l := errorLine(data, err); l > 0 {
		line = l
	}
	if msg == "did not find expected ',' or ']'" {
		// yaml.v3 ends a plain scalar in a flow list at "?" before "]"
		// or ",", and at "{" (a flow mapping starts).
		msg += `; in [...] lists, quote entries that end in "?" or use variables: ["/lib64?", "${HOME}/x"]`
	}
	return &Error{File: file, Line: line, Msg: "YAML syntax: " + msg}
}

// errorLine returns the first line at whose end the file's prefix fails to
// parse with err, or 0. The parser streams, so once a prefix holds the
// problem every longer one fails the same way: a binary search over line
// ends finds the first.
func errorLine(data []byte, err error) int {
	ends := []int{}
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		ends = append(ends, len(data))
	}
	fails := func(k int) bool {
		_, _, e := parseYAML(data[:ends[k]])
		return e != nil && e.Error() == err.Error()
	}
	k := sort.Search(len(ends), fails)
	if k == len(ends) {
		return 0
	}
	return k + 1
}
