//! The cluster image tarball: deterministic packing, and an unpacker that refuses hostile input.

mod error;
mod index;
mod pack;
mod paths;
mod unpack;
mod verify;

pub use error::ArchiveError;
pub use index::{ImageIndex, IndexEntry, Kind, hash_file};
pub use pack::{Compression, DEFAULT_MTIME, PackEntry, PackOptions, Source, pack};
pub use paths::{check_symlink_target, normalize_entry_path, resolve_beneath};
pub use unpack::{Limits, UnpackOptions, UnpackReport, unpack};
pub use verify::{VerifyReport, verify_dir};
