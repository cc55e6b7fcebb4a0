//! Every hostile archive is refused with nothing written outside the target, and no half-written
//! target left behind. Archives are crafted byte by byte: honest tar writers refuse to make them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use cluster_image::archive::{ArchiveError, Limits, UnpackOptions, unpack};
use sha2::Digest;

/// A tar writer that writes whatever it is told.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn raw(
        &mut self,
        name: &str,
        kind: u8,
        link: &str,
        data: &[u8],
        declared: u64,
        mode: u32,
    ) -> &mut Self {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = width - 1);
            h[at..at + width].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, declared);
        octal(&mut h, 136, 12, 946_684_800);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name, b'0', "", data, data.len() as u64, 0o644)
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name, b'5', "", b"", 0, 0o755)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, b'2', target, b"", 0, 0o777)
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, b'1', target, b"", 0, 0o644)
    }
    /// The image index for the given files, as the first entry.
    fn index(&mut self, files: &[(&str, &[u8])], links: &[(&str, &str)]) -> &mut Self {
        let mut entries: Vec<serde_json::Value> = files
            .iter()
            .map(|(p, d)| {
                serde_json::json!({"path": p, "kind": "file", "mode": 420, "size": d.len(),
                    "sha256": hex::encode(sha2::Sha256::digest(d))})
            })
            .chain(links.iter().map(|(p, t)| serde_json::json!({"path": p, "kind": "symlink", "mode": 511, "target": t})))
            .collect();
        entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        let index =
            serde_json::json!({"format": 1, "name": "t", "version": "1.0.0", "files": entries});
        self.file("index.json", index.to_string().as_bytes())
    }
    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    archive: PathBuf,
    target: PathBuf,
    before: BTreeSet<PathBuf>,
}

impl Scene {
    fn new(bytes: &[u8]) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("outside/keep"), b"precious").unwrap();
        std::fs::create_dir_all(root.join("work")).unwrap();
        let archive = root.join("archive.tar");
        std::fs::write(&archive, bytes).unwrap();
        let before = tree(&root);
        Scene {
            target: root.join("work/target"),
            _dir: dir,
            root,
            archive,
            before,
        }
    }

    fn run(&self, opts: &UnpackOptions) -> Result<(), ArchiveError> {
        unpack(&self.archive, &self.target, opts).map(|_| ())
    }

    /// Nothing outside the target changed, and no target or staging directory is left.
    fn assert_untouched(&self) {
        assert_eq!(
            tree(&self.root),
            self.before,
            "the unpack left something behind"
        );
        assert_eq!(
            std::fs::read(self.root.join("outside/keep")).unwrap(),
            b"precious"
        );
    }
}

fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            out.insert(e.path());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn generic() -> UnpackOptions {
    UnpackOptions {
        require_index: false,
        ..UnpackOptions::default()
    }
}

/// Unpacks `bytes` and expects a refusal whose message contains `needle`.
fn refused(bytes: &[u8], opts: &UnpackOptions, needle: &str) -> ArchiveError {
    let scene = Scene::new(bytes);
    let err = scene.run(opts).expect_err("a hostile archive was unpacked");
    let msg = err.to_string();
    assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
    scene.assert_untouched();
    err
}

#[test]
fn parent_directory_entries_are_refused() {
    let a = RawTar::default()
        .file("ok", b"1")
        .file("../../outside/evil", b"x")
        .finish();
    refused(&a, &generic(), "`..` is not allowed");
}

#[test]
fn absolute_entries_are_refused() {
    let scene_probe = tempfile::tempdir().unwrap();
    let abs = scene_probe.path().join("evil-abs");
    let a = RawTar::default().file(abs.to_str().unwrap(), b"x").finish();
    refused(&a, &generic(), "absolute paths are not allowed");
    assert!(!abs.exists());
}

#[test]
fn symlinks_out_of_the_target_are_refused() {
    let a = RawTar::default().symlink("etc", "/etc").finish();
    refused(&a, &generic(), "absolute path `/etc`");
    let b = RawTar::default()
        .dir("sub")
        .symlink("sub/out", "../../../outside")
        .finish();
    refused(&b, &generic(), "leaves the image directory");
}

#[test]
fn symlinks_that_escape_only_physically_are_refused() {
    // `sub/up -> ..` is fine; `esc -> sub/up/..` looks like `sub` but is the target's parent.
    let a = RawTar::default()
        .dir("sub")
        .symlink("sub/up", "..")
        .symlink("esc", "sub/up/..")
        .finish();
    refused(&a, &generic(), "resolves outside");
}

#[test]
fn writing_through_a_symlink_is_refused() {
    // An inside symlink, then a file "inside" it: the write would follow the link.
    let a = RawTar::default()
        .dir("real")
        .symlink("alias", "real")
        .file("alias/file", b"x")
        .finish();
    refused(&a, &generic(), "writing through symlinks is refused");
    // The classic: a link to outside, then a file through it (the link itself is refused first).
    let b = RawTar::default()
        .symlink("out", "../../outside")
        .file("out/evil", b"x")
        .finish();
    refused(&b, &generic(), "leaves the image directory");
}

#[test]
fn hard_links_out_of_the_target_are_refused() {
    let a = RawTar::default().hardlink("passwd", "/etc/passwd").finish();
    refused(&a, &generic(), "outside the archive");
    let b = RawTar::default()
        .hardlink("keep", "../../outside/keep")
        .finish();
    refused(&b, &generic(), "outside the archive");
    let c = RawTar::default()
        .hardlink("later", "not-yet")
        .file("not-yet", b"x")
        .finish();
    refused(&c, &generic(), "not a file earlier in the archive");
}

#[test]
fn hard_links_inside_work_in_generic_archives() {
    let a = RawTar::default()
        .file("data", b"shared")
        .hardlink("again", "data")
        .finish();
    let scene = Scene::new(&a);
    scene.run(&generic()).unwrap();
    assert_eq!(
        std::fs::read(scene.target.join("again")).unwrap(),
        b"shared"
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    for (kind, what) in [
        (b'3', "device nodes"),
        (b'4', "device nodes"),
        (b'6', "FIFOs"),
    ] {
        let a = RawTar::default()
            .raw("dev/thing", kind, "", b"", 0, 0o666)
            .finish();
        refused(&a, &generic(), what);
    }
}

#[test]
fn entries_larger_than_the_index_declares_are_refused() {
    let a = RawTar::default()
        .index(&[("gravity", b"tiny")], &[])
        .file("gravity", b"tiny plus a lot more")
        .finish();
    let e = refused(&a, &UnpackOptions::default(), "size mismatch");
    assert!(matches!(
        e,
        ArchiveError::Size {
            expected: 4,
            actual: 20,
            ..
        }
    ));
}

#[test]
fn files_not_in_the_index_are_refused() {
    let a = RawTar::default()
        .index(&[("gravity", b"g")], &[])
        .file("gravity", b"g")
        .file("extra", b"x")
        .finish();
    refused(
        &a,
        &UnpackOptions::default(),
        "not listed in the image index",
    );
}

#[test]
fn tampered_content_is_refused_by_checksum() {
    let a = RawTar::default()
        .index(&[("gravity", b"good")], &[])
        .file("gravity", b"evil")
        .finish();
    refused(&a, &UnpackOptions::default(), "checksum mismatch");
}

#[test]
fn tampered_large_files_are_refused_by_checksum() {
    // Files over 1 MiB take the pipelined path: hashed by a writer thread, not the reader.
    let good = vec![1u8; 3 << 20];
    let mut evil = good.clone();
    evil[2 << 20] = 2;
    let a = RawTar::default()
        .index(&[("planet.erofs", &good)], &[])
        .file("planet.erofs", &evil)
        .finish();
    let e = refused(&a, &UnpackOptions::default(), "checksum mismatch");
    assert!(e.to_string().starts_with("planet.erofs:"), "{e}");
}

#[test]
fn a_file_missing_from_the_archive_is_refused() {
    let a = RawTar::default()
        .index(&[("gravity", b"g"), ("app.yaml", b"a")], &[])
        .file("gravity", b"g")
        .finish();
    refused(
        &a,
        &UnpackOptions::default(),
        "app.yaml is listed in the image index but missing",
    );
}

#[test]
fn an_archive_without_an_index_is_not_a_cluster_image() {
    let a = RawTar::default().file("gravity", b"g").finish();
    refused(
        &a,
        &UnpackOptions::default(),
        "the first entry must be index.json",
    );
}

#[test]
fn a_symlink_that_differs_from_the_index_is_refused() {
    let a = RawTar::default()
        .index(&[("a", b"1")], &[("l", "a")])
        .file("a", b"1")
        .symlink("l", "b")
        .finish();
    refused(
        &a,
        &UnpackOptions::default(),
        "does not match the image index",
    );
}

#[test]
fn duplicate_entries_are_refused() {
    let a = RawTar::default().file("x", b"1").file("x", b"2").finish();
    refused(&a, &generic(), "holds this path twice");
    let b = RawTar::default().file("a", b"1").file("a/b", b"2").finish();
    refused(&b, &generic(), "needs this to be a directory");
}

#[test]
fn decompression_bombs_are_refused() {
    // 512 MiB of zeros compress to a few kB.
    let mut tar = RawTar::default();
    let zeros = vec![0u8; 512 << 20];
    tar.file("bomb", &zeros);
    let plain = tar.finish();
    drop(zeros);
    let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&plain).unwrap();
    let compressed = enc.finish().unwrap();
    assert!(compressed.len() < 1 << 20);
    refused(&compressed, &generic(), "decompression bomb");

    // A small total limit (as when the disk is nearly full) stops it as well.
    let opts = UnpackOptions {
        require_index: false,
        limits: Limits {
            max_total_bytes: Some(100 << 20),
            max_ratio: u64::MAX,
            ..Limits::default()
        },
        ..UnpackOptions::default()
    };
    refused(&compressed, &opts, "exceed");
}

#[test]
fn an_index_declaring_more_than_the_free_space_is_refused_up_front() {
    let huge = serde_json::json!({"format": 1, "name": "t", "version": "1", "files": [
        {"path": "a", "kind": "file", "mode": 420, "size": 1u64 << 60, "sha256": "00"}]});
    let a = RawTar::default()
        .file("index.json", huge.to_string().as_bytes())
        .finish();
    refused(&a, &UnpackOptions::default(), "only");
}

#[test]
fn too_many_entries_are_refused() {
    let mut tar = RawTar::default();
    for i in 0..50 {
        tar.file(&format!("f{i}"), b"");
    }
    let opts = UnpackOptions {
        require_index: false,
        limits: Limits {
            max_entries: 20,
            ..Limits::default()
        },
        ..UnpackOptions::default()
    };
    refused(&tar.finish(), &opts, "more than 20 entries");
}

#[test]
fn truncated_archives_leave_nothing_behind() {
    let data = vec![7u8; 3 << 20];
    let full = RawTar::default()
        .index(&[("big", &data)], &[])
        .file("big", &data)
        .finish();
    // Cuts inside the index, inside a header, and inside file data. (Losing only the two
    // end-of-archive zero blocks loses no content: every file is still checked by the index.)
    for cut in [700, 512 * 3 + 100, full.len() / 2, full.len() - 1024 - 600] {
        let e = refused(&full[..cut], &UnpackOptions::default(), "");
        assert!(
            matches!(
                e,
                ArchiveError::Corrupt { .. } | ArchiveError::Missing { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn corrupt_archives_are_refused() {
    // A flipped byte in a header breaks its checksum.
    let mut a = RawTar::default().file("a", b"1").file("b", b"2").finish();
    a[1024 + 10] ^= 0xff;
    refused(&a, &generic(), "corrupt");
    // A flipped byte inside zstd data.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let plain = RawTar::default()
        .index(&[("d", &data)], &[])
        .file("d", &data)
        .finish();
    let mut z = zstd::encode_all(&plain[..], 3).unwrap();
    let mid = z.len() / 2;
    z[mid] ^= 0x55;
    let e = refused(&z, &UnpackOptions::default(), "");
    assert!(
        matches!(
            e,
            ArchiveError::Corrupt { .. } | ArchiveError::Checksum { .. }
        ),
        "{e}"
    );
}

#[test]
fn non_utf8_names_are_refused() {
    let mut a = RawTar::default().file("ok", b"1").finish();
    a.truncate(a.len() - 1024);
    let mut t = RawTar(a);
    t.raw("bad-\u{fffd}", b'0', "", b"", 0, 0o644);
    let mut bytes = t.finish();
    // Replace the UTF-8 replacement character with a lone 0xff byte and fix the checksum.
    let h = 1024;
    let pos = bytes[h..h + 100]
        .windows(3)
        .position(|w| w == "\u{fffd}".as_bytes())
        .unwrap()
        + h;
    bytes[pos] = 0xff;
    bytes[pos + 1] = 0;
    bytes[pos + 2] = 0;
    bytes[h + 148..h + 156].copy_from_slice(b"        ");
    let sum: u32 = bytes[h..h + 512].iter().map(|b| u32::from(*b)).sum();
    bytes[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    refused(&bytes, &generic(), "UTF-8");
}

#[test]
fn a_non_empty_target_is_refused() {
    let a = RawTar::default().file("x", b"1").finish();
    let scene = Scene::new(&a);
    std::fs::create_dir_all(&scene.target).unwrap();
    std::fs::write(scene.target.join("mine"), b"user data").unwrap();
    let e = scene.run(&generic()).unwrap_err();
    assert!(matches!(e, ArchiveError::TargetNotEmpty { .. }), "{e}");
    assert_eq!(
        std::fs::read(scene.target.join("mine")).unwrap(),
        b"user data"
    );
}

#[test]
fn special_mode_bits_are_dropped() {
    let a = RawTar::default()
        .raw("suid", b'0', "", b"x", 1, 0o4755)
        .finish();
    let scene = Scene::new(&a);
    scene.run(&generic()).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(scene.target.join("suid"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o7777, 0o755);
}
