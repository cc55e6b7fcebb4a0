//! `requirements.devices`: each path glob matches at least one character or block device.

use std::os::unix::fs::FileTypeExt;

use cluster_image::manifest::Device;

use crate::check::CheckResult;
use crate::host::Host;

pub fn check_device(host: &Host, d: &Device) -> CheckResult {
    let id = format!("device:{}", d.path);
    let title = "Device";
    let required = "at least one character or block device";
    let paths = match host.glob(&d.path) {
        Ok(p) => p,
        Err(e) => {
            return CheckResult::fail(id, title)
                .required(required)
                .detail(e.to_string())
                .fix("correct the device pattern in the manifest");
        }
    };
    let mut devices = Vec::new();
    let mut others = Vec::new();
    for p in &paths {
        // Follows symlinks: /dev/disk/by-id/... links to the device node.
        match host.metadata(p) {
            Ok(m) if m.file_type().is_char_device() || m.file_type().is_block_device() => {
                let kind = if m.file_type().is_char_device() {
                    "c"
                } else {
                    "b"
                };
                devices.push(format!("{} ({kind})", p.display()));
            }
            _ => others.push(p.display().to_string()),
        }
    }
    if !devices.is_empty() {
        let n = devices.len();
        return CheckResult::pass(id, title)
            .measured(format!(
                "{n} device{}: {}",
                if n == 1 { "" } else { "s" },
                devices.join(", ")
            ))
            .required(required);
    }
    let measured = if others.is_empty() {
        "no path matches".to_string()
    } else {
        format!("only non-devices match: {}", others.join(", "))
    };
    CheckResult::fail(id, title)
        .measured(measured)
        .required(required)
        .fix(format!(
            "install the hardware and its driver so that {} exists (e.g. load the kernel module, or run the vendor's device setup)",
            d.path
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::testutil::FixtureRoot;

    fn dev(path: &str) -> Device {
        Device {
            path: path.into(),
            permissions: None,
            file_mode: None,
            uid: None,
            gid: None,
        }
    }

    #[test]
    fn only_device_nodes_count() {
        // Device nodes cannot live in a fixture tree without root; a symlink to /dev/null
        // is seen as the character device it points to.
        let fx = FixtureRoot::new()
            .symlink("dev/nvidia0", "/dev/null")
            .symlink("dev/nvidiactl", "/dev/zero")
            .file("dev/nvidia-notes.txt", "not a device")
            .file("dev/fake0", "");
        let h = fx.host();
        let r = check_device(&h, &dev("/dev/nvidia*"));
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.id, "device:/dev/nvidia*");
        assert_eq!(
            r.measured.as_deref(),
            Some("2 devices: /dev/nvidia0 (c), /dev/nvidiactl (c)")
        );
        let r = check_device(&h, &dev("/dev/fake*"));
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.measured.as_deref(),
            Some("only non-devices match: /dev/fake0")
        );
        let r = check_device(&h, &dev("/dev/sgx*"));
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.measured.as_deref(), Some("no path matches"));
        assert!(r.fix.unwrap().contains("/dev/sgx*"));
    }
}
