//! The planet image: a read-only filesystem image (erofs, or squashfs) plus `planet.json`
//! (`version`, `format`, `file`, `sha256`, `size`), as `planet-image/build.sh` makes it.
//!
//! [`import`] copies it from the cluster image into `<state>/planet/images/<version>/` and
//! verifies its SHA-256. Before every mount, [`verify`] checks it again; hashing ~200 MB on
//! every start would cost most of a second, so a full hash is skipped when the file's identity
//! (device, inode, size, mtime and ctime, which no write can keep) matches the one recorded when
//! it was last hashed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::paths::Paths;
use super::write_atomic;

pub const META_FILE: &str = "planet.json";
const STAMP_FILE: &str = ".verified.json";
const IMPORTED_FILE: &str = "imported.json";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a planet image description: {detail}")]
    Meta { path: PathBuf, detail: String },
    #[error(
        "{path} is corrupt: its SHA-256 is {actual}, but {meta} says {expected}; rebuild or re-copy the image"
    )]
    Checksum {
        path: PathBuf,
        meta: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no planet image {reference} in {dir}: a custom image named in systemOptions.baseImage is expected in {expected} (holding planet.json); rebuild the cluster image with it"
    )]
    NoCustomImage {
        reference: String,
        dir: PathBuf,
        expected: PathBuf,
    },
    #[error("invalid base image reference {0:?}: write NAME:VERSION, e.g. custom-planet:1.0.0")]
    BadReference(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Erofs,
    Squashfs,
}

impl ImageFormat {
    /// The filesystem type for mount(2).
    pub fn fstype(self) -> &'static str {
        match self {
            ImageFormat::Erofs => "erofs",
            ImageFormat::Squashfs => "squashfs",
        }
    }

    /// From a file name's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "erofs" => Some(ImageFormat::Erofs),
            "squashfs" | "sqfs" => Some(ImageFormat::Squashfs),
            _ => None,
        }
    }
}

/// `planet.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub version: String,
    pub format: ImageFormat,
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// Everything else build.sh records (recipe, package versions): kept as is.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ImageMeta {
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let meta: ImageMeta = serde_json::from_slice(&bytes).map_err(|e| ImageError::Meta {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let bad = |detail: String| ImageError::Meta {
            path: path.to_path_buf(),
            detail,
        };
        if !is_simple_name(&meta.version) {
            return Err(bad(format!(
                "version {:?} must be letters, digits and . + _ -",
                meta.version
            )));
        }
        if !is_simple_name(&meta.file) {
            return Err(bad(format!(
                "file {:?} must be a plain file name",
                meta.file
            )));
        }
        if meta.sha256.len() != 64 || !meta.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(format!("sha256 {:?} is not a SHA-256", meta.sha256)));
        }
        Ok(meta)
    }
}

fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '_' | '-'))
}

/// An image in the state directory, verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedImage {
    pub path: PathBuf,
    pub sha256: String,
    pub version: String,
    pub format: ImageFormat,
}

/// Copies (reflink, hard link or copy) the image described by `src_dir/planet.json` into
/// `<state>/planet/images/<version>/` and verifies it. A second call with the image already
/// there and intact does nothing.
/// Whether the caller has already checked the source image against its SHA-256 in this process
/// (the agent verifies a whole cluster image once): then the import does not hash it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Unverified,
    Verified,
}

pub fn import(
    src_dir: &Path,
    state_dir: &Path,
    source: Source,
) -> Result<ImportedImage, ImageError> {
    let meta = ImageMeta::load(&src_dir.join(META_FILE))?;
    let paths = Paths::new(state_dir);
    let dir = paths.images().join(&meta.version);
    let dest = dir.join(&meta.file);
    let imported = ImportedImage {
        path: dest.clone(),
        sha256: meta.sha256.clone(),
        version: meta.version.clone(),
        format: meta.format,
    };

    let intact = dest.is_file() && verify(&dest, &meta.sha256).is_ok();
    if !intact {
        std::fs::create_dir_all(&dir).map_err(|source| ImageError::Write {
            path: dir.clone(),
            source,
        })?;
        let src = src_dir.join(&meta.file);
        let tmp = dir.join(format!(".{}.tmp", meta.file));
        let _ = std::fs::remove_file(&tmp);
        let how = place(&src, &tmp).map_err(|source| ImageError::Write {
            path: tmp.clone(),
            source,
        })?;
        let actual = match source {
            Source::Verified => meta.sha256.clone(),
            Source::Unverified => match hash_file(&tmp) {
                Ok(h) => h,
                Err(source) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(ImageError::Read { path: src, source });
                }
            },
        };
        if actual != meta.sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(ImageError::Checksum {
                path: src,
                meta: src_dir.join(META_FILE),
                expected: meta.sha256.clone(),
                actual,
            });
        }
        std::fs::rename(&tmp, &dest).map_err(|source| ImageError::Write {
            path: dest.clone(),
            source,
        })?;
        write_stamp(&dest, &meta.sha256)?;
        tracing::info!(version = %meta.version, how, "imported the planet image into {}", dir.display());
    }
    let meta_json = serde_json::to_vec_pretty(&meta).expect("planet.json serialises");
    write_atomic(&dir.join(META_FILE), &meta_json).map_err(|source| ImageError::Write {
        path: dir.join(META_FILE),
        source,
    })?;
    let record = serde_json::to_vec_pretty(&imported).expect("a record serialises");
    let record_path = paths.images().join(IMPORTED_FILE);
    write_atomic(&record_path, &record).map_err(|source| ImageError::Write {
        path: record_path,
        source,
    })?;
    Ok(imported)
}

/// The image the last [`import`] brought in, if it is still there.
pub fn imported(state_dir: &Path) -> Result<Option<ImportedImage>, ImageError> {
    let path = Paths::new(state_dir).images().join(IMPORTED_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ImageError::Read { path, source }),
    };
    let image: ImportedImage = serde_json::from_slice(&bytes).map_err(|e| ImageError::Meta {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    Ok(image.path.is_file().then_some(image))
}

/// Removes every imported image (rollback of an import; planet must be stopped).
pub fn remove_all(state_dir: &Path) -> Result<(), ImageError> {
    let dir = Paths::new(state_dir).images();
    durable::remove_dir_all(&dir).map_err(|source| ImageError::Write { path: dir, source })
}

/// Checks `path` against `sha256`: a full hash unless the file is unchanged since it was last
/// hashed (see the module documentation).
pub fn verify(path: &Path, sha256: &str) -> Result<(), ImageError> {
    if stamp_matches(path, sha256) {
        return Ok(());
    }
    let actual = hash_file(path).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if actual != sha256 {
        return Err(ImageError::Checksum {
            path: path.to_path_buf(),
            meta: path.with_file_name(META_FILE),
            expected: sha256.to_string(),
            actual,
        });
    }
    write_stamp(path, sha256)
}

/// The SHA-256 of a file, as lowercase hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    durable::sha256_file(path).map(|(hex, _)| hex)
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    file: String,
    sha256: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(path: &Path, sha256: &str) -> std::io::Result<Self> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: sha256.to_string(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }
}

fn stamp_path(path: &Path) -> PathBuf {
    path.with_file_name(STAMP_FILE)
}

fn stamp_matches(path: &Path, sha256: &str) -> bool {
    let Ok(bytes) = std::fs::read(stamp_path(path)) else {
        return false;
    };
    let Ok(recorded) = serde_json::from_slice::<Stamp>(&bytes) else {
        return false;
    };
    Stamp::of(path, sha256).is_ok_and(|now| now == recorded)
}

fn write_stamp(path: &Path, sha256: &str) -> Result<(), ImageError> {
    let stamp = Stamp::of(path, sha256).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let target = stamp_path(path);
    write_atomic(
        &target,
        &serde_json::to_vec(&stamp).expect("a stamp serialises"),
    )
    .map_err(|source| ImageError::Write {
        path: target,
        source,
    })
}

/// Puts a copy of `src` at `dest`: a reflink where the filesystem shares extents, a hard link
/// on the same filesystem, else a copy (fsynced).
fn place(src: &Path, dest: &Path) -> std::io::Result<&'static str> {
    let from = std::fs::File::open(src)?;
    {
        let to = std::fs::File::create(dest)?;
        // SAFETY: FICLONE takes the source descriptor; both files are open for the call.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&to),
                libc::FICLONE as _,
                std::os::fd::AsRawFd::as_raw_fd(&from),
            )
        };
        if rc == 0 {
            to.sync_all()?;
            return Ok("reflink");
        }
    }
    std::fs::remove_file(dest)?;
    if std::fs::hard_link(src, dest).is_ok() {
        return Ok("hard link");
    }
    std::fs::copy(src, dest)?;
    std::fs::File::open(dest)?.sync_all()?;
    Ok("copy")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(dir: &Path, content: &[u8], version: &str) -> String {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content));
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("planet.erofs"), content).unwrap();
        std::fs::write(
            dir.join("planet.json"),
            format!(
                r#"{{"version": "{version}", "format": "erofs", "file": "planet.erofs", "sha256": "{sha}", "size": {}, "recipe": "abc"}}"#,
                content.len()
            ),
        )
        .unwrap();
        sha
    }

    #[test]
    fn imports_verifies_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("cluster/planet");
        let state = tmp.path().join("state");
        let sha = fixture(&src, b"an erofs image", "0.1.0+abc");
        assert_eq!(imported(&state).unwrap(), None);

        let first = import(&src, &state, Source::Unverified).unwrap();
        assert_eq!(
            first.path,
            state.join("planet/images/0.1.0+abc/planet.erofs")
        );
        assert_eq!(first.sha256, sha);
        assert_eq!(first.format, ImageFormat::Erofs);
        assert_eq!(imported(&state).unwrap(), Some(first.clone()));
        let kept =
            std::fs::read_to_string(state.join("planet/images/0.1.0+abc/planet.json")).unwrap();
        assert!(kept.contains("\"recipe\": \"abc\""), "{kept}");

        let ino = std::fs::metadata(&first.path).unwrap().ino();
        let second = import(&src, &state, Source::Unverified).unwrap();
        assert_eq!(second, first);
        assert_eq!(
            std::fs::metadata(&first.path).unwrap().ino(),
            ino,
            "not copied again"
        );

        remove_all(&state).unwrap();
        assert_eq!(imported(&state).unwrap(), None);
    }

    #[test]
    fn a_source_verified_by_the_caller_is_not_hashed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("planet");
        fixture(&src, b"original", "1.0.0");
        // Stands for "hashed already": the import trusts the caller and does not read it.
        std::fs::write(src.join("planet.erofs"), b"tampered").unwrap();
        let state = tmp.path().join("state");
        import(&src, &state, Source::Verified).unwrap();
        let err = import(&src, &tmp.path().join("other"), Source::Unverified)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is corrupt"), "{err}");
    }

    #[test]
    fn refuses_a_corrupt_image() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("planet");
        fixture(&src, b"original", "1.0.0");
        std::fs::write(src.join("planet.erofs"), b"tampered").unwrap();
        let err = import(&src, &tmp.path().join("state"), Source::Unverified)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is corrupt"), "{err}");
        assert!(
            !tmp.path()
                .join("state/planet/images/1.0.0/planet.erofs")
                .exists()
        );
    }

    #[test]
    fn verify_notices_a_changed_file() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("planet");
        let sha = fixture(&src, b"good image", "1.0.0");
        let state = tmp.path().join("state");
        let img = import(&src, &state, Source::Unverified).unwrap();
        verify(&img.path, &sha).unwrap();
        // A hard-linked import shares the inode with the source: break the link first.
        std::fs::remove_file(&img.path).unwrap();
        std::fs::write(&img.path, b"evil image").unwrap();
        let err = verify(&img.path, &sha).unwrap_err();
        assert!(matches!(err, ImageError::Checksum { .. }), "{err}");
        // Same size, same content length, rewritten in place: ctime moves, so it is rehashed.
        std::fs::write(&img.path, b"good image").unwrap();
        verify(&img.path, &sha).unwrap();
    }

    #[test]
    fn refuses_unsafe_names_in_planet_json() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("planet.json"),
            r#"{"version": "../../etc", "format": "erofs", "file": "x", "sha256": "00", "size": 1}"#,
        )
        .unwrap();
        let err = ImageMeta::load(&tmp.path().join("planet.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("version"), "{err}");
    }
}
