package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The commands that grant trust (`vm-run approvals approve`, `vm-run pins
// accept`) need a person at a terminal: they read the answer from
// /dev/tty, not from stdin, in the terminal's foreground, after
// discarding what was typed ahead, and only a code shown there moments
// before counts. An agent that runs commands in a tool shell (pipes, no
// controlling terminal), as MCP clients' agents do, cannot pass; a process
// of the same account that drives a pseudo-terminal of its own can (the
// README's threat model says so).

// openTerminal opens the controlling terminal for a person's answer, or
// fails with an error and hint when there is none or vm-run is not in its
// foreground. what names the act ("approving"); hint says what to do.
func openTerminal(what, hint string) (*os.File, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &hintError{err: fmt.Errorf("%s needs a terminal: %w", what, err), hint: hint}
	}
	fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	if err != nil {
		tty.Close()
		return nil, &hintError{err: fmt.Errorf("%s needs a terminal: /dev/tty: %w", what, &os.SyscallError{Syscall: "ioctl TIOCGPGRP", Err: err}), hint: hint}
	}
	if fg != unix.Getpgrp() {
		tty.Close()
		return nil, &hintError{err: fmt.Errorf("%s needs the terminal's foreground: vm-run runs in the background (process group %d, the terminal's is %d)", what, unix.Getpgrp(), fg),
			hint: "run it in the foreground: " + hint}
	}
	return tty, nil
}

// askCode discards what was typed ahead on tty, shows code, and reports
// whether the person typed it back (case does not matter).
func askCode(tty *os.File, code, prompt string) (bool, error) {
	if err := tcflush(int(tty.Fd())); err != nil {
		return false, fmt.Errorf("discard typed-ahead input: %w", &os.SyscallError{Syscall: "ioctl TCFLSH", Err: err})
	}
	fmt.Fprintf(tty, "\n%s, type the code %s and press Enter (anything else cancels): ", prompt, code)
	typed, ok := <-readLine(tty)
	return ok && strings.EqualFold(typed, code), nil
}

// newCode returns a one-time code of six letters and digits a person can
// read and type, without the ones easily confused (0/o, 1/l/i).
func newCode() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
