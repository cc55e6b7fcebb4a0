//! A real container registry (Debian's `docker-registry`) on a free loopback port, with its
//! storage in a temporary directory; killed on drop, also when the test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// The token server of a registry with token auth.
    token_server: Option<Child>,
}

/// How clients must authenticate.
enum Auth<'a> {
    Anonymous,
    /// HTTP basic against an htpasswd file.
    Basic(&'a str, &'a str),
    /// Docker's token protocol: a token server (tests/fixtures/token-server.py) that gives
    /// these credentials RS256 tokens for what they ask.
    Token(&'a str, &'a str),
}

impl Registry {
    /// Starts a registry and waits until it answers `GET /v2/`.
    pub fn start() -> Registry {
        Self::start_with(Auth::Anonymous)
    }

    /// A registry that requires basic auth (htpasswd, bcrypt) for everything.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::start_with(Auth::Basic(user, password))
    }

    /// A registry that requires bearer tokens, and the token server that issues them to
    /// `user:password`.
    pub fn start_with_token_auth(user: &str, password: &str) -> Registry {
        Self::start_with(Auth::Token(user, password))
    }

    fn start_with(auth: Auth<'_>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir()
            .expect("temp dir");
        let mut token_server = None;
        let auth_config = match auth {
            Auth::Anonymous => String::new(),
            Auth::Basic(user, password) => {
                let htpasswd = dir.path().join("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd (apt-get install apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                std::fs::write(&htpasswd, &out.stdout).expect("htpasswd file");
                format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            Auth::Token(user, password) => {
                let (child, port, cert) = start_token_server(dir.path(), user, password);
                token_server = Some(child);
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{port}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                    cert.display()
                )
            }
        };
        // The kernel picks a free port and the registry binds it just after: another process
        // may take it in between, so a failed start is retried on a new port.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_config}",
                    dir.path().join("data").display()
                ),
            )
            .expect("registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("docker-registry (apt-get install docker-registry)");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // With auth, an anonymous `GET /v2/` is refused: that answer is ready too.
                if request(port, "GET", "/v2/", "*/*")
                    .is_some_and(|(status, _)| status == 200 || status == 401)
                {
                    return Registry {
                        child,
                        port,
                        dir,
                        token_server,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start: {}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the registry keeps its data: blobs under `docker/registry/v2/blobs`.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// A plain HTTP/1.0 request: (status, body).
    pub fn request(&self, method: &str, path: &str, accept: &str) -> Option<(u16, Vec<u8>)> {
        request(self.port, method, path, accept)
    }

    pub fn get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        self.request("GET", path, "*/*")
    }

    /// Every blob the registry stores (its content-addressed store, shared by repositories).
    pub fn stored_blobs(&self) -> Vec<String> {
        let root = self.data_dir().join("docker/registry/v2/blobs/sha256");
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(format!("sha256:{}", blob.file_name().to_string_lossy()));
            }
        }
        out.sort();
        out
    }

    /// The registry's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.child).chain(self.token_server.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A signing key and self-signed certificate, and the token server using them; returns the
/// server, its port and the certificate (the registry's trust root).
fn start_token_server(dir: &Path, user: &str, password: &str) -> (Child, u16, PathBuf) {
    let key = dir.join("token-key.pem");
    let cert = dir.join("token-cert.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=gravity-tests-token-issuer", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port_file = dir.join("token-server.port");
    let log = std::fs::File::create(dir.join("token-server.log")).expect("log");
    let mut child = Command::new("python3")
        .arg(crate::bins::repo().join("tests/fixtures/token-server.py"))
        .arg(&key)
        .arg(&cert)
        .arg(format!("{user}:{password}"))
        .arg("test-issuer")
        .arg(&port_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("python3");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return (child, port, cert);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the token server exited ({status}): {}",
                std::fs::read_to_string(dir.join("token-server.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the token server did not start");
}

fn request(port: u16, method: &str, path: &str, accept: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf[head_end + 4..].to_vec()))
}

/// `skopeo copy` between two transports, plain HTTP for registries; panics with skopeo's
/// output on failure.
pub fn skopeo_copy(from: &str, to: &str) {
    skopeo_copy_with(from, to, &[]);
}

/// `skopeo copy` with extra flags (`--dest-creds user:password`).
pub fn skopeo_copy_with(from: &str, to: &str, extra: &[&str]) {
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .args(extra)
        .args([from, to])
        .output()
        .expect("skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy {from} {to} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `skopeo` can pull the whole image (manifest, config and every layer, digests
/// checked) into a scratch OCI layout: what a container runtime's pull needs.
pub fn pullable(image: &str, scratch: &Path) -> Result<(), String> {
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &format!("oci:{}:x", scratch.display()),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}
