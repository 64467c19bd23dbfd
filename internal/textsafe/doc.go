// Package textsafe makes untrusted text safe to print on a terminal.
//
// The audit ledger is written from traffic the sandboxed MCP server and its
// client control: tool names, rule ids, reasons, arguments, even the
// session and host fields of a forged line. Printed raw, such a string
// drives the operator's terminal: ESC and CSI sequences clear the screen or
// rewrite earlier lines, OSC 52 sets the clipboard, OSC 0 the window title,
// a carriage return overwrites the start of the line, and bidi or
// zero-width characters make one name look like another. [Escape] turns
// every such character into a visible escape, so that text output shows
// what the ledger holds and nothing else:
//
//	fmt.Fprintf(w, "%-20s %s\n", textsafe.Escape(d.Tool), textsafe.Escape(d.Reason))
//
// # The rule
//
// A character passes unchanged when it is valid UTF-8, not a backslash,
// and printable in the sense of [strconv.IsPrint]: a letter, mark, number,
// punctuation or symbol, or the ASCII space. Everything else is escaped the
// way Go's %q escapes it: \n, \r, \t and the other short forms, \x1b for
// the other C0 controls and DEL, \u009b for a C1 control, \u202e for a
// format, bidi or separator character, \x9b for a byte that is not UTF-8.
// A backslash becomes \\, so the output is unambiguous: strconv.Unquote of
// the output, in double quotes with its double quotes escaped, gives the
// input back.
//
// The tab is escaped too: it is invisible, and a tab in a cell splits the
// cell of a tabwriter table and shifts every column after it. Non-ASCII
// space separators (U+00A0, U+3000, ...) are escaped because they look
// like the ASCII space; printable non-ASCII text such as "café" is left as
// it is.
//
// Escape is for text output only. Machine-readable output (JSON) must stay
// exact and is not passed through it.
package textsafe
