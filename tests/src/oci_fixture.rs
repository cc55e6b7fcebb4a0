//! Container images made without a Docker daemon: deterministic gzip layers from in-memory
//! files, written as an OCI image layout that `skopeo` can copy into a registry.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// One gzip-compressed layer and the digest of its uncompressed tar (the config's diff_id).
#[derive(Clone, Debug)]
pub struct Layer {
    pub gzip: Vec<u8>,
    pub diff_id: String,
}

impl Layer {
    pub fn digest(&self) -> String {
        digest(&self.gzip)
    }
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A layer holding `files` (path, content), root-owned, fixed mtime: same input, same digest.
pub fn layer(files: &[(&str, &[u8])]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(946_684_800);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, *data).expect("tar entry");
    }
    let tar = tar.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    Layer {
        diff_id: digest(&tar),
        gzip: gz.finish().expect("gzip"),
    }
}

/// A layer of `size` bytes of incompressible data (for benchmarks), seeded so it is stable.
pub fn random_layer(name: &str, size: usize, seed: u64) -> Layer {
    let mut data = vec![0u8; size];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    for chunk in data.chunks_mut(8) {
        // xorshift64*: fast, and gzip cannot shrink it, like real binaries.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    layer(&[(name, &data)])
}

/// An image: a name (the `ref.name` annotation) and its layers, base first.
pub struct Image {
    pub name: String,
    pub layers: Vec<Layer>,
}

/// What [`write_layout`] wrote for an image.
pub struct Written {
    pub manifest_digest: String,
    pub config_digest: String,
}

/// Writes `images` as an OCI image layout in `dir`; shared layers are written once.
pub fn write_layout(dir: &Path, images: &[Image]) -> BTreeMap<String, Written> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}")
        .expect("oci-layout");
    let put = |bytes: &[u8]| -> String {
        let d = digest(bytes);
        std::fs::write(blobs.join(&d["sha256:".len()..]), bytes).expect("blob");
        d
    };
    let mut index = Vec::new();
    let mut out = BTreeMap::new();
    for img in images {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/app"], "Labels": {"fixture": img.name}},
            "rootfs": {"type": "layers", "diff_ids": img.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        }))
        .expect("config");
        let config_digest = put(&config);
        let layers: Vec<_> = img
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(&l.gzip),
                    "size": l.gzip.len(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": layers,
        }))
        .expect("manifest");
        let manifest_digest = put(&manifest);
        index.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": img.name},
        }));
        out.insert(
            img.name.clone(),
            Written {
                manifest_digest,
                config_digest,
            },
        );
    }
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": index}))
            .expect("index"),
    )
    .expect("index.json");
    out
}
