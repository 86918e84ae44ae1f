#!/bin/bash
# Build the callrec SD-card image on a Debian (bookworm or later) host:
#
#   sudo image-build/build.sh
#
# Result: image-build/deploy/callrec-<date>.img.xz, ready for Raspberry Pi Imager or `dd`.
#
#   sudo image-build/build.sh --vm [--arch amd64|arm64] [--no-test-hand]
#
# The same appliance on Debian bookworm's own archive, as a disk image QEMU boots (vm/build-vm.sh):
# what the tests boot, and what can be built where the Raspberry Pi archive cannot be reached.
# Steps: build the firmware wheel, fetch pi-gen (arm64, pinned), run stages 0-2 (Raspberry Pi OS
# Lite 64-bit) plus stage-callrec, then append the data partition and compress.
# Environment (all optional):
#   PI_GEN_REF       pi-gen tag or commit (default below; must be on the arm64 history)
#   CALLREC_SSH_KEY  public key file for the admin user (SSH is key-only; without it, no SSH)
#   DATA_MIB         size of the data partition in the image before it grows (default 256)
#   WORK             build folder (default image-build/work); needs ~8 GB
set -euo pipefail

HERE=$(dirname "$(realpath "$0")")
if [ "${1:-}" = "--vm" ]; then
	shift
	exec "$HERE/vm/build-vm.sh" "$@"
fi
if [ "$#" -ne 0 ]; then
	echo "build.sh: unknown arguments '$*' (none for the Raspberry Pi image; --vm [--arch amd64|arm64] for the VM)" >&2
	exit 2
fi
REPO=$(dirname "$HERE")
PI_GEN_URL=https://github.com/RPi-Distro/pi-gen.git
PI_GEN_REF=${PI_GEN_REF:-2025-05-13-raspios-bookworm-arm64}
WORK=${WORK:-$HERE/work}
DEPLOY=$HERE/deploy
DATA_MIB=${DATA_MIB:-256}

if [ "$(id -u)" -ne 0 ]; then
	echo "pi-gen needs root (loop devices, chroot): run with sudo" >&2
	exit 1
fi
missing=()
for tool in git python3 quilt parted qemu-aarch64-static debootstrap zerofree zip mkdosfs \
	bsdtar setcap rsync xz pigz xxd arch-test sfdisk mkfs.ext4; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -ne 0 ]; then
	echo "missing tools: ${missing[*]}" >&2
	echo "apt-get install -y coreutils quilt parted qemu-user-static debootstrap zerofree zip \\" >&2
	echo "  dosfstools libarchive-tools libcap2-bin grep rsync xz-utils file git curl bc gpg \\" >&2
	echo "  pigz xxd arch-test fdisk e2fsprogs python3-venv binfmt-support" >&2
	exit 1
fi

mkdir -p "$WORK" "$DEPLOY"
echo "== firmware wheel"
rm -rf "$WORK/wheelhouse"
python3 -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/pip" install --quiet --disable-pip-version-check build
"$WORK/build-venv/bin/python" -m build --wheel --outdir "$WORK/wheelhouse" "$REPO"

echo "== pi-gen ${PI_GEN_REF}"
if [ ! -d "$WORK/pi-gen/.git" ]; then
	git clone --quiet "$PI_GEN_URL" "$WORK/pi-gen"
fi
git -C "$WORK/pi-gen" fetch --quiet --tags origin
git -C "$WORK/pi-gen" checkout --quiet --force "$PI_GEN_REF"
# Only our stage exports an image; stage2 (Raspberry Pi OS Lite) is its base.
touch "$WORK/pi-gen/stage2/SKIP_IMAGES"
rm -f "$WORK/pi-gen/stage2/EXPORT_NOOBS"

cat >"$WORK/pi-gen/config" <<CONFIG
IMG_NAME=callrec
RELEASE=bookworm
DEPLOY_COMPRESSION=none
TARGET_HOSTNAME=callrec
LOCALE_DEFAULT=en_US.UTF-8
TIMEZONE_DEFAULT=Asia/Tokyo
KEYBOARD_KEYMAP=us
KEYBOARD_LAYOUT="English (US)"
FIRST_USER_NAME=admin
DISABLE_FIRST_BOOT_USER_RENAME=1
ENABLE_SSH=$([ -n "${CALLREC_SSH_KEY:-}" ] && echo 1 || echo 0)
PUBKEY_ONLY_SSH=1
PUBKEY_SSH_FIRST_USER="$([ -n "${CALLREC_SSH_KEY:-}" ] && cat "$CALLREC_SSH_KEY")"
STAGE_LIST="stage0 stage1 stage2 $HERE/stage-callrec"
export CALLREC_REPO="$REPO"
export CALLREC_WHEELHOUSE="$WORK/wheelhouse"
CONFIG

echo "== pi-gen build (about an hour)"
(cd "$WORK/pi-gen" && ./build.sh -c config)

image=$(find "$WORK/pi-gen/deploy" -name '*callrec*.img' -newer "$WORK/pi-gen/config" | head -n 1)
if [ -z "$image" ]; then
	echo "pi-gen produced no image" >&2
	exit 1
fi
echo "== data partition"
"$HERE/add-data-partition.sh" "$image" "$DATA_MIB"
out="$DEPLOY/callrec-$(date +%Y-%m-%d).img.xz"
xz -T0 -c "$image" >"$out"
echo "== done: $out"
