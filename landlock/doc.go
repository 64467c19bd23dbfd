// Package landlock turns a profile's filesystem and network rules into a
// Landlock ruleset (via github.com/landlock-lsm/go-landlock) and decides
// whether the running kernel can enforce what the profile requires.
//
// The parent checks before it starts anything; the init stage restricts
// itself just before it executes the command:
//
//	rules := landlock.Rules{
//		Read:       []string{"/usr", "/etc"},
//		Exec:       []string{"/usr/bin"},
//		Write:      []string{workspace},
//		Devices:    []string{"/dev/null"},
//		ConnectTCP: []uint16{8080},
//		Require:    []landlock.Feature{landlock.FeatureScopeSignal},
//	}
//	warnings, err := rules.Check(landlock.Detect())
//	if err != nil {
//		return err // a *MissingFeatureError: exit 125
//	}
//	for _, w := range warnings { // only with BestEffort
//		fmt.Fprintln(os.Stderr, "vm-run: warning:", w)
//	}
//	// ... later, in the init stage:
//	if err := rules.Restrict(); err != nil {
//		return err
//	}
//
// # Features and ABI versions
//
// Each [Feature] arrived with a Landlock ABI version (see
// Documentation/userspace-api/landlock.rst). [Detect] reads the kernel's ABI
// and fixed errata into a [Support]; [Support.Has] says whether a feature is
// enforced and [Support.Features] lists them all for `vm-run doctor`.
// [Rules.Check] fails with a [*MissingFeatureError] for the first feature a
// profile requires and the kernel lacks. Paths, ports and devices in the
// rules require filesystem, tcp and ioctl-dev without being listed
// ([Rules.Required]).
//
// [Rules.Restrict] handles every access right and scope of the highest ABI
// the kernel offers, so whatever the rules do not grant is denied. It never
// uses go-landlock's best-effort mode: with [Rules.BestEffort] the profile
// accepts, through Check's warnings, exactly what goes unenforced.
//
// # Errata
//
// Erratum 2 (security/landlock/errata/abi-6.h, "Scoped signal handling")
// must be fixed for [FeatureScopeSignal]: before the fix a thread could not
// signal threads of its own process in another Landlock domain, and every
// thread of a Go program sits in its own domain after Restrict below ABI 8.
// go-landlock treats a kernel without the fix as ABI 5, so every feature
// from ABI 6 on needs it here.
//
// # Denial records
//
// From ABI 7 the kernel can log each access a domain denies through the
// audit subsystem, if audit is enabled (Documentation/admin-guide/LSM/
// landlock.rst, "Audit"): a LANDLOCK_ACCESS record (type 1423) per denial,
// naming the domain, the blockers (fs.read_file, fs.execute, scope.signal,
// ...) and the object (path="..." as the sandbox sees it), and with a
// domain's first denial a LANDLOCK_DOMAIN record (1424) naming the pid and
// executable of the process that created it. By default only denials of
// the program that restricted itself are logged; with [Rules].LogDenials,
// [Rules.Restrict] sets LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON so that the
// command the init stage executes is logged too. vm-run sets it only when
// it reads the records: a hostile command could otherwise fill the host's
// audit log with denials nobody asked for.
//
// [WatchDenials] reads them back: it joins the audit netlink multicast
// group AUDIT_NLGRP_READLOG (root: CAP_AUDIT_READ; records come whether
// or not auditd runs) before the sandbox starts, keeps the Landlock
// records the kernel sent (sender port 0: a process with CAP_NET_ADMIN
// can multicast to the group too), and [DenialWatch.Denials] returns those
// of the domains the init stage created: its pid in the host's PID
// namespace, its uid and its executable, as the domain's record names
// them. A domain the command creates itself is its own, and not reported. A session's end can
// come before the kernel's audit thread has delivered its records:
// [DenialWatch.Flush] sends a marker (an AUDIT_USER message, which lands in
// the host's audit log too) and waits for it to come back, records being
// delivered in order. [AuditStatus] says, for `vm-run doctor`, whether
// this host and user can have them.
//
// # Limits
//
// Landlock's TCP rights cover TCP only (erratum 1, errata/abi-4.h):
// MPTCP, SCTP and SMC sockets are not restricted by them, nor is UDP before
// ABI 10. Only the sandbox's network namespace stops those: with loopback
// up, an MPTCP socket reaches every loopback port whatever ConnectTCP says.
// Restricting is irreversible and applies to the whole process; see
// [Rules.Restrict] for how it affects signalling children below ABI 8.
package landlock
