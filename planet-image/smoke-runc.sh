#!/bin/bash
# Smoke test of the planet image with runc (Debian's), run the way the agent
# runs planet: read-only image + overlay rootfs, host directories bind-mounted
# for persistent data, an agent-style /etc/container-environment, systemd as
# PID 1, host network. Asserts on what the daemons really do, then stops the
# container and always cleans up (container, mounts, cgroups, temp dirs).
#
#   planet-image/smoke-runc.sh [build.sh options, e.g. --format squashfs]
#
# Needs root, runc, python3, curl, ss; ports 2379, 2380 and 5000 free on the
# host (planet shares the host's network). SMOKE_WORKDIR (default /var/tmp)
# must be a real filesystem: dockerd's overlay2 cannot sit on tmpfs/overlayfs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here
readonly id=planet-smoke-$$
readonly service_uid=1001 service_gid=1001
work=""
state=""

t_start=$(date +%s%N)
log() { printf '[%6.2f] %s\n' "$((($(date +%s%N) - t_start) / 1000000))e-3" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

((EUID == 0)) || die "run as root (loop mounts, overlay, runc)"
for tool in runc python3 curl ss findmnt sha256sum; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
busy=$(ss -Hltn '( sport = :2379 or sport = :2380 or sport = :5000 )')
[[ -z $busy ]] || die "ports 2379/2380/5000 are in use on the host (planet uses the host network):"$'\n'"$busy"

work_parent=${SMOKE_WORKDIR:-/var/tmp}
fstype=$(stat -f -c %T "$work_parent")
case $fstype in
tmpfs | overlayfs | overlay) die "SMOKE_WORKDIR=$work_parent is $fstype; docker's overlay2 needs a real filesystem (ext4, xfs)" ;;
esac

# --- image ------------------------------------------------------------------
image_dir=$("$here/build.sh" "$@" | tail -n1)
read -r format file sha version kubelet < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
print(m["format"], m["file"], m["sha256"], m["version"], str(m["kubelet"]).lower())' "$image_dir/planet.json")
t=$(date +%s%N)
actual=$(sha256sum "$image_dir/$file" | cut -d' ' -f1)
[[ $actual == "$sha" ]] || die "$image_dir/$file: sha256 $actual, planet.json says $sha"
log "image $version ($format, $(($(stat -c %s "$image_dir/$file") / 1024 / 1024)) MiB): sha256 verified in $(ms_since "$t") ms"

# --- cleanup, armed before anything is created --------------------------------
runc_() { runc --root "$state" "$@"; }
inside() { runc_ exec "$id" "$@"; }
container_status() { runc_ state "$id" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || echo absent; }

diagnose() {
	[[ -n $state && $(container_status) == running ]] || return 0
	log "--- failed units"
	inside systemctl list-units --failed --no-pager >&2 || true
	log "--- journal (last 60 lines)"
	inside journalctl -b --no-pager -n 60 >&2 || true
}
cleanup() {
	local rc=$? m mounts
	set +e
	((rc == 0)) || diagnose
	if [[ -n $state && -d $state ]]; then
		if [[ $(container_status) != absent ]]; then
			runc_ kill "$id" KILL 2>/dev/null
			for _ in $(seq 50); do [[ $(container_status) == running ]] || break; sleep 0.1; done
			runc_ delete --force "$id" || log "runc delete --force $id failed"
		fi
	fi
	# cgroups runc and systemd created, deepest first (v1 rmdir is not recursive)
	for cg in /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/"$id"; do
		[[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
		[[ -d $cg ]] && log "could not remove cgroup $cg"
	done
	if [[ -n $work ]]; then
		mounts=$(findmnt -rn -o TARGET | grep -F -- "$work/" | sort -r)
		while IFS= read -r m; do
			[[ -z $m ]] || umount -- "$m" || umount -l -- "$m" || log "could not unmount $m"
		done <<<"$mounts"
		if findmnt -rn -o TARGET | grep -qF -- "$work/"; then
			log "still mounted under $work: kept it"
		else
			rm -rf --one-file-system -- "$work"
		fi
	fi
	if ((rc == 0)); then log "PASS"; else log "exit $rc"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d "$work_parent/planet-smoke.XXXXXX")
state=$work/runc
mkdir -p "$work"/{image,upper,ovl-work,rootfs,bundle,runc} \
	"$work"/data/{etcd,docker,containerd,registry,kubelet,log}

# --- rootfs: read-only image + overlay ------------------------------------------
t=$(date +%s%N)
mount -t "$format" -o loop,ro "$image_dir/$file" "$work/image"
mount_ms=$(ms_since "$t")
t=$(date +%s%N)
mount -t overlay overlay \
	-o "lowerdir=$work/image,upperdir=$work/upper,workdir=$work/ovl-work" "$work/rootfs"
overlay_ms=$(ms_since "$t")
log "image mounted (mount -o loop,ro) in $mount_ms ms, overlay in $overlay_ms ms"

# --- the agent's container environment, with non-default values -----------------
cat >"$work/container-environment" <<EOF
PLANET_ROLE="master"
PLANET_CLUSTER_NAME="smoke"
PLANET_SERVICE_UID="$service_uid"
PLANET_SERVICE_GID="$service_gid"
PLANET_ETCD_ARGS="--heartbeat-interval=150 --log-level=debug"
PLANET_DOCKER_ARGS="--log-level=debug"
PLANET_DOCKER_STORAGE_DRIVER="overlay2"
PLANET_KUBELET_ARGS="--system-reserved=memory=500Mi"
PLANET_KUBELET_HAIRPIN_MODE="promiscuous-bridge"
PLANET_ALLOW_PRIVILEGED="true"
EOF

# --- OCI config: start from `runc spec`, then what planet needs -------------------
(cd "$work/bundle" && runc spec)
python3 - "$work" "$id" <<'EOF'
import json, os, resource, sys, uuid

work, cid = sys.argv[1], sys.argv[2]
path = os.path.join(work, "bundle", "config.json")
spec = json.load(open(path))

# Capabilities: everything the host's bounding set has (root here lacks
# CAP_SYS_RESOURCE; asking for it fails with "capset failure").
CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
        "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
        "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
        "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
        "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
        "PERFMON", "BPF", "CHECKPOINT_RESTORE"]
bnd = int([l for l in open("/proc/self/status") if l.startswith("CapBnd:")][0].split()[1], 16)
caps = ["CAP_" + c for i, c in enumerate(CAPS) if bnd >> i & 1]

# rlimits no higher than the host's (NOFILE hard limit 20000 here).
_, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)

proc = spec["process"]
proc.update({
    "terminal": False,
    "args": ["/sbin/init"],
    "cwd": "/",
    # container=other: systemd's container mode; a stable container_uuid
    # gives a stable machine-id (journal directory) across restarts.
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "container=other", "container_uuid=" + uuid.uuid4().hex],
    "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile_hard, "soft": nofile_hard}],
})
proc.pop("noNewPrivileges", None)

spec["root"] = {"path": os.path.join(work, "rootfs"), "readonly": False}
spec["hostname"] = "planet-smoke"

linux = spec["linux"]
# Host network: no "network" namespace. A cgroup namespace is required for
# systemd as PID 1.
linux["namespaces"] = [{"type": t} for t in ("pid", "mount", "uts", "ipc", "cgroup")]
linux["cgroupsPath"] = "/" + cid
# Devices: `runc spec` denies all and runc adds its default set. dockerd inside
# gives every container docker's default set, which also has /dev/console
# (c 5:1): a v1 device cgroup can only hand down what its parent allows.
linux["resources"] = {"devices": [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
]}

mounts = []
for m in spec["mounts"]:
    if m["destination"] == "/sys/fs/cgroup":
        # systemd manages its own subtree: read-write
        m["options"] = ["nosuid", "noexec", "nodev", "relatime", "rw"]
    mounts.append(m)
mounts += [
    {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "nodev", "mode=755", "size=20%"]},
    {"destination": "/run/lock", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "nodev", "noexec", "size=5m"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "nodev", "mode=1777"]},
]
for name, dest in [("etcd", "/var/lib/etcd"), ("docker", "/var/lib/docker"),
                   ("containerd", "/var/lib/containerd"), ("registry", "/var/lib/registry"),
                   ("kubelet", "/var/lib/kubelet"), ("log", "/var/log")]:
    mounts.append({"destination": dest, "type": "bind", "source": os.path.join(work, "data", name),
                   "options": ["rbind", "rw"]})
mounts.append({"destination": "/etc/container-environment", "type": "bind",
               "source": os.path.join(work, "container-environment"), "options": ["bind", "ro"]})
mounts.append({"destination": "/etc/resolv.conf", "type": "bind",
               "source": os.path.realpath("/etc/resolv.conf"), "options": ["bind", "ro"]})
spec["mounts"] = mounts
json.dump(spec, open(path, "w"), indent=2)
EOF

# --- boot -------------------------------------------------------------------------
t_boot=$(date +%s%N)
runc_ run --detach --bundle "$work/bundle" --pid-file "$work/init.pid" "$id" \
	</dev/null >"$work/console.log" 2>&1 || {
	cat "$work/console.log" >&2
	die "runc run failed"
}
init_pid=$(cat "$work/init.pid")
log "container $id started, init pid $init_pid on the host"

deadline=$((SECONDS + 180))
sys_state=""
while :; do
	sys_state=$(inside systemctl is-system-running 2>/dev/null) || true
	case $sys_state in
	running) break ;;
	degraded | maintenance | stopping) die "systemd is $sys_state" ;;
	esac
	if [[ $(container_status) != running ]]; then
		cat "$work/console.log" >&2
		die "container exited during boot"
	fi
	((SECONDS < deadline)) || die "systemd not running after 180 s (state: ${sys_state:-no answer})"
	sleep 0.05
done
boot_ms=$(ms_since "$t_boot")
log "systemd running $boot_ms ms after runc run"
inside systemd-analyze blame --no-pager 2>/dev/null | head -8 | sed 's/^/    blame: /' >&2 || true

# --- assertions -------------------------------------------------------------------
failures=0
check() { # NAME EXPECTED ACTUAL: ACTUAL must contain EXPECTED
	if [[ $3 == *"$2"* ]]; then
		log "ok   $1"
	else
		log "FAIL $1: expected '$2', got '$3'"
		failures=$((failures + 1))
	fi
}
check_eq() { # NAME EXPECTED ACTUAL: exact match
	if [[ $3 == "$2" ]]; then
		log "ok   $1"
	else
		log "FAIL $1: expected '$2', got '$3'"
		failures=$((failures + 1))
	fi
}
main_pid() { inside systemctl show -p MainPID --value "$1"; }
cmdline() { inside cat "/proc/$1/cmdline" | tr '\0' ' '; }
uid_of() { inside stat -c %u "/proc/$1"; }

check_eq "planet.target active" active "$(inside systemctl is-active planet.target || true)"
failed_units=$(inside systemctl list-units --failed --plain --no-legend)
check "no failed units" "<none>" "${failed_units:-<none>}"

check "service user planet" "uid=$service_uid(planet) gid=$service_gid(planet)" "$(inside id planet)"
check "registry.local in /etc/hosts" "127.0.0.1" "$(inside getent hosts registry.local || true)"
check "node name in /etc/hosts" "planet-smoke" "$(inside getent hosts planet-smoke || true)"

etcdctl() { inside env etcdctl --endpoints=http://127.0.0.1:2379 "$@"; }
check "etcd endpoint health" "is healthy" "$(etcdctl endpoint health 2>&1 || true)"
value="smoke-$$-$RANDOM"
etcdctl put /smoke/key "$value" >/dev/null
check "etcd put/get" "$value" "$(etcdctl get --print-value-only /smoke/key)"
etcd_pid=$(main_pid planet-etcd)
etcd_cmd=$(cmdline "$etcd_pid")
check "etcd cmdline has PLANET_ETCD_ARGS" "--heartbeat-interval=150 --log-level=debug" "$etcd_cmd"
check "etcd cmdline has node name" "--name=planet-smoke" "$etcd_cmd"
check "etcd runs as service uid" "$service_uid" "$(uid_of "$etcd_pid")"
check "etcd data on the host volume" "$service_uid:$service_gid member" \
	"$(stat -c %u:%g "$work/data/etcd") $(ls "$work/data/etcd")"

check_eq "docker storage driver" overlay2 "$(inside docker info --format '{{.Driver}}' 2>&1)"
docker_cmd=$(cmdline "$(main_pid planet-docker)")
check "dockerd cmdline has PLANET_DOCKER_ARGS" "--log-level=debug" "$docker_cmd"
check "dockerd cmdline: no bridge, no iptables" "--bridge=none --iptables=false --ip-masq=false" "$docker_cmd"
check "no docker0 on the host" "absent" "$(ip link show docker0 2>/dev/null || echo absent)"

check "registry GET /v2/ from the host" "200" \
	"$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/v2/ || true)"
registry_pid=$(main_pid planet-registry)
check "registry runs as service uid" "$service_uid" "$(uid_of "$registry_pid")"
# The port-5000 listener must be planet's registry, not something on the host.
listener=$(ss -Hltnp 'sport = :5000' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
check "port 5000 is served from inside planet" "$(readlink "/proc/$init_pid/ns/pid")" \
	"$(readlink "/proc/${listener:-0}/ns/pid" 2>/dev/null || echo "no listener")"

if [[ $kubelet == true ]]; then
	# Without cluster configuration a real kubelet may exit and be restarted:
	# catch a live process.
	kubelet_pid=0
	for _ in $(seq 100); do
		kubelet_pid=$(main_pid planet-kube-node)
		((kubelet_pid == 0)) || break
		sleep 0.1
	done
	check "kubelet cmdline has hairpin mode and PLANET_KUBELET_ARGS" \
		"--hairpin-mode=promiscuous-bridge --system-reserved=memory=500Mi" "$(cmdline "$kubelet_pid")"
else
	check_eq "kubelet skipped without /usr/bin/kubelet" "ConditionResult=no" \
		"$(inside systemctl show -p ConditionResult planet-kube-node)"
fi
check "journal persisted on the /var/log volume" "journal" "$(ls "$work/data/log")"

# End to end: an image built inside planet goes through registry.local:5000
# (insecure registry, /etc/hosts entry, the registry's volume) and runs as a
# nested container (containerd, runc, overlay2 on the host volume).
ref=registry.local:5000/smoke/tini:1
if inside sh -c "tar -C /usr/bin -c tini-static | docker import --change 'ENTRYPOINT [\"/tini-static\"]' - $ref" >/dev/null &&
	inside docker push "$ref" >/dev/null && inside docker rmi -f "$ref" >/dev/null &&
	inside docker pull "$ref" >/dev/null; then
	check "docker push/pull via registry.local:5000" "$ref" "$(inside docker image ls --format '{{.Repository}}:{{.Tag}}')"
	check "pushed image stored on the registry volume as the service user" "$service_uid tini" \
		"$(stat -c %u "$work/data/registry/docker") $(ls "$work/data/registry/docker/registry/v2/repositories/smoke")"
else
	check "docker push/pull via registry.local:5000" "success" "failed"
fi
check "docker run (nested container)" "tini version" \
	"$(inside docker run --rm --network=none "$ref" --version 2>&1 || true)"

((failures == 0)) || die "$failures check(s) failed"

# --- stop: SIGRTMIN+3 is systemd's "halt" -------------------------------------------
t=$(date +%s%N)
kill -s RTMIN+3 "$init_pid"
for _ in $(seq 600); do
	[[ $(container_status) == running ]] || break
	sleep 0.05
done
[[ $(container_status) == stopped ]] || die "container still $(container_status) 30 s after SIGRTMIN+3"
runc_ delete "$id"
stop_ms=$(ms_since "$t")
log "stopped (SIGRTMIN+3 to deleted) in $stop_ms ms"
for cg in /sys/fs/cgroup/*/"$id"; do
	[[ ! -d $cg ]] || die "cgroup $cg left behind by runc delete"
done

echo "image=$image_dir/$file format=$format mount_ms=$mount_ms boot_to_running_ms=$boot_ms stop_ms=$stop_ms"
