#!/bin/bash
# Builds the example cluster image: the web application's image (examples/web/build.sh), then
# `tele build` of examples/single-node with it as an image source, so nothing is downloaded.
#
#   examples/single-node.sh OUT.tar [tele build options: --planet DIR, --gravity FILE, -q, ...]
#
# tele is $TELE, or the release build's (make release). Its chart (charts/web) is rendered by
# $TELE_HELM, or by the helm that planet-image/kube/build.sh built (planet's own).
# EXAMPLE_NETWORK_TYPE=wireguard builds it with that pod overlay (providers.generic.network.type;
# the hosts' kernels need the wireguard module) instead of vxlan.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: examples/single-node.sh OUT.tar [tele build options]}
shift
tele=${TELE:-$here/../target/x86_64-unknown-linux-gnu/release/tele}
[[ -x $tele ]] || { echo "example: $tele not found (make release, or set TELE)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
if [[ -z ${TELE_HELM:-} ]]; then
	kube=$("$here/../planet-image/kube/build.sh" | tail -1) ||
		{ echo "example: planet-image/kube/build.sh failed: it builds the helm that renders the chart" >&2; exit 1; }
	export TELE_HELM=$kube/helm
fi
images=$(mktemp -d)
trap 'rm -rf -- "$images"' EXIT
"$here/web/build.sh" "$images/web" >/dev/null
app=$here/single-node
if [[ -n ${EXAMPLE_NETWORK_TYPE:-} ]]; then
	cp -r "$here/single-node" "$images/app"
	app=$images/app
	printf 'providers:\n  generic:\n    network:\n      type: %s\n' "$EXAMPLE_NETWORK_TYPE" >>"$app/app.yaml"
fi
"$tele" build "$app/app.yaml" --image-source "$images/web" -o "$out" "$@"
