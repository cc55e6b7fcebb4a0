//! Validates manifests given on the command line and prints every problem.
fn main() {
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        match cluster_image::manifest::load_file(
            std::path::Path::new(&arg),
            &cluster_image::manifest::Offline,
        ) {
            Ok(_) => println!("{arg}: valid"),
            Err(e) => {
                failed = true;
                println!("{e}");
            }
        }
    }
    std::process::exit(i32::from(failed));
}
