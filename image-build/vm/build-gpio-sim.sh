#!/bin/sh
# Build gpio-sim, which Debian bookworm's kernel config leaves out, as an out-of-tree module from
# the matching linux-source package (only four of its files are needed).
#   build-gpio-sim.sh KERNEL_VERSION OUTDIR      (linux-source-6.1_*.deb in the current folder)
set -eu
ver=$1
out=$2
mkdir -p "$out/src" "$out/mod"
dpkg-deb --fsys-tarfile linux-source-6.1_*.deb | tar -xO --wildcards '*/linux-source-6.1.tar.xz' |
	tar -xJ -C "$out/src" --wildcards '*/drivers/gpio/gpio-sim.c' '*/drivers/gpio/gpiolib.h' \
		'*/kernel/irq/irq_sim.c' '*/include/linux/irq_sim.h'
top=$(ls -d "$out"/src/linux-source-6.1)
cp "$top/drivers/gpio/gpio-sim.c" "$out/mod/gpio-sim-main.c"
cp "$top/drivers/gpio/gpiolib.h" "$top/kernel/irq/irq_sim.c" "$out/mod/"
# irq_to_desc is not exported to modules; the generic handler does the same for a simulated irq.
sed -i -e 's/handle_simple_irq(irq_to_desc(irqnum))/generic_handle_irq(irqnum)/' -e '/^EXPORT_SYMBOL_GPL/d' "$out/mod/irq_sim.c"
printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' >"$out/mod/Kbuild"
make -s -C "/usr/src/linux-headers-$ver" M="$out/mod" modules
