//! Path rules for archive entries: lexical checks first, then a physical check of symlinks.

use std::path::{Component, Path, PathBuf};

use super::ArchiveError;

/// The canonical relative form of an entry path (`./a//b/` -> `a/b`), or why it is refused.
pub fn normalize_entry_path(raw: &str) -> Result<String, ArchiveError> {
    if raw.contains('\0') {
        return Err(ArchiveError::unsafe_entry(
            raw,
            "the path contains a NUL byte",
        ));
    }
    if raw.starts_with('/') {
        return Err(ArchiveError::unsafe_entry(
            raw,
            "absolute paths are not allowed",
        ));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(ArchiveError::unsafe_entry(
                    raw,
                    "`..` is not allowed in entry paths",
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(ArchiveError::unsafe_entry(raw, "the path is empty"));
    }
    Ok(parts.join("/"))
}

/// A symlink at `link` (normalized) pointing at `target` must stay inside the root, lexically.
pub fn check_symlink_target(link: &str, target: &str) -> Result<(), ArchiveError> {
    if target.is_empty() || target.contains('\0') {
        return Err(ArchiveError::unsafe_entry(
            link,
            "the symlink target is empty or invalid",
        ));
    }
    if target.starts_with('/') {
        return Err(ArchiveError::unsafe_entry(
            link,
            format!("the symlink points to the absolute path `{target}`, outside the image"),
        ));
    }
    let mut depth: Vec<&str> = link.split('/').collect();
    depth.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return Err(ArchiveError::unsafe_entry(
                        link,
                        format!("the symlink target `{target}` leaves the image directory"),
                    ));
                }
            }
            p => depth.push(p),
        }
    }
    Ok(())
}

/// Resolves `rel` inside `root` following symlinks as the kernel would, and fails if any step
/// leaves `root`. Lexical checks cannot see that `a/link/..` is `a/..` when `link -> ..`.
pub fn resolve_beneath(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: Vec<String> = rel.split('/').rev().map(str::to_string).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if resolved.pop().is_none() {
                    return Err(format!("`{rel}` resolves outside the image directory"));
                }
                continue;
            }
            _ => {}
        }
        resolved.push(part);
        let here = root.join(resolved.join("/"));
        match std::fs::symlink_metadata(&here) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(format!("`{rel}` has too many levels of symbolic links"));
                }
                let target = std::fs::read_link(&here).map_err(|e| e.to_string())?;
                if target.is_absolute() {
                    return Err(format!("`{rel}` goes through an absolute symlink"));
                }
                resolved.pop();
                for c in target.components().rev() {
                    match c {
                        Component::Normal(s) => pending.push(s.to_string_lossy().into_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            // A dangling link or missing file: nothing further to follow.
            _ => {}
        }
    }
    Ok(root.join(resolved.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_normalized_or_refused() {
        assert_eq!(normalize_entry_path("./a//b/").unwrap(), "a/b");
        assert!(normalize_entry_path("/etc/passwd").is_err());
        assert!(normalize_entry_path("a/../../x").is_err());
        assert!(normalize_entry_path("./").is_err());
    }

    #[test]
    fn symlink_targets_stay_inside() {
        assert!(check_symlink_target("a/b/link", "../c").is_ok());
        assert!(check_symlink_target("a/link", "../../x").is_err());
        assert!(check_symlink_target("link", "/etc").is_err());
        assert!(check_symlink_target("link", "..").is_err());
    }

    #[test]
    fn physical_resolution_sees_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        // Lexically `sub/up/..` is `sub`; physically it is the root's parent.
        assert!(check_symlink_target("escape", "sub/up/..").is_ok());
        assert!(resolve_beneath(root, "escape-target/..").is_ok());
        assert!(resolve_beneath(root, "sub/up/..").is_err());
        assert_eq!(
            resolve_beneath(root, "sub/up/sub").unwrap(),
            root.join("sub")
        );
    }
}
