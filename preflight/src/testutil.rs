//! Small fixture host trees for unit tests, built in a temporary directory.

use std::path::Path;

use crate::host::Host;

pub struct FixtureRoot {
    dir: tempfile::TempDir,
}

impl FixtureRoot {
    pub fn new() -> Self {
        FixtureRoot {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn host(&self) -> Host {
        Host::with_root(self.dir.path())
    }

    pub fn file(self, rel: &str, contents: &str) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, contents).expect("write fixture file");
        self
    }

    pub fn dir(self, rel: &str) -> Self {
        std::fs::create_dir_all(self.dir.path().join(rel)).expect("mkdir");
        self
    }

    pub fn symlink(self, rel: &str, target: &str) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        self
    }
}
