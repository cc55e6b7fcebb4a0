#!/usr/bin/env bash
# Debian packages the preflight integration tests (tests/tests/preflight_*.rs) and benchmarks
# (bench/preflight/run.sh) need on a clean Debian 12. Run as root.
set -euo pipefail
packages=(
    bash            # custom check scripts run with bash
    iproute2        # ip netns, veth, tc (tbf) for the multi-host tests
    nftables        # a firewall that drops a port in the reachability test
    util-linux      # losetup, mount, unshare
    procps          # sysctl
    xfsprogs        # mkfs.xfs for loop volumes
    e2fsprogs       # mkfs.ext4
    fio             # benchmark reference for the disk rate check
    iperf3          # benchmark reference for the network rate check
    jq              # the benchmark reads JSON reports
)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
