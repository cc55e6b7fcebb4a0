//! Join tokens: `ID.SECRET` (6 and 16 characters of `[a-z0-9]`, kubeadm's shape). Only the
//! secret's SHA-256 is stored, in one 0600 file, changed under an exclusive lock so that the
//! server's threads and `gravity token` commands never lose each other's changes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const FORMAT: u32 = 1;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a token store gravity can read: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("unknown token: it was never created on this cluster, or its secret is wrong")]
    Unknown,
    #[error("token {id} expired {ago} ago: create a new one with `gravity token create`")]
    Expired { id: String, ago: String },
    #[error("token {id} was revoked")]
    Revoked { id: String },
    #[error("token {id} was for one use only and node {node} used it already")]
    Used { id: String, node: String },
    #[error("no token {0}: see `gravity token list`")]
    NoSuchId(String),
}

/// A token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub sha256: String,
    #[serde(default)]
    pub description: String,
    pub created: u64,
    /// Unix seconds; none: never expires.
    pub expires: Option<u64>,
    pub single_use: bool,
    #[serde(default)]
    pub revoked: bool,
    /// The nodes that joined with it.
    #[serde(default)]
    pub uses: Vec<TokenUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUse {
    pub node: String,
    pub at: u64,
}

impl TokenRecord {
    /// What it can still do at `now`: `valid`, `expired`, `revoked`, `used`.
    pub fn state(&self, now: u64) -> &'static str {
        if self.revoked {
            "revoked"
        } else if self.expires.is_some_and(|e| e <= now) {
            "expired"
        } else if self.single_use && !self.uses.is_empty() {
            "used"
        } else {
            "valid"
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    format: u32,
    tokens: Vec<TokenRecord>,
}

/// The token store of one cluster: a file under the first node's state directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_string(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    // Rejection sampling keeps every character equally likely.
    let mut out = String::with_capacity(len);
    let rng = rustls::crypto::ring::default_provider().secure_random;
    while out.len() < len {
        rng.fill(&mut bytes).expect("the system's random source");
        for b in &bytes {
            if out.len() < len && usize::from(*b) < 252 {
                out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
            }
        }
    }
    out
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares without stopping at the first difference, so timing says nothing of the secret.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Splits `ID.SECRET`; a malformed token is simply unknown.
fn parse(token: &str) -> Result<(&str, &str), TokenError> {
    let (id, secret) = token.split_once('.').ok_or(TokenError::Unknown)?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
    if ok(id, ID_LEN) && ok(secret, SECRET_LEN) {
        Ok((id, secret))
    } else {
        Err(TokenError::Unknown)
    }
}

pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

impl TokenStore {
    pub fn new(path: &Path) -> TokenStore {
        TokenStore {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> TokenError {
        TokenError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` on the stored tokens under the store's lock, and writes them back if it says so.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Vec<TokenRecord>) -> Result<(T, bool), TokenError>,
    ) -> Result<T, TokenError> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let lock_path = self.path.with_extension("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| TokenError::Io {
                path: lock_path.clone(),
                source,
            })?;
        let _lock =
            Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| TokenError::Io {
                path: lock_path,
                source: e.into(),
            })?;
        let mut stored = match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice::<Stored>(&bytes).map_err(|e| TokenError::Corrupt {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored {
                format: FORMAT,
                tokens: vec![],
            },
            Err(e) => return Err(self.io(e)),
        };
        if stored.format > FORMAT {
            return Err(TokenError::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "format {} is newer than this gravity's {FORMAT}",
                    stored.format
                ),
            });
        }
        let (out, changed) = f(&mut stored.tokens)?;
        if changed {
            stored.format = FORMAT;
            let bytes = serde_json::to_vec_pretty(&stored).expect("tokens serialize");
            durable::write_atomic_mode(&self.path, &bytes, 0o600).map_err(|e| self.io(e))?;
        }
        Ok(out)
    }

    /// A new token, valid for `ttl` (none: until revoked); returns it whole, the only time
    /// its secret is seen.
    pub fn create(
        &self,
        ttl: Option<Duration>,
        single_use: bool,
        description: &str,
    ) -> Result<(String, TokenRecord), TokenError> {
        self.with(|tokens| {
            let mut id = random_string(ID_LEN);
            while tokens.iter().any(|t| t.id == id) {
                id = random_string(ID_LEN);
            }
            let secret = random_string(SECRET_LEN);
            let created = now();
            let record = TokenRecord {
                id: id.clone(),
                sha256: hash(&secret),
                description: description.to_string(),
                created,
                expires: ttl.map(|t| created + t.as_secs()),
                single_use,
                revoked: false,
                uses: vec![],
            };
            tokens.push(record.clone());
            Ok(((format!("{id}.{secret}"), record), true))
        })
    }

    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        if !self.path.exists() {
            return Ok(vec![]);
        }
        self.with(|tokens| Ok((tokens.clone(), false)))
    }

    /// Revokes token `id` (the part before the dot; a whole token works too).
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, TokenError> {
        let id = id.split('.').next().unwrap_or(id).to_string();
        self.with(|tokens| {
            let t = tokens
                .iter_mut()
                .find(|t| t.id == id)
                .ok_or_else(|| TokenError::NoSuchId(id.clone()))?;
            t.revoked = true;
            Ok((t.clone(), true))
        })
    }

    /// Checks `token` for node `node` and, if it may join, records the use.
    pub fn redeem(&self, token: &str, node: &str) -> Result<TokenRecord, TokenError> {
        let (id, secret) = parse(token)?;
        let at = now();
        self.with(|tokens| {
            let t = tokens
                .iter_mut()
                .find(|t| t.id == id && same(&t.sha256, &hash(secret)))
                .ok_or(TokenError::Unknown)?;
            // The same node again (its first answer was lost): not a second use.
            let again = t.uses.iter().any(|u| u.node == node);
            match t.state(at) {
                "valid" | "used" if again => Ok((t.clone(), false)),
                "revoked" => Err(TokenError::Revoked { id: t.id.clone() }),
                "expired" => Err(TokenError::Expired {
                    id: t.id.clone(),
                    ago: human(Duration::from_secs(at - t.expires.unwrap_or(at))),
                }),
                "used" => Err(TokenError::Used {
                    id: t.id.clone(),
                    node: t.uses.first().map(|u| u.node.clone()).unwrap_or_default(),
                }),
                _ => {
                    t.uses.push(TokenUse {
                        node: node.to_string(),
                        at,
                    });
                    Ok((t.clone(), true))
                }
            }
        })
    }

    /// Takes back a use recorded by [`TokenStore::redeem`] (the join failed after it).
    pub fn unredeem(&self, id: &str, node: &str) -> Result<(), TokenError> {
        self.with(|tokens| {
            let changed = match tokens.iter_mut().find(|t| t.id == id) {
                Some(t) => {
                    let before = t.uses.len();
                    t.uses.retain(|u| u.node != node);
                    before != t.uses.len()
                }
                None => false,
            };
            Ok(((), changed))
        })
    }
}
