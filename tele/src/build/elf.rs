//! Whether an ELF executable needs a dynamic loader (has a PT_INTERP program header).

use std::path::Path;

use anyhow::{Context, bail};

pub fn is_static(path: &Path) -> anyhow::Result<bool> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" {
        bail!("{} is not an ELF executable", path.display());
    }
    if data[4] != 2 || data[5] != 1 {
        bail!(
            "{} is not a 64-bit little-endian executable",
            path.display()
        );
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64_at =
        |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().expect("8 bytes")) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let Some(kind) = data.get(at..at + 4) else {
            bail!("{} has a truncated program header table", path.display());
        };
        if u32::from_le_bytes(kind.try_into().expect("4 bytes")) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dynamic_system_binary_is_not_static() {
        assert!(!super::is_static(std::path::Path::new("/bin/sh")).unwrap());
    }

    #[test]
    fn a_text_file_is_not_elf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        assert!(super::is_static(&p).is_err());
    }
}
