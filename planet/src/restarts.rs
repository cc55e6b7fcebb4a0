//! A unit that keeps exiting: systemd restarts planet's daemons forever, so a daemon that
//! cannot start (a bad argument, a broken configuration) would make a wait for its readiness
//! last its whole timeout. Counting its restarts during the wait ends it early, with the
//! daemon's own last words.

use std::time::Duration;

use super::inside;

/// Restarts during one wait that mean the unit keeps failing. With planet's restart pauses
/// (2-5 s) that is at least 10-25 s of failing starts; a daemon that waits for another one
/// (kubelet for containerd) exits once or twice at most.
pub const CRASH_LOOP: u32 = 5;
/// How many of the unit's last log lines the error carries.
const LOG_LINES: &str = "4";

/// What systemd says of a unit's restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRestarts {
    /// systemd's NRestarts: automatic restarts since the unit was last started by hand.
    pub restarts: u32,
    /// The main process's last exit status.
    pub status: i32,
}

/// Parses `systemctl show -p NRestarts -p ExecMainStatus` output.
pub fn parse(text: &str) -> Option<UnitRestarts> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    Some(UnitRestarts {
        restarts: value("NRestarts")?.parse().ok()?,
        status: value("ExecMainStatus").unwrap_or("0").parse().unwrap_or(0),
    })
}

/// Watches one unit's restarts across the polls of a wait.
pub struct Watch {
    unit: &'static str,
    first: Option<u32>,
}

/// A unit restarted [`CRASH_LOOP`] times during the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashLoop {
    pub unit: &'static str,
    pub restarts: u32,
    pub status: i32,
    /// The unit's last log lines, one line.
    pub log: String,
}

impl Watch {
    pub fn new(unit: &'static str) -> Watch {
        Watch { unit, first: None }
    }

    /// Looks at the unit inside planet (init `pid`): `Some` once it keeps failing.
    pub fn check(&mut self, pid: i32) -> Option<CrashLoop> {
        let out = inside::query(
            pid,
            "/usr/bin/systemctl",
            &["show", "-p", "NRestarts", "-p", "ExecMainStatus", self.unit],
            Duration::from_secs(5),
        )?;
        let now = parse(&String::from_utf8_lossy(&out.stdout))?;
        let restarts = self.observe(&now)?;
        Some(CrashLoop {
            unit: self.unit,
            restarts,
            status: now.status,
            log: last_words(pid, self.unit),
        })
    }

    /// The restarts counted since the first look, once they reach [`CRASH_LOOP`]. A start by
    /// hand resets systemd's counter: counting starts again from there.
    fn observe(&mut self, now: &UnitRestarts) -> Option<u32> {
        let first = self.first.map_or(now.restarts, |f| f.min(now.restarts));
        self.first = Some(first);
        let restarts = now.restarts - first;
        (restarts >= CRASH_LOOP && now.status != 0).then_some(restarts)
    }
}

/// The unit's last log lines from planet's journal, joined with " | ".
fn last_words(pid: i32, unit: &str) -> String {
    let out = inside::query(
        pid,
        "/usr/bin/journalctl",
        // The unit's own processes: not systemd's lines about stopping and starting it.
        &[
            &format!("_SYSTEMD_UNIT={unit}"),
            "-n",
            LOG_LINES,
            "-o",
            "cat",
            "--no-pager",
        ],
        Duration::from_secs(5),
    );
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        "(its journal is empty)".into()
    } else {
        lines.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_systemctl_show() {
        assert_eq!(
            parse("NRestarts=7\nExecMainStatus=1\n"),
            Some(UnitRestarts {
                restarts: 7,
                status: 1
            })
        );
        assert_eq!(parse("ExecMainStatus=1\n"), None);
    }

    #[test]
    fn counts_restarts_from_the_first_look() {
        let mut watch = Watch::new("planet-kube-node.service");
        let at = |restarts, status| UnitRestarts { restarts, status };
        // Restarts before the wait (kubelet waiting for its configuration) do not count.
        assert_eq!(watch.observe(&at(40, 1)), None);
        assert_eq!(watch.observe(&at(44, 1)), None);
        assert_eq!(watch.observe(&at(45, 1)), Some(5));
        // Running again after its restarts: not a crash loop.
        assert_eq!(watch.observe(&at(46, 0)), None);
    }

    #[test]
    fn a_start_by_hand_resets_the_count() {
        let mut watch = Watch::new("planet-kube-node.service");
        let at = |restarts| UnitRestarts {
            restarts,
            status: 1,
        };
        assert_eq!(watch.observe(&at(3)), None);
        assert_eq!(watch.observe(&at(0)), None);
        assert_eq!(watch.observe(&at(4)), None);
        assert_eq!(watch.observe(&at(5)), Some(5));
    }
}
