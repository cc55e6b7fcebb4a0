#!/bin/bash
# Build (or find in the cache) the planet system container image.
#
#   planet-image/build.sh [--kube-bin DIR] [--system-images DIR]
#                         [--format erofs|squashfs] [--cache-dir DIR] [--out DIR]
#
# Without --kube-bin the Kubernetes, etcd and containerd binaries come from
# planet-image/kube/build.sh, without --system-images the pause and CoreDNS
# images from planet-image/images/build.sh (both cached outside the checkout).
#
# The LAST line of stdout is the absolute path of a directory holding exactly
# planet.<format> and planet.json. Everything else goes to stderr.
# See planet-image/README.md for the contract with the agent.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
readonly here repo
readonly suite=bookworm
mirror=${PLANET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${PLANET_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# Files in planet-image/ that do not affect the image and so stay out of the
# recipe hash. Everything else (this script included) is in it. kube/ is the
# recipe of the Kubernetes binaries: what it builds enters through --kube-bin,
# whose files are hashed.
readonly not_recipe=(README.md smoke-runc.sh 'kube/*' 'images/*')

log() { echo "planet-image: $*" >&2; }
die() {
	echo "planet-image: ERROR: $*" >&2
	exit 1
}
usage() {
	sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit "${1:-2}"
}

kube_bin=""
system_images=""
format=erofs
cache_root=${GRAVITY_CACHE_DIR:-$repo/.cache}
out=""
while (($#)); do
	case $1 in
	--kube-bin) kube_bin=${2:?--kube-bin needs a directory}; shift 2 ;;
	--kube-bin=*) kube_bin=${1#*=}; shift ;;
	--system-images) system_images=${2:?--system-images needs a directory}; shift 2 ;;
	--system-images=*) system_images=${1#*=}; shift ;;
	--format) format=${2:?--format needs erofs or squashfs}; shift 2 ;;
	--format=*) format=${1#*=}; shift ;;
	--cache-dir) cache_root=${2:?--cache-dir needs a directory}; shift 2 ;;
	--cache-dir=*) cache_root=${1#*=}; shift ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--out=*) out=${1#*=}; shift ;;
	-h | --help) usage 0 ;;
	*) log "unknown argument: $1"; usage ;;
	esac
done
case $format in
erofs | squashfs) ;;
*) die "--format must be erofs or squashfs, not '$format'" ;;
esac
if [[ -z $kube_bin ]]; then
	# planet's etcd, containerd (CRI) and Kubernetes: the image has no other.
	log "no --kube-bin: taking the binaries from planet-image/kube/build.sh"
	kube_bin=$("$here/kube/build.sh" | tail -1) ||
		die "planet-image/kube/build.sh failed; build it (see planet-image/kube/README.md) or give --kube-bin DIR"
fi
[[ -d $kube_bin ]] || die "--kube-bin $kube_bin is not a directory"
kube_bin=$(cd "$kube_bin" && pwd)
if [[ -z $system_images ]]; then
	# The pod sandbox (pause) and CoreDNS images, served by planet's registry.
	system_images=$("$here/images/build.sh" | tail -1) ||
		die "planet-image/images/build.sh failed; see its message above, or give --system-images DIR"
fi
[[ -f $system_images/index.json ]] || die "--system-images $system_images is not an OCI image layout (no index.json)"
system_images=$(cd "$system_images" && pwd)
mkdir -p "$cache_root/planet"
cache=$(cd "$cache_root/planet" && pwd)
readonly cache

version=$(tr -d '[:space:]' <"$here/VERSION")
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z.-]+)?$ ]] ||
	die "$here/VERSION holds '$version', not a version like 0.1.0"

# --- recipe hash ----------------------------------------------------------
# sha256 of: the format, every recipe file (path, executable bit, content) and
# every --kube-bin file (name, content). Exec bits rather than modes: a git
# checkout's modes depend on the umask.
hash_tree() { # DIR [exclude names...] -> "x|- sha256  ./path" lines, sorted
	local dir=$1
	shift
	local -a excl=()
	local n
	for n in "$@"; do excl+=(! -path "./$n"); done
	(
		cd "$dir"
		find . -type f ! -path './.*' "${excl[@]}" -print0 | LC_ALL=C sort -z |
			while IFS= read -r -d '' f; do
				if [[ -x $f ]]; then printf 'x '; else printf -- '- '; fi
				sha256sum -- "$f"
			done
	)
}
# kubelet & co. are ~100 MB each: remember their hashes by (size, mtime,
# inode) so that a cached run stays well under a second.
kube_bin_manifest() {
	local memo=$cache/.kube-bin-hashes key line f
	touch "$memo"
	(cd "$kube_bin" && find . -maxdepth 1 -type f -printf '%P\t%s\t%T@\t%i\t%D\n') | LC_ALL=C sort |
		while IFS= read -r line; do
			f=${line%%$'\t'*}
			key="$kube_bin/$line"
			local sum
			sum=$(awk -F'\034' -v k="$key" '$1 == k { s = $2 } END { print s }' "$memo")
			if [[ -z $sum ]]; then
				sum=$(sha256sum -- "$kube_bin/$f" | cut -d' ' -f1)
				printf '%s\034%s\n' "$key" "$sum" >>"$memo"
			fi
			printf '%s %s\n' "$sum" "$f"
		done
	# Symlinks (the multi-call kube's kubelet -> kube, ...): name and target.
	(cd "$kube_bin" && find . -maxdepth 1 -type l -printf 'link %P -> %l\n') | LC_ALL=C sort
}
recipe=$(
	{
		echo "format $format"
		hash_tree "$here" "${not_recipe[@]}"
		echo "kube-bin"
		kube_bin_manifest
		echo "system-images"
		hash_tree "$system_images"
	} | sha256sum | cut -d' ' -f1
)
readonly recipe
full_version="$version+${recipe:0:12}"
image_name=planet.$format
result=$cache/$recipe

emit() { # DIR: copy the result to --out if asked, then print the directory
	local dir=$1
	if [[ -n $out ]]; then
		mkdir -p "$out"
		out=$(cd "$out" && pwd)
		if ! cmp -s "$dir/planet.json" "$out/planet.json"; then
			if [[ -n $(ls -A "$out") ]]; then
				die "--out $out is not empty and does not hold this image; give an empty or new directory"
			fi
			# A hard link when on the same filesystem, else a copy; the json
			# last, so a reader that sees it sees the whole image too.
			ln -f "$dir/$image_name" "$out/.$image_name.tmp" 2>/dev/null ||
				cp "$dir/$image_name" "$out/.$image_name.tmp"
			mv "$out/.$image_name.tmp" "$out/$image_name"
			cp "$dir/planet.json" "$out/.planet.json.tmp"
			mv "$out/.planet.json.tmp" "$out/planet.json"
		fi
		dir=$out
	fi
	echo "$dir"
}

if [[ -f $result/planet.json && -f $result/$image_name ]]; then
	log "cached: $full_version ($result)"
	emit "$result"
	exit 0
fi

# --- build ------------------------------------------------------------------
((EUID == 0)) || die "building the image needs root (mmdebstrap in root mode, chroot); the cache has no image for recipe $recipe"
for tool in mmdebstrap flock chroot dpkg-query sha256sum; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install mmdebstrap util-linux coreutils dpkg)"
done
case $format in
erofs) command -v mkfs.erofs >/dev/null || die "mkfs.erofs not found (apt-get install erofs-utils)" ;;
squashfs) command -v mksquashfs >/dev/null || die "mksquashfs not found (apt-get install squashfs-tools)" ;;
esac

# One builder per recipe; a second one waits and then finds the result.
exec 9>"$cache/.lock-$recipe"
flock 9
if [[ -f $result/planet.json && -f $result/$image_name ]]; then
	log "built meanwhile by another process: $result"
	emit "$result"
	exit 0
fi

# Unmount whatever a killed mmdebstrap left mounted, then remove. Never
# crosses into a mounted filesystem.
remove_build_dir() {
	local dir=$1 m mounts
	[[ -d $dir ]] || return 0
	mounts=$(findmnt -rn -o TARGET | grep -F -- "$dir/" | sort -r) || true
	while IFS= read -r m; do
		[[ -z $m ]] || umount -l -- "$m" || true
	done <<<"$mounts"
	rm -rf --one-file-system -- "$dir"
}
# Leftovers of builds that were killed (SIGKILL, power loss): this recipe's
# (we hold its lock) and any whose builder pid is gone.
for stale in "$cache"/.build-*; do
	[[ -d $stale ]] || continue
	pid=${stale##*.}
	if [[ $stale == "$cache/.build-$recipe."* ]] || ! kill -0 "$pid" 2>/dev/null; then
		log "removing stale build directory $stale"
		remove_build_dir "$stale"
	fi
done

build=$cache/.build-$recipe.$$
# Long steps run as background children in their own process group, so that
# a SIGTERM to this script is handled at once (bash defers traps until a
# foreground child exits) and reaches apt/dpkg under mmdebstrap too.
child=""
run() {
	setsid "$@" &
	child=$!
	wait "$child"
	child=""
}
cleanup() {
	local rc=$?
	if [[ -n $child ]]; then
		kill -TERM -- "-$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	remove_build_dir "$build"
	((rc == 0)) || log "build failed (exit $rc); nothing was written to $cache"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$build"/{debs-in,debs-out,out}
# Reproducible output: the same recipe and the same Debian packages give the
# same bytes (mmdebstrap, shadow and the mkfs tools honour it; file mtimes in
# the image are all set to it). Fixed here, not taken from the caller's
# environment, because it is not part of the recipe hash.
export SOURCE_DATE_EPOCH=1700000000
fs_uuid=$(sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/' <<<"$recipe")
rootfs=$build/rootfs
started=$SECONDS

# Downloaded .debs are kept between builds of different recipes (saves the
# ~130 MB download, ~40 s here). Hard links: instant, no extra space.
debs=$cache/debs
mkdir -p "$debs"
(flock -s 8 && cp -al "$debs/." "$build/debs-in/") 8>"$cache/.lock-debs"

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$here/packages")
include=$(
	IFS=,
	echo "${packages[*]}"
)
log "building $full_version ($format) from Debian $suite: ${packages[*]}"

# shellcheck disable=SC2016 # the hooks' "$1" is for mmdebstrap's shell: the chroot
mmdebstrap_opts=(
	--variant=minbase
	--mode=root
	--format=directory
	--aptopt='Apt::Install-Recommends "false"'
	--aptopt='Acquire::Languages "none"'
	# No docs, man pages or translations in the image; keep the licences.
	# throwaway chroot: no fsync per file (dpkg is most of the build time)
	--dpkgopt='force-unsafe-io'
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-include=/usr/share/locale/locale.alias'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/lintian/*'
	--dpkgopt='path-exclude=/usr/share/zsh/*'
	--dpkgopt='path-exclude=/usr/share/fish/*'
	# docker.io's libnetwork debugging tools and containerd's legacy v1 shims
	# (dockerd 20.10 and kubelet use io.containerd.runc.v2): 39 MB.
	--dpkgopt='path-exclude=/usr/bin/dnet'
	--dpkgopt='path-exclude=/usr/sbin/ovrouter'
	--dpkgopt='path-exclude=/usr/bin/containerd-shim'
	--dpkgopt='path-exclude=/usr/bin/containerd-shim-runc-v1'
	# merged /usr without the usrmerge package, which drags in perl (~40 MB).
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
	--include="$include"
	--skip=essential/unlink
	--setup-hook='mkdir -p "$1/var/cache/apt/archives"'
	--setup-hook="sync-in $build/debs-in /var/cache/apt/archives/"
	--customize-hook="sync-out /var/cache/apt/archives $build/debs-out"
)
run mmdebstrap "${mmdebstrap_opts[@]}" "$suite" "$rootfs" \
	"deb $mirror $suite main" \
	"deb $mirror $suite-updates main" \
	"deb $security_mirror $suite-security main" >&2

# Publish the downloaded packages for the next build (replace, so the cache
# holds only what the latest build used).
(
	flock 8
	rm -rf "$debs.new" "$debs.old"
	mkdir "$debs.new"
	find "$build/debs-out" -maxdepth 1 -name '*.deb' -exec ln -t "$debs.new" {} +
	mv "$debs" "$debs.old"
	mv "$debs.new" "$debs"
	rm -rf "$debs.old"
) 8>"$cache/.lock-debs"

"$here/customize.sh" "$rootfs"

# Every executable file of --kube-bin, and every symlink (as a symlink: the
# multi-call kube's kubelet -> kube, ...), into /usr/bin. They replace
# Debian's files of the same name; Debian's containerd 1.6 was moved aside
# for dockerd by customize.sh. Other files (versions.json) stay out.
while IFS= read -r -d '' f; do
	name=$(basename "$f")
	if [[ -L $f ]]; then
		rm -f "$rootfs/usr/bin/$name"
		cp -P "$f" "$rootfs/usr/bin/$name"
		log "added $name -> $(readlink "$f") from --kube-bin"
	elif [[ -f $f && -x $f ]]; then
		install -m 0755 "$f" "$rootfs/usr/bin/$name"
		log "added $name from --kube-bin"
	fi
done < <(find "$kube_bin" -maxdepth 1 \( -type f -o -type l \) ! -name '.*' -print0 | LC_ALL=C sort -z)
for f in etcd etcdctl containerd containerd-shim-runc-v2; do
	[[ -x $rootfs/usr/bin/$f ]] || die "--kube-bin $kube_bin has no $f: planet needs it (see planet-image/kube/README.md)"
done
# planet's units run Kubernetes' components through kube-control-plane and
# kube-node: one process each with the multi-call kube; with separate binaries,
# kube-together runs each component as a process of its own.
for f in kube-control-plane kube-node; do
	if [[ -x $rootfs/usr/bin/kubelet && ! -e $rootfs/usr/bin/$f ]]; then
		ln -s /usr/lib/planet/kube-together "$rootfs/usr/bin/$f"
		log "added $f -> /usr/lib/planet/kube-together (--kube-bin has separate binaries)"
	fi
done
# The system images travel inside planet: the install pushes them into the
# registry from the mounted image.
mkdir -p "$rootfs/usr/share/planet"
cp -R "$system_images" "$rootfs/usr/share/planet/images"
system_versions=null
[[ -f $system_images/versions.json ]] && system_versions=$(tr -d '\n' <"$system_images/versions.json")
coredns_version=$(jq -r '.coredns // empty' <<<"$system_versions")
[[ -n $coredns_version ]] || die "--system-images $system_images: versions.json names no CoreDNS version"
sed -i "s|@COREDNS_VERSION@|$coredns_version|g" "$rootfs/usr/lib/planet/addons/coredns.yaml"
kube_versions=null
[[ -f $kube_bin/versions.json ]] && kube_versions=$(tr -d '\n' <"$kube_bin/versions.json")
kubelet=false
[[ -x $rootfs/usr/bin/kubelet ]] && kubelet=true

cat >"$rootfs/etc/planet-release" <<EOF
PLANET_VERSION=$full_version
PLANET_RECIPE=$recipe
PLANET_DEBIAN=$suite
PLANET_KUBELET=$kubelet
EOF

# Versions of the main runtime packages, for planet.json.
versions_json=""
for p in systemd containerd runc docker.io docker-registry containernetworking-plugins iptables; do
	v=$(dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${Version}' "$p")
	[[ $v =~ ^[A-Za-z0-9.+~:-]+$ ]] || die "unexpected version '$v' of $p"
	versions_json+="${versions_json:+, }\"$p\": \"$v\""
done

# The boot transaction as planet's systemd will compute it: an ordering cycle makes systemd
# drop a random job at boot (once planet.target's, so nothing started), and it is logged
# before the journal runs. Refuse the image instead.
command -v systemd-analyze >/dev/null || die "systemd-analyze not found (apt-get install systemd)"
verify=$(systemd-analyze --root="$rootfs" verify default.target 2>&1) || true
if grep -qiE 'ordering cycle|deleted to break|failed to load|bad-setting' <<<"$verify"; then
	die "planet's units do not boot cleanly (systemd-analyze verify default.target):
$verify"
fi

rootfs_kib=$(du -sk "$rootfs" | cut -f1)
log "rootfs: $((rootfs_kib / 1024)) MiB, $(find "$rootfs" | wc -l) inodes, made in $((SECONDS - started)) s"

image=$build/out/$image_name
mkfs_started=$SECONDS
case $format in
erofs)
	# lz4hc with tail packing: Debian 6.1 kernels (also linux-image-cloud-amd64)
	# have EROFS_FS_ZIP (lz4) but not EROFS_FS_ZIP_LZMA.
	run mkfs.erofs --quiet -zlz4hc -Eztailpacking -C262144 \
		-T"$SOURCE_DATE_EPOCH" --ignore-mtime -U"$fs_uuid" "$image" "$rootfs" >&2
	;;
squashfs)
	# mksquashfs takes its timestamps from SOURCE_DATE_EPOCH by itself (and
	# refuses -mkfs-time/-all-time alongside it).
	run mksquashfs "$rootfs" "$image" -comp zstd -b 1M -noappend -no-progress -quiet -reproducible >&2
	;;
esac
size=$(stat -c %s "$image")
sha=$(sha256sum "$image" | cut -d' ' -f1)
log "$image_name: $((size / 1024 / 1024)) MiB, mkfs $((SECONDS - mkfs_started)) s"

cat >"$build/out/planet.json" <<EOF
{
  "version": "$full_version",
  "format": "$format",
  "file": "$image_name",
  "sha256": "$sha",
  "size": $size,
  "recipe": "$recipe",
  "debian": "$suite",
  "kubelet": $kubelet,
  "kube": $kube_versions,
  "images": $system_versions,
  "packages": {$versions_json}
}
EOF

# Atomic publish: the result directory appears complete or not at all.
mv -T "$build/out" "$result"
log "built $full_version in $((SECONDS - started)) s: $result"
emit "$result"
