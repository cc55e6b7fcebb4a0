//! planet's root filesystem: the image mounted read-only, an overlay on top whose upper layer
//! (per image version, under the state directory) keeps planet's writable state across
//! restarts. A different image version starts from a fresh upper layer; going back to the
//! previous version finds its own again.

use std::time::Instant;

use super::config::PlanetConfig;
use super::paths::Paths;
use crate::host::mounts::{MountError, Mounted, Mounter};

/// Mounts the image and the overlay; returns what was mounted, in mount order. On failure,
/// whatever was mounted is unmounted again.
pub fn mount(
    config: &PlanetConfig,
    paths: &Paths,
    mounter: &dyn Mounter,
) -> Result<Vec<Mounted>, MountError> {
    let started = Instant::now();
    let image = mounter.mount_image(
        &config.image.path,
        config.image.format.fstype(),
        &paths.image_mount(),
    )?;
    let overlay_dir = paths.overlay(&config.image.version);
    let overlay = match mounter.mount_overlay(
        &paths.image_mount(),
        &overlay_dir.join("upper"),
        &overlay_dir.join("work"),
        &paths.rootfs(),
    ) {
        Ok(m) => m,
        Err(e) => {
            let _ = mounter.unmount(&image);
            return Err(e);
        }
    };
    tracing::debug!(elapsed = ?started.elapsed(), "rootfs mounted");
    Ok(vec![image, overlay])
}

/// Unmounts in reverse order; keeps going past errors and returns the first.
pub fn unmount(mounted: &[Mounted], mounter: &dyn Mounter) -> Result<(), MountError> {
    let mut first = None;
    for m in mounted.iter().rev() {
        if let Err(e) = mounter.unmount(m) {
            tracing::warn!(error = %e, "unmount failed");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mounts::RecordingMounter;
    use std::path::Path;

    #[test]
    fn mounts_image_then_overlay_and_unmounts_in_reverse() {
        let config = crate::config::tests::fixture();
        let paths = Paths::new(Path::new("/var/lib/gravity"));
        let mounter = RecordingMounter::default();
        let mounted = mount(&config, &paths, &mounter).unwrap();
        unmount(&mounted, &mounter).unwrap();
        assert_eq!(
            mounter.calls(),
            [
                "mount -t erofs -o loop,ro /var/lib/gravity/planet/images/0.1.0+abc/planet.erofs /var/lib/gravity/planet/image",
                "mount -t overlay lowerdir=/var/lib/gravity/planet/image,upperdir=/var/lib/gravity/planet/overlay/0.1.0+abc/upper,workdir=/var/lib/gravity/planet/overlay/0.1.0+abc/work /var/lib/gravity/planet/rootfs",
                "umount /var/lib/gravity/planet/rootfs",
                "umount /var/lib/gravity/planet/image",
            ]
        );
    }
}
