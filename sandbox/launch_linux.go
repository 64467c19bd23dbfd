package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/netns"
	"github.com/vm-run/vm-run/sandbox/cgroup"
	"github.com/vm-run/vm-run/seccomp"
)

// forwarded are the signals the parent relays to the command when it
// receives them.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// Stdio are the command's standard streams.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// Process is a running sandbox.
type Process struct {
	cmd    *exec.Cmd
	ch     *channel // to the init stage (channel_linux.go); closing it tells the init stage the parent is gone
	sigs   chan os.Signal
	done   chan struct{}
	closed sync.Once
	group  *cgroup.Group // the sandbox's cgroup, if it has one
	// Pid is the init stage's pid as the parent sees it.
	Pid int
}

// Run starts the sandbox and waits for the command. It keeps the calling
// goroutine on one OS thread for the sandbox's lifetime: the init stage's
// parent-death signal fires when the thread that cloned it exits
// (prctl(2), PR_SET_PDEATHSIG), not when the process does.
func Run(s *Spec, stdio Stdio, started func(*Process)) (Status, error) {
	return RunNetwork(s, stdio, nil, started)
}

// RunNetwork is Run for a spec in any network mode: n carries the
// sandbox's traffic in mode egress, as in [Pending.StartNetwork].
func RunNetwork(s *Spec, stdio Stdio, n Network, started func(*Process)) (Status, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, err := startNetwork(s, stdio, n)
	if err != nil {
		return Status{}, err
	}
	if started != nil {
		started(p)
	}
	return p.Wait()
}

// Start re-executes vm-run as the init stage in fresh user, network, PID,
// IPC, UTS and mount namespaces, sends it the spec and waits until the
// command has been executed or setup failed. Call it from a goroutine locked
// to its thread (see Run). The trees of a private home are opened here
// ([Spec.OpenTrees]).
func Start(s *Spec, stdio Stdio) (*Process, error) {
	return startNetwork(s, stdio, nil)
}

func startNetwork(s *Spec, stdio Stdio, n Network) (*Process, error) {
	trees, err := s.OpenTrees()
	if err != nil {
		return nil, err
	}
	p := SpawnTrees(s.UID, s.GID, stdio, trees)
	for _, f := range trees {
		f.Close()
	}
	return p.StartNetwork(s, n)
}

// Pending is an init stage started before its spec: it has its namespaces
// and starts its Go runtime while the parent is still loading the profile
// and opening the ledger, then waits on the channel. Start it or Abort it.
type Pending struct {
	uid, gid  int
	hostNetNS string
	cmd       *exec.Cmd
	ch        *channel // to the init stage
	err       error    // why the init stage could not be started
}

// Spawn starts the init stage of a sandbox whose command will run as
// uid:gid with stdio. The spec follows with [Pending.Start], which also
// reports any failure to start here: errors in the profile, found in
// between, come first. Call Spawn from a goroutine locked to its OS thread
// and keep it locked until the sandbox has ended (see Run).
func Spawn(uid, gid int, stdio Stdio) *Pending {
	return SpawnTrees(uid, gid, stdio, nil)
}

// SpawnTrees is Spawn for a spec with trees (Spec.OpenTrees): the init
// stage inherits them as descriptors 4, 5, ... in order.
func SpawnTrees(uid, gid int, stdio Stdio, trees []*os.File) *Pending {
	p := &Pending{uid: uid, gid: gid}
	p.err = p.spawn(stdio, trees)
	return p
}

func (p *Pending) spawn(stdio Stdio, trees []*os.File) error {
	var err error
	if p.hostNetNS, err = netns.ID(); err != nil {
		return err
	}
	ch, initEnd, err := newChannelPair()
	if err != nil {
		return err
	}
	uid, gid := os.Getuid(), os.Getgid()
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
			unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: p.uid, HostID: p.uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: p.gid, HostID: p.gid, Size: 1}},
		// A new session: the command has no controlling terminal, so
		// TIOCSTI has nothing to inject into even before seccomp.
		Setsid: true,
		// The init stage needs these in its own user namespace, and only
		// there: SYS_ADMIN to mount tmpfs, proc and overlays, NET_ADMIN to
		// bring lo up, SETPCAP to drop the bounding set and lock the
		// secure bits, DAC_OVERRIDE for overlayfs to reach its lower layer
		// through /proc/self/fd. It drops them all before the command runs.
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_SETPCAP, unix.CAP_DAC_OVERRIDE},
	}
	if uid == 0 {
		// Root switches to the command's ids (the creator's own are
		// unmapped unless --user root) and drops its supplementary
		// groups: inside they would show as nogroup, yet the host would
		// still grant their access. An unprivileged caller cannot drop
		// its groups (setgroups is denied in its user namespace,
		// user_namespaces(7)); Landlock confines what they reach.
		attr.Credential = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid), Groups: []uint32{}}
		attr.GidMappingsEnableSetgroups = true
	} else if p.uid != uid || p.gid != gid {
		ch.close()
		initEnd.Close()
		return &SetupError{Code: ExitSetup, Op: "ids", Msg: "only root can run the command as another user"}
	}
	cmd := &exec.Cmd{
		// /proc/self/exe, not the binary's path: when root runs the
		// command as another user, the exec happens after the switch and
		// that user may not be able to traverse the path; the magic link
		// needs only execute permission on the file itself.
		Path:        "/proc/self/exe",
		Args:        []string{InitArg0},
		Env:         []string{},
		Stdin:       stdio.Stdin,
		Stdout:      stdio.Stdout,
		Stderr:      stdio.Stderr,
		ExtraFiles:  append([]*os.File{initEnd}, trees...),
		SysProcAttr: attr,
	}
	err = cmd.Start()
	initEnd.Close()
	if err != nil {
		ch.close()
		return startError(err)
	}
	p.cmd, p.ch = cmd, ch
	return nil
}

// Start sends the spec to the init stage and waits until the command has
// been executed or setup failed. s must be for the ids given to Spawn, and
// not for network mode egress; see StartNetwork.
func (p *Pending) Start(s *Spec) (*Process, error) {
	return p.StartNetwork(s, nil)
}

// StartNetwork is Start for a spec in any network mode: for mode egress
// (s.Egress set), n is attached to the sandbox's TUN device before the
// command runs, and the launch fails if it cannot be.
func (p *Pending) StartNetwork(s *Spec, n Network) (*Process, error) {
	if p.err != nil {
		return nil, p.err
	}
	proc := &Process{cmd: p.cmd, ch: p.ch, Pid: p.cmd.Process.Pid}
	if s.UID != p.uid || s.GID != p.gid {
		proc.kill()
		return nil, fmt.Errorf("spec for %d:%d sent to an init stage spawned for %d:%d", s.UID, s.GID, p.uid, p.gid)
	}
	s.HostNetNS = p.hostNetNS
	if err := s.CompileSeccomp(); err != nil {
		proc.kill()
		return nil, err
	}
	// Into its cgroup before it has the spec: everything the init stage
	// does from here on, and every process of the sandbox, is in it.
	group, err := placeCgroup(s, proc.Pid)
	if err != nil {
		proc.kill()
		return nil, err
	}
	proc.group = group
	s.Cgroupfs = nil
	if group != nil {
		s.Cgroupfs = group.Mounts()
	}
	if err := p.ch.send(&chanMsg{Type: msgSpec, Spec: s}); err != nil {
		proc.kill()
		return nil, fmt.Errorf("send spec to init stage: %w", err)
	}
	tun := s.Egress != nil // the device is still to come
	for {
		m, fds, err := proc.nextFds(tun)
		if err != nil {
			// No message: the init stage died before reporting.
			st, werr := proc.reap()
			releaseCgroup(proc.group)
			proc.close()
			if werr != nil {
				return nil, werr
			}
			return nil, &SetupError{Code: ExitSetup, Op: "init stage",
				Msg: fmt.Sprintf("ended before starting the command (%s)", st)}
		}
		if m.Type == msgTUN && tun {
			tun = false
			if err := attachNetwork(n, fds); err != nil {
				proc.kill()
				return nil, &SetupError{Code: ExitSetup, Op: "network", Msg: err.Error()}
			}
			if err := p.ch.send(&chanMsg{Type: msgNetwork}); err != nil {
				proc.kill()
				return nil, fmt.Errorf("tell the init stage its network is attached: %w", err)
			}
			continue
		}
		closeFds(fds)
		if m.Type == msgError && m.Error != nil {
			proc.reap()
			releaseCgroup(proc.group)
			proc.close()
			return nil, s.explainExec(m.Error)
		}
		if m.Type != msgStarted || tun {
			proc.kill()
			return nil, &SetupError{Code: ExitSetup, Op: "init stage", Msg: fmt.Sprintf("sent %q where it reports the command's start", m.Type)}
		}
		break
	}
	proc.sigs = make(chan os.Signal, 8)
	proc.done = make(chan struct{})
	signal.Notify(proc.sigs, forwarded...)
	go proc.forward()
	return proc, nil
}

// Pid is the init stage's pid as the parent sees it, or 0 if it could not
// be started.
func (p *Pending) Pid() int {
	if p.err != nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Abort kills the init stage of a sandbox that will not start, and reaps
// it.
func (p *Pending) Abort() {
	if p.err != nil {
		return
	}
	(&Process{cmd: p.cmd, ch: p.ch}).kill()
}

// CompileSeccomp compiles s.Seccomp into s.SeccompBPF unless that is done
// already. Start calls it; a caller with time to spare while the init stage
// starts may call it earlier.
func (s *Spec) CompileSeccomp() error {
	if s.SeccompBPF != nil {
		return nil
	}
	bpf, err := seccomp.Program(s.Seccomp)
	if err != nil {
		return &SetupError{Code: ExitSetup, Op: "seccomp", Msg: err.Error()}
	}
	s.SeccompBPF = bpf
	return nil
}

// startError explains a failure to create the namespaces.
func startError(err error) error {
	hint := "check `vm-run doctor`: user namespaces may be disabled (user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns)"
	if errors.Is(err, unix.ENOSPC) {
		hint = "the user namespace limit is reached (user.max_user_namespaces)"
	}
	return &SetupError{Code: ExitSetup, Op: "create namespaces", Msg: err.Error(), Hint: hint}
}

// forward relays the signals vm-run receives to the init stage, which
// relays them to the command.
func (p *Process) forward() {
	for {
		select {
		case sig := <-p.sigs:
			p.Signal(sig)
		case <-p.done:
			return
		}
	}
}

// Signal sends sig to the command: it sends it on the channel, and the
// init stage relays it. SIGKILL goes to the init stage itself, which ends
// the whole sandbox at once, as if it were the command's. Once the sandbox
// has ended, Signal returns os.ErrProcessDone.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok || s <= 0 || s > 64 {
		return fmt.Errorf("relay signal %v: not a signal number from 1 to 64", sig)
	}
	if s == unix.SIGKILL {
		return p.cmd.Process.Signal(sig)
	}
	// Concurrent sends are serialised by the channel.
	if err := p.ch.send(&chanMsg{Type: msgSignal, Signal: int(s)}); err != nil {
		if errors.Is(err, os.ErrProcessDone) || errors.Is(err, os.ErrClosed) {
			return os.ErrProcessDone
		}
		return fmt.Errorf("relay signal %v: %w", sig, err)
	}
	return nil
}

// Wait waits for the command to end and returns how it ended, with the
// limits its cgroup refused it. When it returns, no process of the sandbox
// is left: the init stage is PID 1 of the sandbox's PID namespace and the
// kernel kills the rest when it exits; and the sandbox's cgroup is gone.
func (p *Process) Wait() (Status, error) {
	defer p.close()
	m, derr := p.next()
	st, werr := p.reap()
	if derr == nil && m.Type == msgExit && m.Exit != nil {
		st = *m.Exit
		st.Limits = releaseCgroup(p.group)
		return st, nil
	}
	ev := releaseCgroup(p.group)
	if werr != nil {
		return Status{}, werr
	}
	// The init stage died without reporting (the OOM killer may pick
	// it): report its own end.
	if st.Signal != 0 {
		st.Limits = ev
		return st, nil
	}
	return Status{}, &SetupError{Code: ExitSetup, Op: "init stage",
		Msg: fmt.Sprintf("ended without reporting the command's status (%s)", st)}
}

func (p *Process) reap() (Status, error) {
	err := p.cmd.Wait()
	ps := p.cmd.ProcessState
	if ps == nil {
		return Status{}, fmt.Errorf("wait for init stage: %w", err)
	}
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return Status{Signal: int(ws.Signal())}, nil
	}
	return Status{Code: ws.ExitStatus()}, nil
}

func (p *Process) kill() {
	p.cmd.Process.Kill()
	p.reap()
	releaseCgroup(p.group)
	p.close()
}

func (p *Process) close() {
	p.closed.Do(func() {
		if p.done != nil {
			signal.Stop(p.sigs)
			close(p.done)
		}
		p.ch.close()
	})
}

// next reads the init stage's next message, which carries no descriptor.
func (p *Process) next() (*chanMsg, error) {
	return p.ch.recv()
}

// nextFds reads the init stage's next message, and the one descriptor it
// may carry when withFd: the TUN device.
func (p *Process) nextFds(withFd bool) (*chanMsg, []int, error) {
	if !withFd {
		m, err := p.ch.recv()
		return m, nil, err
	}
	return p.ch.recvFds(1)
}
