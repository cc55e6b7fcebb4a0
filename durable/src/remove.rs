//! Removing what may already be gone: undo steps run again after a crash, so a missing file or
//! directory is success.

use std::io::ErrorKind;
use std::path::Path;

/// Removes a file (or symlink); a missing one is fine.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory tree; a missing one is fine.
pub fn remove_dir_all(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_twice_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (file, tree) = (dir.path().join("f"), dir.path().join("t"));
        std::fs::write(&file, b"x").unwrap();
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        for _ in 0..2 {
            remove_file(&file).unwrap();
            remove_dir_all(&tree).unwrap();
        }
        assert!(!file.exists() && !tree.exists());
        assert!(remove_file(dir.path()).is_err(), "a directory is no file");
    }
}
