//! A TCP proxy that fails over between backends, for a worker node's way to the cluster's
//! apiservers (k3s's agent runs one too): kubelet and kube-proxy connect to it on loopback and
//! reach whichever control plane node answers, so a worker stays in the cluster while any
//! apiserver runs. Bytes pass through untouched (TLS ends at the apiserver, whose certificate
//! names the loopback address).
//!
//! New connections stick to the backend that answered last; one that refuses or does not
//! answer within [`CONNECT_TIMEOUT`] is skipped for [`DOWN_FOR`], unless all are.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::accept::ServerHandle;

/// A backend that does not answer within this long is down (a host that vanished sends no
/// reset).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a backend that failed is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(10);

/// The backends a proxy chooses from; shared, so that the list can change while it runs.
#[derive(Clone, Default)]
pub struct Backends(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    addrs: Vec<SocketAddr>,
    /// The one that answered last.
    current: Option<SocketAddr>,
    down_until: HashMap<SocketAddr, Instant>,
}

impl Backends {
    pub fn new(addrs: Vec<SocketAddr>) -> Backends {
        let backends = Backends::default();
        backends.set(addrs);
        backends
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the list (the current backend stays current if it is still in it); false
    /// where it was that list already.
    pub fn set(&self, mut addrs: Vec<SocketAddr>) -> bool {
        addrs.dedup();
        let mut state = self.state();
        if state.addrs == addrs {
            return false;
        }
        state.current = state.current.filter(|c| addrs.contains(c));
        state.down_until.retain(|a, _| addrs.contains(a));
        state.addrs = addrs;
        true
    }

    pub fn list(&self) -> Vec<SocketAddr> {
        self.state().addrs.clone()
    }

    /// The backend new connections go to first.
    pub fn current(&self) -> Option<SocketAddr> {
        self.state().current
    }

    /// The order to try them in: the current one, then the others as listed; those down
    /// last, so that with all down each is still tried.
    fn order(&self) -> Vec<SocketAddr> {
        let state = self.state();
        let now = Instant::now();
        let mut order: Vec<SocketAddr> = state.current.into_iter().collect();
        order.extend(state.addrs.iter().filter(|a| Some(**a) != state.current));
        order.sort_by_key(|a| state.down_until.get(a).is_some_and(|until| *until > now));
        order
    }

    fn answered(&self, addr: SocketAddr) {
        let mut state = self.state();
        state.down_until.remove(&addr);
        if state.current != Some(addr) {
            tracing::info!(%addr, "the proxy's connections go to this backend now");
            state.current = Some(addr);
        }
    }

    fn failed(&self, addr: SocketAddr, error: &io::Error) {
        let mut state = self.state();
        if state.current == Some(addr) {
            tracing::warn!(%addr, %error, "the proxy's backend does not answer: failing over");
            state.current = None;
        }
        state.down_until.insert(addr, Instant::now() + DOWN_FOR);
    }

    /// A connection to the first backend that answers.
    fn connect(&self) -> Option<TcpStream> {
        for addr in self.order() {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    self.answered(addr);
                    return Some(stream);
                }
                Err(e) => self.failed(addr, &e),
            }
        }
        None
    }
}

/// A listening proxy.
pub struct Proxy {
    listener: TcpListener,
    backends: Backends,
}

impl Proxy {
    pub fn bind(addr: SocketAddr, backends: Backends) -> io::Result<Proxy> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Proxy { listener, backends })
    }

    /// Serves in a thread of its own until the handle is dropped (connections already made
    /// run on until either side closes).
    pub fn spawn(self) -> io::Result<ServerHandle> {
        let addr = self.listener.local_addr()?;
        Ok(ServerHandle::spawn(addr, move |stop| self.serve(stop)))
    }

    /// Serves until `stop` is set.
    pub fn serve(self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let Some((client, _)) = crate::accept::accept_within(&self.listener) else {
                continue;
            };
            let backends = self.backends.clone();
            std::thread::spawn(move || {
                // Nothing answers: the client sees its connection closed, and asks again.
                if let Some(backend) = backends.connect() {
                    splice(client, backend);
                }
            });
        }
    }
}

/// Copies each way until both sides are done; either side's end is passed on to the other.
fn splice(client: TcpStream, backend: TcpStream) {
    let _ = client.set_nonblocking(false);
    let (Ok(client2), Ok(backend2)) = (client.try_clone(), backend.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || pipe(client2, backend2));
    pipe(backend, client);
    let _ = upstream.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A backend that answers each line with its name; dropping it closes its listener.
    fn backend(name: &'static str) -> (SocketAddr, ServerHandle) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = ServerHandle::spawn(addr, move |stop| {
            while !stop.load(Ordering::SeqCst) {
                let Some((conn, _)) = crate::accept::accept_within(&listener) else {
                    continue;
                };
                std::thread::spawn(move || {
                    conn.set_nonblocking(false).unwrap();
                    let mut out = conn.try_clone().unwrap();
                    for line in BufReader::new(conn).lines() {
                        let Ok(line) = line else { return };
                        let _ = writeln!(out, "{name}: {line}");
                    }
                });
            }
        });
        (addr, handle)
    }

    fn ask(proxy: SocketAddr) -> Option<String> {
        let mut conn = TcpStream::connect(proxy).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        writeln!(conn, "hello").ok()?;
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).ok()?;
        Some(line.trim().to_string()).filter(|l| !l.is_empty())
    }

    /// A loopback address nothing listens on.
    fn closed() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[test]
    fn connections_fail_over_to_a_backend_that_answers_and_stay_there() {
        let (a, a_handle) = backend("a");
        let (b, _b) = backend("b");
        let dead = closed();
        let backends = Backends::new(vec![dead, a, b]);
        let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), backends.clone())
            .unwrap()
            .spawn()
            .unwrap();
        // The first listed is down: the next one answers, and keeps the connections.
        assert_eq!(ask(proxy.addr).as_deref(), Some("a: hello"));
        assert_eq!(backends.current(), Some(a));
        assert_eq!(ask(proxy.addr).as_deref(), Some("a: hello"));
        // a goes away: the next connection goes to b, and stays there once a is back.
        drop(a_handle);
        assert_eq!(ask(proxy.addr).as_deref(), Some("b: hello"));
        assert_eq!(backends.current(), Some(b));
        let (a2, _a2) = backend("a");
        assert!(backends.set(vec![a2, b]));
        assert!(!backends.set(vec![a2, b]));
        assert_eq!(ask(proxy.addr).as_deref(), Some("b: hello"));
        // A list without the current one: the first that answers.
        backends.set(vec![dead, a2]);
        assert_eq!(ask(proxy.addr).as_deref(), Some("a: hello"));
    }

    #[test]
    fn with_no_backend_answering_the_client_is_closed_and_a_later_one_is_served() {
        let dead = closed();
        let backends = Backends::new(vec![dead]);
        let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), backends.clone())
            .unwrap()
            .spawn()
            .unwrap();
        assert_eq!(ask(proxy.addr), None);
        assert_eq!(backends.current(), None);
        // Down, but the only one: still tried, and served once it listens.
        let (up, _up) = backend("up");
        backends.set(vec![dead, up]);
        assert_eq!(ask(proxy.addr).as_deref(), Some("up: hello"));
    }
}
