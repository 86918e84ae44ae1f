#!/bin/bash -e
# pi-gen stage convention: start from the previous stage's root (Raspberry Pi OS Lite, stage2).
if [ ! -d "${ROOTFS_DIR}" ]; then
	copy_previous
fi
