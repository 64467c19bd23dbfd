//go:build !linux

package policy

// hostLookup fails every lookup with [ErrNotSupported]: vm-run sandboxes,
// and so judges paths, on Linux only. Failing closed makes every path
// argument deny rather than be judged lexically.
type hostLookup struct{}

func (hostLookup) lstat(string) (entry, error) { return entry{}, ErrNotSupported }

func (hostLookup) readlink(string) (string, error) { return "", ErrNotSupported }

func (hostLookup) entries(string) ([]string, error) { return nil, ErrNotSupported }
