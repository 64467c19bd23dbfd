package selftest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// fixtures are the host-side targets of the battery. Files and directories
// belong to the command's user, so that the unsandboxed baseline, run as
// that user, shows that nothing but the sandbox stands between the command
// and them; every file and listener holds a random token that a probe must
// read back to claim an escape.
type fixtures struct {
	uid, gid int

	base      string // holds workspace, outside and tmp; removed at the end
	workspace string
	wsFile    string // a file in the workspace
	wsLink    string // a symlink in the workspace to the secret
	outside   string // a directory no rule grants
	secret    string // a file in it
	tmp       string // the baseline's stand-in for the sandbox's private /tmp

	hidden       string // a directory under a hidden one (/tmp), or ""
	hiddenSecret string
	// tmpWorkspace is a second workspace, in the host directory that
	// shares its name with the sandbox's private temp dir, or "".
	tmpWorkspace string
	tmpWsFile    string
	sockPath     string // a pathname unix socket listener in hidden
	sockName     string // an abstract unix socket listener
	tcpAddr      string // a loopback TCP listener

	groupFile string // readable only by a supplementary group of the caller

	tokens map[string]string // fixture name -> token

	listeners []net.Listener
	closers   []io.Closer // the other sockets of the fixtures

	egress egressFixtures // for a profile in network mode egress

	victim      *exec.Cmd
	victimStdin *os.File
	stackAddr   uint64 // the top 16 KiB of the victim's stack
	stackLen    int

	master, slave *os.File // a pseudo-terminal in raw mode
	ttyMu         sync.Mutex
	ttyOut        []byte // what reached the master

	handleType int32
	handle     []byte
}

func token() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newBase creates the battery's directory in parent, and the workspace,
// outside and tmp directories in it, all reachable by the command's user.
func newBase(uid, gid int, parent string) (*fixtures, error) {
	dir, err := os.MkdirTemp(parent, "vm-run-selftest-")
	if err != nil {
		return nil, fmt.Errorf("create the battery's directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("resolve %q: %w", dir, err)
	}
	fx := &fixtures{uid: uid, gid: gid, base: real, tokens: map[string]string{}}
	fx.workspace = filepath.Join(real, "workspace")
	fx.outside = filepath.Join(real, "outside")
	fx.tmp = filepath.Join(real, "tmp")
	if err := fx.mkdirs(0o755, real, fx.workspace, fx.outside, fx.tmp); err != nil {
		fx.close()
		return nil, err
	}
	if !reachable(real, uid, gid) {
		fx.close()
		return nil, fmt.Errorf("%s: uid %d cannot reach it", parent, uid)
	}
	return fx, nil
}

// reachable reports whether every directory above path lets uid:gid
// search it (root's own checks would not tell).
func reachable(path string, uid, gid int) bool {
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return false
		}
		sys := st.Sys().(*syscall.Stat_t)
		mode := st.Mode().Perm()
		ok := mode&0o001 != 0 ||
			int(sys.Uid) == uid && mode&0o100 != 0 ||
			int(sys.Gid) == gid && mode&0o010 != 0
		if !ok {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// executableBy reports whether uid:gid may execute path: it can reach it
// and an execute bit applies to it.
func executableBy(path string, uid, gid int) bool {
	st, err := os.Stat(path)
	if err != nil || !reachable(filepath.Dir(path), uid, gid) {
		return false
	}
	sys := st.Sys().(*syscall.Stat_t)
	mode := st.Mode().Perm()
	switch {
	case int(sys.Uid) == uid:
		return mode&0o100 != 0
	case int(sys.Gid) == gid:
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}

func (fx *fixtures) mkdirs(mode fs.FileMode, dirs ...string) error {
	for _, d := range dirs {
		if err := os.Mkdir(d, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %q: %w", d, err)
		}
		if err := os.Chmod(d, mode); err != nil {
			return fmt.Errorf("chmod %q: %w", d, err)
		}
		if err := fx.own(d); err != nil {
			return err
		}
	}
	return nil
}

// own gives path to the command's user when the harness runs as root.
func (fx *fixtures) own(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if err := os.Lchown(path, fx.uid, fx.gid); err != nil {
		return fmt.Errorf("chown %q: %w", path, err)
	}
	return nil
}

// writeFile (re)creates path with its fixture's token.
func (fx *fixtures) writeFile(path, name string, mode fs.FileMode) error {
	if _, ok := fx.tokens[name]; !ok {
		fx.tokens[name] = token()
	}
	os.Remove(path)
	if err := os.WriteFile(path, []byte(fx.tokens[name]+"\n"), mode); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %q: %w", path, err)
	}
	return fx.own(path)
}

// files creates the file fixtures, and recreates them after a probe that
// may have changed them: the directories hold exactly the fixtures again.
func (fx *fixtures) files() error {
	fx.secret = filepath.Join(fx.outside, "secret")
	fx.wsFile = filepath.Join(fx.workspace, "notes.txt")
	fx.wsLink = filepath.Join(fx.workspace, "link-to-secret")
	keep := map[string]bool{fx.secret: true, fx.wsFile: true, fx.wsLink: true, fx.groupFile: true, fx.tmpWsFile: true}
	for _, dir := range []string{fx.workspace, fx.outside, fx.tmp, fx.tmpWorkspace} {
		if dir == "" {
			continue
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list %q: %w", dir, err)
		}
		for _, e := range ents {
			if p := filepath.Join(dir, e.Name()); !keep[p] {
				os.RemoveAll(p)
			}
		}
	}
	if err := fx.writeFile(fx.secret, "secret", 0o600); err != nil {
		return err
	}
	if err := fx.writeFile(fx.wsFile, "workspace", 0o644); err != nil {
		return err
	}
	os.Remove(fx.wsLink)
	if err := os.Symlink(fx.secret, fx.wsLink); err != nil {
		return fmt.Errorf("create symlink %q: %w", fx.wsLink, err)
	}
	if err := fx.own(fx.wsLink); err != nil {
		return err
	}
	if fx.hidden != "" {
		if err := fx.writeFile(fx.hiddenSecret, "hidden", 0o600); err != nil {
			return err
		}
	}
	if fx.tmpWorkspace != "" {
		return fx.writeFile(fx.tmpWsFile, "tmpws", 0o644)
	}
	return nil
}

// groupFixture creates a workspace file that only members of one of the
// caller's supplementary groups may read, when the command runs as another
// user (only root can make that so) and the caller has such a group.
func (fx *fixtures) groupFixture() error {
	if os.Geteuid() != 0 || fx.uid == 0 {
		return nil
	}
	groups, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	for _, g := range groups {
		if g == fx.gid {
			continue
		}
		fx.groupFile = filepath.Join(fx.workspace, "group-only")
		fx.tokens["group"] = token()
		if err := os.WriteFile(fx.groupFile, []byte(fx.tokens["group"]+"\n"), 0o040); err != nil {
			return fmt.Errorf("write %q: %w", fx.groupFile, err)
		}
		if err := os.Chmod(fx.groupFile, 0o040); err != nil {
			return err
		}
		return os.Chown(fx.groupFile, 0, g)
	}
	return nil
}

// hiddenFixtures creates a directory under the first of the profile's
// hidden directories the harness can write to, with a secret file and a
// pathname unix socket: what a host daemon's socket in /run or /tmp is.
func (fx *fixtures) hiddenFixtures(p *profiles.Profile) error {
	for _, raw := range p.Filesystem.Hide {
		dir, _ := profiles.SplitOptional(raw)
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			continue
		}
		d, err := os.MkdirTemp(real, "vm-run-selftest-")
		if err != nil {
			continue
		}
		fx.hidden = d
		if err := fx.mkdirs(0o755, d); err != nil {
			return err
		}
		if !reachable(d, fx.uid, fx.gid) {
			os.RemoveAll(d)
			fx.hidden = ""
			continue
		}
		fx.hiddenSecret = filepath.Join(d, "secret")
		fx.sockPath = filepath.Join(d, "socket")
		if tmp, err := filepath.EvalSymlinks(sandbox.TmpDir); err == nil && filepath.Dir(d) == tmp {
			fx.tmpWorkspace = filepath.Join(d, "workspace")
			fx.tmpWsFile = filepath.Join(fx.tmpWorkspace, "notes.txt")
			return fx.mkdirs(0o755, fx.tmpWorkspace)
		}
		return nil
	}
	return nil
}

// serve starts a listener that writes the token of fixture name to every
// connection.
func (fx *fixtures) serve(network, addr, name string) (net.Listener, error) {
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %q: %w", network, addr, err)
	}
	fx.listeners = append(fx.listeners, l)
	fx.tokens[name] = token()
	tok := []byte(fx.tokens[name] + "\n")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write(tok)
			c.Close()
		}
	}()
	return l, nil
}

// listen starts the listeners. Each writes its token to every connection.
func (fx *fixtures) listen() error {
	serve := fx.serve
	l, err := serve("tcp4", "127.0.0.1:0", "tcp")
	if err != nil {
		return err
	}
	fx.tcpAddr = l.Addr().String()
	fx.sockName = "vm-run-selftest-" + token()
	if _, err := serve("unix", "@"+fx.sockName, "abstract"); err != nil {
		return err
	}
	if fx.sockPath != "" {
		if _, err := serve("unix", fx.sockPath, "socket"); err != nil {
			return err
		}
		// connect(2) on a pathname socket needs write permission on it.
		if err := os.Chmod(fx.sockPath, 0o777); err != nil {
			return err
		}
	}
	return nil
}

// startVictim starts the process outside the sandbox that the process
// attacks aim at: this binary's "victim" probe, as the command's user,
// holding the secret open on fd 3 and a token in argv and environment.
func (fx *fixtures) startVictim(self string) error {
	fx.tokens["victim"] = token()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create the victim's pipe: %w", err)
	}
	defer r.Close()
	secret, err := os.Open(fx.secret)
	if err != nil {
		w.Close()
		return fmt.Errorf("open %q for the victim: %w", fx.secret, err)
	}
	defer secret.Close()
	fx.victimStdin = w
	fx.victim = &exec.Cmd{
		Path:        self,
		Args:        []string{ProbeArg0, "victim", param("token", fx.tokens["victim"])},
		Env:         []string{"VMRUN_SELFTEST_TOKEN=" + fx.tokens["victim"]},
		Stdin:       r,
		ExtraFiles:  []*os.File{secret},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Credential: fx.credential(false)},
	}
	if err := fx.victim.Start(); err != nil {
		fx.victim = nil
		return fmt.Errorf("start the victim: %w", err)
	}
	_, end, err := stackRange(fx.victim.Process.Pid)
	if err != nil {
		return fmt.Errorf("find the victim's stack: %w", err)
	}
	fx.stackLen = 16 << 10
	fx.stackAddr = end - uint64(fx.stackLen)
	return nil
}

// credential returns the ids to start a process as the command's user
// with, or nil when the harness already is that user. keepGroups keeps
// the harness's supplementary groups.
func (fx *fixtures) credential(keepGroups bool) *syscall.Credential {
	if os.Getuid() == fx.uid && os.Getgid() == fx.gid && !keepGroups {
		return nil
	}
	c := &syscall.Credential{Uid: uint32(fx.uid), Gid: uint32(fx.gid), Groups: []uint32{}}
	if keepGroups {
		c.Groups, c.NoSetGroups = nil, true
	}
	return c
}

// openPTY opens a pseudo-terminal in raw mode and drains its master.
func (fx *fixtures) openPTY() error {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/dev/ptmx", Err: err}
	}
	fx.master = os.NewFile(uintptr(m), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		return os.NewSyscallError("ioctl TIOCSPTLCK", err)
	}
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		return os.NewSyscallError("ioctl TIOCGPTN", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	s, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	fx.slave = os.NewFile(uintptr(s), name)
	t, err := unix.IoctlGetTermios(s, unix.TCGETS)
	if err != nil {
		return os.NewSyscallError("ioctl TCGETS", err)
	}
	// cfmakeraw(3): no echo, no line editing, no signals.
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag = t.Cflag&^(unix.CSIZE|unix.PARENB) | unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(s, unix.TCSETS, t); err != nil {
		return os.NewSyscallError("ioctl TCSETS", err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := fx.master.Read(buf)
			fx.ttyMu.Lock()
			fx.ttyOut = append(fx.ttyOut, buf[:n]...)
			fx.ttyMu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return nil
}

// takeTTY returns and forgets what the master has read so far.
func (fx *fixtures) takeTTY() string {
	fx.ttyMu.Lock()
	defer fx.ttyMu.Unlock()
	s := string(fx.ttyOut)
	fx.ttyOut = nil
	return s
}

// makeHandle takes the secret's file handle, as an attacker outside would
// pass it in (name_to_handle_at(2)).
func (fx *fixtures) makeHandle() error {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, fx.secret, 0)
	if err != nil {
		return &os.PathError{Op: "name_to_handle_at", Path: fx.secret, Err: err}
	}
	fx.handleType, fx.handle = h.Type(), h.Bytes()
	return nil
}

// leak opens descriptors without close-on-exec, as a careless caller
// would, numbered above the ones exec hands out: the secret, and the
// directory outside the rules (an openat(2) base). The returned function
// closes them.
func (fx *fixtures) leak() (func(), error) {
	var fds []int
	undo := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	for _, o := range []struct {
		path  string
		flags int
	}{{fx.secret, unix.O_RDONLY}, {fx.outside, unix.O_PATH | unix.O_DIRECTORY}} {
		fd, err := unix.Open(o.path, o.flags, 0)
		if err != nil {
			undo()
			return nil, &os.PathError{Op: "open", Path: o.path, Err: err}
		}
		// F_DUPFD, unlike F_DUPFD_CLOEXEC, leaves close-on-exec clear.
		high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, 40)
		unix.Close(fd)
		if err != nil {
			undo()
			return nil, os.NewSyscallError("fcntl F_DUPFD", err)
		}
		fds = append(fds, high)
	}
	return undo, nil
}

func (fx *fixtures) closeIfSet() {
	if fx != nil {
		fx.close()
	}
}

// close stops the victim and the listeners and removes the files.
func (fx *fixtures) close() {
	if fx.victimStdin != nil {
		fx.victimStdin.Close()
	}
	if fx.victim != nil {
		fx.victim.Process.Kill()
		fx.victim.Wait()
	}
	for _, l := range fx.listeners {
		l.Close()
	}
	for _, c := range fx.closers {
		c.Close()
	}
	if fx.slave != nil {
		fx.slave.Close()
	}
	if fx.master != nil {
		fx.master.Close()
	}
	for _, d := range []string{fx.base, fx.hidden} {
		if d != "" && strings.Contains(filepath.Base(d), "vm-run-selftest-") {
			os.RemoveAll(d)
		}
	}
}
