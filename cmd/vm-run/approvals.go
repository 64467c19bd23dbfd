package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/audit"
	"github.com/vm-run/vm-run/internal/textsafe"
	"github.com/vm-run/vm-run/proxy/approval"
)

type approvalsCmd struct {
	List    approvalsListCmd    `cmd:"" help:"List the questions vm-run processes of yours are waiting on."`
	Approve approvalsApproveCmd `cmd:"" help:"Approve a question: shows it on your terminal and asks you to type the code it shows."`
	Deny    approvalsDenyCmd    `cmd:"" help:"Deny a question (works anywhere: a no needs no terminal)."`
	Watch   approvalsWatchCmd   `cmd:"" help:"Print questions as they are asked and as they end, until interrupted."`
}

// dialTimeout bounds connecting to one socket and its first exchange: a
// live vm-run answers at once.
const dialTimeout = 5 * time.Second

// peer is a vm-run process reached on its approval socket.
type peer struct {
	path string
	c    *approval.Client
}

// dialAll connects to every approval socket in the approvals directory,
// skipping (and reporting) stale sockets and ones that refuse us. seen
// lists sockets to leave alone (watch's rescans).
func dialAll(ctx context.Context, stderr io.Writer, seen map[string]bool) (string, []peer, error) {
	dir, err := approval.Dir()
	if err != nil {
		return "", nil, err
	}
	paths, err := approval.Sockets(dir)
	if err != nil {
		return dir, nil, err
	}
	var peers []peer
	for _, p := range paths {
		if seen[p] {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		c, err := approval.Dial(dctx, p)
		cancel()
		if seen != nil {
			seen[p] = true
		}
		switch {
		case errors.Is(err, approval.ErrStale):
			fmt.Fprintf(stderr, "vm-run: warning: skipped stale approval socket %s: no vm-run process listens on it\n", textsafe.Escape(p))
			fmt.Fprintf(stderr, "vm-run: hint: a vm-run that was killed left it behind; remove it: rm %s\n", textsafe.Escape(p))
		case err != nil:
			fmt.Fprintf(stderr, "vm-run: warning: skipped %v\n", err)
		default:
			peers = append(peers, peer{p, c})
		}
	}
	return dir, peers, nil
}

func closeAll(peers []peer) {
	for _, p := range peers {
		p.c.Close()
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type approvalsListCmd struct {
	JSON bool `help:"Print a JSON array of {pid, socket, question}."`
}

// listed is a question as `approvals list --json` prints it.
type listed struct {
	PID      int               `json:"pid"`
	Socket   string            `json:"socket"`
	Question approval.Question `json:"question"`
}

func (c approvalsListCmd) Run(stdout io.Writer) error {
	ctx, stop := signalContext()
	defer stop()
	dir, peers, err := dialAll(ctx, os.Stderr, nil)
	if err != nil {
		return err
	}
	defer closeAll(peers)
	out := []listed{}
	for _, p := range peers {
		lctx, cancel := context.WithTimeout(ctx, dialTimeout)
		qs, err := p.c.List(lctx)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vm-run: warning: skipped vm-run pid %d: list: %v\n", p.c.Hello.PID, err)
			continue
		}
		for _, q := range qs {
			out = append(out, listed{PID: p.c.Hello.PID, Socket: p.path, Question: q})
		}
	}
	if c.JSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	if len(out) == 0 {
		fmt.Fprintf(os.Stderr, "vm-run: no question is waiting (%d vm-run process(es) serve %s)\n", len(peers), textsafe.Escape(dir))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tCALL\tRULE\tTTL\tEXPIRES\tSERVER")
	for _, l := range out {
		q := l.Question
		fmt.Fprintf(tw, "%s\t%d\t%s %s\t%s\t%s\t%s\t%s\n", textsafe.Escape(q.ID), l.PID, textsafe.Escape(q.Kind), textsafe.Escape(q.Name),
			textsafe.Escape(q.Rule), ttlText(q.TTL), expiresText(q.Deadline), textsafe.Escape(q.Server))
	}
	return tw.Flush()
}

func ttlText(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.String()
}

func expiresText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "in " + time.Until(t).Round(time.Second).String()
}

// find asks each peer in turn to act on question id until one knows it;
// it returns that peer and closes the others.
func find(ctx context.Context, id string, act func(context.Context, *approval.Client) error) (peer, error) {
	_, peers, err := dialAll(ctx, os.Stderr, nil)
	if err != nil {
		return peer{}, err
	}
	for i, p := range peers {
		actx, cancel := context.WithTimeout(ctx, dialTimeout)
		err := act(actx, p.c)
		cancel()
		var e *approval.Error
		if errors.As(err, &e) && e.Code == approval.CodeUnknownID {
			p.c.Close()
			continue
		}
		closeAll(peers[i+1:])
		if err != nil {
			p.c.Close()
			return peer{}, fmt.Errorf("vm-run pid %d: %w", p.c.Hello.PID, err)
		}
		return p, nil
	}
	return peer{}, &hintError{err: fmt.Errorf("no vm-run process of yours is waiting on question %q", id),
		hint: "vm-run approvals list shows the questions waiting; an answered, expired or withdrawn one is gone"}
}

type approvalsDenyCmd struct {
	ID     string `arg:"" help:"The question's ID (vm-run approvals list)."`
	Reason string `help:"Why, for the ledger and the client." placeholder:"TEXT"`
}

func (c approvalsDenyCmd) Validate() error {
	if len(c.Reason) > approval.MaxReason {
		return fmt.Errorf("--reason is %d bytes, over %d", len(c.Reason), approval.MaxReason)
	}
	return nil
}

func (c approvalsDenyCmd) Run(stdout io.Writer) error {
	ctx, stop := signalContext()
	defer stop()
	p, err := find(ctx, c.ID, func(ctx context.Context, cl *approval.Client) error { return cl.Deny(ctx, c.ID, c.Reason) })
	if err != nil {
		return err
	}
	p.c.Close()
	_, err = fmt.Fprintf(stdout, "denied %s (vm-run pid %d)\n", textsafe.Escape(c.ID), p.c.Hello.PID)
	return err
}

type approvalsWatchCmd struct {
	JSON bool `help:"Print JSON lines of {pid, event}."`
}

// rescanEvery is how often watch looks for vm-run processes started since.
const rescanEvery = 2 * time.Second

func (c approvalsWatchCmd) Run(stdout io.Writer) error {
	ctx, stop := signalContext()
	defer stop()
	type item struct {
		pid int
		ev  approval.Event
	}
	events := make(chan item)
	seen := map[string]bool{}
	var all []peer
	defer func() { closeAll(all) }()
	scan := func() error {
		_, peers, err := dialAll(ctx, os.Stderr, seen)
		if err != nil {
			return err
		}
		for _, p := range peers {
			wctx, cancel := context.WithTimeout(ctx, dialTimeout)
			err := p.c.Watch(wctx)
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "vm-run: warning: skipped vm-run pid %d: watch: %v\n", p.c.Hello.PID, err)
				p.c.Close()
				continue
			}
			all = append(all, p)
			go func() {
				for ev := range p.c.Events() {
					select {
					case events <- item{p.c.Hello.PID, ev}:
					case <-ctx.Done():
						return
					}
				}
			}()
		}
		return nil
	}
	if err := scan(); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	tick := time.NewTicker(rescanEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := scan(); err != nil {
				return err
			}
		case it := <-events:
			if c.JSON {
				if err := enc.Encode(struct {
					PID   int            `json:"pid"`
					Event approval.Event `json:"event"`
				}{it.pid, it.ev}); err != nil {
					return err
				}
				continue
			}
			if err := printEvent(stdout, it.pid, it.ev); err != nil {
				return err
			}
		}
	}
}

func printEvent(w io.Writer, pid int, ev approval.Event) error {
	if ev.Type == approval.EventAsked && ev.Question != nil {
		q := ev.Question
		_, err := fmt.Fprintf(w, "asked  %s  pid %d  %s %s  rule %s  ttl %s  expires %s  %s\n", textsafe.Escape(q.ID), pid,
			textsafe.Escape(q.Kind), textsafe.Escape(q.Name), textsafe.Escape(q.Rule), ttlText(q.TTL), expiresText(q.Deadline), textsafe.Escape(q.Server))
		return err
	}
	_, err := fmt.Fprintf(w, "ended  %s  pid %d  %s\n", textsafe.Escape(ev.ID), pid, textsafe.Escape(ev.Why))
	return err
}

// tcflush discards what was typed ahead on the terminal (tcflush(3),
// TCIFLUSH): keystrokes queued before the code was shown must not answer.
func tcflush(fd int) error {
	return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
}

// readLine reads one line typed on the terminal, at most 256 bytes.
func readLine(r io.Reader) <-chan string {
	ch := make(chan string, 1)
	go func() {
		line, err := bufio.NewReaderSize(io.LimitReader(r, 256), 256).ReadString('\n')
		if err != nil && line == "" {
			close(ch)
			return
		}
		ch <- strings.TrimSpace(line)
	}()
	return ch
}

// approveScopes are the scopes approve takes.
var approveScopes = []string{audit.ScopeOnce, audit.ScopeTTL}

// approvalsApproveCmd is the one command that grants: it needs a person at
// a terminal (see "The human-visible step" in `go doc ./proxy/approval`).
type approvalsApproveCmd struct {
	ID    string `arg:"" help:"The question's ID (vm-run approvals list)."`
	Scope string `arg:"" optional:"" default:"once" enum:"once,ttl" help:"once: this call only; ttl: also the same call until the rule's ttl ends, where the rule offers one."`
}

func (c approvalsApproveCmd) Validate() error {
	if !slices.Contains(approveScopes, c.Scope) {
		return fmt.Errorf("scope %q: want once or ttl", c.Scope)
	}
	return nil
}

// noTerminalHint is the hint for every way of running approve without a
// person's terminal.
const noTerminalHint = "run `vm-run approvals approve ID` yourself, in a terminal: an agent's tool shell cannot approve; `vm-run approvals deny ID` works anywhere"

func (c approvalsApproveCmd) Run(stdout io.Writer) error {
	// The terminal first: without one nothing is asked of any vm-run.
	tty, err := openTerminal("approving", noTerminalHint) // terminal.go
	if err != nil {
		return err
	}
	defer tty.Close()
	fd := int(tty.Fd())

	ctx, stop := signalContext()
	defer stop()
	var ch approval.Challenge
	p, err := find(ctx, c.ID, func(ctx context.Context, cl *approval.Client) error {
		var err error
		ch, err = cl.Challenge(ctx, c.ID)
		return err
	})
	if err != nil {
		return err
	}
	defer p.c.Close()
	q := ch.Question
	if c.Scope == audit.ScopeTTL && q.TTL <= 0 {
		return &hintError{err: fmt.Errorf("question %q offers approve once only: its rule %q has no ttl", c.ID, q.Rule),
			hint: "vm-run approvals approve " + c.ID + " once"}
	}
	showQuestion(tty, p.c.Hello.PID, q, c.Scope)
	if err := tcflush(fd); err != nil {
		return fmt.Errorf("discard typed-ahead input: %w", &os.SyscallError{Syscall: "ioctl TCFLSH", Err: err})
	}
	fmt.Fprintf(tty, "\nTo approve, type the code %s and press Enter (anything else cancels): ", ch.Code)
	select {
	case typed, ok := <-readLine(tty):
		if !ok || !strings.EqualFold(typed, ch.Code) {
			fmt.Fprintf(tty, "Not approved: that is not the code. The question still waits.\n")
			return fmt.Errorf("question %q not approved: the code typed is not the one shown", c.ID)
		}
	case ev, ok := <-p.c.Events():
		why := "the connection ended"
		if ok {
			why = "it " + ev.Why
		}
		fmt.Fprintf(tty, "\nThe question ended before it was approved: %s.\n", why)
		return fmt.Errorf("question %q ended before it was approved: %s", c.ID, why)
	case <-ctx.Done():
		fmt.Fprintf(tty, "\nNot approved: interrupted.\n")
		return fmt.Errorf("question %q not approved: interrupted", c.ID)
	}
	if err := p.c.Approve(ctx, c.ID, c.Scope, ch.Code); err != nil {
		fmt.Fprintf(tty, "Not approved: %v\n", err)
		return fmt.Errorf("approve %q: %w", c.ID, err)
	}
	fmt.Fprintf(tty, "Approved.\n")
	_, err = fmt.Fprintf(stdout, "approved %s (%s, vm-run pid %d)\n", textsafe.Escape(c.ID), c.Scope, p.c.Hello.PID)
	return err
}

// showQuestion writes the whole question to the terminal. Every string in
// it came from the MCP client or the server, so each is escaped: none may
// drive the terminal the person reads it on.
func showQuestion(w io.Writer, pid int, q approval.Question, scope string) {
	fmt.Fprintf(w, "vm-run (pid %d) asks you to approve:\n", pid)
	fmt.Fprintf(w, "  question  %s\n", textsafe.Escape(q.ID))
	fmt.Fprintf(w, "  server    %s\n", textsafe.Escape(q.Server))
	fmt.Fprintf(w, "  call      %s %s\n", textsafe.Escape(q.Kind), textsafe.Escape(q.Name))
	if q.Args != nil {
		b, err := json.MarshalIndent(q.Args, "            ", "  ")
		if err != nil {
			b = []byte(err.Error())
		}
		for i, line := range strings.Split(string(b), "\n") {
			label := "arguments"
			if i > 0 {
				label = "         "
			}
			fmt.Fprintf(w, "  %s %s\n", label, textsafe.Escape(strings.TrimPrefix(line, "            ")))
		}
	}
	for _, p := range q.Paths {
		fmt.Fprintf(w, "  path      %s\n", textsafe.Escape(p))
	}
	for _, h := range q.Hidden {
		fmt.Fprintf(w, "  HIDDEN    %s: shown only as a hash (its name says secret); approve only if you know what it holds\n", textsafe.Escape(h))
	}
	fmt.Fprintf(w, "  rule      %s: %s\n", textsafe.Escape(q.Rule), textsafe.Escape(q.Reason))
	if scope == audit.ScopeTTL {
		fmt.Fprintf(w, "  grant     for %s: the same call is not asked again until then\n", q.TTL)
	} else {
		fmt.Fprintf(w, "  grant     this call only\n")
	}
	if !q.Deadline.IsZero() {
		fmt.Fprintf(w, "  expires   %s (%s)\n", expiresText(q.Deadline), q.Deadline.Local().Format("15:04:05"))
	}
}
