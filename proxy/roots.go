package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vm-run/vm-run/audit"
)

// The proxy owns MCP roots (MCP 2025-06-18 client/roots). A server such as
// @modelcontextprotocol/server-filesystem replaces the directories it
// serves with the client's roots and reads a relative path against the
// first of them, so roots decide both what the server may reach and what a
// relative path means. The client is subject to policy, so its roots are
// too:
//
//   - every roots list the client sends (the answer to the server's
//     roots/list, and under MCP 2026-07-28 any inputResponses entry holding
//     roots) is rewritten before the server sees it: a root that is not a
//     file:// URI naming an existing directory inside the workspace, after
//     symbolic links, is dropped; a kept root is sent as the file URI of
//     the directory it really names;
//   - what was offered, kept and dropped is recorded (an [audit.Roots]
//     record) before the server hears of it;
//   - every root the server has been told becomes a base: the policy
//     judges a relative path against the workspace and each base, and
//     allows it only if it is allowed under all of them (the server may
//     still be using an older list while a newer one is on its way);
//   - while a roots/list request of the server awaits the client's answer,
//     a relative path is refused with a hint to retry or give an absolute
//     path: its base is about to change in a way the proxy cannot know yet.

// rootsState is the proxy's view of the server's roots; guarded by
// proxy.mu.
type rootsState struct {
	// bases are the absolute directories the server may read relative
	// paths against: the workspace first, then every root it was told.
	bases []string
	// asked counts roots/list requests of the server awaiting an answer.
	asked int
}

// bases returns the bases and whether new ones may be on their way.
func (p *proxy) bases() ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.roots.bases), p.roots.asked > 0
}

// rootsAskedLocked notes a roots/list request forwarded to the client.
// Call with p.mu held.
func (p *proxy) rootsAskedLocked() { p.roots.asked++ }

// rootsAnsweredLocked notes that one left the table (answered or
// cancelled). Call with p.mu held.
func (p *proxy) rootsAnsweredLocked() {
	if p.roots.asked > 0 {
		p.roots.asked--
	}
}

// rootsAnswer rewrites the client's answer to a roots/list request of the
// server and records it; it returns the line to forward and the
// directories the kept roots name.
func (p *proxy) rootsAnswer(ctx context.Context, m *message) ([]byte, []string, error) {
	res, ok := objectMembers(m.result)
	if !ok {
		return nil, nil, errors.New("the roots/list result is not an object")
	}
	roots, dirs, err := p.filterRoots(ctx, res["roots"])
	if err != nil {
		return nil, nil, err
	}
	res["roots"] = roots
	return resultResponse(m.id, res), dirs, nil
}

// rootsAnswered handles the client's answer to a roots/list request of the
// server (pd): checked and recorded, it goes to the server when the calls
// judged against the old roots allow (deliverRoots); when it cannot be
// checked or recorded, the server gets an error instead.
func (p *proxy) rootsAnswered(ctx context.Context, pd *pending, m *message) {
	if m.errRaw != nil {
		p.deliverRoots(m.line, nil)
		return
	}
	line, dirs, err := p.rootsAnswer(ctx, m)
	if err != nil {
		p.mu.Lock()
		p.rootsAnsweredLocked()
		p.mu.Unlock()
		p.logf("client's roots/list answer %s withheld: %v", m.id, err)
		p.replyServer(pd.id, rpcError{Code: CodeInternalError, Message: "vm-run withheld the client's roots: " + err.Error()})
		p.release()
		return
	}
	p.deliverRoots(line, dirs)
}

// rootsInInput rewrites every roots list among the inputResponses of a
// client request (MCP 2026-07-28 multi round-trip requests: the client
// answers the server's inputRequests by retrying the request with them).
// It returns the request line to forward: m.line when there are none.
func (p *proxy) rootsInInput(ctx context.Context, m *message) ([]byte, error) {
	params, ok := objectMembers(m.params)
	if !ok {
		return m.line, nil
	}
	raw, present := params["inputResponses"]
	if !present {
		return m.line, nil
	}
	answers, ok := objectMembers(raw)
	if !ok {
		return m.line, nil // the server refuses malformed params itself
	}
	changed := false
	for key, a := range answers {
		res, ok := objectMembers(a)
		if !ok {
			continue
		}
		list, has := res["roots"]
		if !has {
			continue
		}
		filtered, dirs, err := p.filterRoots(ctx, list)
		if err != nil {
			return nil, fmt.Errorf("inputResponses[%q]: %w", key, err)
		}
		// The retried request carries its roots: they count from now.
		p.mu.Lock()
		p.addBasesLocked(dirs)
		p.mu.Unlock()
		res["roots"] = filtered
		answers[key] = marshalLine(res)
		changed = true
	}
	if !changed {
		return m.line, nil
	}
	params["inputResponses"] = marshalLine(answers)
	return marshalLine(struct {
		JSONRPC string                     `json:"jsonrpc"`
		ID      json.RawMessage            `json:"id"`
		Method  string                     `json:"method"`
		Params  map[string]json.RawMessage `json:"params"`
	}{"2.0", json.RawMessage(m.id), m.method, params}), nil
}

// filterRoots keeps the roots of list that name directories inside the
// workspace and records the change; it returns the list to send and the
// directories it names (bases once the server has them). The record is
// durable before it returns; if it cannot be made, the roots are withheld
// (an error).
func (p *proxy) filterRoots(ctx context.Context, list json.RawMessage) (json.RawMessage, []string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(list, &items); err != nil {
		return nil, nil, errors.New("roots is not a list")
	}
	rec := audit.Roots{Offered: []string{}, Kept: []string{}}
	kept := make([]json.RawMessage, 0, len(items))
	var dirs []string
	for i, raw := range items {
		root, ok := objectMembers(raw)
		uri, err := decodeString(root["uri"])
		if !ok || err != nil {
			rec.Dropped = append(rec.Dropped, audit.DroppedRoot{URI: fmt.Sprintf("roots[%d]", i), Reason: "has no string uri"})
			continue
		}
		rec.Offered = append(rec.Offered, uri)
		dir, why := p.rootDir(uri)
		if why != "" {
			rec.Dropped = append(rec.Dropped, audit.DroppedRoot{URI: uri, Reason: why})
			p.logf("root %q dropped: %s", uri, why)
			continue
		}
		canon := (&url.URL{Scheme: "file", Path: dir}).String()
		root["uri"] = marshalLine(canon)
		kept = append(kept, marshalLine(root))
		rec.Kept = append(rec.Kept, canon)
		dirs = append(dirs, dir)
	}
	if p.stopped.Load() {
		return nil, nil, errors.New("vm-run is shutting down")
	}
	if err := p.cfg.Recorder.Record(ctx, rec); err != nil {
		err = fmt.Errorf("record roots: %w", err)
		p.recorderFailed(err)
		return nil, nil, err
	}
	return marshalLine(kept), dirs, nil
}

// rootDir returns the directory a root URI really names, or why it is
// dropped. Only file URIs (RFC 8089) with no host or "localhost" count: the
// server reads other strings as plain paths, which the client has no
// business sending.
func (p *proxy) rootDir(uri string) (string, string) {
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return "", "does not parse as a URI"
	case !strings.EqualFold(u.Scheme, "file"):
		return "", "is not a file:// URI"
	case u.Host != "" && !strings.EqualFold(u.Host, "localhost"):
		return "", fmt.Sprintf("names the host %q", u.Host)
	case u.Opaque != "" || !filepath.IsAbs(u.Path):
		return "", "does not hold an absolute path"
	case u.RawQuery != "" || u.Fragment != "":
		return "", "has a query or fragment"
	case strings.ContainsRune(u.Path, 0):
		return "", "contains a NUL byte"
	}
	// The server resolves links in a root (realpath); so does the proxy,
	// reading only link targets, to see where the root really is.
	real, err := filepath.EvalSymlinks(u.Path)
	if err == nil {
		var st os.FileInfo
		if st, err = os.Stat(real); err == nil && !st.IsDir() {
			err = errors.New("not a directory")
		}
	}
	if err != nil {
		return "", "is not an existing directory the proxy can see"
	}
	if _, ok := inside(p.cfg.Workspace, real); !ok {
		return "", fmt.Sprintf("lies outside the workspace %q", p.cfg.Workspace)
	}
	return real, ""
}

// inside returns p relative to dir and whether p is dir or lies beneath it.
func inside(dir, p string) (string, bool) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}
