#!/bin/bash
# The VM base's part of the root, after the appliance layer: what on a Pi comes from Raspberry Pi OS
# and its firmware (boot partition contents, fstab for boot and root, network, time, RPi.GPIO) and
# the simulated hardware (gpio-sim header, snd-aloop card, their pin and PCM names in the config).
#
#   apply-vm-base.sh ROOT WHEELHOUSE
set -euo pipefail

ROOT=$(realpath "$1")
WHEELHOUSE=$(realpath "$2")
FILES=$(dirname "$(realpath "$0")")/files
SYSTEMD="$ROOT/etc/systemd/system"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

echo callrec >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcallrec\n' >"$ROOT/etc/hosts"
cat "$FILES/fstab.vm" "$ROOT/etc/fstab" >"$ROOT/etc/fstab.new"
mv "$ROOT/etc/fstab.new" "$ROOT/etc/fstab"
install -d "$ROOT/boot/firmware"
# Kernel messages off the console's UART: ttyS1 on a PC; an arm64 virt machine has one PL011
# (ttyAMA0, the console, as on a Pi), so they go to a virtio console there.
case "${ARCH:-amd64}" in
arm64) kernel_console=hvc0 ;;
*) kernel_console=ttyS1,115200 ;;
esac
sed "s/@KERNEL_CONSOLE@/$kernel_console/" "$FILES/cmdline.txt" >"$ROOT/boot/firmware/cmdline.txt"
# The kernel's console port carries its messages only: no login prompt there (the Pi has none).
ln -sf /dev/null "$SYSTEMD/serial-getty@ttyS1.service"
install -D -m 0755 "$FILES/zz-callrec-boot-partition" "$ROOT/etc/initramfs/post-update.d/zz-callrec-boot-partition"

install -D -m 0644 "$FILES/10-eth.network" "$ROOT/etc/systemd/network/10-eth.network"
install -D -m 0644 "$FILES/timesyncd-vm.conf" "$ROOT/etc/systemd/timesyncd.conf.d/callrec-vm.conf"
in_root systemctl enable systemd-networkd.service systemd-timesyncd.service
install -D -m 0644 "$FILES/60-gpiochip.rules" "$ROOT/etc/udev/rules.d/60-gpiochip.rules"

# RPi.GPIO over the GPIO character device, as python3-rpi-lgpio gives it on a Pi.
mkdir -p "$ROOT/tmp/vm-wheels"
cp "$WHEELHOUSE"/*.whl "$ROOT/tmp/vm-wheels/"
pip_index=()
if [ "${CALLREC_PIP_OFFLINE:-0}" = 1 ]; then pip_index=(--no-index); fi
in_root /opt/callrec/bin/pip install --quiet --no-cache-dir --disable-pip-version-check "${pip_index[@]}" \
	--find-links /tmp/vm-wheels rpi-lgpio
rm -rf "$ROOT/tmp/vm-wheels"

install -D -m 0755 "$FILES/sim-hw-setup" "$ROOT/usr/lib/callrec/sim-hw-setup"
install -m 0644 "$FILES/sim-hw-setup.service" "$ROOT/usr/lib/systemd/system/sim-hw-setup.service"
in_root systemctl enable sim-hw-setup.service
install -D -m 0644 "$FILES/callrec-vm.conf" "$SYSTEMD/callrec.service.d/vm-hardware.conf"
install -m 0640 -g "$(in_root id -g callrec)" "$FILES/callrec.toml" "$ROOT/etc/callrec/callrec.toml"
in_root /usr/bin/callrec --config /etc/callrec/callrec.toml check-config
echo "callrec: VM base applied to $ROOT"
