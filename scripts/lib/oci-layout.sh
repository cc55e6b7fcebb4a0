# Writes container images as one OCI image layout, reproducibly: each image is one gzip layer
# of a directory's files, root-owned, with a fixed mtime, so the same files give the same
# digests. Sourced by planet-image/images/build.sh (pause, CoreDNS) and the examples' image
# recipes. Needs tar, gzip, jq, sha256sum; SOURCE_DATE_EPOCH set.
#
#   oci_layout_begin OUT        an empty layout at OUT (scratch files go to OUT/.work)
#   oci_layout_image REF ROOT CONFIG-JSON
#   oci_layout_end              writes index.json and oci-layout, removes OUT/.work

oci_layout_begin() {
	_oci_out=$1
	_oci_work=$_oci_out/.work
	mkdir -p "$_oci_out/blobs/sha256" "$_oci_work"
	: >"$_oci_work/manifests"
}

_oci_blob() { # FILE -> prints sha256:..., stores the file as a blob
	local d
	d=$(sha256sum "$1" | cut -d' ' -f1)
	cp "$1" "$_oci_out/blobs/sha256/$d"
	echo "sha256:$d"
}

oci_layout_image() {
	local ref=$1 root=$2 config=$3 tarball=$_oci_work/layer.tar
	: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH for reproducible layers}"
	tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
		--format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		-C "$root" -cf "$tarball" .
	local diff_id layer layer_size cfg_digest m_digest
	diff_id=sha256:$(sha256sum "$tarball" | cut -d' ' -f1)
	gzip -n -9 "$tarball"
	layer=$(_oci_blob "$tarball.gz")
	layer_size=$(stat -c %s "$tarball.gz")
	rm "$tarball.gz"
	jq -cn --argjson c "$config" --arg d "$diff_id" \
		'{architecture: "amd64", os: "linux", config: $c, rootfs: {type: "layers", diff_ids: [$d]}}' >"$_oci_work/cfg.json"
	cfg_digest=$(_oci_blob "$_oci_work/cfg.json")
	jq -cn --arg cd "$cfg_digest" --argjson cs "$(stat -c %s "$_oci_work/cfg.json")" --arg ld "$layer" --argjson ls "$layer_size" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		  config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
		  layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]}' >"$_oci_work/manifest.json"
	m_digest=$(_oci_blob "$_oci_work/manifest.json")
	jq -cn --arg d "$m_digest" --argjson s "$(stat -c %s "$_oci_work/manifest.json")" --arg r "$ref" \
		'{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
		  annotations: {"org.opencontainers.image.ref.name": $r}}' >>"$_oci_work/manifests"
	echo "$ref: $layer_size bytes compressed" >&2
}

oci_layout_end() {
	jq -cs '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: .}' \
		"$_oci_work/manifests" >"$_oci_out/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$_oci_out/oci-layout"
	rm -rf -- "$_oci_work"
}
