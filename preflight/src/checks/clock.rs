//! Clock offset between this host and a peer, from timestamps exchanged in the peer protocol
//! (see [`rpc::peer::Client::clock`]). The round trip is taken out, not counted as drift.

use std::time::Duration;

use crate::check::{CheckResult, Status};
use rpc::peer::ClockSample;

#[derive(Debug, Clone, Copy)]
pub struct ClockThresholds {
    pub warn: Duration,
    pub fail: Duration,
}

impl Default for ClockThresholds {
    fn default() -> Self {
        ClockThresholds {
            warn: Duration::from_millis(100),
            fail: Duration::from_millis(500),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn check_clock(peer: &str, s: &ClockSample, t: &ClockThresholds) -> CheckResult {
    let id = format!("peer:{peer}:clock");
    let title = format!("Clock offset to {peer}");
    let abs = Duration::from_nanos(s.offset_nanos.unsigned_abs());
    let direction = if s.offset_nanos >= 0 {
        "ahead of"
    } else {
        "behind"
    };
    // The true offset lies within ±RTT/2 of the estimate; judge by the smallest it can be,
    // so that a slow or asymmetric path is not reported as drift.
    let at_least = abs.saturating_sub(s.rtt / 2);
    let status = if at_least >= t.fail {
        Status::Fail
    } else if at_least >= t.warn {
        Status::Warn
    } else {
        Status::Pass
    };
    CheckResult::new(id, title, status)
        .measured(format!(
            "{peer} is {} {direction} this host (±{}, RTT {}, best of {})",
            ms(abs),
            ms(s.rtt / 2),
            ms(s.rtt),
            s.samples
        ))
        .required(format!("within {} (warn above {})", ms(t.fail), ms(t.warn)))
        .fix_unless_pass(
            "synchronise both clocks with NTP (chrony or systemd-timesyncd): etcd and TLS certificates need agreeing clocks",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset_ms: i64, rtt_ms: u64) -> ClockSample {
        ClockSample {
            offset_nanos: offset_ms * 1_000_000,
            rtt: Duration::from_millis(rtt_ms),
            samples: 8,
        }
    }

    #[test]
    fn thresholds_account_for_the_round_trip() {
        let t = ClockThresholds::default();
        let r = check_clock("10.0.0.2:4242", &sample(3, 1), &t);
        assert_eq!(r.status, Status::Pass);
        assert_eq!(r.id, "peer:10.0.0.2:4242:clock");
        assert_eq!(
            r.measured.as_deref(),
            Some("10.0.0.2:4242 is 3.0 ms ahead of this host (±0.5 ms, RTT 1.0 ms, best of 8)")
        );
        assert_eq!(check_clock("p", &sample(-150, 2), &t).status, Status::Warn);
        let r = check_clock("p", &sample(-2000, 2), &t);
        assert_eq!(r.status, Status::Fail);
        assert!(r.measured.unwrap().contains("2000.0 ms behind"));
        assert!(r.fix.unwrap().contains("NTP"));
        // 600 ms measured over a 400 ms round trip may be only 400 ms: a warning, not a failure.
        assert_eq!(check_clock("p", &sample(600, 400), &t).status, Status::Warn);
    }
}
