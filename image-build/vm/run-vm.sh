#!/bin/bash
# Boot the callrec VM image under QEMU, reading the kernel, initramfs and command line from its boot
# partition each time, as the Raspberry Pi's firmware reads them from its bootfs: what first boot
# writes there (cmdline.txt with overlayroot=…) takes effect on the next boot.
#
#   run-vm.sh IMAGE [QEMU ARGS…]
#
# Default devices: ttyS0 (the appliance's console UART) and ttyS1 (kernel and systemd messages) go
# wherever the extra arguments say (-serial …, twice); without any, ttyS0 is this terminal.
# Environment: CALLREC_VM_ARCH (amd64|arm64, default: the arch file beside the image, else amd64),
# CALLREC_VM_SMP (2), CALLREC_VM_MEM (1024 MiB).
set -euo pipefail

IMAGE=$1
shift
ARCH=${CALLREC_VM_ARCH:-$(cat "$(dirname "$IMAGE")/arch" 2>/dev/null || echo amd64)}
# Extracted beside the image (QEMU reads them once, at start), so that this script can become QEMU:
# killing its PID is pulling the power.
boot="$IMAGE.boot"
mkdir -p "$boot"
start=$(sfdisk --dump "$IMAGE" | awk -v img="$IMAGE" '$1 == img "1" { gsub(",", "", $4); print $4 }')
[ -n "$start" ] || { echo "run-vm.sh: $IMAGE has no boot partition" >&2; exit 1; }
mcopy -o -n -i "$IMAGE@@$((start * 512))" ::vmlinuz ::initrd.img ::cmdline.txt "$boot/"
cmdline=$(tr -d '\n' <"$boot/cmdline.txt")
case "$ARCH" in
amd64) qemu=(qemu-system-x86_64 -accel tcg -cpu max) ;;
arm64)
	# One PL011 (ttyAMA0: the appliance console, as on a Pi); kernel messages on a virtio console.
	# shellcheck disable=SC2054  # the commas are QEMU's option syntax
	qemu=(qemu-system-aarch64 -M virt -cpu cortex-a72 -device virtio-serial-pci
		-chardev "file,id=kmsg,path=$IMAGE.kernel.log" -device virtconsole,chardev=kmsg)
	;;
*) echo "run-vm.sh: unknown arch $ARCH" >&2; exit 2 ;;
esac
serial=()
case " $* " in *" -serial "*) ;; *) serial=(-serial mon:stdio) ;; esac
exec "${qemu[@]}" -smp "${CALLREC_VM_SMP:-2}" -m "${CALLREC_VM_MEM:-1024}" -nodefaults -display none \
	-kernel "$boot/vmlinuz" -initrd "$boot/initrd.img" -append "$cmdline" \
	-drive "if=virtio,format=raw,file=$IMAGE" -device virtio-rng-pci \
	-netdev "user,id=net0${CALLREC_VM_NETDEV:+,$CALLREC_VM_NETDEV}" -device virtio-net-pci,netdev=net0 \
	"${serial[@]}" "$@"
