//! `gravity token create|list|revoke`: the tokens other hosts join this cluster with.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use rpc::agent::tokens::{self, human};

use crate::cli::GlobalArgs;
use crate::install::state::ClusterRecord;
use crate::join::command;
use crate::state_dir::StateDir;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print the join command that uses it
    Create {
        /// How long it is valid: 30m, 24h, 7d; 0: until revoked
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: Ttl,
        /// Refuse it after one node has joined with it
        #[arg(long)]
        single_use: bool,
        /// A note for `gravity token list`
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the tokens (never their secrets)
    List,
    /// Revoke a token by its ID (the part before the dot)
    Revoke { id: String },
}

/// How long a token is valid; none: until revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Option<Duration>);

/// `30m`, `24h`, `7d`, `90s`; `0`: no expiry.
pub fn parse_ttl(s: &str) -> Result<Ttl, String> {
    if s == "0" {
        return Ok(Ttl(None));
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration like 30m, 24h or 7d (0: no expiry)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("\"{s}\": the unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err(
            "a token valid for no time at all cannot be used: give a duration, or 0 for no expiry"
                .into(),
        );
    }
    Ok(Ttl(Some(Duration::from_secs(secs))))
}

pub fn run(global: &GlobalArgs, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    let record = ClusterRecord::load(&layout)?
        .with_context(|| format!("nothing is installed in {}", layout.root().display()))?;
    if !layout.pki().join("ca.crt").exists() {
        bail!("this cluster has no CA (its planet image runs no Kubernetes): no node can join it");
    }
    let store = command::tokens(&layout);
    let now = tokens::now();
    match command {
        TokenCommand::Create {
            ttl: Ttl(ttl),
            single_use,
            description,
        } => {
            let (token, t) = store.create(ttl, single_use, &description)?;
            let hash = command::ca_hash(&layout)?;
            let addr = record.node.advertise_ip.to_string();
            println!("{token}");
            eprintln!(
                "token {} created, {}{}; on the new host, run:\n  {}",
                t.id,
                match ttl {
                    Some(ttl) => format!("valid for {}", human(ttl)),
                    None => "valid until revoked".into(),
                },
                if single_use { ", for one node" } else { "" },
                command::render(&addr, &token, &hash)
            );
        }
        TokenCommand::List => {
            println!(
                "{:<8} {:<8} {:<12} {:<5} DESCRIPTION",
                "ID", "STATE", "EXPIRES", "USES"
            );
            for t in store.list()? {
                let expires = match t.expires {
                    None => "never".to_string(),
                    Some(e) if e > now => format!("in {}", human(Duration::from_secs(e - now))),
                    Some(e) => format!("{} ago", human(Duration::from_secs(now - e))),
                };
                let uses = if t.single_use {
                    format!("{}/1", t.uses.len())
                } else {
                    t.uses.len().to_string()
                };
                println!(
                    "{:<8} {:<8} {:<12} {:<5} {}",
                    t.id,
                    t.state(now),
                    expires,
                    uses,
                    t.description
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let t = store.revoke(&id)?;
            eprintln!("token {} revoked: no node can join with it any more", t.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn ttl_of(args: &[&str]) -> Ttl {
        let mut argv = vec!["gravity", "token", "create"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Token(TokenCommand::Create { ttl, .. }) => ttl,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ttls_parse_from_the_command_line() {
        assert_eq!(ttl_of(&[]), Ttl(Some(Duration::from_secs(86_400))));
        assert_eq!(
            ttl_of(&["--ttl", "90m"]),
            Ttl(Some(Duration::from_secs(5400)))
        );
        assert_eq!(ttl_of(&["--ttl=0"]), Ttl(None));
        assert!(parse_ttl("5w").unwrap_err().contains("unit"));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
