package sandbox_test

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vm-run/vm-run/profiles"
	"github.com/vm-run/vm-run/sandbox"
)

// fakeNetwork is a sandbox.Network that hands the device to the test, or
// closes it at once (as a dead parent's does), or refuses it.
type fakeNetwork struct {
	dev    chan *os.File
	refuse error
}

func (f *fakeNetwork) Attach(dev *os.File) error {
	if f.refuse != nil {
		dev.Close()
		return f.refuse
	}
	if f.dev == nil {
		dev.Close()
		return nil
	}
	f.dev <- dev
	return nil
}

// runNetwork runs s with n as its network and returns its output.
func runNetwork(t *testing.T, b *box, s *sandbox.Spec, n sandbox.Network) (result, error) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outc, errc := readAll(outR), readAll(errR)
	devNull, _ := os.Open(os.DevNull)
	defer devNull.Close()
	proc, serr := sandbox.Spawn(b.uid, b.gid, sandbox.Stdio{Stdin: devNull, Stdout: outW, Stderr: errW}).StartNetwork(s, n)
	var r result
	if serr == nil {
		r.st, r.err = proc.Wait()
	}
	outW.Close()
	errW.Close()
	r.stdout, r.stderr = <-outc, <-errc
	return r, serr
}

func egressSpec(t *testing.T, b *box, script string) *sandbox.Spec {
	t.Helper()
	p := b.profile(t, "strict")
	p.Network = profiles.Network{Mode: profiles.NetworkEgress}
	return b.build(t, p, "/bin/bash", "-c", script)
}

func requireTUN(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("network mode egress needs the TUN device (/dev/net/tun) open to uid %d: %v", os.Getuid(), err)
	}
	t.Skipf("network mode egress needs the TUN device (/dev/net/tun) open to uid %d: %v", os.Getuid(), err)
}

// TestEgressDevice: in mode egress the sandbox's packets come out of the
// device the parent holds, its resolver is the stub and its hosts file
// names localhost only; and once the parent's device is closed, as when
// vm-run dies, the sandbox has no network at all.
func TestEgressDevice(t *testing.T) {
	requireSandbox(t)
	requireTUN(t)
	b := newBox(t)
	const send = "echo probe > /dev/udp/203.0.113.9/7 && echo sent"
	n := &fakeNetwork{dev: make(chan *os.File, 1)}
	packet := make(chan []byte, 1)
	go func() {
		dev := <-n.dev
		defer dev.Close()
		buf := make([]byte, 65536)
		for {
			k, err := dev.Read(buf)
			if err != nil {
				packet <- nil
				return
			}
			// IPv4, UDP, to 203.0.113.9 (RFC 791, RFC 768).
			if k > 28 && buf[0]>>4 == 4 && buf[9] == 17 && bytes.Equal(buf[16:20], []byte{203, 0, 113, 9}) {
				packet <- bytes.Clone(buf[:k])
				return
			}
		}
	}()
	r, err := runNetwork(t, b, egressSpec(t, b, "cat /etc/resolv.conf /etc/hosts; ls /sys/class/net 2>/dev/null; "+send), n)
	if err != nil || r.err != nil || r.st != (sandbox.Status{}) {
		t.Fatalf("run: %v, %v", err, r)
	}
	for _, want := range []string{"nameserver 198.18.0.1\n", "127.0.0.1\tlocalhost", "sent\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout %q, want %q in it", r.stdout, want)
		}
	}
	if strings.Count(r.stdout, "nameserver") != 1 {
		t.Errorf("resolv.conf names more than the stub: %q", r.stdout)
	}
	select {
	case p := <-packet:
		if p == nil || !bytes.HasSuffix(p, []byte("probe\n")) {
			t.Errorf("the packet read from the device: % x, want the UDP datagram \"probe\"", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet came out of the device")
	}

	// The same command with the device closed by the parent.
	r, err = runNetwork(t, b, egressSpec(t, b, send), &fakeNetwork{})
	if err != nil || r.err != nil {
		t.Fatalf("run: %v, %v", err, r)
	}
	if r.st.Code == 0 || !strings.Contains(r.stderr, "Network is unreachable") {
		t.Errorf("with the device closed: %v; want a failure, network unreachable", r)
	}
}

// TestEgressAttachRefused: a network that cannot attach stops the launch,
// and the command never runs; a spec in mode egress without a network
// does not start either.
func TestEgressAttachRefused(t *testing.T) {
	requireSandbox(t)
	requireTUN(t)
	b := newBox(t)
	s := egressSpec(t, b, "echo ran")
	if r, err := runNetwork(t, b, s, &fakeNetwork{refuse: errors.New("no stack today")}); err == nil || !strings.Contains(err.Error(), "no stack today") || r.stdout != "" {
		t.Errorf("StartNetwork with a refusing network = %v, stdout %q; want its error and no command", err, r.stdout)
	}
	if r, err := runNetwork(t, b, egressSpec(t, b, "echo ran"), nil); err == nil || !strings.Contains(err.Error(), "nothing carries") || r.stdout != "" {
		t.Errorf("StartNetwork with no network = %v, stdout %q; want an error and no command", err, r.stdout)
	}
	// The probe: the same command runs when the network attaches.
	if r, err := runNetwork(t, b, egressSpec(t, b, "echo ran"), &fakeNetwork{}); err != nil || r.st != (sandbox.Status{}) || r.stdout != "ran\n" {
		t.Fatalf("with a network: %v, %v", err, r)
	}
}
