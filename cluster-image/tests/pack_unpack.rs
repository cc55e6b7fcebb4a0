//! Packing is deterministic; what is packed unpacks (with us and with GNU tar) and verifies.

use std::path::Path;
use std::process::Command;

use cluster_image::archive::{
    ArchiveError, Compression, DEFAULT_MTIME, PackEntry, PackOptions, Source, UnpackOptions, pack,
    unpack, verify_dir,
};

fn entries(dir: &Path) -> Vec<PackEntry> {
    std::fs::write(
        dir.join("big.bin"),
        (0..3_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    vec![
        PackEntry {
            path: "gravity".into(),
            mode: 0o755,
            source: Source::Bytes(b"#!/bin/sh\necho hi\n".to_vec()),
        },
        PackEntry {
            path: "resources/app.yaml".into(),
            mode: 0o644,
            source: Source::Bytes(b"a: 1\n".to_vec()),
        },
        PackEntry {
            path: "resources/deep/er/file.txt".into(),
            mode: 0o600,
            source: Source::Bytes(b"x".to_vec()),
        },
        PackEntry {
            path: "resources/link".into(),
            mode: 0,
            source: Source::Symlink("app.yaml".into()),
        },
        PackEntry {
            path: "planet/planet.erofs".into(),
            mode: 0o644,
            source: Source::File(dir.join("big.bin")),
        },
        PackEntry {
            path: format!("resources/{}/long-name.txt", "d".repeat(120)),
            mode: 0o644,
            source: Source::Bytes(b"long".to_vec()),
        },
    ]
}

fn opts(compression: Compression) -> PackOptions<'static> {
    PackOptions {
        name: "t".into(),
        version: "1.0.0".into(),
        compression,
        mtime: DEFAULT_MTIME,
        progress: None,
    }
}

#[test]
fn packing_twice_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in [
        ("a.tar", Compression::None),
        ("a.tar.zst", Compression::Zstd { level: 3 }),
    ] {
        let one = dir.path().join(format!("1-{name}"));
        let two = dir.path().join(format!("2-{name}"));
        pack(entries(dir.path()), &one, &opts(c)).unwrap();
        // Reversed input order must not matter either.
        let mut rev = entries(dir.path());
        rev.reverse();
        pack(rev, &two, &opts(c)).unwrap();
        assert_eq!(
            std::fs::read(&one).unwrap(),
            std::fs::read(&two).unwrap(),
            "{name} differs"
        );
    }
}

#[test]
fn round_trip_with_us_and_with_gnu_tar() {
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in [
        ("img.tar", Compression::None),
        ("img.tar.zst", Compression::Zstd { level: 3 }),
    ] {
        let archive = dir.path().join(name);
        let index = pack(entries(dir.path()), &archive, &opts(c)).unwrap();
        assert_eq!(index.files.len(), 6);

        let ours = dir.path().join(format!("ours-{name}"));
        let report = unpack(&archive, &ours, &UnpackOptions::default()).unwrap();
        assert_eq!(
            report.files, 6,
            "five files and the index; the symlink is not a file"
        );
        verify_dir(&ours).unwrap();
        let mode = |p: &str| {
            std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(ours.join(p)).unwrap().permissions(),
            ) & 0o777
        };
        assert_eq!(mode("gravity"), 0o755);
        assert_eq!(mode("resources/deep/er/file.txt"), 0o600);
        assert_eq!(
            std::fs::read_link(ours.join("resources/link")).unwrap(),
            Path::new("app.yaml")
        );

        let theirs = dir.path().join(format!("tar-{name}"));
        std::fs::create_dir(&theirs).unwrap();
        let mut cmd = Command::new("tar");
        if name.ends_with(".zst") {
            cmd.arg("--zstd");
        }
        let st = cmd
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&theirs)
            .status()
            .unwrap();
        assert!(st.success());
        verify_dir(&theirs).unwrap();
    }
}

#[test]
fn verify_names_the_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("img.tar");
    pack(entries(dir.path()), &archive, &opts(Compression::None)).unwrap();
    let out = dir.path().join("out");
    unpack(&archive, &out, &UnpackOptions::default()).unwrap();

    std::fs::write(out.join("resources/app.yaml"), b"a: 2\n").unwrap();
    match verify_dir(&out) {
        Err(ArchiveError::Checksum { path, .. }) => assert_eq!(path, "resources/app.yaml"),
        other => panic!("{other:?}"),
    }
    std::fs::write(out.join("resources/app.yaml"), b"a: 1\n").unwrap();
    std::fs::remove_file(out.join("gravity")).unwrap();
    match verify_dir(&out) {
        Err(e @ ArchiveError::Missing { .. }) => assert!(e.to_string().contains("gravity"), "{e}"),
        other => panic!("{other:?}"),
    }
    std::fs::write(out.join("gravity"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(out.join("planet/planet.erofs"), b"short").unwrap();
    assert!(matches!(verify_dir(&out), Err(ArchiveError::Size { .. })));
}
