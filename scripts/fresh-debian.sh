#!/usr/bin/env bash
# Acceptance check of the README's promise: on a fresh Debian 12 machine, the
# README's two set-up commands (`make demo`, `make test`) do everything. Not
# part of `make test`. Run as root:
#
#   bash scripts/fresh-debian.sh            # new rootfs (debootstrap, minutes)
#   FRESH_REUSE=1 bash scripts/fresh-debian.sh   # reuse the last rootfs
#
# FRESH_DIR (default /var/tmp/fresh-debian) holds rootfs/ and logs/STAMP/.
# Why each step is as it is:
#   - debootstrap --variant=minbase from the mirror this machine's apt uses:
#     a bookworm with nothing but the essential packages. Inside, apt-get
#     installs exactly what the README tells a user to install first (make,
#     git) and ca-certificates, as a server install has, with recommends, as
#     a user's `apt-get install` would. sources.list gets the release, its
#     updates and security, as the Debian installer writes it.
#   - From the host it gets only what any machine on this network has: the
#     resolver, the CA certificates (an egress CA may be among them) and
#     proxy settings if there are any; never the host's Go, Node.js, npm
#     cache or Go module cache.
#   - It is entered with unshare (mount and PID namespaces) and pivot_root,
#     not chroot: the kernel refuses user namespaces to a chrooted process
#     (root not the mount namespace's root), and vm-run lives on them. A
#     fresh proc is mounted for the new PID namespace (user namespaces may
#     mount proc only where a full one is visible), /sys and /dev are bound
#     recursively (cgroups, pts, shm), /run is a new tmpfs, as at boot.
#     The namespaces die with the run: nothing stays mounted on the host.
#   - The repository comes from a bare clone of this checkout's HEAD (not
#     its uncommitted changes), cloned again inside to /root/vm-run, where a
#     user's clone would be.
set -euo pipefail

say() { echo "fresh-debian: $*"; }
die() { say "error: $*"; exit 1; }
suite=bookworm
inner=/root/fresh-debian.sh   # this script's copy inside the rootfs
logs_in=/var/log/fresh-debian # the host's log directory, bound there

# inside: runs in the new root, as root with a login-like environment.
inside() {
	local results=$logs_in/results rc=0
	say "inside: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), pid $$"
	say "inside: user namespaces as root: unshare --user --map-root-user true"
	unshare --user --map-root-user true || die "no user namespace as root (see above)"
	say "inside: user namespaces as uid 65534: setpriv ... unshare --user true"
	setpriv --reuid 65534 --regid 65534 --clear-groups unshare --user true ||
		die "no user namespace as uid 65534 (see above)"
	say "inside: apt-get update; apt-get install make git ca-certificates (log: apt.log)"
	{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y make git ca-certificates; } \
		>"$logs_in/apt.log" 2>&1 || die "apt-get failed: $(tail -n 5 "$logs_in/apt.log")"
	rm -rf /root/vm-run
	say "inside: git clone /srv/vm-run.git /root/vm-run"
	git clone -q /srv/vm-run.git /root/vm-run
	cd /root/vm-run
	say "inside: at $(git log -1 --format='%h %s' | cut -c1-72)"
	# The README's set-up commands: the indented `make ...` lines before its
	# first section, each without its comment.
	local cmds=()
	mapfile -t cmds < <(sed -n '/^## /q; s/^    \(make [^#]*[^# ]\) *\(#.*\)\{0,1\}$/\1/p' README.md)
	((${#cmds[@]})) || die "no indented make commands at the top of README.md"
	say "inside: the README's set-up commands: $(printf '[%s] ' "${cmds[@]}")"
	local cmd log start status
	for cmd in "${cmds[@]}"; do
		log=$logs_in/$(echo "$cmd" | tr -c 'a-z0-9\n' '-').log
		say "inside: running '$cmd' in /root/vm-run (log: ${log##*/})"
		start=$SECONDS
		if bash -lc "$cmd" </dev/null >"$log" 2>&1; then status=PASS; else status=FAIL; rc=1; fi
		say "inside: '$cmd' $status after $((SECONDS - start))s"
		[ $status = PASS ] || { echo "----- last 40 lines of ${log##*/}"; tail -n 40 "$log"; echo "-----"; }
		printf '%s\t%s\t%s\n' "$cmd" "$status" "$((SECONDS - start))" >>"$results"
	done
	return $rc
}

# enter ROOTFS: runs in fresh mount and PID namespaces (unshare), mounts what a
# booted system has, pivots into ROOTFS and runs `inside` there.
enter() {
	local r=$1
	mount --bind "$r" "$r"   # pivot_root wants a mount point
	mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
	mount --rbind /sys "$r/sys"
	mount --rbind /dev "$r/dev"
	mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs "$r/run"
	mkdir -p "$r$logs_in"
	mount --bind "$LOGS" "$r$logs_in"
	cd "$r"
	pivot_root . .   # the old root is now stacked on /: detach it
	umount -l .
	cd /
	exec env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM="${TERM:-dumb}" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
		${no_proxy:+no_proxy=$no_proxy} ${HTTP_PROXY:+HTTP_PROXY=$HTTP_PROXY} \
		${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${NO_PROXY:+NO_PROXY=$NO_PROXY} \
		/bin/bash "$inner" --inside
}

# main: on the host. A function, so that bash has read all of it before it
# runs: the file may be edited during a run of twenty minutes.
main() {
	[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, mounts, namespaces)"
	fresh=${FRESH_DIR:-/var/tmp/fresh-debian}
	R=$fresh/rootfs
	LOGS=$fresh/logs/$(date +%Y%m%d-%H%M%S)
	export LOGS
	mkdir -p "$LOGS"
	say "logs in $LOGS"
	t0=$SECONDS
	boot="reused"

	if [ "${FRESH_REUSE:-}" = 1 ] && [ -f "$R/.fresh-debian-done" ]; then
		say "reusing the rootfs $R (FRESH_REUSE=1)"
	else
		if [ -e "$R" ]; then
			grep -q " $R[/ ]" /proc/self/mountinfo && die "something is mounted under $R: unmount it first"
			say "removing the previous rootfs $R"
			rm -rf "$R"
		fi
		if ! command -v debootstrap >/dev/null; then
			say "installing debootstrap (apt-get)"
			apt-get update -q >"$LOGS/host-apt.log" 2>&1
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >>"$LOGS/host-apt.log" 2>&1
		fi
		mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
			grep -v -e security -e backports | grep '^http' | head -n1 || true)
		mirror=${mirror:-http://deb.debian.org/debian/}
		mirror=${mirror%/}
		security=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
			grep -e '-security' | head -n1 || true)
		security=${security:-http://deb.debian.org/debian-security/}
		say "debootstrap --variant=minbase $suite from $mirror (log: debootstrap.log)"
		start=$SECONDS
		debootstrap --variant=minbase "$suite" "$R" "$mirror" >"$LOGS/debootstrap.log" 2>&1 ||
			die "debootstrap failed: $(tail -n 5 "$LOGS/debootstrap.log")"
		boot="$((SECONDS - start))s"
		say "debootstrap done after $boot"
		cat >"$R/etc/apt/sources.list" <<-EOF
			deb $mirror $suite main
			deb $mirror $suite-updates main
			deb ${security%/} $suite-security main
		EOF
		touch "$R/.fresh-debian-done"
	fi

	say "copying the network's settings: resolv.conf, CA certificates, proxies"
	cp -L /etc/resolv.conf "$R/etc/resolv.conf"
	mkdir -p "$R/etc/ssl/certs" "$R/usr/local/share/ca-certificates"
	cp -a /etc/ssl/certs/. "$R/etc/ssl/certs/"
	[ -d /usr/local/share/ca-certificates ] && cp -a /usr/local/share/ca-certificates/. "$R/usr/local/share/ca-certificates/"
	for f in /etc/apt/apt.conf.d/*proxy*; do
		[ -e "$f" ] && { say "  apt proxy: $f"; cp "$f" "$R/etc/apt/apt.conf.d/"; }
	done
	npmrc=""
	if command -v npm >/dev/null; then
		for k in proxy https-proxy; do
			v=$(npm config get "$k" 2>/dev/null || true)
			[ -n "$v" ] && [ "$v" != null ] && [ "$v" != undefined ] && npmrc+="$k=$v"$'\n'
		done
	fi
	[ -z "$npmrc" ] || { say "  npm proxy -> /etc/npmrc"; printf '%s' "$npmrc" >"$R/etc/npmrc"; }
	[ -z "${http_proxy:-}${https_proxy:-}${HTTP_PROXY:-}${HTTPS_PROXY:-}" ] || say "  proxy variables passed in"

	local repo head
	repo=$(cd "$(dirname "$0")/.." && pwd)
	head=$(git -C "$repo" log -1 --format='%h %s' | cut -c1-60)
	say "bare clone of $repo at HEAD ($head) -> $R/srv/vm-run.git"
	rm -rf "$R/srv/vm-run.git"
	git clone -q --bare --no-hardlinks "$repo" "$R/srv/vm-run.git"
	cp "$0" "$R$inner"

	say "entering $R: unshare --mount --pid --fork, pivot_root"
	rc=0
	unshare --mount --pid --fork --mount-proc --propagation private \
		bash "$R$inner" --enter "$R" 2>&1 | tee "$LOGS/run.log" || rc=$?

	say "summary (logs in $LOGS)"
	say "  commit: $head"
	say "  rootfs: $boot"
	if [ -f "$LOGS/results" ]; then
		while IFS=$'\t' read -r cmd status secs; do
			say "  $cmd: $status in ${secs}s ($((secs / 60))m$((secs % 60))s)"
		done <"$LOGS/results"
	fi
	n=$(grep -c . "$LOGS/results" 2>/dev/null || true)
	[ "${n:-0}" -ge 2 ] || { say "  fewer than two commands ran"; rc=1; }
	grep -q FAIL "$LOGS/results" 2>/dev/null && rc=1
	say "  total: $((SECONDS - t0))s; result: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
	return $rc
}

case "${1:-}" in
--inside) inside; exit ;;
--enter) enter "$2"; exit ;;
*) main; exit ;;
esac
