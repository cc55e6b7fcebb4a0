#!/bin/bash
# The example application's image, `example.com/web:1.0`: busybox's httpd serving index.html
# on port 8080, written as an OCI image layout for `tele build --image-source`. Made from
# Debian's busybox-static (scripts/setup-host installs it), so nothing is downloaded; the
# same files give the same digests.
#
#   examples/web/build.sh DIR      (DIR is replaced; its path is printed last)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib/oci-layout.sh
. "$here/../../scripts/lib/oci-layout.sh"
export SOURCE_DATE_EPOCH=1700000000

out=${1:?usage: examples/web/build.sh DIR}
[[ -x /bin/busybox ]] && /bin/busybox --list | grep -x httpd >/dev/null ||
	{ echo "web: /bin/busybox with httpd not found (apt-get install busybox-static)" >&2; exit 1; }
rm -rf -- "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(mktemp -d)
trap 'rm -rf -- "$root"' EXIT
mkdir -p "$root/bin" "$root/www"
cp /bin/busybox "$root/bin/busybox"
cp "$here/index.html" "$root/www/index.html"

# httpd as a container's PID 1 would ignore SIGTERM (the kernel drops signals PID 1 has no
# handler for), so every drain, rollout and uninstall would wait out the pod's 30 s grace
# period: a shell stops it on SIGTERM, as a well-behaved application does.
entrypoint='["/bin/busybox", "sh", "-c", "trap \"exit 0\" TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"]'
oci_layout_begin "$out"
oci_layout_image example.com/web:1.0 "$root" \
	"{\"Entrypoint\": $entrypoint, \"ExposedPorts\": {\"8080/tcp\": {}}}"
oci_layout_end
echo "$out"
