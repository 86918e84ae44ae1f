#!/bin/bash
# The test's hand inside the VM, installed only into the test image (build-vm.sh without
# --no-test-hand), never by pi-gen: an agent on a virtio-serial port that runs what the test asks
# (pull a gpio-sim line, read the journal as an installer's laptop would), and a line simulator
# that plays the caller into the snd-aloop card and hears what callrec plays back.
# Plus the technician passphrase the test logs in with (callrec-vm-test), set the way an
# installer does: `callrec passwd`.
#
#   test-hand/apply.sh ROOT
set -euo pipefail

ROOT=$(realpath "$1")
HERE=$(dirname "$(realpath "$0")")
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

install -D -m 0755 "$HERE/callrec-vm-hand" "$ROOT/usr/local/sbin/callrec-vm-hand"
install -D -m 0755 "$HERE/callrec-vm-line" "$ROOT/usr/local/sbin/callrec-vm-line"
install -m 0644 "$HERE/callrec-vm-hand.service" "$HERE/callrec-vm-line.service" "$ROOT/etc/systemd/system/"
in_root systemctl enable callrec-vm-hand.service callrec-vm-line.service
echo callrec-vm-test | in_root /usr/bin/callrec --config /etc/callrec/callrec.toml passwd
echo "callrec: test hand applied to $ROOT"
