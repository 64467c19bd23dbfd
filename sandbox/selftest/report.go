package selftest

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// What a row's sandboxed run got (Row.Got).
const (
	GotBlocked = "blocked"
	GotEscaped = "ESCAPED"
	GotError   = "error"   // the probe reached no verdict
	GotSkipped = "skipped" // the profile grants what the attack would take
)

// Proof says what the unsandboxed baseline run of an attack showed.
type Proof string

const (
	// Proven: the attack worked without the sandbox, so the sandboxed
	// block is the sandbox's doing.
	Proven Proof = "proven"
	// Impossible: the attack cannot work on this system at all (the
	// kernel lacks the feature, the caller the privilege), so a block
	// proves nothing about the sandbox, and nothing is wrong either.
	Impossible Proof = "impossible"
	// Unproven: the baseline failed although nothing rules the attack
	// out: the probe or its fixture is broken, and the battery fails.
	Unproven Proof = "unproven"
	// NotRun: the attack was skipped.
	NotRun Proof = "not run"
)

// Row is one attack of the battery.
type Row struct {
	Attack string `json:"attack"`
	// Probe is the probe and the parameters of the sandboxed run.
	Probe string `json:"probe"`
	// Expected is GotBlocked, or GotSkipped with Why when the profile
	// grants what the attack would take.
	Expected string `json:"expected"`
	Got      string `json:"got"`
	// Mechanism is what stopped the attack, as the probe observed it.
	Mechanism string `json:"mechanism,omitempty"`
	// Detail is the sandboxed probe's account, errno values included.
	Detail string `json:"detail"`
	// Baseline is the outcome of the same probe run without the sandbox,
	// or without the part of it under test: BaselineRun says how it ran
	// when not simply unsandboxed ("without the allowlist").
	Baseline       Proof  `json:"baseline"`
	BaselineDetail string `json:"baseline_detail"`
	BaselineRun    string `json:"baseline_run,omitempty"`
	// Why explains a skipped attack or an impossible baseline.
	Why string `json:"why,omitempty"`
}

// Failed reports whether the row makes the battery fail: an escape, a
// probe that reached no verdict, or a baseline that did not prove the
// attack although it could work here.
func (r Row) Failed() bool {
	return r.Got == GotEscaped || r.Got == GotError || r.Baseline == Unproven
}

// Report is the battery's outcome under one profile.
type Report struct {
	Profile string `json:"profile"`
	// UID and GID are the ids the sandboxed probes ran as.
	UID  int   `json:"uid"`
	GID  int   `json:"gid"`
	Rows []Row `json:"rows"`
}

// Escaped reports whether any attack got out of the sandbox.
func (r *Report) Escaped() bool {
	for _, row := range r.Rows {
		if row.Got == GotEscaped {
			return true
		}
	}
	return false
}

// ErrEscaped and ErrUnproven are wrapped by the error of [Report.Err].
var (
	ErrEscaped  = errors.New("an attack escaped the sandbox")
	ErrUnproven = errors.New("the battery could not prove every attack")
)

// Err returns nil when every attack was blocked and every baseline proved
// its attack or showed it impossible here. Otherwise the error wraps
// ErrEscaped or ErrUnproven and names the rows.
func (r *Report) Err() error {
	var escaped, unproven []string
	for _, row := range r.Rows {
		switch {
		case row.Got == GotEscaped:
			escaped = append(escaped, row.Attack)
		case row.Failed():
			unproven = append(unproven, row.Attack)
		}
	}
	switch {
	case len(escaped) > 0:
		return fmt.Errorf("%w under profile %q: %s", ErrEscaped, r.Profile, strings.Join(escaped, "; "))
	case len(unproven) > 0:
		return fmt.Errorf("%w under profile %q: %s", ErrUnproven, r.Profile, strings.Join(unproven, "; "))
	}
	return nil
}

// WriteTable writes the report as an aligned table, one attack a line,
// followed by a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ATTACK\tEXPECTED\tGOT\tMECHANISM\tBASELINE\n")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.Attack, row.Expected, row.Got,
			dash(row.Mechanism), baselineText(row))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", r.summary())
	return err
}

// WriteDetails writes what each probe saw, sandboxed and not.
func (r *Report) WriteDetails(w io.Writer) error {
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%s\n  probe:     %s\n  sandboxed: %s: %s\n  baseline:  %s: %s\n",
			row.Attack, row.Probe, row.Got, dash(row.Detail), row.Baseline, dash(row.BaselineDetail))
		if row.BaselineRun != "" {
			fmt.Fprintf(w, "  baseline run %s\n", row.BaselineRun)
		}
		if row.Why != "" {
			fmt.Fprintf(w, "  why:       %s\n", row.Why)
		}
	}
	_, err := fmt.Fprintf(w, "%s\n", r.summary())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func baselineText(row Row) string {
	switch row.Baseline {
	case Proven:
		if row.BaselineRun != "" {
			return "escapes " + row.BaselineRun
		}
		return "escapes unsandboxed"
	case Impossible:
		return "not provable here: " + row.Why
	case Unproven:
		return "FAILED: " + row.BaselineDetail
	case NotRun:
		return "skipped: " + row.Why
	}
	return string(row.Baseline)
}

func (r *Report) summary() string {
	count := map[string]int{}
	for _, row := range r.Rows {
		count[row.Got]++
		count["baseline "+string(row.Baseline)]++
	}
	s := fmt.Sprintf("profile %q, command uid %d gid %d: %d attacks, %d blocked, %d escaped, %d errors, %d skipped; baselines: %d proven, %d impossible here, %d failed",
		r.Profile, r.UID, r.GID, len(r.Rows), count[GotBlocked], count[GotEscaped], count[GotError],
		count[GotSkipped], count["baseline "+string(Proven)], count["baseline "+string(Impossible)],
		count["baseline "+string(Unproven)])
	if err := r.Err(); err != nil {
		return s + "\nFAIL: " + err.Error()
	}
	return s + "\nPASS: nothing escaped"
}
