//! The peer protocol: what `gravity check --serve ADDR` answers and what `--peers` asks, so that
//! two hosts can measure the network between them before anything is installed. Install and
//! join use the same server and client between agents.
//!
//! One TCP port. Every connection starts with a `hello` line carrying the protocol version,
//! then requests and responses as JSON lines. Two requests turn the connection into a raw byte
//! stream for a throughput measurement, one direction at a time:
//! - `source`: the server sends for `millis`, then closes; the client counts what arrives.
//! - `sink`: the client sends for `millis`, then shuts down its side; the server counts what
//!   arrived and answers with a `received` line.
//!
//! The receiver measures goodput: bytes it actually read per second, after a warm-up, from its
//! own clock. Nothing here blocks without a bound.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
    UdpSocket,
};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster_image::units::Rate;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// A request may ask for at most this many listeners.
pub const MAX_PORTS: usize = 16_384;
/// Listeners stay open at most this long, even if the client forgets to release them.
pub const MAX_HOLD: Duration = Duration::from_secs(120);
/// A throughput stream runs at most this long.
pub const MAX_STREAM: Duration = Duration::from_secs(30);
const MAX_LINE: usize = 1 << 20;
const MAX_CONNECTIONS: usize = 64;
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
const BLOCK: usize = 128 << 10;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(
        "cannot resolve peer address \"{addr}\": {reason} (write HOST:PORT, e.g. 10.0.0.2:4242)"
    )]
    Resolve { addr: String, reason: String },
    #[error(
        "cannot reach peer {addr}: {source} — is `gravity check --serve {addr}` running there, and does a firewall allow it?"
    )]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("peer {addr}: {what}: {source}")]
    Io {
        addr: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("peer {addr} does not speak the gravity check protocol: {detail}")]
    Protocol { addr: String, detail: String },
    #[error(
        "peer {addr} speaks protocol version {theirs}, this gravity speaks {ours}: run the same gravity version on both hosts"
    )]
    Version {
        addr: String,
        theirs: u32,
        ours: u32,
    },
    #[error("peer {addr} refused: {message}")]
    Refused { addr: String, message: String },
    #[error("cannot listen on {addr}: {source} (is another `gravity check --serve` running?)")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Hello {
        version: u32,
        agent: String,
    },
    Time,
    Listen {
        tcp: Vec<u16>,
        udp: Vec<u16>,
        hold_ms: u64,
    },
    Release,
    Source {
        millis: u64,
    },
    /// `warmup_ms` of the stream are not counted.
    Sink {
        millis: u64,
        warmup_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFailure {
    pub port: u16,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Response {
    Hello {
        version: u32,
        agent: String,
    },
    /// Server receive (t2) and send (t3) times, nanoseconds since the Unix epoch.
    Time {
        t2: i64,
        t3: i64,
    },
    Listening {
        tcp_failed: Vec<PortFailure>,
        udp_failed: Vec<PortFailure>,
    },
    Released,
    Streaming,
    Received {
        bytes: u64,
        nanos: u64,
    },
    Error {
        message: String,
    },
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn agent_name() -> String {
    format!("gravity {}", env!("CARGO_PKG_VERSION"))
}

fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "line too long or cut off",
        ));
    }
    Ok(Some(String::from_utf8_lossy(&buf).trim_end().to_string()))
}

fn write_json<W: Write, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Bytes and time of the measured part of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throughput {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn rate(&self) -> Rate {
        Rate((self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)) as u64)
    }
}

/// Reads to EOF and measures goodput over what arrived after `warmup` from the first byte.
fn receive_measured<R: Read>(r: &mut R, warmup: Duration) -> io::Result<Throughput> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    let mut first: Option<Instant> = None;
    let mut window: Option<(Instant, u64)> = None;
    let mut last = Instant::now();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        total += n as u64;
        let start = *first.get_or_insert(now);
        if window.is_none() && now.duration_since(start) >= warmup {
            window = Some((now, total));
        }
        last = now;
    }
    Ok(match (window, first) {
        (Some((t0, b0)), _) if last > t0 => Throughput {
            bytes: total - b0,
            elapsed: last - t0,
        },
        // Too short to have a warm-up: the whole transfer is the best we have.
        (_, Some(t0)) => Throughput {
            bytes: total,
            elapsed: last.duration_since(t0),
        },
        (_, None) => Throughput {
            bytes: 0,
            elapsed: Duration::ZERO,
        },
    })
}

/// Writes for `d`, then returns the bytes written.
fn send_for<W: Write>(w: &mut W, d: Duration) -> io::Result<u64> {
    let block = {
        let mut x: u32 = 0x1234_5678;
        (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < d {
        w.write_all(&block)?;
        sent += BLOCK as u64;
    }
    Ok(sent)
}

// ---------------------------------------------------------------------------------------------
// Server

/// A running server; dropping it stops accepting new connections.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Server {
    pub fn bind(addr: &str) -> Result<Server, PeerError> {
        let sa = resolve(addr)?;
        let listener = TcpListener::bind(sa).map_err(|source| PeerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| PeerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Server { listener, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves in a background thread.
    pub fn spawn(self) -> ServerHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = self.addr;
        let s = stop.clone();
        let thread = std::thread::spawn(move || self.serve(&s, None));
        ServerHandle {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves until `stop` is set, or until no client has connected for `idle` (when given).
    pub fn serve(self, stop: &AtomicBool, idle: Option<Duration>) {
        if let Err(e) = self.listener.set_nonblocking(true) {
            tracing::error!(error = %e, "cannot make the peer listener non-blocking");
            return;
        }
        let active = Arc::new(AtomicUsize::new(0));
        let mut last_activity = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if let Some(idle) = idle
                && active.load(Ordering::SeqCst) == 0
                && last_activity.elapsed() > idle
            {
                tracing::info!(?idle, "no peer connected for a while: stopping");
                return;
            }
            let Some((stream, peer)) = crate::accept::accept_within(&self.listener) else {
                continue;
            };
            last_activity = Instant::now();
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                let mut s = stream;
                let _ = write_json(
                    &mut s,
                    &Response::Error {
                        message: "too many connections: try again shortly".into(),
                    },
                );
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let a = active.clone();
            std::thread::spawn(move || {
                if let Err(e) = handle_connection(stream, peer) {
                    tracing::debug!(%peer, error = %e, "peer connection ended");
                }
                a.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

/// Listeners held open for a client's reachability probe, served by one thread.
struct HeldPorts {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for HeldPorts {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hold_ports(
    local: IpAddr,
    tcp: &[u16],
    udp: &[u16],
    hold: Duration,
) -> (HeldPorts, Vec<PortFailure>, Vec<PortFailure>) {
    let any = match local {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut tcp_l = Vec::new();
    let mut udp_l = Vec::new();
    let mut tcp_failed = Vec::new();
    let mut udp_failed = Vec::new();
    for &p in tcp {
        match TcpListener::bind((any, p)).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
            Ok(l) => tcp_l.push(l),
            Err(e) => tcp_failed.push(PortFailure {
                port: p,
                error: e.to_string(),
            }),
        }
    }
    for &p in udp {
        match UdpSocket::bind((any, p)).and_then(|s| s.set_nonblocking(true).map(|_| s)) {
            Ok(s) => udp_l.push(s),
            Err(e) => udp_failed.push(PortFailure {
                port: p,
                error: e.to_string(),
            }),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + hold;
        let mut buf = [0u8; 2048];
        while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
            let mut fds: Vec<PollFd<'_>> = tcp_l
                .iter()
                .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
                .chain(
                    udp_l
                        .iter()
                        .map(|u| PollFd::new(u.as_fd(), PollFlags::POLLIN)),
                )
                .collect();
            if fds.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
                continue;
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            for (i, ready) in ready.into_iter().enumerate() {
                if !ready {
                    continue;
                }
                if i < tcp_l.len() {
                    // Accepting is the answer; the connection closes at once.
                    while let Ok((c, _)) = tcp_l[i].accept() {
                        drop(c);
                    }
                } else {
                    let u = &udp_l[i - tcp_l.len()];
                    while let Ok((n, from)) = u.recv_from(&mut buf) {
                        let _ = u.send_to(&buf[..n], from);
                    }
                }
            }
        }
    });
    (
        HeldPorts {
            stop,
            thread: Some(thread),
        },
        tcp_failed,
        udp_failed,
    )
}

fn handle_connection(stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CONTROL_TIMEOUT))?;
    stream.set_write_timeout(Some(CONTROL_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let local_ip = stream.local_addr()?.ip();
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);

    match read_line(&mut reader)?.map(|l| serde_json::from_str::<Request>(&l)) {
        Some(Ok(Request::Hello { version, agent })) => {
            tracing::debug!(%peer, %agent, version, "peer hello");
            write_json(
                &mut writer,
                &Response::Hello {
                    version: VERSION,
                    agent: agent_name(),
                },
            )?;
            if version != VERSION {
                return Err(bad(format!("client speaks version {version}")));
            }
        }
        Some(Ok(other)) => {
            write_json(
                &mut writer,
                &Response::Error {
                    message: "send hello first".into(),
                },
            )?;
            return Err(bad(format!("no hello: {other:?}")));
        }
        Some(Err(e)) => {
            write_json(
                &mut writer,
                &Response::Error {
                    message: format!("bad request: {e}"),
                },
            )?;
            return Err(bad(e.to_string()));
        }
        None => return Ok(()),
    }

    let mut held: Option<HeldPorts> = None;
    loop {
        let Some(line) = read_line(&mut reader)? else {
            return Ok(());
        };
        let t2 = now_nanos();
        let req = match serde_json::from_str::<Request>(&line) {
            Ok(r) => r,
            Err(e) => {
                write_json(
                    &mut writer,
                    &Response::Error {
                        message: format!("bad request: {e}"),
                    },
                )?;
                continue;
            }
        };
        match req {
            Request::Hello { .. } => {
                write_json(
                    &mut writer,
                    &Response::Error {
                        message: "hello twice".into(),
                    },
                )?;
            }
            Request::Time => {
                write_json(
                    &mut writer,
                    &Response::Time {
                        t2,
                        t3: now_nanos(),
                    },
                )?;
            }
            Request::Listen { tcp, udp, hold_ms } => {
                if tcp.len() + udp.len() > MAX_PORTS {
                    write_json(
                        &mut writer,
                        &Response::Error {
                            message: format!("at most {MAX_PORTS} ports per request"),
                        },
                    )?;
                    continue;
                }
                drop(held.take());
                let hold = Duration::from_millis(hold_ms).min(MAX_HOLD);
                let (h, tcp_failed, udp_failed) = hold_ports(local_ip, &tcp, &udp, hold);
                held = Some(h);
                write_json(
                    &mut writer,
                    &Response::Listening {
                        tcp_failed,
                        udp_failed,
                    },
                )?;
            }
            Request::Release => {
                drop(held.take());
                write_json(&mut writer, &Response::Released)?;
            }
            Request::Source { millis } => {
                write_json(&mut writer, &Response::Streaming)?;
                let d = Duration::from_millis(millis).min(MAX_STREAM);
                writer.set_write_timeout(Some(Duration::from_secs(10)))?;
                let sent = send_for(&mut writer, d)?;
                tracing::debug!(%peer, sent, "source stream done");
                writer.shutdown(Shutdown::Write)?;
                // Let the client read to EOF before the socket goes away.
                let _ = io::copy(&mut reader, &mut io::sink());
                return Ok(());
            }
            Request::Sink { millis, warmup_ms } => {
                let d = Duration::from_millis(millis).min(MAX_STREAM);
                reader
                    .get_ref()
                    .set_read_timeout(Some(d + Duration::from_secs(10)))?;
                let t = receive_measured(&mut reader, Duration::from_millis(warmup_ms))?;
                write_json(
                    &mut writer,
                    &Response::Received {
                        bytes: t.bytes,
                        nanos: t.elapsed.as_nanos() as u64,
                    },
                )?;
                return Ok(());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client

pub fn resolve(addr: &str) -> Result<SocketAddr, PeerError> {
    let mut it = addr.to_socket_addrs().map_err(|e| PeerError::Resolve {
        addr: addr.to_string(),
        reason: e.to_string(),
    })?;
    it.next().ok_or_else(|| PeerError::Resolve {
        addr: addr.to_string(),
        reason: "no address".into(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Peer clock minus ours.
    pub offset_nanos: i64,
    pub rtt: Duration,
    pub samples: usize,
}

/// Per port, what probing it found.
pub type PortProbes = Vec<(u16, ProbeResult)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Reachable,
    /// The peer could not open the port itself (something there holds it).
    PeerCannotListen(String),
    Unreachable(String),
}

pub struct Client {
    name: String,
    addr: SocketAddr,
    timeout: Duration,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub peer_agent: String,
}

impl Client {
    /// Connects and says hello. `name` is how the peer is named in messages (what the user typed).
    pub fn connect(name: &str, timeout: Duration) -> Result<Client, PeerError> {
        let addr = resolve(name)?;
        let (reader, writer, peer_agent) = open(name, addr, timeout)?;
        Ok(Client {
            name: name.to_string(),
            addr,
            timeout,
            reader,
            writer,
            peer_agent,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn io(&self, what: &'static str) -> impl Fn(io::Error) -> PeerError + '_ {
        move |source| PeerError::Io {
            addr: self.name.clone(),
            what,
            source,
        }
    }

    fn request(&mut self, req: &Request) -> Result<Response, PeerError> {
        write_json(&mut self.writer, req).map_err(self.io("sending a request"))?;
        read_response(&self.name, &mut self.reader)
    }

    /// NTP-style: offset = ((t2 - t1) + (t3 - t4)) / 2, from the sample with the smallest
    /// round trip, which is the one least skewed by queueing.
    pub fn clock(&mut self, samples: usize) -> Result<ClockSample, PeerError> {
        let mut best: Option<(Duration, i64)> = None;
        for _ in 0..samples.max(1) {
            let t1 = now_nanos();
            let r = self.request(&Request::Time)?;
            let t4 = now_nanos();
            let Response::Time { t2, t3 } = r else {
                return Err(unexpected(&self.name, &r));
            };
            let rtt_ns = ((t4 - t1) - (t3 - t2)).max(0);
            let offset = ((t2 - t1) + (t3 - t4)) / 2;
            let rtt = Duration::from_nanos(rtt_ns as u64);
            if best.is_none_or(|(b, _)| rtt < b) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset_nanos) = best.expect("at least one sample");
        Ok(ClockSample {
            offset_nanos,
            rtt,
            samples: samples.max(1),
        })
    }

    /// Asks the peer to listen on the ports, probes them from here, then releases them.
    pub fn probe_ports(
        &mut self,
        tcp: &[u16],
        udp: &[u16],
        timeout: Duration,
    ) -> Result<(PortProbes, PortProbes), PeerError> {
        let hold = (timeout * 4 + Duration::from_secs(5)).min(MAX_HOLD);
        let r = self.request(&Request::Listen {
            tcp: tcp.to_vec(),
            udp: udp.to_vec(),
            hold_ms: hold.as_millis() as u64,
        })?;
        let Response::Listening {
            tcp_failed,
            udp_failed,
        } = r
        else {
            return Err(unexpected(&self.name, &r));
        };
        let ip = self.addr.ip();
        let tcp_try: Vec<u16> = tcp
            .iter()
            .copied()
            .filter(|p| !tcp_failed.iter().any(|f| f.port == *p))
            .collect();
        let udp_try: Vec<u16> = udp
            .iter()
            .copied()
            .filter(|p| !udp_failed.iter().any(|f| f.port == *p))
            .collect();
        let mut tcp_res = probe_tcp(ip, &tcp_try, timeout);
        let mut udp_res = probe_udp(ip, &udp_try, timeout);
        let _ = self.request(&Request::Release);
        // A port the peer cannot listen on may be held by the service meant to be there (a
        // node joining a running cluster probes its etcd and registry): one that answers is
        // reachable.
        let held: Vec<u16> = tcp_failed.iter().map(|f| f.port).collect();
        let answered: Vec<u16> = probe_tcp(ip, &held, timeout)
            .into_iter()
            .filter(|(_, r)| *r == ProbeResult::Reachable)
            .map(|(p, _)| p)
            .collect();
        tcp_res.extend(tcp_failed.into_iter().map(|f| {
            if answered.contains(&f.port) {
                (f.port, ProbeResult::Reachable)
            } else {
                (f.port, ProbeResult::PeerCannotListen(f.error))
            }
        }));
        udp_res.extend(
            udp_failed
                .into_iter()
                .map(|f| (f.port, ProbeResult::PeerCannotListen(f.error))),
        );
        tcp_res.sort_by_key(|(p, _)| *p);
        udp_res.sort_by_key(|(p, _)| *p);
        Ok((tcp_res, udp_res))
    }

    /// This host to the peer: we send, the peer counts.
    pub fn measure_send(
        &self,
        warmup: Duration,
        window: Duration,
    ) -> Result<Throughput, PeerError> {
        let total = warmup + window;
        let (mut reader, mut writer, _) = open(&self.name, self.addr, self.timeout)?;
        write_json(
            &mut writer,
            &Request::Sink {
                millis: total.as_millis() as u64,
                warmup_ms: warmup.as_millis() as u64,
            },
        )
        .map_err(self.io("starting the upload"))?;
        writer
            .set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(self.io("setting a timeout"))?;
        send_for(&mut writer, total).map_err(self.io("sending data"))?;
        writer
            .shutdown(Shutdown::Write)
            .map_err(self.io("ending the upload"))?;
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(self.io("setting a timeout"))?;
        match read_response(&self.name, &mut reader)? {
            Response::Received { bytes, nanos } => Ok(Throughput {
                bytes,
                elapsed: Duration::from_nanos(nanos),
            }),
            r => Err(unexpected(&self.name, &r)),
        }
    }

    /// The peer to this host: the peer sends, we count.
    pub fn measure_receive(
        &self,
        warmup: Duration,
        window: Duration,
    ) -> Result<Throughput, PeerError> {
        let total = warmup + window;
        let (mut reader, mut writer, _) = open(&self.name, self.addr, self.timeout)?;
        write_json(
            &mut writer,
            &Request::Source {
                millis: total.as_millis() as u64,
            },
        )
        .map_err(self.io("starting the download"))?;
        match read_response(&self.name, &mut reader)? {
            Response::Streaming => {}
            r => return Err(unexpected(&self.name, &r)),
        }
        reader
            .get_ref()
            .set_read_timeout(Some(total + Duration::from_secs(10)))
            .map_err(self.io("setting a timeout"))?;
        receive_measured(&mut reader, warmup).map_err(self.io("receiving data"))
    }
}

fn open(
    name: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(BufReader<TcpStream>, TcpStream, String), PeerError> {
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|source| PeerError::Connect {
            addr: name.to_string(),
            source,
        })?;
    let io = |what: &'static str| {
        move |source| PeerError::Io {
            addr: name.to_string(),
            what,
            source,
        }
    };
    stream
        .set_read_timeout(Some(timeout.max(Duration::from_secs(5))))
        .map_err(io("setting a timeout"))?;
    stream
        .set_write_timeout(Some(timeout.max(Duration::from_secs(5))))
        .map_err(io("setting a timeout"))?;
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().map_err(io("cloning the socket"))?;
    let mut reader = BufReader::new(stream);
    write_json(
        &mut writer,
        &Request::Hello {
            version: VERSION,
            agent: agent_name(),
        },
    )
    .map_err(io("saying hello"))?;
    match read_response(name, &mut reader)? {
        Response::Hello { version, agent } if version == VERSION => Ok((reader, writer, agent)),
        Response::Hello { version, .. } => Err(PeerError::Version {
            addr: name.to_string(),
            theirs: version,
            ours: VERSION,
        }),
        r => Err(unexpected(name, &r)),
    }
}

fn read_response(name: &str, reader: &mut BufReader<TcpStream>) -> Result<Response, PeerError> {
    let line = read_line(reader)
        .map_err(|source| PeerError::Io {
            addr: name.to_string(),
            what: "reading an answer",
            source,
        })?
        .ok_or_else(|| PeerError::Protocol {
            addr: name.to_string(),
            detail: "it closed the connection".into(),
        })?;
    let r: Response = serde_json::from_str(&line).map_err(|e| PeerError::Protocol {
        addr: name.to_string(),
        detail: format!("{e} in {:?}", line.chars().take(80).collect::<String>()),
    })?;
    if let Response::Error { message } = r {
        return Err(PeerError::Refused {
            addr: name.to_string(),
            message,
        });
    }
    Ok(r)
}

fn unexpected(name: &str, r: &Response) -> PeerError {
    PeerError::Protocol {
        addr: name.to_string(),
        detail: format!("unexpected answer {r:?}"),
    }
}

/// Non-blocking connects to every port at once (in batches), so that a firewall that drops
/// packets costs one timeout, not one per port.
pub fn probe_tcp(ip: IpAddr, ports: &[u16], timeout: Duration) -> Vec<(u16, ProbeResult)> {
    use nix::errno::Errno;
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getsockopt, socket, sockopt,
    };
    use std::os::fd::{AsRawFd, OwnedFd};

    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let mut out = Vec::new();
    for chunk in ports.chunks(512) {
        let mut pending: Vec<(u16, OwnedFd)> = Vec::new();
        for &p in chunk {
            let fd = match socket(
                family,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            ) {
                Ok(fd) => fd,
                Err(e) => {
                    out.push((
                        p,
                        ProbeResult::Unreachable(format!("cannot create a socket: {}", e.desc())),
                    ));
                    continue;
                }
            };
            let sa = SockaddrStorage::from(SocketAddr::new(ip, p));
            match connect(fd.as_raw_fd(), &sa) {
                Ok(()) => out.push((p, ProbeResult::Reachable)),
                Err(Errno::EINPROGRESS) => pending.push((p, fd)),
                Err(e) => out.push((p, ProbeResult::Unreachable(e.desc().to_lowercase()))),
            }
        }
        let deadline = Instant::now() + timeout;
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = left.as_millis().clamp(1, 1000) as u16;
            let mut fds: Vec<PollFd<'_>> = pending
                .iter()
                .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLOUT))
                .collect();
            if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) == 0 {
                continue;
            }
            let done: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let mut keep = Vec::new();
            for ((p, fd), done) in pending.into_iter().zip(done) {
                if !done {
                    keep.push((p, fd));
                    continue;
                }
                let res = match getsockopt(&fd, sockopt::SocketError) {
                    Ok(0) => ProbeResult::Reachable,
                    Ok(errno) => {
                        ProbeResult::Unreachable(Errno::from_raw(errno).desc().to_lowercase())
                    }
                    Err(e) => ProbeResult::Unreachable(e.desc().to_lowercase()),
                };
                out.push((p, res));
            }
            pending = keep;
        }
        for (p, _) in pending {
            out.push((
                p,
                ProbeResult::Unreachable(format!(
                    "no answer within {:.1} s (a firewall drops the packets?)",
                    timeout.as_secs_f64()
                )),
            ));
        }
    }
    out
}

/// Sends a datagram to every port and waits for the peer's echoes, resending to the silent
/// ones a few times (UDP may drop).
pub fn probe_udp(ip: IpAddr, ports: &[u16], timeout: Duration) -> Vec<(u16, ProbeResult)> {
    if ports.is_empty() {
        return Vec::new();
    }
    let bind: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => {
            return ports
                .iter()
                .map(|p| {
                    (
                        *p,
                        ProbeResult::Unreachable(format!("cannot open a UDP socket here: {e}")),
                    )
                })
                .collect();
        }
    };
    let nonce = now_nanos();
    let payload = |p: u16| format!("gravity-preflight {nonce} {p}");
    let mut answered = std::collections::BTreeSet::new();
    let rounds = 3u32;
    let per_round = timeout / rounds;
    let mut buf = [0u8; 2048];
    for _ in 0..rounds {
        for &p in ports.iter().filter(|p| !answered.contains(*p)) {
            let _ = sock.send_to(payload(p).as_bytes(), (ip, p));
        }
        let deadline = Instant::now() + per_round;
        while answered.len() < ports.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match sock.recv_from(&mut buf) {
                Ok((n, from))
                    if from.ip() == ip && buf[..n] == *payload(from.port()).as_bytes() =>
                {
                    answered.insert(from.port());
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                // ICMP errors may surface here; the silent ports are reported below.
                Err(_) => {}
            }
        }
        if answered.len() == ports.len() {
            break;
        }
    }
    ports
        .iter()
        .map(|&p| {
            if answered.contains(&p) {
                (p, ProbeResult::Reachable)
            } else {
                (
                    p,
                    ProbeResult::Unreachable(format!(
                        "no echo within {:.1} s (a firewall drops UDP to it?)",
                        timeout.as_secs_f64()
                    )),
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerHandle {
        Server::bind("127.0.0.1:0").unwrap().spawn()
    }

    #[test]
    fn clock_offset_on_one_host_is_small() {
        let s = server();
        let mut c = Client::connect(&s.addr.to_string(), Duration::from_secs(2)).unwrap();
        let clk = c.clock(8).unwrap();
        assert_eq!(clk.samples, 8);
        // Same clock on both ends: the offset is bounded by the round trip.
        assert!(
            clk.offset_nanos.unsigned_abs() <= clk.rtt.as_nanos() as u64 + 1_000_000,
            "{clk:?}"
        );
    }

    #[test]
    fn throughput_both_directions_over_loopback() {
        let s = server();
        let c = Client::connect(&s.addr.to_string(), Duration::from_secs(2)).unwrap();
        let up = c
            .measure_send(Duration::from_millis(40), Duration::from_millis(200))
            .unwrap();
        let down = c
            .measure_receive(Duration::from_millis(40), Duration::from_millis(200))
            .unwrap();
        for t in [up, down] {
            assert!(t.bytes > 1 << 20, "{t:?}");
            assert!(
                t.elapsed >= Duration::from_millis(150) && t.elapsed < Duration::from_secs(2),
                "{t:?}"
            );
        }
    }

    #[test]
    fn ports_reachable_and_ports_the_peer_cannot_open() {
        let s = server();
        // Held by a socket that is bound but does not listen: nothing answers on it.
        let taken = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        nix::sys::socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&taken),
            &nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, 0),
        )
        .unwrap();
        let taken_port = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrIn>(
            std::os::fd::AsRawFd::as_raw_fd(&taken),
        )
        .unwrap()
        .port();
        // Held by a service that answers: reachable.
        let service = TcpListener::bind("0.0.0.0:0").unwrap();
        let service_port = service.local_addr().unwrap().port();
        let free = |udp: bool| {
            if udp {
                UdpSocket::bind("0.0.0.0:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            } else {
                TcpListener::bind("0.0.0.0:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            }
        };
        let (t1, u1) = (free(false), free(true));
        let mut c = Client::connect(&s.addr.to_string(), Duration::from_secs(2)).unwrap();
        let (tcp, udp) = c
            .probe_ports(
                &[t1, taken_port, service_port],
                &[u1],
                Duration::from_secs(1),
            )
            .unwrap();
        let mut want = vec![
            (t1, ProbeResult::Reachable),
            (service_port, ProbeResult::Reachable),
        ];
        want.push((
            taken_port,
            ProbeResult::PeerCannotListen("Address already in use (os error 98)".into()),
        ));
        want.sort_by_key(|(p, _)| *p);
        assert_eq!(tcp, want);
        assert_eq!(udp, vec![(u1, ProbeResult::Reachable)]);
        // Released: nothing listens on t1 any more.
        let r = probe_tcp(
            "127.0.0.1".parse().unwrap(),
            &[t1],
            Duration::from_millis(500),
        );
        assert_eq!(
            r,
            vec![(t1, ProbeResult::Unreachable("connection refused".into()))]
        );
        let r = probe_udp(
            "127.0.0.1".parse().unwrap(),
            &[u1],
            Duration::from_millis(300),
        );
        assert!(matches!(r[0].1, ProbeResult::Unreachable(_)));
    }

    #[test]
    fn unreachable_peer_says_what_to_do() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = format!("127.0.0.1:{port}");
        let e = Client::connect(&name, Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            format!(
                "cannot reach peer {name}: Connection refused (os error 111) — is `gravity check --serve {name}` running there, and does a firewall allow it?"
            )
        );
        let e = Client::connect("no-port-here", Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("cannot resolve peer address \"no-port-here\""),
            "{e}"
        );
    }

    #[test]
    fn wrong_version_and_garbage_are_refused() {
        let s = server();
        let stream = TcpStream::connect(s.addr).unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        w.write_all(b"{\"op\":\"hello\",\"version\":99,\"agent\":\"x\"}\n")
            .unwrap();
        let line = read_line(&mut r).unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Response>(&line).unwrap(),
            Response::Hello {
                version: VERSION,
                agent: agent_name()
            }
        );
        // The server hangs up on a version it does not speak.
        assert_eq!(read_line(&mut r).unwrap(), None);

        let stream = TcpStream::connect(s.addr).unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        w.write_all(b"GET / HTTP/1.1\n").unwrap();
        let line = read_line(&mut r).unwrap().unwrap();
        assert!(line.contains("bad request"), "{line}");
    }

    #[test]
    fn receive_measured_skips_the_warm_up() {
        struct Slow(u32);
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Ok(0);
                }
                self.0 -= 1;
                std::thread::sleep(Duration::from_millis(10));
                let n = 1000.min(buf.len());
                Ok(n)
            }
        }
        let t = receive_measured(&mut Slow(50), Duration::from_millis(100)).unwrap();
        // About 40 reads of 1000 bytes in about 400 ms: 100 kB/s.
        let rate = t.rate().0 as f64;
        assert!((80_000.0..=110_000.0).contains(&rate), "{t:?} {rate}");
    }
}
