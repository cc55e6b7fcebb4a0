#!/bin/bash
# Turn the freshly bootstrapped Debian tree ROOTFS into planet: install the
# planet units and scripts, switch Debian's daemon units for planet's, mask
# what cannot work or only costs time in a container, and trim.
#   customize.sh ROOTFS       (called by build.sh, as root)
set -euo pipefail

root=${1:?usage: customize.sh ROOTFS}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ -x $root/usr/bin/systemctl ]] || {
	echo "customize.sh: $root does not look like a Debian rootfs with systemd" >&2
	exit 1
}
in_root() { chroot "$root" "$@"; }

# Planet's files (units, planet-setup, config drop-ins), owned by root.
cp -r --no-preserve=ownership "$here/rootfs/." "$root/"

# Debian's containerd 1.6 serves dockerd only (planet-docker-containerd.service);
# /usr/bin/containerd and its shim become planet's containerd 2 (build.sh).
mkdir -p "$root/usr/lib/planet/docker-containerd"
for f in containerd containerd-shim-runc-v2; do
	mv "$root/usr/bin/$f" "$root/usr/lib/planet/docker-containerd/$f"
done

# Debian's own daemon units: disabled, and the names become aliases of
# planet's units (so `systemctl status docker` shows planet-docker.service).
# docker.socket would socket-activate dockerd behind planet's back.
debian_units=(etcd.service containerd.service docker.service docker.socket docker-registry.service)
in_root systemctl disable --quiet "${debian_units[@]}" 2>/dev/null || true
in_root systemctl mask --quiet docker.socket
in_root systemctl enable --quiet planet.target planet-etcd.service planet-containerd.service \
	planet-docker.socket planet-registry.service planet-kube-control-plane.service planet-kube-node.service
in_root systemctl set-default --quiet multi-user.target

# Masked: units that would touch the HOST (planet shares its network
# namespace and kernel), need hardware or a console, or are timers/first-boot
# work that only cost boot time in an immutable image.
masked=(
	# host kernel and network state: never from inside planet
	systemd-sysctl.service            # net.* sysctls of the host's netns
	systemd-modules-load.service
	kmod-static-nodes.service
	systemd-binfmt.service
	proc-sys-fs-binfmt_misc.automount
	proc-sys-fs-binfmt_misc.mount
	sys-kernel-config.mount
	sys-kernel-debug.mount
	sys-kernel-tracing.mount
	sys-fs-fuse-connections.mount
	dev-hugepages.mount
	systemd-journald-audit.socket     # would pull the host's audit records
	systemd-networkd.service
	systemd-networkd.socket
	systemd-networkd-wait-online.service
	systemd-resolved.service
	systemd-timesyncd.service
	systemd-hwdb-update.service
	modprobe@.service                 # no modules from inside (noise: modprobe missing)
	systemd-repart.service
	systemd-pstore.service
	# devices and consoles: the runtime provides /dev
	systemd-udevd.service
	systemd-udevd-control.socket
	systemd-udevd-kernel.socket
	systemd-udev-trigger.service
	systemd-udev-settle.service
	systemd-tmpfiles-setup-dev.service
	getty.target
	getty-static.service
	console-getty.service
	container-getty@.service
	getty@.service
	serial-getty@.service
	systemd-ask-password-console.path
	systemd-ask-password-wall.path
	systemd-logind.service
	systemd-user-sessions.service
	# first boot and update work: the image is read-only and prepared
	systemd-firstboot.service
	systemd-remount-fs.service
	ldconfig.service
	systemd-update-done.service
	systemd-journal-catalog-update.service
	# timers
	apt-daily.timer
	apt-daily-upgrade.timer
	dpkg-db-backup.timer
	e2scrub_all.timer
	e2scrub_reap.service
	fstrim.timer
)
in_root systemctl mask --quiet "${masked[@]}"

# Node identity comes from the runtime: the container's hostname (UTS
# namespace) must not be overwritten by a build host's /etc/hostname, and
# resolv.conf is the host's (the agent bind-mounts it). Empty files stay as
# mount points.
rm -f "$root/etc/hostname"
: >"$root/etc/resolv.conf"
: >"$root/etc/container-environment"
# Empty machine-id: systemd makes a transient one per boot, from
# $container_uuid when the runtime sets it (stable journal directory).
: >"$root/etc/machine-id"

# Mount points of the host volumes the agent binds in. Their image content
# is hidden anyway: start empty.
for d in var/lib/etcd var/lib/docker var/lib/containerd var/lib/registry var/lib/kubelet var/log; do
	rm -rf --one-file-system "${root:?}/$d"
	mkdir -p "$root/$d"
done
chmod 0700 "$root/var/lib/etcd"

# Build-only dpkg setting (see build.sh), not for the running image.
sed -i '/^force-unsafe-io$/d' "$root/etc/dpkg/dpkg.cfg.d/99mmdebstrap"

# Trim what a read-only runtime image never uses.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
	"$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
