//! The merged Helm values at `<state>/helm/values.yaml` (planet binds it for the hooks at
//! `/var/lib/gravity/helm/values.yaml`), merged by planet's helm from what configure kept.

use anyhow::Context;

use crate::install::{Ctx, state, values};
use operation::{Phase, Report};

pub struct Values;

impl Phase<Ctx> for Values {
    fn name(&self) -> &'static str {
        "values"
    }
    fn description(&self) -> &'static str {
        "Merge the Helm values for the hooks"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let files = values::kept(&ctx.layout.helm_inputs())?;
        let sets = &ctx.params.set;
        let text = if files.is_empty() && sets.is_empty() {
            "{}\n".to_string()
        } else {
            ctx.effects
                .hooks
                .merge_values(ctx.layout.root(), &files, sets)?
        };
        let path = ctx.layout.helm_values();
        durable::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        out.say(format!(
            "{} ({} values files, {} --set)",
            path.display(),
            files.len(),
            sets.len()
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        state::remove_file_and_empty_parent(&ctx.layout.helm_values())?;
        Ok(())
    }
}
