//! The agent-to-agent protocol: versioned messages between gravity agents on different hosts.
//! Today the peer protocol of the cross-host preflight checks (`gravity check --serve` /
//! `--peers`): throughput streams each way, port reachability, clock samples. Joining nodes will
//! add authenticated requests here.

pub mod agent;
pub mod peer;
