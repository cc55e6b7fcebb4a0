#!/bin/bash
# Builds the example's next version, an upgrade for the image examples/single-node.sh builds:
# planet's image under another version (the same files, so planet switches images), kubelet
# with `--max-pods=100`, and the web application at tag 1.1 by an update hook (the install
# hook's `helm upgrade --install`).
#
#   examples/single-node-next.sh OUT.tar VERSION PLANET_DIR [tele build options: --gravity FILE, -q, ...]
#
# tele, helm and EXAMPLE_NETWORK_TYPE as for examples/single-node.sh; skopeo tags the web
# image 1.1.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage="usage: examples/single-node-next.sh OUT.tar VERSION PLANET_DIR [tele build options]"
out=${1:?$usage}
version=${2:?$usage}
planet=${3:?$usage}
shift 3
[[ -f $planet/planet.json ]] || { echo "example: $planet holds no planet image (planet.json)" >&2; exit 1; }
tele=${TELE:-$here/../target/x86_64-unknown-linux-gnu/release/tele}
[[ -x $tele ]] || { echo "example: $tele not found (make release, or set TELE)" >&2; exit 1; }
if [[ -z ${TELE_HELM:-} ]]; then
	kube=$("$here/../planet-image/kube/build.sh" | tail -1) ||
		{ echo "example: planet-image/kube/build.sh failed: it builds the helm that renders the chart" >&2; exit 1; }
	export TELE_HELM=$kube/helm
fi
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

cp -r "$here/single-node" "$work/app"
sed -i -e "s/resourceVersion: 0.1.0/resourceVersion: $version/" \
	-e 's/"--system-reserved=memory=500Mi"\]/"--system-reserved=memory=500Mi", "--max-pods=100"]/' "$work/app/app.yaml"
grep -q -- "--max-pods=100" "$work/app/app.yaml" || { echo "example: app.yaml's kubelet args moved" >&2; exit 1; }
printf '  update:\n    job: file://install.yaml\n' >>"$work/app/app.yaml"
if [[ -n ${EXAMPLE_NETWORK_TYPE:-} ]]; then # as examples/single-node.sh
	printf 'providers:\n  generic:\n    network:\n      type: %s\n' "$EXAMPLE_NETWORK_TYPE" >>"$work/app/app.yaml"
fi
sed -i 's/tag: "1.0"/tag: "1.1"/' "$work/app/charts/web/values.yaml"

mkdir "$work/planet"
python3 - "$planet" "$work/planet" "$version" <<'PY'
import json, os, shutil, sys
src, dst, version = sys.argv[1:]
meta = json.load(open(f"{src}/planet.json"))
meta["version"] += f"-{version}"
json.dump(meta, open(f"{dst}/planet.json", "w"))
try:
    os.link(f"{src}/{meta['file']}", f"{dst}/{meta['file']}")
except OSError:
    shutil.copy(f"{src}/{meta['file']}", f"{dst}/{meta['file']}")
PY

"$here/web/build.sh" "$work/web" >/dev/null
skopeo copy -q "oci:$work/web:example.com/web:1.0" "oci:$work/web:example.com/web:1.1"
"$tele" build "$work/app/app.yaml" --image-source "$work/web" --planet "$work/planet" -o "$out" "$@"
