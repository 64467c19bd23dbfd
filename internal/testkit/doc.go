// Package testkit holds test helpers shared by vm-run's packages, such as
// skip helpers that name exactly the kernel feature a test needs:
//
//	func TestScopedSignals(t *testing.T) {
//		testkit.RequireLandlockABI(t, 6)
//		...
//	}
//
// Nothing outside _test.go files imports it.
package testkit
