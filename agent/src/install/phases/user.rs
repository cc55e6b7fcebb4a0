//! The `planet` service user and group, with the uid and gid asked for.

use crate::state_dir::StateDir;
use serde::{Deserialize, Serialize};

use crate::host::user::{Accounts, ensure_service_user, remove_service_user};
use crate::install::{Ctx, state};
use operation::{Phase, Report};

pub struct User;

/// Whether this install created the account, so rollback removes only what it made.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) created_user: bool,
    pub(crate) created_group: bool,
}

impl Phase<Ctx> for User {
    fn name(&self) -> &'static str {
        "user"
    }
    fn description(&self) -> &'static str {
        "Create the planet service user"
    }
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let record_path = ctx.layout.service_user_record();
        let user = ensure_service_user(
            ctx.params.service_uid,
            ctx.params.service_gid,
            ctx.effects.accounts.as_ref(),
        )?;
        // A resumed run finds the account made by the interrupted one: keep the first record.
        if !record_path.exists() {
            state::write_record(
                &record_path,
                &Record {
                    uid: user.uid,
                    gid: user.gid,
                    created_user: user.created_user,
                    created_group: user.created_group,
                },
            )?;
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        remove_recorded(&ctx.layout, ctx.effects.accounts.as_ref())
    }
}

/// Removes the user and group if (and only if) the install created them.
pub fn remove_recorded(layout: &StateDir, accounts: &dyn Accounts) -> anyhow::Result<()> {
    let path = layout.service_user_record();
    let Some(record) = state::read_versioned::<Record>(&path)? else {
        return Ok(());
    };
    remove_service_user(record.created_user, record.created_group, accounts)?;
    state::remove_file(&path)?;
    Ok(())
}
