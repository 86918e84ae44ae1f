#!/bin/bash
# Build the callrec appliance as a bootable disk image from Debian bookworm's archive alone, for
# QEMU: the same appliance layer as the Raspberry Pi image (install-callrec.sh, appliance/apply.sh)
# on a different base (Debian's kernel, a VFAT boot partition read by run-vm.sh instead of the
# Pi's firmware, gpio-sim as the header, snd-aloop as the sound card).
#
#   image-build/build.sh --vm [--arch amd64|arm64] [--no-test-hand]
#
# Result in image-build/deploy/vm-ARCH/: callrec-vm.img (MBR: bootfs, rootfs, callrec-data) and
# run-vm.sh, which boots it. The slow part, the base root (debootstrap, packages, gpio-sim), is
# cached in $CALLREC_VM_CACHE (default ~/.cache/callrec-vm) under the hash of what makes it.
# --no-test-hand leaves out the test's hand (image-build/vm/test-hand/: the agent that toggles the
# simulated lines and the line simulator feeding the loopback card); the tests build with it.
# Needs root (debootstrap, chroot, unshare) and the network (Debian mirror, PyPI).
set -euo pipefail

HERE=$(dirname "$(realpath "$0")")
BUILD=$(dirname "$HERE")
REPO=$(dirname "$BUILD")
ARCH=amd64
TEST_HAND=1
while [ "$#" -gt 0 ]; do
	case "$1" in
	--arch) ARCH=$2; shift 2 ;;
	--arch=*) ARCH=${1#--arch=}; shift ;;
	--no-test-hand) TEST_HAND=0; shift ;;
	--vm) shift ;;
	*) echo "build-vm.sh: unknown argument '$1' (expected --arch amd64|arm64, --no-test-hand)" >&2; exit 2 ;;
	esac
done
case "$ARCH" in
amd64) CONSOLE_TTY=ttyS0 ;;
arm64)
	CONSOLE_TTY=ttyAMA0
	if ! command -v qemu-aarch64-static >/dev/null || ! command -v update-binfmts >/dev/null; then
		echo "--arch arm64 needs qemu-user-static and binfmt-support: apt-get install -y qemu-user-static binfmt-support" >&2
		exit 1
	fi
	;;
*) echo "build-vm.sh: --arch must be amd64 or arm64, not '$ARCH'" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "build-vm.sh needs root (debootstrap, chroot): run with sudo" >&2
	exit 1
fi
missing=()
for tool in debootstrap unshare sfdisk mkfs.ext4 mkfs.vfat mcopy python3 tar; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -ne 0 ]; then
	echo "missing tools: ${missing[*]}" >&2
	echo "apt-get install -y debootstrap util-linux fdisk e2fsprogs dosfstools mtools python3-venv" >&2
	exit 1
fi

MIRROR=${CALLREC_VM_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${CALLREC_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/callrec-vm}
WORK=${WORK:-$BUILD/work/vm-$ARCH}
OUT=${CALLREC_VM_OUT:-$BUILD/deploy/vm-$ARCH}
mkdir -p "$CACHE" "$WORK" "$OUT"
t0=$SECONDS
# Run "$@" in a private mount namespace, so what it mounts under DIR (/proc, /dev, /sys for chroot)
# vanishes with it. Inside a chroot (a clean CI machine) / is no mount point and unshare cannot make
# it private: then DIR is bound onto itself and made private first, to the same effect.
in_private_namespace() {
	local dir=$1
	shift
	mkdir -p "$dir"
	if unshare --mount --propagation private true 2>/dev/null; then
		unshare --mount --propagation private "$@"
	else
		# shellcheck disable=SC2016  # expanded by the inner shell, from its arguments
		unshare --mount --propagation unchanged /bin/bash -c \
			'mount --bind "$1" "$1" && mount --make-rprivate "$1" && shift && exec "$@"' _ "$dir" "$@"
	fi
}
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
	# The target's binaries in the root run under qemu-user through binfmt_misc: on for the build,
	# off again afterwards (the host is left as it was).
	binfmt_mounted=0
	if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
		binfmt_mounted=1
	fi
	update-binfmts --enable qemu-aarch64
	trap 'update-binfmts --disable qemu-aarch64 || true; [ "$binfmt_mounted" = 0 ] || umount /proc/sys/fs/binfmt_misc' EXIT
fi
say() { echo "== [$((SECONDS - t0)) s] $*"; }

key=$( (echo "$ARCH $MIRROR"; cat "$HERE/base-root.sh" "$HERE/build-gpio-sim.sh" "$HERE/packages" \
	"$BUILD"/stage-callrec/*/00-packages) | sha256sum | cut -c1-16)
base="$CACHE/base-$ARCH-$key.tar"
if [ ! -s "$base" ]; then
	say "base root (debootstrap, packages, gpio-sim): not cached, building"
	rm -rf --one-file-system "$WORK/base"
	in_private_namespace "$WORK/base" "$HERE/base-root.sh" "$ARCH" "$WORK/base" "$MIRROR"
	tar -C "$WORK/base" --numeric-owner -cf "$base.tmp" .
	mv "$base.tmp" "$base"
	rm -rf --one-file-system "$WORK/base"
	find "$CACHE" -name "base-$ARCH-*.tar" ! -name "$(basename "$base")" -delete
else
	say "base root from cache: $base"
fi

say "wheels: firmware, and what the image takes from PyPI"
rm -rf "$WORK/wheelhouse"
python3 -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/pip" wheel --quiet --no-deps -w "$WORK/wheelhouse" "$REPO"
# Built here with this machine's pip settings and installed offline in the root (as the install
# test does); for another architecture the root's own pip fetches them instead.
PIP_OFFLINE=0
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
	wheels="$CACHE/wheels-$ARCH-$(cat "$BUILD/requirements-image.txt" "$HERE/requirements-vm.txt" | sha256sum | cut -c1-16)"
	if [ ! -d "$wheels" ]; then
		"$WORK/build-venv/bin/pip" wheel --quiet -w "$wheels.tmp" -r "$BUILD/requirements-image.txt" \
			-r "$HERE/requirements-vm.txt"
		mv "$wheels.tmp" "$wheels"
	fi
	cp "$wheels"/*.whl "$WORK/wheelhouse/"
	PIP_OFFLINE=1
fi

say "root: base + firmware + appliance layer + VM base"
ROOT="$WORK/root"
rm -rf --one-file-system "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner -xf "$base"
export CALLREC_CONSOLE_TTY=$CONSOLE_TTY TEST_HAND ARCH CALLREC_PIP_OFFLINE=$PIP_OFFLINE
# shellcheck disable=SC2016  # expanded by the inner shell, from its arguments
in_private_namespace "$ROOT" /bin/bash -euo pipefail -c '
	"$0/install-callrec.sh" "$1" "$2"
	"$0/appliance/apply.sh" "$1"
	"$0/vm/apply-vm-base.sh" "$1" "$2"
	if [ "$TEST_HAND" = 1 ]; then "$0/vm/test-hand/apply.sh" "$1"; fi
' "$BUILD" "$ROOT" "$WORK/wheelhouse"

say "disk image"
"$HERE/assemble.sh" "$ROOT" "$OUT/callrec-vm.img"
install -m 0755 "$HERE/run-vm.sh" "$OUT/run-vm.sh"
echo "$ARCH" >"$OUT/arch"
say "done: $OUT/callrec-vm.img (boot it with $OUT/run-vm.sh $OUT/callrec-vm.img)"
