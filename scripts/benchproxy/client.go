//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// session is an MCP client speaking newline-delimited JSON-RPC over the
// stdio of one server process (the server itself, or vm-run in front of it).
// Requests are strictly sequential: one in flight at a time.
type session struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	w      *bufio.Writer
	r      *bufio.Reader
	stderr *tail
	id     int64
	req    []byte // request line being built, reused
	waited bool   // the process has been waited for
}

// floodPrefix starts every notification the fake server floods and the
// client floods: such lines are counted without being parsed, so that the
// client's own JSON decoding does not cap the rates it measures.
const floodPrefix = `{"jsonrpc":"2.0","method":"notifications/`

// start runs argv and completes the MCP initialize handshake with it.
func start(name string, argv []string) (*session, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: stdin pipe: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: stdout pipe: %w", name, err)
	}
	s := &session{name: name, cmd: cmd, stdin: stdin, stderr: &tail{max: 4 << 10},
		w: bufio.NewWriterSize(stdin, 64<<10), r: bufio.NewReaderSize(stdout, 1<<20)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %q: %w", name, argv[0], err)
	}
	if _, err := s.request("initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"benchproxy","version":"1"}}`, nil); err != nil {
		s.kill()
		return nil, err
	}
	if err := s.notify("notifications/initialized", ""); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// pid is the process the session started: for vm-run, the parent that runs
// the proxy and the ledger, not the sandbox (its child).
func (s *session) pid() int { return s.cmd.Process.Pid }

// errorf wraps err with the session's name and what the server said on
// stderr, which is usually why it went wrong.
func (s *session) errorf(format string, args ...any) error {
	err := fmt.Errorf("%s: %w", s.name, fmt.Errorf(format, args...))
	if t := s.stderr.String(); t != "" {
		err = fmt.Errorf("%w\nits stderr ends:\n%s", err, t)
	}
	return err
}

// notify sends a notification; params is a JSON object or "".
func (s *session) notify(method, params string) error {
	return s.write(method, params, false)
}

// write sends one message, a request with the next id when withID is set,
// else a notification.
func (s *session) write(method, params string, withID bool) error {
	s.req = append(s.req[:0], `{"jsonrpc":"2.0",`...)
	if withID {
		s.id++
		s.req = append(s.req, `"id":`...)
		s.req = strconv.AppendInt(s.req, s.id, 10)
		s.req = append(s.req, ',')
	}
	s.req = append(s.req, `"method":`...)
	s.req = strconv.AppendQuote(s.req, method)
	if params != "" {
		s.req = append(s.req, `,"params":`...)
		s.req = append(s.req, params...)
	}
	s.req = append(s.req, "}\n"...)
	if _, err := s.w.Write(s.req); err != nil {
		return s.errorf("write %s: %w", method, err)
	}
	if err := s.w.Flush(); err != nil {
		return s.errorf("write %s: %w", method, err)
	}
	return nil
}

// response is what the client reads of a JSON-RPC response.
type response struct {
	ID     *int64          `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// request sends a request and reads until its response, which it returns
// if it is a result. Lines that are not the response (notifications, the
// server's own requests) go to other, if given.
func (s *session) request(method, params string, other func(line []byte)) (json.RawMessage, error) {
	if err := s.send(method, params); err != nil {
		return nil, err
	}
	return s.await(method, other)
}

// send writes a request with the next id, without waiting.
func (s *session) send(method, params string) error {
	return s.write(method, params, true)
}

// await reads until the response to the last request sent.
func (s *session) await(method string, other func(line []byte)) (json.RawMessage, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return nil, s.errorf("read the answer to %s: %w", method, err)
		}
		if other != nil && bytes.HasPrefix(line, []byte(floodPrefix)) {
			other(line)
			continue
		}
		var m response
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, s.errorf("answer to %s: %w: %q", method, err, line)
		}
		if m.ID == nil || m.Method != "" || *m.ID != s.id {
			if other != nil {
				other(line)
			}
			continue
		}
		if m.Error != nil {
			return nil, s.errorf("%s: error %s", method, m.Error)
		}
		return m.Result, nil
	}
}

// readLine reads one line, in the reader's buffer when it fits (no copy),
// else in a buffer of its own.
func (s *session) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = s.r.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

// callTool calls a tool and returns its text content, failing on a tool
// error: a denial is a tool error, and a benchmark of denials would measure
// the wrong thing.
func (s *session) callTool(name, args string, other func(line []byte)) (string, error) {
	res, err := s.request("tools/call", `{"name":`+strconv.Quote(name)+`,"arguments":`+args+`}`, other)
	if err != nil {
		return "", err
	}
	var r struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return "", s.errorf("tools/call %q: result %w", name, err)
	}
	text := ""
	if len(r.Content) > 0 {
		text = r.Content[0].Text
	}
	if r.IsError {
		return "", s.errorf("tools/call %q: tool error: %s", name, text)
	}
	return text, nil
}

// close ends the session as a client does, by closing the server's input,
// and waits for the process; it is killed if it lingers.
func (s *session) close() error {
	if s.waited {
		return nil
	}
	s.waited = true
	s.stdin.Close()
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, s.r)
		done <- s.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			return s.errorf("exit: %w", err)
		}
		return nil
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
		return s.errorf("did not exit within 15s of its input closing; killed")
	}
}

// kill stops a session that is not closed: on the way out after an error.
func (s *session) kill() {
	if s.waited {
		return
	}
	s.waited = true
	s.stdin.Close()
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}

// memory is what /proc/PID/status says of a process's resident set, in
// bytes (proc(5): VmRSS, and VmHWM, its peak).
type memory struct {
	rss, hwm int64
}

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range bytes.Split(b, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		default:
			continue
		}
		f := bytes.Fields(val) // "1234 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: unexpected %q", pid, key, val)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
		}
		*dst = kb << 10
	}
	if m.rss == 0 || m.hwm == 0 {
		return memory{}, errors.New("/proc/" + strconv.Itoa(pid) + "/status: no VmRSS or VmHWM")
	}
	return m, nil
}

// sampler polls a process's VmRSS while it is under load and keeps the
// largest value seen.
type sampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	max  int64
	err  error
}

func sample(pid int) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			m, err := readMemory(pid)
			if err != nil {
				s.err = err
				return
			}
			s.max = max(s.max, m.rss)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// end stops sampling and returns the largest VmRSS seen and the VmHWM now.
// Call it before the process exits.
func (s *sampler) end() (memory, error) {
	close(s.stop)
	<-s.done
	if s.err != nil {
		return memory{}, s.err
	}
	m, err := readMemory(s.pid)
	if err != nil {
		return memory{}, err
	}
	return memory{rss: max(s.max, m.rss), hwm: m.hwm}, nil
}
