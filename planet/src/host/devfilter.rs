//! The device cgroup on cgroup2: an eBPF program (`BPF_PROG_TYPE_CGROUP_DEVICE`) attached to
//! planet's cgroup.
//!
//! libcontainer builds such programs only with its `cgroupsv2_devices` feature, which links
//! libbpf (C, and no static build here); without it, device rules are silently ignored on
//! cgroup2. This module generates the (small) program itself: an allow-list, everything else
//! denied. It is attached with `BPF_F_ALLOW_MULTI`, so programs that planet's own systemd or
//! containerd attach below it can only narrow access further: the kernel allows an access
//! only when every program on the path allows it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::devices::DeviceKind;

/// One allow rule: `None` matches any type, major or minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub kind: Option<DeviceKind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

// include/uapi/linux/bpf.h
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (class | op | source).
pub(crate) const LDX_MEM_W: u8 = 0x61;
pub(crate) const ALU64_AND_K: u8 = 0x57;
pub(crate) const ALU64_RSH_K: u8 = 0x77;
pub(crate) const ALU64_MOV_K: u8 = 0xb7;
pub(crate) const ALU64_MOV_X: u8 = 0xbf;
pub(crate) const JMP_JNE_K: u8 = 0x55;
pub(crate) const JMP_EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The program for `rules`: returns 1 (allow) for an access one rule covers entirely, else 0.
///
/// Registers: r2 = device type, r3 = requested access bits, r4 = major, r5 = minor (from
/// `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`).
pub fn program(rules: &[Allow]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules {
        let access = (if rule.read { BPF_DEVCG_ACC_READ } else { 0 })
            | (if rule.write { BPF_DEVCG_ACC_WRITE } else { 0 })
            | (if rule.mknod { BPF_DEVCG_ACC_MKNOD } else { 0 });
        // Each check jumps past the rest of this rule's block when it fails; the offsets are
        // filled in once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        if let Some(kind) = rule.kind {
            let t = match kind {
                DeviceKind::Block => BPF_DEVCG_DEV_BLOCK,
                DeviceKind::Char => BPF_DEVCG_DEV_CHAR,
            };
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 2, 0, 0, t));
        }
        block.push(insn(ALU64_MOV_X, 6, 3, 0, 0));
        block.push(insn(ALU64_AND_K, 6, 0, 0, !access));
        jumps.push(block.len());
        block.push(insn(JMP_JNE_K, 6, 0, 0, 0));
        if let Some(major) = rule.major {
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 5, 0, 0, minor as i32));
        }
        block.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(
        "the kernel refused planet's device filter (BPF_PROG_LOAD): {source}{}",
        if log.is_empty() { String::new() } else { format!("\n{log}") }
    )]
    Load { source: std::io::Error, log: String },
    #[error("cannot open the cgroup {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot attach planet's device filter to {path}: {source}")]
    Attach {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    // The kernel accepts a shorter attr as long as the rest would be zero.
    pad: [u8; 64],
}

#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    pad: [u8; 44],
}

/// Loads the program for `rules` and attaches it to the cgroup2 directory `cgroup`. The
/// attachment lives as long as the cgroup.
pub fn attach(cgroup: &Path, rules: &[Allow]) -> Result<(), FilterError> {
    let prog = program(rules);
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"gravity_planet");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
        pad: [0; 64],
    };
    // SAFETY: bpf(BPF_PROG_LOAD) reads `attr` and the instruction, license and log buffers it
    // points to, all alive until the call returns; it returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        let source = std::io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        return Err(FilterError::Load {
            source,
            log: String::from_utf8_lossy(&log[..end]).trim().to_string(),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let dir = std::fs::File::open(cgroup).map_err(|source| FilterError::Open {
        path: cgroup.to_path_buf(),
        source,
    })?;
    let attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
        pad: [0; 44],
    };
    // SAFETY: bpf(BPF_PROG_ATTACH) reads `attr`, which holds two open descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if rc != 0 {
        return Err(FilterError::Attach {
            path: cgroup.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `prog` on one access, interpreting just the instructions [`program`] emits.
    fn run(prog: &[Insn], kind: DeviceKind, access: i32, major: u32, minor: u32) -> u64 {
        let t = match kind {
            DeviceKind::Block => BPF_DEVCG_DEV_BLOCK,
            DeviceKind::Char => BPF_DEVCG_DEV_CHAR,
        };
        let ctx = [((access << 16) | t) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU64_AND_K => r[dst] &= i.imm as i64 as u64,
                ALU64_RSH_K => r[dst] >>= i.imm,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const R: i32 = BPF_DEVCG_ACC_READ;
    const W: i32 = BPF_DEVCG_ACC_WRITE;
    const M: i32 = BPF_DEVCG_ACC_MKNOD;

    #[test]
    fn allows_only_what_a_rule_covers() {
        let prog = program(&[
            // c 195:* rw (nvidia*)
            Allow {
                kind: Some(DeviceKind::Char),
                major: Some(195),
                minor: None,
                read: true,
                write: true,
                mknod: false,
            },
            // b 7:3 r
            Allow {
                kind: Some(DeviceKind::Block),
                major: Some(7),
                minor: Some(3),
                read: true,
                write: false,
                mknod: false,
            },
            // b *:* m
            Allow {
                kind: Some(DeviceKind::Block),
                major: None,
                minor: None,
                read: false,
                write: false,
                mknod: true,
            },
        ]);
        use DeviceKind::{Block, Char};
        assert_eq!(run(&prog, Char, R | W, 195, 0), 1);
        assert_eq!(run(&prog, Char, R, 195, 255), 1);
        assert_eq!(run(&prog, Char, M, 195, 0), 0, "no mknod on nvidia");
        assert_eq!(run(&prog, Block, R | W, 195, 0), 0, "wrong type");
        assert_eq!(run(&prog, Block, R, 7, 3), 1);
        assert_eq!(run(&prog, Block, R | W, 7, 3), 0, "write not allowed");
        assert_eq!(run(&prog, Block, R, 7, 4), 0, "another loop device");
        assert_eq!(run(&prog, Block, M, 8, 0), 1, "mknod of any block device");
        assert_eq!(run(&prog, Char, R, 1, 3), 0, "nothing else");
        assert_eq!(run(&program(&[]), Char, R, 1, 3), 0, "empty allows nothing");
    }

    #[test]
    fn any_type_rules() {
        let prog = program(&[Allow {
            kind: None,
            major: None,
            minor: None,
            read: true,
            write: true,
            mknod: true,
        }]);
        assert_eq!(run(&prog, DeviceKind::Block, R | W | M, 1, 1), 1);
    }

    #[test]
    fn kernel_struct_sizes() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 136);
        assert_eq!(std::mem::size_of::<ProgAttachAttr>(), 64);
    }
}
