//! What the servers share: the accept step, which waits a moment for a connection so that the
//! loop around it can look at its stop flag in between, and the handle of a server running in
//! a thread of its own.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// A connection if one arrives within 200 ms on `listener` (non-blocking); none otherwise,
/// also after an error that passes (logged).
pub(crate) fn accept_within(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::from(200u16)).unwrap_or(0) == 0 {
        return None;
    }
    match listener.accept() {
        Ok(c) => Some(c),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            None
        }
    }
}

/// A server running in a background thread; dropping it stops it.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Runs `serve` (listening at `addr`) in a thread until the handle is dropped.
    pub(crate) fn spawn(
        addr: SocketAddr,
        serve: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> ServerHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || serve(&s));
        ServerHandle {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
