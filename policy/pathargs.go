package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A Resolver tells where a path argument really leads. Resolve(ws, base, p)
// returns the workspace-relative path of the file p names, p being absolute
// or relative to base (an absolute directory inside ws), or an error when p
// cannot be followed inside ws. ws and base are clean, absolute and free of
// symbolic links; p has passed the lexical checks (see [PathError]).
// Resolve must not change the file system and must not follow anything out
// of ws.
type Resolver interface {
	Resolve(ws, base, p string) (Resolved, error)
}

// FS is the Resolver of the running proxy: it walks the file system with
// lstat and readlink, following symbolic links as the kernel would
// ([Resolve]). The proxy sees the workspace at the path the server sees it.
var FS Resolver = fsResolver{}

type fsResolver struct{}

func (fsResolver) Resolve(ws, base, p string) (Resolved, error) { return Resolve(ws, base, p) }

// Lexical is a Resolver that never looks at the file system: it cleans the
// path and takes every component as a name. It is for judging calls away
// from the workspace they were made in (policy generate reads a ledger that
// may come from another machine); the proxy uses [FS].
var Lexical Resolver = lexicalResolver{}

type lexicalResolver struct{}

func (lexicalResolver) Resolve(ws, base, p string) (Resolved, error) {
	abs := p
	if !path.IsAbs(p) {
		abs = path.Join(base, p)
	}
	rel, ok := within(ws, path.Clean(abs))
	if !ok {
		return Resolved{}, &ResolveError{Path: p, Reason: "is outside the workspace"}
	}
	return Resolved{Rel: rel}, nil
}

// within returns p relative to the directory ws, "." for ws itself, and
// whether p is ws or lies beneath it. Both are clean and absolute.
func within(ws, p string) (string, bool) {
	switch {
	case p == ws:
		return ".", true
	case ws == "/":
		return p[1:], true
	}
	rel, ok := strings.CutPrefix(p, ws+"/")
	return rel, ok
}

// judgedPaths is what the path arguments of a tool call come to.
type judgedPaths struct {
	// judged are where the arguments really lead, workspace-relative: one
	// per argument and base the server may resolve it against. Allow rules
	// must grant each; a deny rule touching any denies.
	judged []string
	// spelled are the same paths taken lexically, before links are
	// followed: deny rules apply to them too, so that a link never makes a
	// denied name allowed.
	spelled []string
	// linked are judged paths of existing non-directories with more than
	// one hard link: names the policy cannot see all of.
	linked []string
	links  []uint64
}

// pathArgs works out every path argument of a tool call: the lexical
// checks, the bases a relative path may be read against, and where each
// really leads.
func (c *compiled) pathArgs(call CallInfo) (judgedPaths, *PathError) {
	var out judgedPaths
	ws := path.Clean(call.Workspace)
	if call.Workspace == "" || !path.IsAbs(ws) {
		return out, &PathError{Reason: "cannot be judged: no workspace is set"}
	}
	bases := call.Bases
	if len(bases) == 0 {
		bases = []string{ws}
	}
	res := call.Resolver
	if res == nil {
		res = FS
	}
	seen := map[string]bool{}
	for _, cl := range c.classesOf(call.Name) {
		for _, name := range cl.pathArgs {
			if seen[name] {
				continue
			}
			seen[name] = true
			v, ok := call.Arguments[name]
			if !ok {
				continue
			}
			var list []any
			switch v := v.(type) {
			case string:
				list = []any{v}
			case []any:
				list = v
			default:
				return out, &PathError{Arg: name, Path: fmt.Sprint(v), Reason: "is not a string"}
			}
			for i, e := range list {
				arg := name
				if _, isList := v.([]any); isList {
					arg = fmt.Sprintf("%s[%d]", name, i)
				}
				s, ok := e.(string)
				if !ok {
					return out, &PathError{Arg: arg, Path: fmt.Sprint(e), Reason: "is not a string"}
				}
				if perr := out.add(ws, bases, call.BasesPending, res, arg, s); perr != nil {
					return out, perr
				}
			}
		}
	}
	return out, nil
}

// add judges one path argument s against every base.
func (j *judgedPaths) add(ws string, bases []string, pending bool, res Resolver, arg, s string) *PathError {
	lex, why := normalizePath(ws, s)
	if why != "" {
		return &PathError{Arg: arg, Path: s, Reason: why}
	}
	if path.IsAbs(s) {
		bases = []string{ws}
	} else if pending {
		return &PathError{Arg: arg, Path: s, Reason: "is relative, and the server is being told new roots " +
			"that it may read relative paths against; give the path from the workspace root as an absolute path, or retry"}
	}
	for _, base := range bases {
		spelled := lex
		if !path.IsAbs(s) {
			var ok bool
			if spelled, ok = within(ws, path.Join(base, lex)); !ok {
				return &PathError{Arg: arg, Path: s, Reason: fmt.Sprintf("cannot be judged: the base %q is outside the workspace", base)}
			}
		}
		r, err := res.Resolve(ws, base, s)
		if err != nil {
			reason := err.Error()
			if re, ok := err.(*ResolveError); ok {
				reason = re.Reason
				if re.Link != "" {
					reason += fmt.Sprintf(" (through the link %q)", re.Link)
				}
			}
			return &PathError{Arg: arg, Path: s, Reason: reason}
		}
		if !utf8.ValidString(r.Rel) || strings.IndexFunc(r.Rel, unicode.IsControl) >= 0 {
			return &PathError{Arg: arg, Path: s, Reason: "leads through a symbolic link to a name that is not valid UTF-8 " +
				"or holds control characters, which the server may read as another name"}
		}
		j.spelled = appendNew(j.spelled, spelled)
		if !slices.Contains(j.judged, r.Rel) {
			j.judged = append(j.judged, r.Rel)
			if r.Exists && !r.Dir && r.Links > 1 {
				j.linked = append(j.linked, r.Rel)
				j.links = append(j.links, r.Links)
			}
		}
	}
	return nil
}

// Touches says, without looking at the file system, what a tool call does
// to the tree its path arguments name: whether it has path arguments at
// all, whether one of them is relative (its meaning depends on the server's
// roots), and whether the tool may change the tree (it is not in read-only
// classes only, or the server says it writes; an unknown tool may do
// anything). The proxy orders calls by it: a call with paths is judged only
// once every earlier call that may write has been answered, because that
// call may have moved a link into the path (see the package doc, Paths).
func (p *Policy) Touches(call CallInfo) (paths, relative, writes bool) {
	c, err := p.compiled()
	if err != nil || call.Kind != KindTool {
		return false, false, call.Kind == KindTool
	}
	writes = c.mayWrite(call)
	for _, cl := range c.classesOf(call.Name) {
		for _, name := range cl.pathArgs {
			v, ok := call.Arguments[name]
			if !ok {
				continue
			}
			list, isList := v.([]any)
			if !isList {
				list = []any{v}
			}
			for _, e := range list {
				paths = true
				if s, ok := e.(string); !ok || !path.IsAbs(s) {
					relative = true
				}
			}
		}
	}
	return paths, relative, writes
}
