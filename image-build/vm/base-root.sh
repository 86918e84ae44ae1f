#!/bin/bash
# The VM base: a Debian bookworm root from Debian's archive alone, standing in for Raspberry Pi OS
# Lite (pi-gen stages 0-2). Kernel and initramfs from Debian, plus the one driver Debian's kernel
# lacks for the simulated header: gpio-sim, built out of tree from linux-source. build-vm.sh caches
# the result by the hash of this script and the package lists.
#
#   base-root.sh ARCH ROOT MIRROR
#
# Run as root inside a private mount namespace (build-vm.sh does): /proc, /dev and /sys are bound
# into ROOT for apt and vanish with the namespace.
set -euo pipefail

ARCH=$1
ROOT=$2
MIRROR=$3
HERE=$(dirname "$(realpath "$0")")
BUILD=$(dirname "$HERE")

packages() { grep -hv '^#' "$@" | sed "s/@ARCH@/$ARCH/" | grep -v '^python3-rpi-lgpio$' | tr -s ' \n' ' '; }
read -r -a BASE_PACKAGES <<<"$(packages "$HERE/packages")"
read -r -a STAGE_PACKAGES <<<"$(packages "$BUILD"/stage-callrec/*/00-packages)"

foreign=()
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
	foreign=(--foreign)
fi
echo "== debootstrap bookworm $ARCH"
# The kernel's initramfs would be built twice (kernel, then every later package's trigger):
# divert update-initramfs while bootstrapping, build it once at the end.
debootstrap --variant=minbase --arch="$ARCH" "${foreign[@]}" \
	--include=systemd-sysv,udev,kmod,initramfs-tools bookworm "$ROOT" "$MIRROR"
if [ "${#foreign[@]}" -ne 0 ]; then
	# The second stage runs the target's binaries under qemu-user through binfmt_misc, which
	# build-vm.sh turned on (about 25 minutes more for arm64 on 2 cores: emulated dpkg, mkinitramfs).
	chroot "$ROOT" /debootstrap/debootstrap --second-stage
fi

for fs in proc sys dev; do
	mount --rbind "/$fs" "$ROOT/$fs"
done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

in_root dpkg-divert --local --rename --add /usr/sbin/update-initramfs
ln -sf /bin/true "$ROOT/usr/sbin/update-initramfs"
echo "== packages: ${BASE_PACKAGES[*]} ${STAGE_PACKAGES[*]}"
in_root apt-get update -q
in_root apt-get install -y -q --no-install-recommends "${BASE_PACKAGES[@]}" "${STAGE_PACKAGES[@]}"

# A package may have replaced resolv.conf (a link into /run): the build still needs the host's.
rm -f "$ROOT/etc/resolv.conf"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
kver=$(basename "$(ls -d "$ROOT"/lib/modules/*)")
echo "== gpio-sim for $kver"
in_root apt-get install -y -q --no-install-recommends "linux-headers-$kver" make gcc xz-utils
mkdir -p "$ROOT/tmp/gpio-sim"
cp "$HERE/build-gpio-sim.sh" "$ROOT/tmp/gpio-sim/"
in_root /bin/sh -c "cd /tmp/gpio-sim && apt-get download -q linux-source-6.1 && sh build-gpio-sim.sh $kver /tmp/gpio-sim/out"
install -D -m 0644 "$ROOT/tmp/gpio-sim/out/mod/gpio-sim.ko" "$ROOT/lib/modules/$kver/updates/gpio-sim.ko"
in_root depmod "$kver"
rm -rf "$ROOT/tmp/gpio-sim"
in_root apt-get purge -y -q --auto-remove "linux-headers-$kver" make gcc

rm -f "$ROOT/usr/sbin/update-initramfs"
in_root dpkg-divert --local --rename --remove /usr/sbin/update-initramfs
echo "== initramfs"
in_root update-initramfs -c -k "$kver"
in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/*
: >"$ROOT/etc/resolv.conf"
echo "== base root ready: kernel $kver"
