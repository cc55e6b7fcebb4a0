//! The report: every check's result, rendered as a table for people or JSON for machines, the
//! exit code, and `--ignore-preflight-errors`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::autofix::Change;
use crate::check::{CheckResult, Status};

/// Exit codes of `gravity check` (1 and 2 are the agent's: error while running, bad manifest).
pub mod exit {
    pub const PASSED: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const FAILED: u8 = 3;
    pub const WARNINGS: u8 = 4;
}

/// `--ignore-preflight-errors=ID,...|all`. An entry ending in `*` matches ids by prefix
/// (`volume:/var/lib/data:*`, `port:*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    all: bool,
    entries: Vec<String>,
}

impl IgnoreList {
    pub fn parse(spec: &str) -> Self {
        let mut l = IgnoreList::default();
        for e in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if e.eq_ignore_ascii_case("all") {
                l.all = true;
            } else {
                l.entries.push(e.to_string());
            }
        }
        l
    }

    pub fn from_entries<I: IntoIterator<Item = S>, S: AsRef<str>>(it: I) -> Self {
        let joined: Vec<String> = it.into_iter().map(|s| s.as_ref().to_string()).collect();
        Self::parse(&joined.join(","))
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.entries.is_empty()
    }

    fn entry_matches(entry: &str, id: &str) -> bool {
        match entry.strip_suffix('*') {
            Some(prefix) => id.starts_with(prefix),
            None => entry == id,
        }
    }

    pub fn matches(&self, id: &str) -> bool {
        self.all || self.entries.iter().any(|e| Self::entry_matches(e, id))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Subject {
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub subject: Subject,
    pub checks: Vec<CheckResult>,
    /// What kept a check from running at all (an unreachable peer): exit code 1.
    pub errors: Vec<String>,
    /// What `--autofix` changed, or tried to.
    pub autofix: Vec<Change>,
    /// Notes for the reader, e.g. ignore entries that matched no check.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub warnings: usize,
    pub skipped: usize,
    pub ignored: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.checks {
            match c.status {
                Status::Pass => s.passed += 1,
                Status::Fail => s.failed += 1,
                Status::Warn => s.warnings += 1,
                Status::Skip => s.skipped += 1,
            }
            if c.ignored {
                s.ignored += 1;
            }
        }
        s
    }

    /// 1 when something could not run, else 3 when a check failed, 4 when only warnings.
    pub fn exit_code(&self) -> u8 {
        let s = self.summary();
        if !self.errors.is_empty() {
            exit::ERROR
        } else if s.failed > 0 {
            exit::FAILED
        } else if s.warnings > 0 {
            exit::WARNINGS
        } else {
            exit::PASSED
        }
    }

    fn result_word(&self) -> &'static str {
        match self.exit_code() {
            exit::PASSED => "passed",
            exit::WARNINGS => "passed with warnings",
            exit::FAILED => "failed",
            _ => "incomplete",
        }
    }

    /// Turns the named failures into warnings, marking them, and notes entries that matched
    /// nothing (a typo should not silently ignore nothing).
    pub fn apply_ignores(&mut self, ignore: &IgnoreList) {
        if ignore.is_empty() {
            return;
        }
        for c in &mut self.checks {
            if c.status == Status::Fail && ignore.matches(&c.id) {
                c.status = Status::Warn;
                c.ignored = true;
            }
        }
        for e in &ignore.entries {
            if !self
                .checks
                .iter()
                .any(|c| IgnoreList::entry_matches(e, &c.id))
            {
                self.notes.push(format!(
                    "--ignore-preflight-errors: no check has the id \"{e}\""
                ));
            }
        }
    }

    /// Checks in report order: failures, warnings, passes, skips; stable within each.
    pub fn sorted(&self) -> Vec<&CheckResult> {
        let mut v: Vec<&CheckResult> = self.checks.iter().collect();
        v.sort_by_key(|c| c.status);
        v
    }

    /// The JSON report (`--output json`, and `<state>/checks/install.json`): a contract for
    /// machines, pinned by `tests/golden/report.json`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a> {
            format: u32,
            subject: &'a Subject,
            result: &'a str,
            exit_code: u8,
            summary: Summary,
            checks: Vec<&'a CheckResult>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            errors: &'a [String],
            #[serde(skip_serializing_if = "<[Change]>::is_empty")]
            autofix: &'a [Change],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            notes: &'a [String],
        }
        serde_json::to_string_pretty(&Doc {
            format: REPORT_FORMAT,
            subject: &self.subject,
            result: self.result_word(),
            exit_code: self.exit_code(),
            summary: self.summary(),
            checks: self.sorted(),
            errors: &self.errors,
            autofix: &self.autofix,
            notes: &self.notes,
        })
        .expect("a report always serialises")
    }

    /// One line per check, failures first, then details (script output, errors), autofix
    /// changes and a verdict that says what to do next.
    pub fn render_table(&self) -> String {
        const CAP: usize = 52;
        let rows: Vec<[String; 5]> = self
            .sorted()
            .into_iter()
            .map(|c| {
                let status = if c.ignored {
                    "WARN*".to_string()
                } else {
                    c.status.to_string()
                };
                [
                    status,
                    c.id.clone(),
                    one_line(c.measured.as_deref().unwrap_or("-")),
                    one_line(c.required.as_deref().unwrap_or("-")),
                    c.fix.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let header = ["STATUS", "CHECK", "FOUND", "REQUIRED", "FIX"];
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(cell.chars().count().min(CAP));
            }
        }
        let mut out = String::new();
        let _ = write!(
            out,
            "Preflight checks for profile \"{}\"",
            self.subject.profile
        );
        if let Some(c) = &self.subject.cluster {
            let _ = write!(out, " of {c}");
            if let Some(v) = &self.subject.version {
                let _ = write!(out, " {v}");
            }
        }
        if let Some(h) = &self.subject.hostname {
            let _ = write!(out, " on {h}");
        }
        out.push_str("\n\n");
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    l.push_str(cell);
                    l.push_str(&" ".repeat(pad + 2));
                }
            }
            l.trim_end().to_string() + "\n"
        };
        out.push_str(&line(&header.map(String::from)));
        for r in &rows {
            out.push_str(&line(r));
        }

        let details: Vec<&CheckResult> = self
            .sorted()
            .into_iter()
            .filter(|c| {
                c.detail.is_some() && (c.status != Status::Pass || c.id.starts_with("custom:"))
            })
            .collect();
        if !details.is_empty() {
            out.push_str("\nDetails:\n");
            for c in details {
                let _ = writeln!(out, "  {} ({}):", c.id, c.title);
                for l in c.detail.as_deref().unwrap_or("").lines() {
                    let _ = writeln!(out, "    {l}");
                }
            }
        }
        if !self.autofix.is_empty() {
            out.push_str("\nChanged by --autofix:\n");
            for ch in &self.autofix {
                match &ch.error {
                    None => {
                        let _ = writeln!(out, "  - {}", ch.what);
                    }
                    Some(e) => {
                        let _ = writeln!(out, "  - FAILED: {}: {e}", ch.what);
                    }
                }
            }
        }
        for e in &self.errors {
            let _ = writeln!(out, "\nERROR: {e}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "\nNote: {n}");
        }
        let s = self.summary();
        let ignored: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| c.ignored)
            .map(|c| c.id.as_str())
            .collect();
        if !ignored.is_empty() {
            let _ = writeln!(
                out,
                "\nIgnored by --ignore-preflight-errors (reported as warnings, marked WARN*): {}",
                ignored.join(", ")
            );
        }
        let _ = write!(
            out,
            "\nResult: {}: {} failed, {} warning{}, {} passed, {} skipped.",
            self.result_word(),
            s.failed,
            s.warnings,
            if s.warnings == 1 { "" } else { "s" },
            s.passed,
            s.skipped
        );
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.id.as_str())
            .collect();
        match self.exit_code() {
            exit::FAILED => {
                let _ = write!(
                    out,
                    " Fix the failures above, or accept them with --ignore-preflight-errors={}",
                    failed.join(",")
                );
            }
            exit::ERROR => out.push_str(" Some checks could not run: see ERROR above."),
            _ => {}
        }
        out.push('\n');
        out
    }
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// The JSON report's format version.
pub const REPORT_FORMAT: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn golden_json_report() {
        golden::check_in(
            env!("CARGO_MANIFEST_DIR"),
            "report.json",
            &report().to_json(),
        );
    }

    fn report() -> Report {
        Report {
            subject: Subject {
                profile: "db".into(),
                cluster: Some("sample".into()),
                version: Some("1.0.0".into()),
                hostname: Some("node-1".into()),
            },
            checks: vec![
                CheckResult::pass("os", "OS")
                    .measured("centos 7.9")
                    .required("centos 7"),
                CheckResult::fail("cpu", "CPUs")
                    .measured("2 CPUs")
                    .required("at least 8")
                    .fix("use a bigger host"),
                CheckResult::warn("swap", "Swap")
                    .measured("2.0 GiB on /dev/sda2")
                    .required("off")
                    .fix("swapoff -a"),
                CheckResult::skip("volume:/x:exists", "Volume").measured("missing"),
                CheckResult::pass("custom:1", "hostname")
                    .measured("exit code 0: hostname is node-1")
                    .required("exit code 0")
                    .detail("stdout:\nhostname is node-1\n"),
                CheckResult::fail("port:tcp/8080", "Port")
                    .measured("in use by nginx (pid 812), listening on 0.0.0.0")
                    .required("free")
                    .fix("stop nginx (pid 812)"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn table_puts_failures_first_one_line_each() {
        let t = report().render_table();
        assert_eq!(
            t,
            "Preflight checks for profile \"db\" of sample 1.0.0 on node-1

STATUS  CHECK             FOUND                                            REQUIRED     FIX
FAIL    cpu               2 CPUs                                           at least 8   use a bigger host
FAIL    port:tcp/8080     in use by nginx (pid 812), listening on 0.0.0.0  free         stop nginx (pid 812)
WARN    swap              2.0 GiB on /dev/sda2                             off          swapoff -a
PASS    os                centos 7.9                                       centos 7
PASS    custom:1          exit code 0: hostname is node-1                  exit code 0
SKIP    volume:/x:exists  missing                                          -

Details:
  custom:1 (hostname):
    stdout:
    hostname is node-1

Result: failed: 2 failed, 1 warning, 2 passed, 1 skipped. Fix the failures above, or accept them with --ignore-preflight-errors=cpu,port:tcp/8080
"
        );
    }

    #[test]
    fn exit_codes() {
        let mut r = report();
        assert_eq!(r.exit_code(), exit::FAILED);
        r.apply_ignores(&IgnoreList::parse("cpu,port:*"));
        assert_eq!(r.exit_code(), exit::WARNINGS);
        r.checks.retain(|c| c.status != Status::Warn);
        assert_eq!(r.exit_code(), exit::PASSED);
        r.errors.push("cannot reach peer".into());
        assert_eq!(r.exit_code(), exit::ERROR);
    }

    #[test]
    fn ignores_turn_failures_into_marked_warnings_and_say_so() {
        let mut r = report();
        r.apply_ignores(&IgnoreList::parse("cpu, nosuch ,swap"));
        let cpu = r.checks.iter().find(|c| c.id == "cpu").unwrap();
        assert_eq!((cpu.status, cpu.ignored), (Status::Warn, true));
        // Only failures are ignored; a warning stays what it was.
        assert!(!r.checks.iter().find(|c| c.id == "swap").unwrap().ignored);
        assert_eq!(
            r.notes,
            ["--ignore-preflight-errors: no check has the id \"nosuch\""]
        );
        let t = r.render_table();
        assert!(t.contains("\nWARN*   cpu "), "{t}");
        assert!(t.contains(
            "Ignored by --ignore-preflight-errors (reported as warnings, marked WARN*): cpu"
        ));
        assert!(
            t.contains("--ignore-preflight-errors=port:tcp/8080\n"),
            "{t}"
        );
        let mut r = report();
        r.apply_ignores(&IgnoreList::parse("all"));
        assert_eq!(r.summary().failed, 0);
        assert_eq!(r.summary().ignored, 2);
    }

    #[test]
    fn json_has_status_words_and_the_exit_code() {
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert_eq!(v["result"], "failed");
        assert_eq!(v["exitCode"], 3);
        assert_eq!(v["summary"]["failed"], 2);
        assert_eq!(v["checks"][0]["id"], "cpu");
        assert_eq!(v["checks"][0]["status"], "fail");
        assert_eq!(v["checks"][0]["measured"], "2 CPUs");
        assert_eq!(v["checks"][0]["required"], "at least 8");
        assert_eq!(v["checks"][4]["detail"], "stdout:\nhostname is node-1\n");
        assert!(v.get("errors").is_none());
    }
}
