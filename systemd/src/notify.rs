//! sd_notify(3) messages to the service manager; silently nothing when not run by systemd.

/// Tells systemd the service is ready (Type=notify units wait for this).
pub fn ready() {
    send(&[sd_notify::NotifyState::Ready]);
}

/// A one-line status shown by `systemctl status`.
pub fn status(text: &str) {
    send(&[sd_notify::NotifyState::Status(text)]);
}

pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

/// Whether systemd expects notifications from this process (`NOTIFY_SOCKET` is set).
pub fn expected() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[sd_notify::NotifyState<'_>]) {
    if expected()
        && let Err(e) = sd_notify::notify(false, states)
    {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
