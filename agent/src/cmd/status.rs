//! `gravity status`: the node, planet and its services, and the last operation.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::{GlobalArgs, Output};
use crate::effects::Effects;
use crate::hooks::{self, status::AppStatus};
use crate::install::state::ClusterRecord;
use crate::state_dir::StateDir;
use operation::{Journal, Plan};
use planet::health::{PlanetHealth, check};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Serialize)]
struct Status {
    cluster: Option<ClusterRecord>,
    planet: PlanetHealth,
    /// The application's status hook's answer, asked now (none without the hook).
    application: Option<AppStatus>,
    operation: Option<Plan>,
    /// How other hosts join (none where the cluster has no join agent).
    join: Option<Join>,
    healthy: bool,
}

#[derive(Serialize)]
struct Join {
    /// Whether the join agent answered just now.
    agent: bool,
    ca_hash: String,
    /// With the install's token, while it is valid.
    command: Option<String>,
}

fn join_info(layout: &StateDir, cluster: &ClusterRecord) -> Option<Join> {
    if !layout.agent_cert().exists() {
        return None;
    }
    let ca_hash = crate::join::command::ca_hash(layout).ok()?;
    let agent = crate::join::service::wait_ready(layout, std::time::Duration::ZERO).is_ok();
    let command = crate::join::command::install_token(layout).map(|token| {
        crate::join::command::render(&cluster.node.advertise_ip.to_string(), &token, &ca_hash)
    });
    Some(Join {
        agent,
        ca_hash,
        command,
    })
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    let cluster = ClusterRecord::load(&layout)?;
    let operation = Journal::new(&global.state_dir).load()?;
    let planet = check(&global.state_dir);
    let application = if cluster.is_some()
        && planet.is_healthy()
        && matches!(hooks::saved(&layout, "status"), Ok(Some(_)))
    {
        hooks::status::run(&Effects::host(), &layout)?
    } else {
        None
    };
    let join = cluster.as_ref().and_then(|c| join_info(&layout, c));
    let healthy = cluster.is_some()
        && planet.is_healthy()
        && application.as_ref().is_none_or(|a| a.ok)
        && join.as_ref().is_none_or(|j| j.agent);
    let status = Status {
        cluster,
        planet,
        application,
        operation,
        join,
        healthy,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        Output::Text => print!("{}", render(&status)),
    }
    Ok(if status.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::ERROR)
    })
}

fn render(s: &Status) -> String {
    let mut out = String::new();
    match &s.cluster {
        Some(c) => {
            out.push_str(&format!("cluster:    {} {}\n", c.name, c.version));
            out.push_str(&format!(
                "node:       {} ({}), profile {}, flavor {}\n",
                c.node.node_name, c.node.advertise_ip, c.node.role, c.flavor
            ));
            out.push_str(&format!(
                "service:    user planet {}:{}, supervised by {:?}\n",
                c.service_uid, c.service_gid, c.supervisor
            ));
            if let Some(j) = &c.node.joined {
                let what = if j.control_plane_node() {
                    format!(
                        "a control plane node (etcd member), registry at {}",
                        j.control_plane
                    )
                } else {
                    format!("a worker of the control plane at {}", j.control_plane)
                };
                out.push_str(&format!("joined:     through {}; {what}\n", j.agent));
            }
        }
        None => out.push_str("cluster:    not installed on this host\n"),
    }
    out.push_str(&planet::health::render(&s.planet));
    if let Some(app) = &s.application {
        out.push_str(&app.render());
        out.push('\n');
    }
    if let Some(j) = &s.join {
        if !j.agent {
            out.push_str(&format!(
                "join:       the join agent does not answer on port {}: see `gravity agent status`\n",
                rpc::agent::PORT
            ));
        }
        match &j.command {
            Some(c) => out.push_str(&format!("join:       {c}\n")),
            None => out.push_str(
                "join:       the install's token is no longer valid: `gravity token create` prints a join command\n",
            ),
        }
    }
    if let Some(op) = &s.operation {
        let done = op
            .phases
            .iter()
            .filter(|p| p.state == operation::PhaseState::Completed)
            .count();
        out.push_str(&format!(
            "operation:  {} {:?}, {done}/{} phases completed (gravity plan)\n",
            op.kind,
            op.state,
            op.phases.len()
        ));
    }
    out.push_str(if s.healthy {
        "status:     healthy\n"
    } else {
        "status:     NOT healthy\n"
    });
    out
}
