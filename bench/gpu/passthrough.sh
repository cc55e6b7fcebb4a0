#!/bin/bash
# Checks /dev/nvidia* pass-through into planet on a machine with an NVIDIA GPU: planet is
# configured from a manifest whose profile lists `/dev/nvidia*`, started, and inside it the
# device nodes must appear with the listed mode and owner, the device cgroup must let
# nvidia-smi (the host's, bound in read-only with the driver's NVML library) see the GPU, and
# must refuse a device that is not listed.
#
#   bench/gpu/passthrough.sh GRAVITY PLANET_DIR OUT_DIR [DEVICE_GLOB]
#
# DEVICE_GLOB defaults to /dev/nvidia*; a machine without a GPU can rehearse the script with
# mknod'ed stand-ins (e.g. /dev/gravity-gpu-test*), where nvidia-smi is skipped.
set -uo pipefail
gravity=$1 planet_dir=$2 out=$3 glob=${4:-/dev/nvidia*}
state=$(mktemp -d /tmp/gravity-gpu.XXXXXX)
work=$(mktemp -d /tmp/gravity-gpu-work.XXXXXX)
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/summary.txt"; }
g() { "$gravity" --state-dir "$state" "$@"; }
cleanup() {
	g planet stop --timeout 60s >/dev/null 2>&1
	g planet teardown >"$out/teardown.txt" 2>&1
	rm -rf "$state" "$work"
}
trap cleanup EXIT

log "host: $(uname -r); cgroups: $(stat -fc %T /sys/fs/cgroup)"
ls -la $glob >"$out/host-devices.txt" 2>&1
log "host devices: $(ls -d $glob 2>/dev/null | tr '\n' ' ')"

# The host's nvidia-smi and NVML, bound read-only into planet (what a device plugin or the
# NVIDIA container toolkit brings in production).
smi=$(command -v nvidia-smi || true)
extra_volumes=""
if [[ -n $smi ]]; then
	"$smi" -L >"$out/host-nvidia-smi.txt" 2>&1
	mkdir -p "$work/nvidia/bin" "$work/nvidia/lib"
	cp "$smi" "$work/nvidia/bin/"
	nvml=$(ldconfig -p | awk '/libnvidia-ml.so.1 / {print $NF; exit}')
	[[ -n $nvml ]] || nvml=$(find / -name 'libnvidia-ml.so.1' -not -path '/proc/*' 2>/dev/null | head -1)
	cp -L "$nvml" "$work/nvidia/lib/" 2>/dev/null
	log "nvidia-smi: $smi, NVML: ${nvml:-not found}"
	extra_volumes="
        - name: nvidia-tools
          path: $work/nvidia
          targetPath: /opt/host-nvidia"
fi

cat >"$work/app.yaml" <<YAML
apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: gpucheck
  resourceVersion: 0.1.0
nodeProfiles:
  - name: gpu
    requirements:
      devices:
        - path: $glob
          permissions: rw
          fileMode: "0660"
          uid: 0
          gid: 1001
      volumes:${extra_volumes:- []}
YAML

started=$SECONDS
g planet configure --manifest "$work/app.yaml" --planet-dir "$planet_dir" --service-uid 1001 \
	--node-name gpucheck >"$out/configure.txt" 2>&1 || { log "FAIL configure"; cat "$out/configure.txt"; exit 1; }
if ! g planet start --timeout 180s >"$out/start.txt" 2>&1; then
	log "FAIL start"; cat "$out/start.txt"; g planet status >>"$out/start.txt" 2>&1; exit 1
fi
log "planet started in $((SECONDS - started)) s"

rc=0
inside() { g planet exec -- /bin/sh -c "$1"; }
inside "ls -la $glob" >"$out/planet-devices.txt" 2>&1
log "devices inside planet:"; tee -a "$out/summary.txt" <"$out/planet-devices.txt"
# Mode and owner as the manifest says, for every host node of the glob that is a device.
for dev in $glob; do
	[[ -c $dev || -b $dev ]] || continue
	want="$(printf '%x:%x' "$(stat -c '0x%t' "$dev")" "$(stat -c '0x%T' "$dev")") 660 0 1001"
	got=$(inside "stat -c '%t:%T %a %u %g' $dev" 2>&1)
	if [[ $got == "$want" ]]; then log "PASS $dev: $got"; else log "FAIL $dev: got '$got', want '$want'"; rc=1; fi
done
if [[ -n $smi ]]; then
	if inside "LD_LIBRARY_PATH=/opt/host-nvidia/lib /opt/host-nvidia/bin/nvidia-smi -L" >"$out/planet-nvidia-smi.txt" 2>&1 &&
		grep -q '^GPU 0' "$out/planet-nvidia-smi.txt"; then
		log "PASS nvidia-smi inside planet: $(head -1 "$out/planet-nvidia-smi.txt")"
		inside "LD_LIBRARY_PATH=/opt/host-nvidia/lib /opt/host-nvidia/bin/nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv" \
			>>"$out/planet-nvidia-smi.txt" 2>&1
	else
		log "FAIL nvidia-smi inside planet:"; tee -a "$out/summary.txt" <"$out/planet-nvidia-smi.txt"; rc=1
	fi
else
	log "SKIP nvidia-smi: none on this host"
fi
# A device the profile does not list (10:229, /dev/fuse's numbers): the device cgroup refuses
# to open it even for planet's root. Opening /dev/fuse is harmless where it is allowed.
unlisted=$(inside "mknod /dev/gravity-unlisted c 10 229 && exec 3<>/dev/gravity-unlisted && echo opened" 2>&1)
case $unlisted in
*"Operation not permitted"*) log "PASS an unlisted device is refused: $(echo "$unlisted" | tail -1)" ;;
*opened*) log "FAIL an unlisted device (10:229) could be opened"; rc=1 ;;
*) log "INCONCLUSIVE unlisted device: $unlisted" ;;
esac
g planet status >"$out/status.txt" 2>&1
exit $rc
