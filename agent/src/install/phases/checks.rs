//! Preflight checks for the chosen profile, before anything on the host changes.

use anyhow::bail;
use cluster_image::manifest::{NodeProfile, PortRange, PortRequirement, Protocol};

use crate::install::{Ctx, state};
use operation::{Phase, Report};

pub struct Checks;

impl Phase<Ctx> for Checks {
    fn name(&self) -> &'static str {
        "checks"
    }
    fn description(&self) -> &'static str {
        "Run preflight checks"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let opts = preflight::Options {
            state_dir: ctx.params.state_dir.clone(),
            ..preflight::Options::default()
        };
        // Custom check scripts run in the image directory, as `gravity check` runs them.
        let profile = with_agent_port(&ctx.profile);
        let mut report = ctx
            .effects
            .checks
            .run(ctx.manifest(), &profile, &opts, &ctx.image.dir);
        report.apply_ignores(&preflight::IgnoreList::from_entries(
            &ctx.params.ignore_preflight_errors,
        ));
        write_report(&ctx.layout.checks_report(), &report)?;
        let failed = failed_unless_fixed(&report, out);
        if !failed.is_empty() {
            for line in report.render_table().lines() {
                out.say(line);
            }
            let ids: Vec<&str> = failed.iter().map(|c| c.id.as_str()).collect();
            bail!(
                "{} preflight check{} failed ({}): fix them and run `gravity install --resume`, or go on anyway with `gravity install --resume --ignore-preflight-errors={}`",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                ids.join(", "),
                ids.join(",")
            );
        }
        for warning in report
            .checks
            .iter()
            .filter(|c| c.status == preflight::Status::Warn)
        {
            out.say(format!("warning: {}: {}", warning.id, warning.title));
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        state::remove_file_and_empty_parent(&ctx.layout.checks_report())?;
        Ok(())
    }
}

/// The profile's checks, plus gravity's own port: the join agent listens there after install.
/// The failed checks that must pass now: a failed sysctl is not one of them, the kernel phase
/// sets it (as Gravity's planet and k3s do), and says so.
pub(crate) fn failed_unless_fixed<'r>(
    report: &'r preflight::Report,
    out: &mut Report<'_>,
) -> Vec<&'r preflight::CheckResult> {
    let (fixable, failed): (Vec<_>, Vec<_>) = report
        .checks
        .iter()
        .filter(|c| c.status == preflight::Status::Fail)
        .partition(|c| c.id.starts_with("sysctl:"));
    for c in &fixable {
        out.say(format!(
            "{}: {} (the kernel phase sets it)",
            c.id,
            c.measured.as_deref().unwrap_or("wrong")
        ));
    }
    failed
}

fn with_agent_port(profile: &NodeProfile) -> NodeProfile {
    let port = rpc::agent::PORT;
    let mut p = profile.clone();
    let net = p
        .requirements
        .get_or_insert_with(Default::default)
        .network
        .get_or_insert_with(Default::default);
    let listed = net.ports.iter().any(|r| {
        r.protocol == Protocol::Tcp && r.ranges.iter().any(|x| x.first <= port && port <= x.last)
    });
    if !listed {
        net.ports.push(PortRequirement {
            protocol: Protocol::Tcp,
            ranges: vec![PortRange {
                first: port,
                last: port,
            }],
        });
    }
    p
}

fn write_report(path: &std::path::Path, report: &preflight::Report) -> anyhow::Result<()> {
    let value: serde_json::Value = serde_json::from_str(&report.to_json())?;
    state::write_json(path, &value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_port_is_checked_once() {
        let bare = with_agent_port(&NodeProfile::default());
        let ports = &bare.requirements.unwrap().network.unwrap().ports;
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].ranges[0].first, rpc::agent::PORT);
        let again = with_agent_port(&with_agent_port(&NodeProfile::default()));
        assert_eq!(again.requirements.unwrap().network.unwrap().ports.len(), 1);
    }
}
