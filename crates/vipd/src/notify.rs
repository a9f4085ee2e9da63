//! systemd notifications (`Type=notify`): READY once IPVS is programmed, a STATUS line,
//! RELOADING/READY around a reload, STOPPING, and watchdog pings at half `WatchdogSec`.
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        debug!(error = %e, "systemd notification not sent");
    }
}

/// Startup finished: IPVS programmed, health checks running.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The one-line status `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload starts.
pub fn reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Status("reloading")),
    ]);
}

/// Stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// The watchdog ping interval (half of `WatchdogSec`), if systemd asked for pings.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// A watchdog ping: sent from the main loop, so it stops if the main task hangs.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}
