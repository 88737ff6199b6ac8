#!/usr/bin/env bash
# Boots real Debian kernels (5.10 to the newest) in qemu with a busybox
# initramfs and runs capsrec's privileged tests in each, on every attach
# method the kernel has. Kernels are fetched with apt into .cache/vmtest.
#
#   bash test/vm/run.sh            all kernels
#   VMTEST_KERNELS="5.10 sid" bash test/vm/run.sh
#   VMTEST_KERNELS=6.12-cgroup2 bash test/vm/run.sh   cgroup v2 only: TestPureCgroupV2Pod
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${VMTEST_CACHE:-$root/.cache/vmtest}
kernels=${VMTEST_KERNELS:-"5.10 6.1 6.12 sid 6.12-cgroup2"}
tests=${VMTEST_TESTS:-'TestRecordDmesgAsNobodyIsDenied|TestCallSiteClasses|TestUnavailableMethodIsOneLine|TestRecordEndsCleanly|TestRecordWithExternalBTF|TestProfileLive|TestContextChangesBetweenChecks|TestContextAfterLostRecords'}
mkdir -p "$cache"/{debs,kernels,apt/lists/partial,apt/cache/archives/partial}

log() { printf 'vmtest: %s\n' "$*" >&2; }

# bullseye and sid are not in the machine's sources: a private apt
# configuration reaches them at the same URIs as the machine's own Debian sources.
machine_uri() { # $1: "security" or "main"
	local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
	local uris
	uris=$(cat "${files[@]}" 2>/dev/null | grep -oE '(URIs:[[:space:]]*|^deb (\[[^]]*\] )?)[a-z]+://[^ ]+' | grep -oE '[a-z]+://[^ ]+' | grep -i debian || true)
	if [ "$1" = security ]; then
		grep -m1 -- '-security' <<<"$uris"
	else
		grep -v -- '-security' <<<"$uris" | head -n1
	fi
}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
main_uri=$(machine_uri main)
security_uri=$(machine_uri security)
[ -n "$main_uri" ] && [ -n "$security_uri" ] || { log "no Debian URIs in the machine's apt sources"; exit 1; }
cat >"$cache/apt/sources.list" <<SRC
deb [signed-by=$keyring] $main_uri bullseye main
deb [signed-by=$keyring] $security_uri bullseye-security main
deb [signed-by=$keyring] $main_uri sid main
SRC
private=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null -o APT::Sandbox::User=root
	-o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache")
if [ -z "$(find "$cache/apt/lists" -name '*Packages*' -mmin -720 2>/dev/null | head -n1)" ]; then
	log "updating the private apt lists (bullseye, sid)"
	apt-get "${private[@]}" -qq update
fi

newest() { # $1: regexp on package names; rest: apt options
	local re=$1
	shift
	apt-cache "$@" search --names-only "$re" | awk '{print $1}' | grep -E "$re" | sort -V | tail -n1
}

# fetch_kernel NAME REGEXP [apt options]: prints the path of an extracted vmlinuz.
fetch_kernel() {
	local name=$1 re=$2
	shift 2
	local pkg
	pkg=$(newest "$re" "$@")
	[ -n "$pkg" ] || { log "$name: no package matches $re"; return 1; }
	local dir=$cache/kernels/$pkg
	if [ ! -d "$dir" ]; then
		log "$name: downloading $pkg"
		(cd "$cache/debs" && apt-get -o APT::Sandbox::User=root "$@" -qq download "$pkg")
		mkdir -p "$dir.tmp"
		dpkg-deb --fsys-tarfile "$cache/debs/${pkg}"_*.deb | tar -x -C "$dir.tmp" --wildcards '*vmlinuz*'
		mv "$dir.tmp" "$dir"
	fi
	find "$dir" -name 'vmlinuz*' -type f | head -n1
}

log "building the static test binary and capsrec"
build=$cache/build
rm -rf "$build" && mkdir -p "$build/rootfs"/{bin,proc,sys,dev,tmp,work,sys/fs/bpf}
(cd "$root" && CGO_ENABLED=0 go test -c -o "$build/rootfs/capsrec.test" ./test/e2e && CGO_ENABLED=0 go build -o "$build/rootfs/capsrec" .)
if [ -n "${VMTEST_BENCH:-}" ]; then
	(cd "$root" && CGO_ENABLED=0 go build -o "$build/rootfs/capsbench" ./bench)
fi
cp -r "$root/testdata" "$build/rootfs/work/"
cp /bin/busybox "$build/rootfs/bin/busybox"
for app in sh mount mkdir dmesg chown cat echo sleep poweroff sync uname unshare; do
	ln -s busybox "$build/rootfs/bin/$app"
done
cat >"$build/rootfs/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
. /vmtest.env
# cgroup v2 (for checks that move between cgroups); for 6.12-cgroup2 the kernel is also booted with
# cgroup_no_v1=all: a node as most production ones.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "VMTEST-KERNEL: $(uname -r)"
cd /work
if [ -n "$VMTEST_BENCH" ]; then
	echo "VMTEST-BENCH-BEGIN"
	/capsbench -capsrec /capsrec -methods "$CAPSREC_TEST_METHODS" -n 100000 -rounds 3 2>/dev/null
	echo "VMTEST-EXIT: $?"
	echo "VMTEST-BENCH-END"
else
	/capsrec.test -test.v -test.count=1 -test.run "$VMTEST_TESTS"
	echo "VMTEST-EXIT: $?"
fi
sync
poweroff -f
INIT
chmod +x "$build/rootfs/init"

# boot NAME VMLINUZ METHODS UNAVAILABLE: runs the tests, prints the log, fails on failure or skip.
boot() {
	local name=$1 kernel=$2 methods=$3 unavailable=$4
	local run=${cgroup2:+TestPureCgroupV2Pod} append=${cgroup2:+ cgroup_no_v1=all}
	run=${run:-$tests}
	# A kernel with every method has none to be refused.
	[ -n "$unavailable" ] || run=$(sed 's/|\?TestUnavailableMethodIsOneLine//' <<<"$run")
	cat >"$build/rootfs/vmtest.env" <<ENV
export CAPSREC_BIN=/capsrec CAPSREC_REQUIRE_PRIVILEGED=1 CAPSREC_TEST_SLOW=1
export CAPSREC_TEST_METHODS=$methods CAPSREC_TEST_UNAVAILABLE_METHODS=$unavailable
export VMTEST_TESTS='$run' VMTEST_BENCH='${VMTEST_BENCH:-}'
export CAPSREC_REQUIRE_CGROUP2='${cgroup2:-}'
ENV
	local img=$build/initramfs-$name.cpio.gz out=$build/console-$name.log
	(cd "$build/rootfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$img"
	log "$name: booting ${kernel#"$cache"/kernels/} ($methods)"
	local start=$SECONDS
	timeout 600 qemu-system-x86_64 -m 2048 -smp 2 -cpu max -nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$kernel" -initrd "$img" -append "console=ttyS0 panic=-1 quiet loglevel=3$append" >"$out" 2>&1 || true
	sed 's/\r$//' "$out" | grep -vE '^\s*$' | sed "s/^/[$name] /"
	local status
	status=$(sed -n 's/^VMTEST-EXIT: \([0-9]*\).*/\1/p' "$out" | tr -d '\r')
	if [ "$status" != 0 ] || grep -q -- '--- SKIP' "$out"; then
		log "$name: FAILED after $((SECONDS - start)) s"
		return 1
	fi
	log "$name: passed in $((SECONDS - start)) s"
}

failed=()
for k in $kernels; do
	cgroup2=
	case $k in
	# 6.12 once more, cgroup v2 only: a systemd-driver pod path answered by a small CRI server.
	6.12-cgroup2) vmlinuz=$(fetch_kernel 6.12 '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$') methods=fexit,kprobe unavailable=tracepoint cgroup2=1 ;;
	5.10) vmlinuz=$(fetch_kernel 5.10 '^linux-image-5\.10\.0-[0-9]+-cloud-amd64$' "${private[@]}") methods=fexit,kprobe unavailable=tracepoint ;;
	6.1) vmlinuz=$(fetch_kernel 6.1 '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$') methods=fexit,kprobe unavailable=tracepoint ;;
	6.12) vmlinuz=$(fetch_kernel 6.12 '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$') methods=fexit,kprobe unavailable=tracepoint ;;
	sid) vmlinuz=$(fetch_kernel sid '^linux-binary-unsigned-.*-cloud-amd64$' "${private[@]}") methods=tracepoint,fexit,kprobe unavailable= ;;
	*) log "unknown kernel $k" && exit 2 ;;
	esac
	if ! boot "$k" "$vmlinuz" "$methods" "$unavailable"; then
		# Software emulation now and then oopses a kernel while it boots (int3 in
		# its own text patching), before any test runs: boot once more then.
		if grep -q '=== RUN' "$build/console-$k.log"; then
			failed+=("$k")
		else
			log "$k: the kernel died before the tests started; booting it again"
			boot "$k" "$vmlinuz" "$methods" "$unavailable" || failed+=("$k")
		fi
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	log "failed on: ${failed[*]}"
	exit 1
fi
log "all kernels passed: $kernels"
