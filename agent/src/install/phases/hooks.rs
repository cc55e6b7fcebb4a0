//! The application's install and postInstall hooks, each a phase: a resumed phase follows the
//! Job its first run created instead of running it again (the Job carries the operation's id).

use anyhow::Context;

use crate::hooks::{self, Ran};
use crate::install::Ctx;
use operation::{Phase, Report};

pub struct Hook {
    pub phase: &'static str,
    pub hook: &'static str,
    pub description: &'static str,
}

pub const INSTALL: Hook = Hook {
    phase: "install-hook",
    hook: "install",
    description: "Install the application (install hook)",
};

pub const POST_INSTALL: Hook = Hook {
    phase: "post-install-hook",
    hook: "postInstall",
    description: "Run the postInstall hook",
};

impl Phase<Ctx> for Hook {
    fn name(&self) -> &'static str {
        self.phase
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if hooks::saved(&ctx.layout, self.hook)?.is_some() && !ctx.runs_kubernetes() {
            anyhow::bail!(
                "the manifest has a {} hook, but this planet image runs no Kubernetes to run its Job",
                self.hook
            );
        }
        let operation = ctx
            .layout
            .journal()
            .load()?
            .map(|plan| plan.id)
            .context("the install's plan is gone")?;
        let ran = hooks::run(
            &ctx.effects,
            &ctx.layout,
            self.hook,
            &operation,
            ctx.params.service_uid,
            hooks::TIMEOUT,
            &mut |line| out.say(format!("{}: {line}", self.hook)),
        )?;
        match ran {
            Ran::Done => out.say(format!("the {} hook completed", self.hook)),
            Ran::NotDefined => out.say(format!("the manifest has no {} hook", self.hook)),
        }
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        // What the hook made lives in Kubernetes; planet's teardown removes it with the cluster.
        Ok(())
    }
}
