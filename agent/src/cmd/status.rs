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
    healthy: bool,
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
    let healthy =
        cluster.is_some() && planet.is_healthy() && application.as_ref().is_none_or(|a| a.ok);
    let status = Status {
        cluster,
        planet,
        application,
        operation,
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
        }
        None => out.push_str("cluster:    not installed on this host\n"),
    }
    out.push_str(&planet::health::render(&s.planet));
    if let Some(app) = &s.application {
        out.push_str(&app.render());
        out.push('\n');
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
