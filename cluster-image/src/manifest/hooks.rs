//! `hooks:`: cluster life cycle hooks, each a Kubernetes `batch/v1` Job.

use serde::{Deserialize, Serialize};

/// Declares the hook struct and the list of names from one table, so the two cannot drift.
macro_rules! hooks {
    ($($field:ident => $name:literal),* $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct Hooks {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<Hook>,
            )*
        }

        /// Every hook name the spec defines, in its order.
        pub const HOOK_NAMES: &[&str] = &[$($name),*];

        impl Hooks {
            /// The hooks that are set, with their manifest names.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Hook)> {
                [$(($name, self.$field.as_ref())),*]
                    .into_iter()
                    .filter_map(|(name, hook)| hook.map(|h| (name, h)))
            }

            pub fn iter_mut(&mut self) -> impl Iterator<Item = (&'static str, &mut Hook)> {
                [$(($name, self.$field.as_mut())),*]
                    .into_iter()
                    .filter_map(|(name, hook)| hook.map(|h| (name, h)))
            }
        }
    };
}

hooks! {
    install => "install",
    post_install => "postInstall",
    uninstall => "uninstall",
    pre_uninstall => "preUninstall",
    pre_node_add => "preNodeAdd",
    post_node_add => "postNodeAdd",
    pre_node_remove => "preNodeRemove",
    post_node_remove => "postNodeRemove",
    update => "update",
    post_update => "postUpdate",
    rollback => "rollback",
    post_rollback => "postRollback",
    status => "status",
    license_updated => "licenseUpdated",
    start => "start",
    stop => "stop",
    dump => "dump",
    backup => "backup",
    restore => "restore",
    network_install => "networkInstall",
    network_update => "networkUpdate",
    network_rollback => "networkRollback",
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    /// The Job as YAML text; a `file://` or `https://` URI before build.
    pub job: String,
}
