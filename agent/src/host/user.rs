//! The `planet` service user and group on the host.
//!
//! The binary is static, so NSS (`getpwnam`) is not available: the account databases are read
//! from `/etc/passwd` and `/etc/group` (through a root prefix), and changed with the system's
//! own tools (`groupadd`/`useradd`, or `systemd-sysusers` where the shadow tools are missing).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
#[cfg(test)]
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{find_tool, run_tool, under};

/// The name of the service user and of its group, here and inside planet.
pub const SERVICE_USER: &str = "planet";
/// The uid (and gid) the spec defaults to.
pub const DEFAULT_SERVICE_ID: u32 = 1000;
/// Hooks read the service uid from this variable.
pub const SERVICE_USER_ENV: &str = "GRAVITY_SERVICE_USER";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the service user cannot be root: choose another id with --service-uid / --service-gid"
    )]
    Root,
    #[error(
        "uid {uid} belongs to the account `{owner}`, not to `{SERVICE_USER}`: planet must never run as someone else's account. Choose a free uid with --service-uid{}",
        suggestion(*free)
    )]
    UidTaken {
        uid: u32,
        owner: String,
        free: Option<u32>,
    },
    #[error(
        "gid {gid} belongs to the group `{owner}`, not to `{SERVICE_USER}`. Choose a free gid with --service-gid{}",
        suggestion(*free)
    )]
    GidTaken {
        gid: u32,
        owner: String,
        free: Option<u32>,
    },
    #[error(
        "the user `{SERVICE_USER}` already exists with uid {existing_uid} and gid {existing_gid}, but uid {uid} and gid {gid} were asked for: install with --service-uid={existing_uid} --service-gid={existing_gid}, or remove the existing user first"
    )]
    UserMismatch {
        existing_uid: u32,
        existing_gid: u32,
        uid: u32,
        gid: u32,
    },
    #[error(
        "the group `{SERVICE_USER}` already exists with gid {existing}, but gid {gid} was asked for: install with --service-gid={existing}, or remove the existing group first"
    )]
    GroupMismatch { existing: u32, gid: u32 },
    #[error("cannot change the host's accounts: {0}")]
    Tool(String),
    #[error(
        "neither useradd nor systemd-sysusers is installed: create the group and user `{SERVICE_USER}` (uid {uid}, gid {gid}) yourself, then run gravity again"
    )]
    NoTool { uid: u32, gid: u32 },
    #[error(
        "created the {what} `{SERVICE_USER}`, but {path} does not show it with id {id} afterwards"
    )]
    NotCreated {
        what: &'static str,
        path: PathBuf,
        id: u32,
    },
}

fn suggestion(free: Option<u32>) -> String {
    free.map(|id| format!(" (for example {id}, which is free)"))
        .unwrap_or_default()
}

/// The host's account databases and the tools that change them.
pub trait Accounts {
    fn users(&self) -> Result<Vec<PasswdEntry>, UserError>;
    fn groups(&self) -> Result<Vec<GroupEntry>, UserError>;
    fn add_group(&self, name: &str, gid: u32) -> Result<(), UserError>;
    fn add_user(&self, name: &str, uid: u32, gid: u32) -> Result<(), UserError>;
    fn remove_user(&self, name: &str) -> Result<(), UserError>;
    fn remove_group(&self, name: &str) -> Result<(), UserError>;
}

/// The service user as it exists after [`ensure_service_user`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Whether this call created the user (so that a rollback removes only what it made).
    pub created_user: bool,
    pub created_group: bool,
}

impl ServiceUser {
    /// The environment hooks get: `GRAVITY_SERVICE_USER=<uid>`.
    pub fn env(&self) -> [(&'static str, String); 1] {
        [(SERVICE_USER_ENV, self.uid.to_string())]
    }
}

/// Makes sure the group and user `planet` exist with exactly `gid` and `uid`, creating them
/// when missing. Refuses ids that belong to other accounts, and a `planet` with other ids.
/// Idempotent.
pub fn ensure_service_user(
    uid: u32,
    gid: u32,
    accounts: &dyn Accounts,
) -> Result<ServiceUser, UserError> {
    if uid == 0 || gid == 0 {
        return Err(UserError::Root);
    }
    let users = accounts.users()?;
    let groups = accounts.groups()?;
    let free = || first_free_id(&users, &groups);

    if let Some(owner) = users
        .iter()
        .find(|u| u.uid == uid && u.name != SERVICE_USER)
    {
        return Err(UserError::UidTaken {
            uid,
            owner: owner.name.clone(),
            free: free(),
        });
    }
    if let Some(owner) = groups
        .iter()
        .find(|g| g.gid == gid && g.name != SERVICE_USER)
    {
        return Err(UserError::GidTaken {
            gid,
            owner: owner.name.clone(),
            free: free(),
        });
    }
    let existing_group = groups.iter().find(|g| g.name == SERVICE_USER);
    if let Some(g) = existing_group
        && g.gid != gid
    {
        return Err(UserError::GroupMismatch {
            existing: g.gid,
            gid,
        });
    }
    let existing_user = users.iter().find(|u| u.name == SERVICE_USER);
    if let Some(u) = existing_user
        && (u.uid != uid || u.gid != gid)
    {
        return Err(UserError::UserMismatch {
            existing_uid: u.uid,
            existing_gid: u.gid,
            uid,
            gid,
        });
    }

    let created_group = existing_group.is_none();
    if created_group {
        accounts.add_group(SERVICE_USER, gid)?;
        if !accounts
            .groups()?
            .iter()
            .any(|g| g.name == SERVICE_USER && g.gid == gid)
        {
            return Err(UserError::NotCreated {
                what: "group",
                path: PathBuf::from("/etc/group"),
                id: gid,
            });
        }
    }
    let created_user = existing_user.is_none();
    if created_user {
        accounts.add_user(SERVICE_USER, uid, gid)?;
        if !accounts
            .users()?
            .iter()
            .any(|u| u.name == SERVICE_USER && u.uid == uid && u.gid == gid)
        {
            return Err(UserError::NotCreated {
                what: "user",
                path: PathBuf::from("/etc/passwd"),
                id: uid,
            });
        }
    }
    if created_group || created_user {
        tracing::info!(
            uid,
            gid,
            created_user,
            created_group,
            "service user {SERVICE_USER}"
        );
    }
    Ok(ServiceUser {
        name: SERVICE_USER.to_string(),
        uid,
        gid,
        created_user,
        created_group,
    })
}

/// Removes what [`ensure_service_user`] created (and only that): for rollback and uninstall.
pub fn remove_service_user(
    created_user: bool,
    created_group: bool,
    accounts: &dyn Accounts,
) -> Result<(), UserError> {
    if created_user && accounts.users()?.iter().any(|u| u.name == SERVICE_USER) {
        accounts.remove_user(SERVICE_USER)?;
    }
    if created_group && accounts.groups()?.iter().any(|g| g.name == SERVICE_USER) {
        accounts.remove_group(SERVICE_USER)?;
    }
    Ok(())
}

/// The first id from 1000 up that is neither a uid nor a gid: a suggestion for error messages.
fn first_free_id(users: &[PasswdEntry], groups: &[GroupEntry]) -> Option<u32> {
    (DEFAULT_SERVICE_ID..60000)
        .find(|id| !users.iter().any(|u| u.uid == *id) && !groups.iter().any(|g| g.gid == *id))
}

/// `name:x:uid:gid:gecos:home:shell` lines; malformed lines are skipped (as NSS does).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// `name:x:gid:members` lines.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
            })
        })
        .collect()
}

/// The host's accounts under a root prefix, changed with the host's tools (`--prefix` when
/// the root is not `/`).
pub struct SystemAccounts {
    root: PathBuf,
}

impl SystemAccounts {
    pub fn host() -> Self {
        SystemAccounts {
            root: PathBuf::from("/"),
        }
    }

    pub fn under(root: &Path) -> Self {
        SystemAccounts {
            root: root.to_path_buf(),
        }
    }

    fn read(&self, rel: &str) -> Result<String, UserError> {
        let path = under(&self.root, Path::new(rel));
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(UserError::Read { path, source }),
        }
    }

    fn shadow_tool(&self, name: &str) -> Option<Command> {
        let tool = find_tool(name)?;
        let mut cmd = Command::new(tool);
        if self.root != Path::new("/") {
            cmd.arg("--prefix").arg(&self.root);
        }
        Some(cmd)
    }

    fn sysusers(&self, line: &str) -> Result<(), UserError> {
        let tool = find_tool("systemd-sysusers").ok_or(UserError::Tool(
            "neither the shadow tools (useradd) nor systemd-sysusers are installed".into(),
        ))?;
        let mut child = Command::new(tool)
            .arg("--root")
            .arg(&self.root)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| UserError::Tool(format!("cannot run systemd-sysusers: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(line.as_bytes())
                .map_err(|e| UserError::Tool(format!("systemd-sysusers: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| UserError::Tool(format!("systemd-sysusers: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(UserError::Tool(format!(
                "systemd-sysusers failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl Accounts for SystemAccounts {
    fn users(&self) -> Result<Vec<PasswdEntry>, UserError> {
        Ok(parse_passwd(&self.read("/etc/passwd")?))
    }

    fn groups(&self) -> Result<Vec<GroupEntry>, UserError> {
        Ok(parse_group(&self.read("/etc/group")?))
    }

    fn add_group(&self, name: &str, gid: u32) -> Result<(), UserError> {
        match self.shadow_tool("groupadd") {
            Some(mut cmd) => {
                cmd.args(["--system", "--gid", &gid.to_string(), name]);
                run_tool(&mut cmd).map(drop).map_err(UserError::Tool)
            }
            None => self.sysusers(&format!("g {name} {gid}\n")),
        }
    }

    fn add_user(&self, name: &str, uid: u32, gid: u32) -> Result<(), UserError> {
        match self.shadow_tool("useradd") {
            Some(mut cmd) => {
                cmd.args([
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    "planet service user",
                    "--uid",
                    &uid.to_string(),
                    "--gid",
                    &gid.to_string(),
                    name,
                ]);
                run_tool(&mut cmd).map(drop).map_err(UserError::Tool)
            }
            None if find_tool("systemd-sysusers").is_some() => self.sysusers(&format!(
                "u {name} {uid}:{gid} \"planet service user\" /nonexistent /usr/sbin/nologin\n"
            )),
            None => Err(UserError::NoTool { uid, gid }),
        }
    }

    fn remove_user(&self, name: &str) -> Result<(), UserError> {
        let mut cmd = self.shadow_tool("userdel").ok_or(UserError::Tool(format!(
            "userdel is not installed: remove the user `{name}` by hand"
        )))?;
        cmd.arg(name);
        run_tool(&mut cmd).map(drop).map_err(UserError::Tool)
    }

    fn remove_group(&self, name: &str) -> Result<(), UserError> {
        let mut cmd = self.shadow_tool("groupdel").ok_or(UserError::Tool(format!(
            "groupdel is not installed: remove the group `{name}` by hand"
        )))?;
        cmd.arg(name);
        run_tool(&mut cmd).map(drop).map_err(UserError::Tool)
    }
}

/// Accounts in memory; records every change it is asked to make (`calls` may be shared).
#[cfg(test)]
#[derive(Default)]
pub struct RecordingAccounts {
    pub users: Mutex<Vec<PasswdEntry>>,
    pub groups: Mutex<Vec<GroupEntry>>,
    pub calls: std::sync::Arc<Mutex<Vec<String>>>,
}

#[cfg(test)]
impl RecordingAccounts {
    /// From passwd and group file contents.
    pub fn new(passwd: &str, group: &str) -> Self {
        RecordingAccounts {
            users: Mutex::new(parse_passwd(passwd)),
            groups: Mutex::new(parse_group(group)),
            calls: Default::default(),
        }
    }

    /// Records into `log` instead of a log of its own.
    pub fn sharing(mut self, log: std::sync::Arc<Mutex<Vec<String>>>) -> Self {
        self.calls = log;
        self
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("recorder lock").clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("recorder lock").push(call);
    }
}

#[cfg(test)]
impl Accounts for RecordingAccounts {
    fn users(&self) -> Result<Vec<PasswdEntry>, UserError> {
        Ok(self.users.lock().expect("recorder lock").clone())
    }
    fn groups(&self) -> Result<Vec<GroupEntry>, UserError> {
        Ok(self.groups.lock().expect("recorder lock").clone())
    }
    fn add_group(&self, name: &str, gid: u32) -> Result<(), UserError> {
        self.record(format!("groupadd {name} {gid}"));
        self.groups.lock().expect("recorder lock").push(GroupEntry {
            name: name.into(),
            gid,
        });
        Ok(())
    }
    fn add_user(&self, name: &str, uid: u32, gid: u32) -> Result<(), UserError> {
        self.record(format!("useradd {name} {uid}:{gid}"));
        self.users.lock().expect("recorder lock").push(PasswdEntry {
            name: name.into(),
            uid,
            gid,
            home: "/nonexistent".into(),
            shell: "/usr/sbin/nologin".into(),
        });
        Ok(())
    }
    fn remove_user(&self, name: &str) -> Result<(), UserError> {
        self.record(format!("userdel {name}"));
        self.users
            .lock()
            .expect("recorder lock")
            .retain(|u| u.name != name);
        Ok(())
    }
    fn remove_group(&self, name: &str) -> Result<(), UserError> {
        self.record(format!("groupdel {name}"));
        self.groups
            .lock()
            .expect("recorder lock")
            .retain(|g| g.name != name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nalice:x:1000:\nstaff:x:1003:\n";

    #[test]
    fn creates_group_then_user_once() {
        let accounts = RecordingAccounts::new(PASSWD, GROUP);
        let user = ensure_service_user(1001, 1001, &accounts).unwrap();
        assert_eq!(
            accounts.calls(),
            ["groupadd planet 1001", "useradd planet 1001:1001"]
        );
        assert!(user.created_user && user.created_group);
        assert_eq!(user.env(), [("GRAVITY_SERVICE_USER", "1001".to_string())]);

        let again = ensure_service_user(1001, 1001, &accounts).unwrap();
        assert_eq!(accounts.calls().len(), 2, "the second call changes nothing");
        assert!(!again.created_user && !again.created_group);
    }

    #[test]
    fn refuses_a_uid_that_belongs_to_a_person() {
        let accounts = RecordingAccounts::new(PASSWD, GROUP);
        let err = ensure_service_user(1000, 1000, &accounts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("uid 1000 belongs to the account `alice`"),
            "{err}"
        );
        assert!(err.contains("--service-uid"), "{err}");
        assert!(err.contains("for example 1001"), "{err}");
        assert!(accounts.calls().is_empty());
    }

    #[test]
    fn refuses_a_gid_of_another_group() {
        let accounts = RecordingAccounts::new(PASSWD, GROUP);
        let err = ensure_service_user(1003, 1003, &accounts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gid 1003 belongs to the group `staff`"),
            "{err}"
        );
        assert!(err.contains("--service-gid"), "{err}");
    }

    #[test]
    fn refuses_an_existing_planet_with_other_ids() {
        let accounts = RecordingAccounts::new(
            &format!("{PASSWD}planet:x:999:999::/nonexistent:/usr/sbin/nologin\n"),
            &format!("{GROUP}planet:x:999:\n"),
        );
        let err = ensure_service_user(1001, 1001, &accounts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gid 999"), "{err}");
        assert!(err.contains("--service-gid=999"), "{err}");

        let accounts = RecordingAccounts::new(
            &format!("{PASSWD}planet:x:999:1001::/nonexistent:/usr/sbin/nologin\n"),
            &format!("{GROUP}planet:x:1001:\n"),
        );
        let err = ensure_service_user(1001, 1001, &accounts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("already exists with uid 999 and gid 1001, but uid 1001"),
            "{err}"
        );
        assert!(err.contains("--service-uid=999"), "{err}");
    }

    #[test]
    fn adopts_an_existing_matching_planet() {
        let accounts = RecordingAccounts::new(
            &format!("{PASSWD}planet:x:1001:1001::/nonexistent:/usr/sbin/nologin\n"),
            &format!("{GROUP}planet:x:1001:\n"),
        );
        let user = ensure_service_user(1001, 1001, &accounts).unwrap();
        assert!(!user.created_user && !user.created_group);
        assert!(accounts.calls().is_empty());
    }

    #[test]
    fn creates_only_the_missing_user() {
        let accounts = RecordingAccounts::new(PASSWD, &format!("{GROUP}planet:x:1001:\n"));
        let user = ensure_service_user(1001, 1001, &accounts).unwrap();
        assert_eq!(accounts.calls(), ["useradd planet 1001:1001"]);
        assert!(user.created_user && !user.created_group);
        remove_service_user(user.created_user, user.created_group, &accounts).unwrap();
        assert_eq!(accounts.calls().last().unwrap(), "userdel planet");
        assert!(
            accounts
                .groups()
                .unwrap()
                .iter()
                .any(|g| g.name == "planet")
        );
    }

    #[test]
    fn refuses_root() {
        let accounts = RecordingAccounts::new(PASSWD, GROUP);
        assert!(matches!(
            ensure_service_user(0, 1001, &accounts),
            Err(UserError::Root)
        ));
    }

    #[test]
    fn reads_the_databases_through_a_root_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "broken line\n".to_string() + GROUP,
        )
        .unwrap();
        let accounts = SystemAccounts::under(dir.path());
        assert_eq!(accounts.users().unwrap().len(), 3);
        assert_eq!(accounts.groups().unwrap().len(), 4);
        assert_eq!(accounts.users().unwrap()[2].home, "/home/alice");
    }
}
