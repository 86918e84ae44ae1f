#!/bin/bash
# Append the callrec data partition to a pi-gen image (MBR, boot + root):
#
#   add-data-partition.sh IMAGE [SIZE_MIB]
#
# pi-gen's export stage only knows a boot and a root partition, so the data partition is added to
# the finished image: a third primary partition, ext4 labelled callrec-data, holding the folders
# the fstab bind-mounts (callrec/ -> /var/lib/callrec, journal/ -> /var/log/journal). It is small
# in the image (fast to flash) and grows to the card on first boot. No loop devices or root
# needed: the file system is made in a file and copied into place.
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
	echo "usage: $0 IMAGE [SIZE_MIB]" >&2
	exit 2
fi
IMAGE=$1
SIZE_MIB=${2:-256}
ALIGN=8192 # sectors: 4 MiB, the alignment pi-gen uses for its partitions

if sfdisk --dump "$IMAGE" | grep -q "^${IMAGE}3 "; then
	echo "$IMAGE already has a third partition" >&2
	exit 1
fi
if ! sfdisk --dump "$IMAGE" | grep -q '^label: dos'; then
	echo "$IMAGE: expected an MBR (dos) partition table" >&2
	exit 1
fi

bytes=$(stat -c %s "$IMAGE")
start=$(((bytes / 512 + ALIGN - 1) / ALIGN * ALIGN))
sectors=$((SIZE_MIB * 2048))
truncate -s $(((start + sectors) * 512)) "$IMAGE"
echo "start=${start}, size=${sectors}, type=83" |
	sfdisk --quiet --append --no-reread --no-tell-kernel "$IMAGE"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/callrec" "$work/tree/journal"
chmod 0750 "$work/tree/callrec"
chmod 2755 "$work/tree/journal"
mkfs.ext4 -q -F -L callrec-data -E root_owner=0:0 -d "$work/tree" "$work/data.ext4" "${SIZE_MIB}M" >/dev/null
dd if="$work/data.ext4" of="$IMAGE" bs=512 seek="$start" conv=notrunc,sparse status=none
echo "added callrec-data: ${SIZE_MIB} MiB at sector ${start}"
