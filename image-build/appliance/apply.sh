#!/bin/bash
# The callrec appliance layer: what makes a Debian-based OS root into the recorder an office installs.
# Applied by both bases, the same way:
#   - pi-gen's stage-callrec/01-appliance (Raspberry Pi OS Lite: Pi kernel, firmware, config.txt);
#   - image-build/vm/build-vm.sh (Debian bookworm from its own archive, booted under QEMU for the tests).
# The bases differ only in kernel, firmware and boot loader (image-build/README.md, "Two bases").
#
#   apply.sh ROOT
#
# Environment:
#   CALLREC_CONSOLE_TTY  the UART the maintenance console owns (default ttyAMA0, the Pi's PL011 on
#                        GPIO14/15; ttyS0 in the VM)
# The firmware itself (install-callrec.sh) must already be installed in ROOT.
# No systemctl here: minbase roots have none, so enablement is done with the links it would make.
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 ROOT" >&2
	exit 2
fi
ROOT=$(realpath "$1")
FILES=$(dirname "$(realpath "$0")")/files
TTY=${CALLREC_CONSOLE_TTY:-ttyAMA0}
SYSTEMD="$ROOT/etc/systemd/system"
WANTS="$SYSTEMD/multi-user.target.wants"
mkdir -p "$WANTS"

# First boot: device id, keys, data partition grown to the card, then the read-only root switched on.
install -D -m 0755 "$FILES/callrec-firstboot" "$ROOT/usr/lib/callrec/firstboot"
sed "s/@CONSOLE_TTY@/$TTY/g" "$FILES/callrec-firstboot.service" >"$ROOT/usr/lib/systemd/system/callrec-firstboot.service"
chmod 0644 "$ROOT/usr/lib/systemd/system/callrec-firstboot.service"
ln -sf /usr/lib/systemd/system/callrec-firstboot.service "$WANTS/callrec-firstboot.service"

# Data partition (the image's last partition, LABEL=callrec-data): recordings, index, event journal
# under /var/lib/callrec, and the systemd journal, all off the read-only root.
install -d "$ROOT/data" "$ROOT/var/lib/callrec" "$ROOT/var/log/journal"
touch "$ROOT/etc/fstab"
if ! grep -q 'LABEL=callrec-data' "$ROOT/etc/fstab"; then
	cat "$FILES/fstab.callrec" >>"$ROOT/etc/fstab"
fi
install -D -m 0644 "$FILES/journald-callrec.conf" "$ROOT/etc/systemd/journald.conf.d/callrec.conf"

# Serial console: the UART belongs to callrec-console@TTY, not to a login getty.
ln -sf /dev/null "$SYSTEMD/serial-getty@$TTY.service"
ln -sf /usr/lib/systemd/system/callrec-console@.service "$WANTS/callrec-console@$TTY.service"

# The console (user callrec) may restart the recorder and reboot, and nothing else (polkit).
install -D -m 0644 "$FILES/49-callrec-console.rules" "$ROOT/etc/polkit-1/rules.d/49-callrec-console.rules"

# Swap would write to the read-only root.
ln -sf /dev/null "$SYSTEMD/dphys-swapfile.service"
echo "callrec: appliance layer applied to $ROOT (console on $TTY)"
