//! The agent-to-agent protocols between gravity agents on different hosts: the peer protocol
//! of the cross-host preflight checks ([`peer`]: `gravity check --serve` / `--peers`,
//! throughput streams each way, port reachability, clock samples), and the join agent's
//! ([`agent`]: TLS 1.3, tokens, node certificates, the cluster image's transfer), and a worker
//! node's way to the apiservers ([`failover`]).

mod accept;
pub mod agent;
pub mod failover;
pub mod peer;
