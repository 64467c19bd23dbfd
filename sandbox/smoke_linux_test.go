package sandbox_test

import "testing"

func TestSmoke(t *testing.T) {
	b := newBox(t)
	r := run(t, b.sh(t, "strict", "id; echo $$; ls -la /tmp /run; cat /proc/self/status | grep -E 'Cap|NoNew|Seccomp|Uid'; ulimit -n -c; pwd; env"), "", nil)
	t.Logf("%v", r)
	t.Logf("%s", r.stdout)
}
