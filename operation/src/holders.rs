//! Who holds a lock file open: a busy operation lock names the processes, so the user (or a
//! test's log) sees which command to wait for or stop, not only that one exists.

use std::path::Path;

/// How many holders an error names.
const MAX: usize = 3;

/// `pid N (command line)` for each process with `path` open, from `/proc/*/fd`; empty where
/// none is found (gone meanwhile, or `/proc` not readable).
pub fn of(path: &Path) -> Vec<String> {
    let Ok(target) = path.canonicalize() else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // This process holds its own descriptor to the file it just failed to lock.
        if pid == me || !holds(&entry.path().join("fd"), &target) {
            continue;
        }
        found.push(format!("pid {pid} ({})", command_line(&entry.path())));
        if found.len() == MAX {
            break;
        }
    }
    found
}

fn holds(fd_dir: &Path, target: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(fd_dir) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == target))
}

/// The command line, its arguments joined by spaces; a process without one (a kernel thread,
/// or one exiting) by its name.
fn command_line(proc_dir: &Path) -> String {
    let argv = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let words: Vec<String> = argv
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if words.is_empty() {
        let name = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
        return format!("[{}]", name.trim());
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    #[test]
    fn a_child_holding_the_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        std::fs::write(&path, "").unwrap();
        // `sleep` with the file open on its standard input.
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(std::fs::File::open(&path).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let holders = super::of(&path);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(holders, [format!("pid {} (sleep 30)", child.id())]);
        assert!(super::of(&path).is_empty());
    }
}
