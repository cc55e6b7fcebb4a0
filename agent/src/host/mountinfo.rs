//! `/proc/<pid>/mountinfo`: what is mounted where, read through a root prefix.

use std::path::{Path, PathBuf};

use preflight::host::unescape_octal;

use super::under;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u32,
    pub parent: u32,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    /// Per-mount options (`rw,nosuid,...`).
    pub options: String,
    /// Per-superblock options: for cgroup v1 the controllers (`rw,memory`, `rw,name=systemd`).
    pub super_options: String,
}

impl MountEntry {
    pub fn super_option(&self, name: &str) -> bool {
        self.super_options.split(',').any(|o| o == name)
    }
}

/// The mounts of the calling process's mount namespace, as `root/proc/self/mountinfo` says.
pub fn read(root: &Path) -> std::io::Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string(under(root, Path::new("/proc/self/mountinfo")))?;
    Ok(parse(&text))
}

/// Parses mountinfo lines: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 3 {
                return None;
            }
            Some(MountEntry {
                id: l[0].parse().ok()?,
                parent: l[1].parse().ok()?,
                mount_point: PathBuf::from(unescape_octal(l[4])),
                options: l[5].to_string(),
                fstype: r[0].to_string(),
                source: unescape_octal(r[1]),
                super_options: r[2].to_string(),
            })
        })
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
        assert_eq!(m[3].fstype, "cgroup");
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
