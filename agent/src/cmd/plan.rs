//! `gravity plan`: the journaled operation's phases; resume or roll it back.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::{GlobalArgs, Output};
use crate::install::progress::Progress;
use operation::{Journal, PhaseState, Plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[arg(long, value_enum, default_value_t, global = true)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Continue the operation where it stopped
    Resume,
    /// Undo the operation's phases in reverse order
    Rollback,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let journal = Journal::new(&global.state_dir);
    match args.action {
        None => {
            let plan = journal.load()?.with_context(|| {
                format!("there is no operation in {}", global.state_dir.display())
            })?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
                Output::Text => print!("{}", render(&plan)),
            }
        }
        Some(action) => {
            let plan = journal.load()?.with_context(|| {
                format!("there is no operation in {}", global.state_dir.display())
            })?;
            let kinds = crate::plan_kinds();
            let kind = kinds.get(&plan.kind)?;
            match action {
                Action::Resume => {
                    let mut progress = Progress::new(kind.phase_count(), "done");
                    kind.resume(&global.state_dir, &mut progress)?;
                    eprintln!("the {} is complete", plan.kind);
                }
                Action::Rollback => {
                    let mut progress = Progress::new(kind.phase_count(), "undone");
                    kind.rollback(&global.state_dir, &mut progress)?;
                    eprintln!("the {} was rolled back", plan.kind);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn render(plan: &Plan) -> String {
    let mut out = format!("operation {} ({}): {:?}\n", plan.id, plan.kind, plan.state);
    let name_width = plan.phases.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let description_width = plan
        .phases
        .iter()
        .map(|p| p.description.len())
        .max()
        .unwrap_or(0);
    for (i, p) in plan.phases.iter().enumerate() {
        let state = match p.state {
            PhaseState::Unstarted => "unstarted",
            PhaseState::InProgress => "in progress",
            PhaseState::Completed => "completed",
            PhaseState::Failed => "FAILED",
            PhaseState::RolledBack => "rolled back",
        };
        let took = p
            .duration_ms()
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:>2}. {:<name_width$} {:<description_width$} {:<12} {took}\n",
            i + 1,
            p.name,
            p.description,
            state
        ));
        if let Some(e) = &p.error {
            out.push_str(&format!("        error: {e}\n"));
        }
    }
    out
}
