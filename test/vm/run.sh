#!/usr/bin/env bash
# Boots real Debian kernels (5.10 to the newest, x86-64 and arm64) in qemu
# with a busybox initramfs and runs capsrec's privileged tests in each, on
# every attach method the kernel has. Kernels are fetched with apt into
# .cache/vmtest; arm64 ones (and arm64's busybox) through a private apt
# configuration for that architecture, and booted on qemu-system-aarch64's
# virt machine (software emulation).
#
#   bash test/vm/run.sh            all kernels
#   VMTEST_KERNELS="5.10 sid" bash test/vm/run.sh
#   VMTEST_KERNELS=6.12-cgroup2 bash test/vm/run.sh   cgroup v2 only: TestPureCgroupV2Pod
#   VMTEST_KERNELS="arm64-6.1 arm64-sid" bash test/vm/run.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${VMTEST_CACHE:-$root/.cache/vmtest}
kernels=${VMTEST_KERNELS:-"5.10 6.1 6.12 sid 6.12-cgroup2 arm64-6.1 arm64-6.12 arm64-sid arm64-6.12-cgroup2"}
tests=${VMTEST_TESTS:-'TestRecordDmesgAsNobodyIsDenied|TestCallSiteClasses|TestUnavailableMethodIsOneLine|TestRecordEndsCleanly|TestRecordWithExternalBTF|TestProfileLive|TestContextChangesBetweenChecks|TestContextAfterLostRecords|TestCapsetRaceDecidedByTheKernel|TestRecordCommand$|TestRecordCommandExecFromAThread|TestNetFactsRecorded'}
mkdir -p "$cache"/{debs,kernels,apt/lists/partial,apt/cache/archives/partial,apt-arm64/lists/partial,apt-arm64/cache/archives/partial}

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
# arm64: Debian's arm64 packages of bookworm and sid, at the same URIs.
cat >"$cache/apt-arm64/sources.list" <<SRC
deb [arch=arm64 signed-by=$keyring] $main_uri bookworm main
deb [arch=arm64 signed-by=$keyring] $main_uri bookworm-updates main
deb [arch=arm64 signed-by=$keyring] $security_uri bookworm-security main
deb [arch=arm64 signed-by=$keyring] $main_uri sid main
SRC
arm64=(-o "Dir::Etc::SourceList=$cache/apt-arm64/sources.list" -o Dir::Etc::SourceParts=/dev/null -o APT::Sandbox::User=root
	-o "Dir::State::Lists=$cache/apt-arm64/lists" -o "Dir::Cache=$cache/apt-arm64/cache" -o Dir::State::status=/dev/null
	-o APT::Architecture=arm64 -o APT::Architectures=arm64)
if [[ " $kernels " == *" arm64-"* ]] && [ -z "$(find "$cache/apt-arm64/lists" -name '*Packages*' -mmin -720 2>/dev/null | head -n1)" ]; then
	log "updating the private apt lists (arm64: bookworm, sid)"
	apt-get "${arm64[@]}" -qq update
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

# busybox_for ARCH: a static busybox of that architecture: the machine's own
# for amd64, arm64's from its busybox-static package.
busybox_for() {
	if [ "$1" = amd64 ]; then
		echo /bin/busybox
		return
	fi
	local dir=$cache/busybox-$1
	if [ ! -x "$dir/busybox" ]; then
		rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp"
		(cd "$cache/debs" && apt-get "${arm64[@]}" -qq download busybox-static)
		# /bin/busybox before trixie, /usr/bin/busybox since
		dpkg-deb --fsys-tarfile "$(ls -t "$cache"/debs/busybox-static_*_"$1".deb | head -n1)" | tar -x -C "$dir.tmp" --wildcards '*bin/busybox'
		mkdir -p "$dir" && mv "$(find "$dir.tmp" -name busybox -type f | head -n1)" "$dir/busybox" && rm -rf "$dir.tmp"
	fi
	echo "$dir/busybox"
}

# build_rootfs ARCH: the static test binary, capsrec and busybox of ARCH, in
# $cache/build-ARCH, once a run.
declare -A built=()
build_rootfs() {
	local arch=$1
	build=$cache/build-$arch
	[ -n "${built[$arch]:-}" ] && return
	built[$arch]=1
	log "building the static test binary and capsrec for $arch"
	rm -rf "$build" && mkdir -p "$build/rootfs"/{bin,proc,sys,dev,tmp,work,sys/fs/bpf}
	(cd "$root" && CGO_ENABLED=0 GOARCH=$arch go test -c -o "$build/rootfs/capsrec.test" ./test/e2e &&
		CGO_ENABLED=0 GOARCH=$arch go build -o "$build/rootfs/capsrec" .)
	if [ -n "${VMTEST_BENCH:-}" ]; then
		(cd "$root" && CGO_ENABLED=0 GOARCH=$arch go build -o "$build/rootfs/capsbench" ./bench)
	fi
	cp -r "$root/testdata" "$build/rootfs/work/"
	local busybox
	busybox=$(busybox_for "$arch")
	cp "$busybox" "$build/rootfs/bin/busybox"
	for app in sh mount mkdir dmesg chown chmod cat echo sleep poweroff sync uname unshare; do
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
}

# boot NAME ARCH VMLINUZ METHODS UNAVAILABLE: runs the tests, prints the log, fails on failure or skip.
boot() {
	local name=$1 arch=$2 kernel=$3 methods=$4 unavailable=$5
	build_rootfs "$arch"
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
	local qemu=(qemu-system-x86_64 -cpu max) console=ttyS0
	if [ "$arch" = arm64 ]; then
		# pauth-impdef: QEMU's own pointer-authentication algorithm, much faster to
		# emulate than the architected one, and as real to the kernel.
		qemu=(qemu-system-aarch64 -machine virt -cpu max,pauth-impdef=on) console=ttyAMA0
	fi
	timeout "${VMTEST_TIMEOUT:-900}" "${qemu[@]}" -m 2048 -smp 2 -nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$kernel" -initrd "$img" -append "console=$console panic=-1 quiet loglevel=3$append" >"$out" 2>&1 &
	local qemu_pid=$!
	# A kernel locked up for good (a CPU stuck over 100 s) will not finish: stop waiting for it.
	while kill -0 "$qemu_pid" 2>/dev/null; do
		if grep -qE 'soft lockup - CPU#[0-9]+ stuck for [0-9]{3,}s' "$out"; then
			kill "$qemu_pid" 2>/dev/null
			break
		fi
		sleep 5
	done
	wait "$qemu_pid" || true
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
	cgroup2= arch=amd64
	case $k in
	# 6.12 once more, cgroup v2 only: a systemd-driver pod path answered by a small CRI server.
	6.12-cgroup2) vmlinuz=$(fetch_kernel 6.12 '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$') methods=fexit,kprobe unavailable=tracepoint cgroup2=1 ;;
	5.10) vmlinuz=$(fetch_kernel 5.10 '^linux-image-5\.10\.0-[0-9]+-cloud-amd64$' "${private[@]}") methods=fexit,kprobe unavailable=tracepoint ;;
	6.1) vmlinuz=$(fetch_kernel 6.1 '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$') methods=fexit,kprobe unavailable=tracepoint ;;
	6.12) vmlinuz=$(fetch_kernel 6.12 '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$') methods=fexit,kprobe unavailable=tracepoint ;;
	sid) vmlinuz=$(fetch_kernel sid '^linux-binary-unsigned-.*-cloud-amd64$' "${private[@]}") methods=tracepoint,fexit,kprobe unavailable= ;;
	# arm64: Debian's cloud kernels (PL011 console, BTF, pointer authentication).
	# 6.1 loads fexit programs but cannot attach them (no ftrace direct calls on arm64 before 6.4).
	arm64-6.1) arch=arm64 vmlinuz=$(fetch_kernel arm64-6.1 '^linux-image-6\.1\.0-[0-9]+-cloud-arm64-unsigned$' "${arm64[@]}") methods=kprobe unavailable=tracepoint,fexit ;;
	arm64-6.12) arch=arm64 vmlinuz=$(fetch_kernel arm64-6.12 '^linux-image-6\.12\.[0-9]+\+deb12-cloud-arm64-unsigned$' "${arm64[@]}") methods=fexit,kprobe unavailable=tracepoint ;;
	arm64-6.12-cgroup2) arch=arm64 vmlinuz=$(fetch_kernel arm64-6.12 '^linux-image-6\.12\.[0-9]+\+deb12-cloud-arm64-unsigned$' "${arm64[@]}") methods=fexit,kprobe unavailable=tracepoint cgroup2=1 ;;
	arm64-sid) arch=arm64 vmlinuz=$(fetch_kernel arm64-sid '^linux-binary-unsigned-.*-cloud-arm64$' "${arm64[@]}") methods=tracepoint,fexit,kprobe unavailable= ;;
	*) log "unknown kernel $k" && exit 2 ;;
	esac
	if ! boot "$k" "$arch" "$vmlinuz" "$methods" "$unavailable"; then
		# Software emulation now and then oopses a kernel while it boots (int3 in
		# its own text patching), before any test runs, or locks both CPUs up in
		# that patching when BPF trampolines come and go: boot once more then.
		# A test that fails fails.
		console=$cache/build-$arch/console-$k.log
		if grep -q 'soft lockup - CPU' "$console"; then
			log "$k: the kernel locked up under emulation (soft lockup); booting it again"
			boot "$k" "$arch" "$vmlinuz" "$methods" "$unavailable" || failed+=("$k")
		elif grep -q '=== RUN' "$console"; then
			failed+=("$k")
		else
			log "$k: the kernel died before the tests started; booting it again"
			boot "$k" "$arch" "$vmlinuz" "$methods" "$unavailable" || failed+=("$k")
		fi
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	log "failed on: ${failed[*]}"
	exit 1
fi
log "all kernels passed: $kernels"
