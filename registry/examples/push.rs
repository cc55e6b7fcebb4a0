//! Pushes an OCI image layout into a registry, as `gravity install` does into planet's:
//! `push LAYOUT_DIR HOST:PORT [--https]`. Used by the benchmark in `bench/vendor`.

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(layout), Some(registry)) = (args.first(), args.get(1)) else {
        eprintln!("usage: push LAYOUT_DIR HOST:PORT [--https]");
        std::process::exit(2);
    };
    let started = Instant::now();
    let report = registry::push_layout(
        &PathBuf::from(layout),
        &registry::PushOptions {
            registry: registry.clone(),
            plain_http: !args.iter().any(|a| a == "--https"),
            auth: registry::push::Auth::Anonymous,
            concurrency: 4,
            progress: None,
        },
    )?;
    println!(
        "pushed {} images in {:.2?}: {} blobs uploaded ({} bytes), {} already there, {} mounted",
        report.images.len(),
        started.elapsed(),
        report.uploaded,
        report.bytes_uploaded,
        report.existing,
        report.mounted
    );
    Ok(())
}
