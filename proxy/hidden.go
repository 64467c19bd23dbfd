package proxy

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/vm-run/vm-run/policy"
)

// hiddenTools tells the user, once a session, that the policy hides tools
// from the client. Without it a server under a policy that names none of
// its tools simply shows none, and nothing says why. The notice goes to
// stderr, which MCP clients show in their server logs.
type hiddenTools struct {
	mu    sync.Mutex
	w     io.Writer
	names []string       // hidden on the current page
	rules map[string]int // hidden on the current page, by rule
	told  bool
}

// add notes a hidden item of the current page.
func (h *hiddenTools) add(kind policy.Kind, name, rule string) {
	if kind != policy.KindTool {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rules == nil {
		h.rules = map[string]int{}
	}
	h.names = append(h.names, name)
	h.rules[rule]++
}

// page ends a page of total items: the first tools/list page that hides
// anything is reported, with the rules that hid it and what to do.
func (h *hiddenTools) page(kind policy.Kind, total int, observing bool) {
	if kind != policy.KindTool {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	names, rules := h.names, h.rules
	h.names, h.rules = nil, nil
	if h.told || len(names) == 0 || h.w == nil {
		return
	}
	h.told = true
	verb, then := "hides", ""
	if observing {
		verb, then = "would hide", " (observe mode: they stay listed, and calls to them are recorded as would_deny)"
	}
	fmt.Fprintf(h.w, "vm-run: the tool policy %s %d of %d tools from the client: %s, by %s%s\n",
		verb, len(names), total, nameList(names, 8), ruleList(rules), then)
	if !observing {
		fmt.Fprintf(h.w, "vm-run: hint: to allow what this server uses, run it once with --observe, then review what `vm-run policy generate -o FILE` writes; or allow tools in a profile (README: \"Allowing a server's tools\")\n")
	}
}

func nameList(names []string, max int) string {
	quoted := make([]string, 0, max+1)
	for i, n := range names {
		if i == max {
			quoted = append(quoted, fmt.Sprintf("and %d more", len(names)-max))
			break
		}
		quoted = append(quoted, fmt.Sprintf("%q", n))
	}
	return strings.Join(quoted, ", ")
}

// ruleList names the rules, the most used first; the default rule says
// what it means.
func ruleList(rules map[string]int) string {
	ids := slices.SortedFunc(maps.Keys(rules), func(a, b string) int {
		if rules[a] != rules[b] {
			return rules[b] - rules[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("rule %s", id)
		if id == policy.RuleDefault {
			parts[i] += " (no rule allows them, and the default is deny)"
		}
		if len(ids) > 1 {
			parts[i] += fmt.Sprintf(" (%d)", rules[id])
		}
	}
	return strings.Join(parts, ", ")
}
