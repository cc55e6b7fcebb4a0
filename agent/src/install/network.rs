//! The address other nodes reach this one at: by default, the address of the default route's
//! interface, as `ip route get` would pick it.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// The source address the kernel uses towards the default route. Connecting a UDP socket sends
/// nothing; it only asks the kernel for a route.
pub fn default_route_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // Any address outside the local networks does: it only selects the default route.
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// This host's name, read from the kernel (no NSS: the binary is static).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
