//! Crash injection for the crash tests: `GRAVITY_CRASH_AT=<phase>:<before|during|after>` makes
//! the process SIGKILL itself at that point, exactly as `kill -9` from outside would.

/// Kills the process if `GRAVITY_CRASH_AT` names this point.
pub fn failpoint(phase: &str, point: &str) {
    let Ok(wanted) = std::env::var("GRAVITY_CRASH_AT") else {
        return;
    };
    if wanted == format!("{phase}:{point}") {
        tracing::warn!(phase, point, "GRAVITY_CRASH_AT: killing this process");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; this is never reached.
        std::process::abort();
    }
}
