//! `/proc/<pid>/mountinfo`: what is mounted where, read through a root prefix.

use std::path::{Path, PathBuf};

use super::under;

/// One line of mountinfo: preflight's parser is the one parser of the project.
pub use preflight::host::Mount as MountEntry;

/// The mounts of the calling process's mount namespace, as `root/proc/self/mountinfo` says.
pub fn read(root: &Path) -> std::io::Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string(under(root, Path::new("/proc/self/mountinfo")))?;
    Ok(parse(&text))
}

/// Parses mountinfo text; lines it cannot read are left out (teardown must go on).
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| preflight::host::parse_mountinfo(l).ok()?.pop())
        .collect()
}

/// Mount points at or below `dir`, deepest (most recently stacked) first: the order to unmount
/// them in.
pub fn below(mounts: &[MountEntry], dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(usize, PathBuf)> = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| m.mount_point.starts_with(dir))
        .map(|(i, m)| (i, m.mount_point.clone()))
        .collect();
    // Later lines are mounted later (and may stack on earlier ones): reverse order.
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
40 22 7:0 / /var/lib/my\\040state/planet/image ro,relatime - erofs /dev/loop0 ro,user_xattr
41 22 0:40 / /var/lib/my\\040state/planet/rootfs rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 7);
        assert_eq!(m[3].fs_type, "cgroup");
        assert!(m[3].super_option("name=systemd"));
        assert!(m[4].super_option("memory"));
        assert_eq!(
            m[5].mount_point,
            PathBuf::from("/var/lib/my state/planet/image")
        );
        assert_eq!(m[5].source, "/dev/loop0");
    }

    #[test]
    fn lists_mounts_below_a_directory_latest_first() {
        let m = parse(SAMPLE);
        assert_eq!(
            below(&m, Path::new("/var/lib/my state/planet")),
            [
                PathBuf::from("/var/lib/my state/planet/rootfs"),
                PathBuf::from("/var/lib/my state/planet/image")
            ]
        );
        assert!(below(&m, Path::new("/var/lib/my")).is_empty());
    }
}
