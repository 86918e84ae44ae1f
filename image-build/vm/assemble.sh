#!/bin/bash
# Assemble the VM's disk image from a root folder without mounting anything (these machines have
# no loop devices, device-mapper or VFAT mounts): MBR with the Raspberry Pi image's layout —
#   1 bootfs (FAT32, kernel, initramfs, cmdline.txt)  2 rootfs (ext4)  3 callrec-data (ext4, grows)
# made as file systems in files (mkfs.vfat + mcopy, mkfs.ext4 -d) and copied into place.
#
#   assemble.sh ROOT IMAGE [DATA_MIB]
set -euo pipefail

ROOT=$1
IMAGE=$2
DATA_MIB=${3:-256}
HERE=$(dirname "$(realpath "$0")")
BOOT_MIB=128
ALIGN=8192   # sectors: 4 MiB, as pi-gen aligns
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kernel=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
initrd=$(find "$ROOT/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n 1)
if [ -z "$kernel" ] || [ -z "$initrd" ]; then
	echo "no kernel or initramfs in $ROOT/boot" >&2
	exit 1
fi
mkfs.vfat -C -n BOOTFS -F 32 "$work/boot.fat" $((BOOT_MIB * 1024)) >/dev/null
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
mcopy -i "$work/boot.fat" "$work/vmlinuz" "$work/initrd.img" "$ROOT/boot/firmware/cmdline.txt" ::
# The boot partition's files live there, not under its mount point in the root.
find "$ROOT/boot/firmware" -mindepth 1 -delete

root_mib=$(( $(du -sm --one-file-system "$ROOT" | cut -f1) * 5 / 4 + 256 ))
mkfs.ext4 -q -F -L rootfs -d "$ROOT" "$work/root.ext4" "${root_mib}M"

boot_start=$ALIGN
root_start=$((boot_start + BOOT_MIB * 2048))
end=$((root_start + root_mib * 2048))
rm -f "$IMAGE"
truncate -s $((end * 512)) "$IMAGE"
sfdisk --quiet --no-reread --no-tell-kernel "$IMAGE" <<SFDISK
label: dos
label-id: 0xca11ec00
start=${boot_start}, size=$((BOOT_MIB * 2048)), type=c
start=${root_start}, size=$((root_mib * 2048)), type=83
SFDISK
dd if="$work/boot.fat" of="$IMAGE" bs=512 seek="$boot_start" conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$IMAGE" bs=512 seek="$root_start" conv=notrunc,sparse status=none
"$(dirname "$HERE")/add-data-partition.sh" "$IMAGE" "$DATA_MIB"
echo "assembled $IMAGE: bootfs ${BOOT_MIB} MiB, rootfs ${root_mib} MiB, callrec-data ${DATA_MIB} MiB"
