//! The accept step both servers share: wait a moment for a connection, so that the loop
//! around it can look at its stop flag in between.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;

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
