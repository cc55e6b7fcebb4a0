#!/bin/sh
# Configures the guest rootfs after mmdebstrap. Runs on the build host: $1 = rootfs, $2 = kernel
# version whose modules are already copied into $1/lib/modules. Part of the recipe hash.
set -eu
R=$1
KVER=$2
RECIPE=$(dirname "$0")

# Modules: the product loads overlay, loop, br_netfilter, erofs/squashfs itself with modprobe.
chroot "$R" /sbin/depmod "$KVER"

# Root is the first virtio disk in every guest (cold or clone). No fsck: throwaway overlays.
printf '/dev/vda / ext4 rw,discard,errors=remount-ro 0 0\n' > "$R/etc/fstab"

echo gvt-base > "$R/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
# No DNS exists on the private network; an empty resolv.conf makes lookups fail fast.
rm -f "$R/etc/resolv.conf"; : > "$R/etc/resolv.conf"
# Empty, not "uninitialized": systemd still generates a fresh id on each cold boot (clones get one
# from the harness), but skips the first-boot preset-all that costs ~11 s under TCG.
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
chroot "$R" passwd -l root

# Volatile journal: faster under TCG; the harness collects it before stopping a guest.
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=64M\n' > "$R/etc/systemd/journald.conf.d/gvt.conf"

# Identity (hostname, address, /etc/hosts) from the kernel command line on cold boots.
install -m 0755 "$RECIPE/gvt-identity" "$R/usr/local/sbin/gvt-identity"
install -m 0644 "$RECIPE/gvt-identity.service" "$R/etc/systemd/system/gvt-identity.service"

chroot "$R" systemctl enable systemd-networkd.service gvt-identity.service
# Nothing here needs to wait for the network to come online; a product unit that does gets it.
grep -v '^#' "$RECIPE/masked-units" | grep . | xargs chroot "$R" systemctl mask

# Smaller image: no apt lists or caches in throwaway guests.
rm -rf "$R/var/lib/apt/lists/"* "$R/var/cache/apt/"*.bin

# The pc machine always has an IDE controller; probing it costs boot time under TCG and no
# guest disk is IDE. -cpu max offers SVM, which nothing in a test guest uses (and -cpu max,svm=off
# hangs this kernel at boot under TCG 7.2).
printf 'blacklist %s\n' ata_piix ata_generic kvm_amd kvm_intel > "$R/etc/modprobe.d/gvt-blacklist.conf"
