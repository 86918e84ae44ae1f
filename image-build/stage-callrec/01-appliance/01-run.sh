#!/bin/bash -e
# Appliance shape: read-only root, data partition, serial console for callrec, first-boot identity.
BOOT="${ROOTFS_DIR}/boot/firmware"
SYSTEMD="${ROOTFS_DIR}/etc/systemd/system"

# First boot: device id, keys, data partition grown to the card, then overlayroot switched on.
install -D -m 0755 files/callrec-firstboot "${ROOTFS_DIR}/usr/lib/callrec/firstboot"
install -m 0644 files/callrec-firstboot.service "${ROOTFS_DIR}/usr/lib/systemd/system/"
mkdir -p "${SYSTEMD}/multi-user.target.wants"
ln -sf /usr/lib/systemd/system/callrec-firstboot.service \
	"${SYSTEMD}/multi-user.target.wants/callrec-firstboot.service"

# Data partition (added to the image by add-data-partition.sh): recordings, index, event journal
# under /var/lib/callrec, and the systemd journal, all off the read-only root.
install -d "${ROOTFS_DIR}/data" "${ROOTFS_DIR}/var/lib/callrec" "${ROOTFS_DIR}/var/log/journal"
if ! grep -q 'LABEL=callrec-data' "${ROOTFS_DIR}/etc/fstab"; then
	cat files/fstab.callrec >>"${ROOTFS_DIR}/etc/fstab"
fi
install -D -m 0644 files/journald-callrec.conf "${ROOTFS_DIR}/etc/systemd/journald.conf.d/callrec.conf"

# Serial console: the UART on GPIO14/15 belongs to callrec-console@ttyAMA0, not to a getty or
# to kernel messages (which would interleave with console output).
sed -i -e 's/console=serial0,[0-9]* *//' -e 's/console=ttyAMA0,[0-9]* *//' "${BOOT}/cmdline.txt"
# The data partition, not root, is the last one and grows on first boot: no root resize.
sed -i -e 's# *init=/usr/lib/raspberrypi-sys-mods/firstboot##' "${BOOT}/cmdline.txt"
if ! grep -q '^# callrec' "${BOOT}/config.txt"; then
	cat files/config.txt.callrec >>"${BOOT}/config.txt"
fi
ln -sf /dev/null "${SYSTEMD}/serial-getty@ttyAMA0.service"
ln -sf /dev/null "${SYSTEMD}/serial-getty@serial0.service"
ln -sf /usr/lib/systemd/system/callrec-console@.service \
	"${SYSTEMD}/multi-user.target.wants/callrec-console@ttyAMA0.service"

# The console (user callrec) may restart the recorder and reboot, and nothing else (polkit).
install -D -m 0644 files/49-callrec-console.rules "${ROOTFS_DIR}/etc/polkit-1/rules.d/49-callrec-console.rules"

on_chroot <<'CHROOT'
# The DS3231 RTC (config.txt: dtoverlay=i2c-rtc,ds3231) sets the clock at boot: no fake-hwclock,
# and udev's hwclock-set may read the RTC even though systemd is running.
apt-get -y purge fake-hwclock || true
sed -i -e '/^if \[ -e \/run\/systemd\/system \] ; then/,/^fi/s/^/#/' /lib/udev/hwclock-set || true
# Bluetooth would take the PL011 UART on Pi 3/4; swap would write to the read-only root.
systemctl mask hciuart.service
systemctl disable dphys-swapfile.service || true
CHROOT
