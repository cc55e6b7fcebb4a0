#!/bin/bash
# Build (or find in the cache) the Kubernetes components for planet, from
# their Go modules: kube (multi-call: kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl), etcd, etcdctl, containerd and
# containerd-shim-runc-v2.
#
#   planet-image/kube/build.sh [--out DIR] [--cache-dir DIR]
#
# The LAST line of stdout is the absolute path of a directory holding the
# binaries, the kube-* symlinks and versions.json. Progress goes to stderr.
# Run it under `nice -n 19` on a shared machine. See README.md here.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here
# The components, built one after another (a kube link needs a few GiB).
readonly components=(kubernetes etcd containerd helm)
readonly kube_links=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kube-control-plane kube-node)
# containerd's Makefile tags for a static build; no_btrfs: btrfs needs cgo
# headers (it is off without cgo anyway; say so explicitly).
readonly containerd_tags="no_btrfs urfave_cli_no_docs osusergo netgo static_build"
readonly shim_tags="$containerd_tags no_grpc"
# Fixed, not the caller's: it is not part of the cache key.
export SOURCE_DATE_EPOCH=1700000000

log() { echo "kube: $*" >&2; }
die() {
	echo "kube: ERROR: $*" >&2
	exit 1
}
usage() {
	sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit "${1:-2}"
}

cache_root=${GRAVITY_KUBE_CACHE:-/var/cache/gravity/kube}
out=""
while (($#)); do
	case $1 in
	--cache-dir) cache_root=${2:?--cache-dir needs a directory}; shift 2 ;;
	--cache-dir=*) cache_root=${1#*=}; shift ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--out=*) out=${1#*=}; shift ;;
	-h | --help) usage 0 ;;
	*) log "unknown argument: $1"; usage ;;
	esac
done

# --- toolchain ----------------------------------------------------------------
export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go, Go >= 1.26.6)"
# Never fetch another toolchain; build with this one or fail with go's message.
export GOTOOLCHAIN=local CGO_ENABLED=0
# -mod=readonly: go.mod/go.sum are the recipe and must be complete as
# committed (regenerate with update-kubernetes.sh / go mod tidy).
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
unset GOOS GOARCH GOAMD64 GOEXPERIMENT GODEBUG
go_version=$(go env GOVERSION)
go_target=$(go env GOOS GOARCH GOAMD64 | paste -sd/)

# --- cache key ----------------------------------------------------------------
# sha256 over the recipe files (path and content) and the Go toolchain.
recipe_manifest() {
	echo "go $go_version $go_target"
	(
		cd "$here"
		{
			echo build.sh
			for c in "${components[@]}"; do
				find "$c" -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name '*.go' \)
			done
		} | LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "$f"; done
	)
}
manifest=$(recipe_manifest)
key=$(sha256sum <<<"$manifest" | cut -d' ' -f1)
readonly manifest key

# Outside any checkout: check the nearest existing ancestor before creating it.
existing=$cache_root
until [[ -d $existing ]]; do existing=$(dirname "$existing"); done
if top=$(git -C "$existing" rev-parse --show-toplevel 2>/dev/null); then
	die "cache directory $cache_root is inside the git checkout $top; give one outside any checkout (--cache-dir or GRAVITY_KUBE_CACHE)"
fi
mkdir -p "$cache_root"
cache=$(cd "$cache_root" && pwd)
readonly cache
result=$cache/$key
complete() { [[ -f $1/versions.json ]]; } # written last, before the rename

emit() { # DIR: copy the result to --out if asked, then print the directory
	local dir=$1
	if [[ -n $out ]]; then
		mkdir -p "$out"
		out=$(cd "$out" && pwd)
		if ! cmp -s "$dir/versions.json" "$out/versions.json"; then
			[[ -z $(ls -A "$out") ]] ||
				die "--out $out is not empty and does not hold this build; give an empty or new directory"
			# Hard links when on the same filesystem, else copies; versions.json
			# last, so a reader that sees it sees every binary.
			local f
			for f in "$dir"/*; do
				[[ ${f##*/} == versions.json ]] && continue
				if [[ -L $f ]]; then
					cp -P "$f" "$out/"
				else
					ln -f "$f" "$out/.${f##*/}.tmp" 2>/dev/null || cp "$f" "$out/.${f##*/}.tmp"
					mv "$out/.${f##*/}.tmp" "$out/${f##*/}"
				fi
			done
			cp "$dir/versions.json" "$out/.versions.json.tmp"
			mv "$out/.versions.json.tmp" "$out/versions.json"
		fi
		dir=$out
	fi
	echo "$dir"
}

if complete "$result"; then
	log "cached: key ${key:0:12} ($result)"
	emit "$result"
	exit 0
fi

# Why there is no entry: compare with the newest complete entry's manifest.
why() {
	local newest="" d
	for d in "$cache"/*/; do
		d=${d%/}
		complete "$d" && [[ -f $d/.recipe && ( -z $newest || $d -nt $newest ) ]] && newest=$d
	done
	if [[ -z $newest ]]; then
		echo "first build in $cache"
		return
	fi
	local changed
	changed=$(diff <(echo "$manifest") "$newest/.recipe" | sed -n 's/^[<>] //p' |
		awk '{ if ($1 == "go") print "go toolchain"; else print $2 }' | LC_ALL=C sort -u | paste -sd' ')
	local k=${newest##*/}
	echo "recipe changed since the newest entry ${k:0:12}: ${changed:-?}"
}
log "no cache entry for key ${key:0:12}: $(why)"

# --- build ------------------------------------------------------------------
for tool in flock sha256sum; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install util-linux coreutils)"
done
[[ -w $cache ]] || die "cache directory $cache is not writable"

# One builder per key; a second one waits and then finds the result.
exec 9>"$cache/.lock-$key"
if ! flock -n 9; then
	log "another build of key ${key:0:12} is running; waiting for it"
	flock 9
fi
if complete "$result"; then
	log "built meanwhile by another process: $result"
	emit "$result"
	exit 0
fi
log "building key ${key:0:12}"
# Leftovers of killed builds: this key's (we hold its lock) and any whose
# builder pid is gone.
for stale in "$cache"/.build-*; do
	[[ -d $stale ]] || continue
	pid=${stale##*.}
	if [[ $stale == "$cache/.build-$key."* ]] || ! kill -0 "$pid" 2>/dev/null; then
		log "removing stale build directory $stale"
		rm -rf --one-file-system -- "$stale"
	fi
done

build=$cache/.build-$key.$$
# go runs as a background child in its own process group, so that a SIGTERM
# to this script is handled at once and stops the compilers too. (Called from
# this shell, never from a subshell: bash defers the trap until a foreground
# subshell exits.)
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
		# The compilers and the linker are in go's group too: wait for them
		# (a dying link takes ~1 s) before removing what they write into.
		local i
		for ((i = 0; i < 100; i++)); do
			kill -0 -- "-$child" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -rf --one-file-system -- "$build"
	((rc == 0)) || log "build failed (exit $rc); nothing was written to $cache"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$build/out" "$build/tmp"
bin=$build/out
# go's own work directories, so that a killed go leaves nothing in /tmp.
export GOTMPDIR=$build/tmp

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
started=$(now)
module_version() { (cd "$here/$1" && go list -m -f '{{.Version}}' "$2"); }

# Each component: first fetch exactly the modules its packages need (from
# GOPROXY into GOMODCACHE; a no-op when they are there: then the build works
# offline), then compile.
build_component() { # NAME DIR TAGS PACKAGES...
	local name=$1 dir=$2 tags=$3
	shift 3
	local t
	t=$(now)
	run go -C "$here/$dir" list -deps -tags "$tags" "$@" >/dev/null ||
		die "$name: fetching modules failed (GOPROXY=$(go env GOPROXY)); see go's message above"
	log "$name: modules ready in $(since "$t") s"
}

# Kubernetes ------------------------------------------------------------------
k8s_version=$(module_version kubernetes k8s.io/kubernetes)
[[ $k8s_version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "k8s.io/kubernetes is at '$k8s_version', not a release"
k8s_minor=${BASH_REMATCH[1]}
build_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
	k8s_ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
build_component kubernetes kubernetes "" .
t=$(now)
run go -C "$here/kubernetes" build -ldflags "$k8s_ldflags" -o "$bin/kube" .
log "kubernetes: kube compiled in $(since "$t") s ($(stat -c %s "$bin/kube") bytes)"
for l in "${kube_links[@]}"; do ln -s kube "$bin/$l"; done

# etcd ------------------------------------------------------------------------
etcd_version=$(module_version etcd go.etcd.io/etcd/server/v3)
etcdctl_version=$(module_version etcd go.etcd.io/etcd/etcdctl/v3)
[[ $etcd_version == "$etcdctl_version" ]] || die "etcd/go.mod: server/v3 $etcd_version but etcdctl/v3 $etcdctl_version"
etcd_ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=go-module"
build_component etcd etcd "" . go.etcd.io/etcd/etcdctl/v3
t=$(now)
run go -C "$here/etcd" build -ldflags "$etcd_ldflags" -o "$bin/etcd" .
run go -C "$here/etcd" build -ldflags "$etcd_ldflags" -o "$bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
log "etcd: etcd and etcdctl compiled in $(since "$t") s"

# containerd ------------------------------------------------------------------
containerd_version=$(module_version containerd github.com/containerd/containerd/v2)
ctd=github.com/containerd/containerd/v2
ctd_ldflags="-s -w -X $ctd/version.Version=$containerd_version -X $ctd/version.Revision= -X $ctd/version.Package=$ctd"
build_component containerd containerd "$containerd_tags" "$ctd/cmd/containerd"
build_component containerd-shim containerd "$shim_tags" "$ctd/cmd/containerd-shim-runc-v2"
t=$(now)
run go -C "$here/containerd" build -tags "$containerd_tags" -ldflags "$ctd_ldflags" -o "$bin/containerd" "$ctd/cmd/containerd"
run go -C "$here/containerd" build -tags "$shim_tags" -ldflags "$ctd_ldflags" -o "$bin/containerd-shim-runc-v2" "$ctd/cmd/containerd-shim-runc-v2"
log "containerd: containerd and containerd-shim-runc-v2 compiled in $(since "$t") s"

# helm ------------------------------------------------------------------------
# Stamped with the Kubernetes built here, so that `helm template` (tele build)
# renders .Capabilities.KubeVersion as the cluster it ships in.
helm_version=$(module_version helm helm.sh/helm/v3)
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
	helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
build_component helm helm "" helm.sh/helm/v3/cmd/helm
t=$(now)
run go -C "$here/helm" build -ldflags "$helm_ldflags" -o "$bin/helm" helm.sh/helm/v3/cmd/helm
log "helm: helm compiled in $(since "$t") s"

# --- check and publish --------------------------------------------------------
# Each binary runs and reports the version it was stamped with (v0.0.0 or
# "+unknown" would mean the ldflags missed).
expect() { # WANT CMD...
	local want=$1 got
	shift
	got=$("$@" 2>&1) || die "'${*##*/}' failed: $got"
	[[ $got == *"$want"* ]] || die "'${*##*/}' printed '$got', expected '$want'"
}
expect "Kubernetes $k8s_version" "$bin/kubelet" --version
expect "Kubernetes $k8s_version" "$bin/kube" kube-apiserver --version
expect "Client Version: $k8s_version" "$bin/kubectl" version --client
expect "etcd Version: ${etcd_version#v}" "$bin/etcd" --version
expect "etcdctl version: ${etcd_version#v}" "$bin/etcdctl" version
expect "containerd $ctd $containerd_version" "$bin/containerd" --version
expect "Version:  $containerd_version" "$bin/containerd-shim-runc-v2" -v
expect "$helm_version" "$bin/helm" version --short
chart=$build/tmp/capabilities
mkdir -p "$chart/templates"
printf 'apiVersion: v2\nname: capabilities\nversion: 0.1.0\n' >"$chart/Chart.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  minor: "{{ .Capabilities.KubeVersion.Minor }}"\n' >"$chart/templates/c.yaml"
HELM_CACHE_HOME=$build/tmp HELM_CONFIG_HOME=$build/tmp HELM_DATA_HOME=$build/tmp \
	expect "minor: \"$k8s_minor\"" "$bin/helm" template x "$chart"

echo "$manifest" >"$bin/.recipe"
cat >"$bin/versions.json" <<EOF
{"kubernetes": "$k8s_version", "etcd": "$etcd_version", "containerd": "$containerd_version", "helm": "$helm_version", "go": "$go_version", "key": "$key"}
EOF
chmod 0755 "$bin"
# Atomic publish: the result directory appears complete or not at all.
mv -T "$bin" "$result"
log "built key ${key:0:12} in $(since "$started") s: $result ($(du -sh "$result" | cut -f1))"
emit "$result"
