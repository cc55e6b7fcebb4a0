//! Golden files: generated artifacts and records written to disk are compared with a checked-in
//! copy, so every change to a format is deliberate. `UPDATE_GOLDEN=1 cargo test ...` rewrites
//! the copies; review the diff before committing it.

use std::path::Path;

/// Asserts that `actual` is the content of the golden file at `path`.
pub fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run with UPDATE_GOLDEN=1 to write it",
            path.display()
        )
    });
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "{} changed: if deliberate, run with UPDATE_GOLDEN=1 and review the diff",
        path.display()
    );
}

/// `check` for `<crate>/tests/golden/<name>`; pass `env!("CARGO_MANIFEST_DIR")`.
pub fn check_in(manifest_dir: &str, name: &str, actual: &str) {
    check(
        &Path::new(manifest_dir).join("tests/golden").join(name),
        actual,
    );
}
