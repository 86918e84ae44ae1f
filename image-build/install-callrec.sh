#!/bin/bash
# Install callrec into a Debian root file system: used by the pi-gen stage (stage-callrec/00-install)
# and by the install test (tests/test_image_build.py), so the test exercises the real steps.
#
#   install-callrec.sh ROOT WHEELHOUSE
#
# ROOT       the target root (pi-gen's ROOTFS_DIR, or a debootstrap folder)
# WHEELHOUSE a folder holding callrec-*.whl (built from this repository), and optionally wheels
#            of requirements-image.txt; with CALLREC_PIP_OFFLINE=1 only those are used (no PyPI)
#
# The Debian packages of stage-callrec/00-install/00-packages must already be installed in ROOT.
# What Debian bookworm lacks or ships too old (see requirements-image.txt) is installed from PyPI
# into a venv at /opt/callrec that also sees Debian's python3-* packages (--system-site-packages).
set -euo pipefail

if [ "$#" -ne 2 ]; then
	echo "usage: $0 ROOT WHEELHOUSE" >&2
	exit 2
fi
ROOT=$(realpath "$1")
WHEELHOUSE=$(realpath "$2")
HERE=$(dirname "$(realpath "$0")")
REPO=$(dirname "$HERE")
VENV=/opt/callrec
PIP_INDEX=""
if [ "${CALLREC_PIP_OFFLINE:-0}" = "1" ]; then
	PIP_INDEX="--no-index"
fi
BUILD_DEPS="gcc libc6-dev python3-dev libasound2-dev"

shopt -s nullglob
wheels=("$WHEELHOUSE"/callrec-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
	echo "expected exactly one callrec-*.whl in $WHEELHOUSE" >&2
	exit 1
fi
WHEEL=$(basename "${wheels[0]}")
# pyalsaaudio has no wheels on PyPI: it is compiled in the root unless the wheelhouse brings one
# built for this root's Python (the install test and the VM build make it on the host).
prebuilt=("$WHEELHOUSE"/pyalsaaudio-*.whl)
if [ "${#prebuilt[@]}" -ne 0 ]; then
	BUILD_DEPS=""
fi

# Run a shell script (stdin) inside ROOT: pi-gen's on_chroot when we run under pi-gen (it
# handles /proc, /dev and qemu), otherwise chroot with /proc and /dev mounted for the duration.
MOUNTED=()
cleanup() {
	local i
	for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
		umount -l "${MOUNTED[$i]}" || true
	done
}
trap cleanup EXIT
in_root() {
	if declare -F on_chroot >/dev/null; then
		on_chroot
	else
		chroot "$ROOT" /bin/bash -euo pipefail -s
	fi
}
if ! declare -F on_chroot >/dev/null; then
	for fs in proc dev sys; do
		if ! mountpoint -q "$ROOT/$fs"; then
			mkdir -p "$ROOT/$fs"
			mount --rbind "/$fs" "$ROOT/$fs"
			mount --make-rslave "$ROOT/$fs"
			MOUNTED+=("$ROOT/$fs")
		fi
	done
	if [ ! -s "$ROOT/etc/resolv.conf" ] && [ -e /etc/resolv.conf ]; then
		cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
	fi
fi

echo "callrec: user and groups"
in_root <<'CHROOT'
getent group gpio >/dev/null || groupadd --system gpio
getent group audio >/dev/null || groupadd --system audio
getent group dialout >/dev/null || groupadd --system dialout
if ! getent passwd callrec >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/callrec --no-create-home \
		--shell /usr/sbin/nologin --comment "callrec recorder" callrec
fi
usermod -a -G audio,gpio,dialout callrec
CHROOT

echo "callrec: firmware into $VENV"
mkdir -p "$ROOT/tmp/callrec-wheelhouse"
cp "$WHEELHOUSE"/*.whl "$ROOT/tmp/callrec-wheelhouse/"
cp "$HERE/requirements-image.txt" "$ROOT/tmp/callrec-wheelhouse/"
in_root <<CHROOT
export DEBIAN_FRONTEND=noninteractive
if [ -n "$BUILD_DEPS" ]; then
	# A root whose package lists were cleaned (the VM base's) has to fetch them first.
	if [ -z "\$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e '^lock\$' -e '^partial\$')" ]; then
		apt-get -q update
	fi
	apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends $BUILD_DEPS
fi
python3 -m venv --system-site-packages $VENV
$VENV/bin/pip install --no-cache-dir --disable-pip-version-check $PIP_INDEX \
	--find-links /tmp/callrec-wheelhouse -r /tmp/callrec-wheelhouse/requirements-image.txt
# --no-deps: every dependency is either a Debian package or in requirements-image.txt, and the
# wheel's RPi.GPIO requirement is met by Debian's python3-rpi-lgpio (same module, gpiochip based).
$VENV/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /tmp/callrec-wheelhouse/$WHEEL
if [ -n "$BUILD_DEPS" ]; then
	apt-get purge -y --auto-remove $BUILD_DEPS
fi
apt-get clean
rm -rf /tmp/callrec-wheelhouse
ln -sf $VENV/bin/callrec /usr/bin/callrec
CHROOT

echo "callrec: configuration, credentials, units"
install -d -m 0750 "$ROOT/etc/callrec"
install -m 0640 "$HERE/stage-callrec/00-install/files/callrec.toml" "$ROOT/etc/callrec/callrec.toml"
install -d -m 0700 "$ROOT/etc/callrec/credentials"
# LoadCredential= refuses to start the service when the file is missing: ship it empty
# (no password), the installer or first boot writes the real one.
if [ ! -e "$ROOT/etc/callrec/credentials/mqtt_password" ]; then
	install -m 0600 /dev/null "$ROOT/etc/callrec/credentials/mqtt_password"
fi
install -d -m 0750 "$ROOT/etc/callrec/keys"
install -d -m 0755 "$ROOT/usr/share/doc/callrec"
install -m 0644 "$REPO/docs/install.md" "$ROOT/usr/share/doc/callrec/install.md"
install -d -m 0755 "$ROOT/usr/lib/systemd/system"
install -m 0644 "$REPO"/systemd/*.service "$ROOT/usr/lib/systemd/system/"
in_root <<'CHROOT'
chgrp callrec /etc/callrec /etc/callrec/callrec.toml /etc/callrec/keys
CHROOT

# What `systemctl enable` would do, done by hand: minbase roots have no systemctl.
WANTS="$ROOT/etc/systemd/system/multi-user.target.wants"
mkdir -p "$WANTS"
ln -sf /usr/lib/systemd/system/callrec.service "$WANTS/callrec.service"
echo "callrec: installed $WHEEL"
