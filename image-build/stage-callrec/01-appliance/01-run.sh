#!/bin/bash -e
# Appliance shape on the Raspberry Pi base: the shared layer (image-build/appliance/apply.sh: first
# boot, read-only root, data partition, console, polkit), then what only a Pi has: config.txt,
# cmdline.txt, the PL011 UART taken back from Bluetooth, the battery-backed RTC.
BOOT="${ROOTFS_DIR}/boot/firmware"

CALLREC_CONSOLE_TTY=ttyAMA0 "${CALLREC_REPO}/image-build/appliance/apply.sh" "${ROOTFS_DIR}"

# Kernel messages stay off the console's UART (they would interleave with its output).
sed -i -e 's/console=serial0,[0-9]* *//' -e 's/console=ttyAMA0,[0-9]* *//' "${BOOT}/cmdline.txt"
# The data partition, not root, is the last one and grows on first boot: no root resize.
sed -i -e 's# *init=/usr/lib/raspberrypi-sys-mods/firstboot##' "${BOOT}/cmdline.txt"
if ! grep -q '^# callrec' "${BOOT}/config.txt"; then
	cat files/config.txt.callrec >>"${BOOT}/config.txt"
fi
ln -sf /dev/null "${ROOTFS_DIR}/etc/systemd/system/serial-getty@serial0.service"

on_chroot <<'CHROOT'
# The DS3231 RTC (config.txt: dtoverlay=i2c-rtc,ds3231) sets the clock at boot: no fake-hwclock,
# and udev's hwclock-set may read the RTC even though systemd is running.
apt-get -y purge fake-hwclock || true
sed -i -e '/^if \[ -e \/run\/systemd\/system \] ; then/,/^fi/s/^/#/' /lib/udev/hwclock-set || true
# Bluetooth would take the PL011 UART on Pi 3/4.
systemctl mask hciuart.service
systemctl disable dphys-swapfile.service || true
CHROOT
