//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// progressPrefix starts the notifications the client floods.
var progressPrefix = []byte(floodPrefix + `progress"`)

// fakeServer is a minimal MCP server over stdio for the throughput
// benchmark: it exists to make and swallow notifications faster than the
// proxy can pass them, which the real servers cannot. Tools:
//
//   - flood {count, size}: writes count notifications/message lines of size
//     bytes each (newline included), then answers;
//   - stats {}: answers with the number of notifications/progress received
//     since the last stats;
//   - big {size}: answers with one text content of size bytes;
//   - echo {message}: answers "Echo: MESSAGE", as server-everything does.
//
// Everything the client sends is read in order, so stats answered after a
// flood of notifications means every one of them has arrived.
func fakeServer(in io.Reader, out io.Writer) error {
	r := bufio.NewReaderSize(in, 1<<20)
	w := bufio.NewWriterSize(out, 256<<10)
	received := 0
	for {
		line, err := r.ReadSlice('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if bytes.HasPrefix(line, progressPrefix) {
			// Parsed, as a real server parses every message.
			var n struct {
				Method string          `json:"method"`
				Params json.RawMessage `json:"params"`
			}
			if json.Unmarshal(line, &n) == nil {
				received++
			}
			continue
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name      string `json:"name"`
				Arguments struct {
					Count   int    `json:"count"`
					Size    int    `json:"size"`
					Message string `json:"message"`
				} `json:"arguments"`
			} `json:"params"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("parse %q: %w", line, err)
		}
		if m.ID == nil {
			continue // initialized, and notifications that are not ours
		}
		var result string
		switch m.Method {
		case "initialize":
			result = `{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"logging":{}},"serverInfo":{"name":"benchproxy-fake","version":"1"}}`
		case "ping":
			result = `{}`
		case "tools/list":
			result = `{"tools":[` +
				`{"name":"flood","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}},` +
				`{"name":"stats","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}},` +
				`{"name":"echo","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}},` +
				`{"name":"big","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}}]}`
		case "tools/call":
			switch m.Params.Name {
			case "flood":
				a := m.Params.Arguments
				if err := flood(w, a.Count, a.Size); err != nil {
					return err
				}
				result = toolText("flooded " + strconv.Itoa(a.Count))
			case "stats":
				result = toolText(strconv.Itoa(received))
				received = 0
			case "echo":
				result = toolText("Echo: " + m.Params.Arguments.Message)
			case "big":
				if n := m.Params.Arguments.Size; len(bigResult) != n {
					bigResult = `{"content":[{"type":"text","text":"` + strings.Repeat("x", n) + `"}]}`
				}
				result = bigResult
			default:
				result = `{"isError":true,"content":[{"type":"text","text":"no such tool"}]}`
			}
		default:
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}`+"\n", m.ID)
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			continue
		}
		w.WriteString(`{"jsonrpc":"2.0","id":`)
		w.Write(m.ID)
		w.WriteString(`,"result":`)
		w.WriteString(result)
		w.WriteString("}\n")
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
}

// bigResult is the last big result, kept: building it anew for every call
// would be most of what a large-result benchmark measures.
var bigResult string

func toolText(s string) string {
	return `{"content":[{"type":"text","text":` + strconv.Quote(s) + `}]}`
}

// notificationLine returns a notification of exactly size bytes, newline
// included, that starts with floodPrefix: method is the rest of the method
// name after "notifications/", params a JSON object ending in a string
// member whose value is left open for the padding.
func notificationLine(method, params string, size int) ([]byte, error) {
	b := []byte(floodPrefix + method + `","params":` + params)
	const end = `"}}` + "\n"
	pad := size - len(b) - len(end)
	if pad < 0 {
		return nil, fmt.Errorf("a %s notification needs at least %d bytes, not %d", method, len(b)+len(end), size)
	}
	b = append(b, bytes.Repeat([]byte("x"), pad)...)
	return append(b, end...), nil
}

// flood writes count log notifications of size bytes in large writes.
func flood(w *bufio.Writer, count, size int) error {
	line, err := notificationLine("message", `{"level":"info","logger":"bench","data":"`, size)
	if err != nil {
		return err
	}
	for range count {
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil // the answer that follows flushes
}

// runFake is the fake-server subcommand.
func runFake() {
	if err := fakeServer(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchproxy fake-server: error: %v\n", err)
		os.Exit(1)
	}
}
