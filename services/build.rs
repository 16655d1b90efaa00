// Cargo does not notice a new file in src/ by itself; without this, a newly added
// service would be silently left out of incremental builds.
fn main() {
    println!("cargo:rerun-if-changed=src");
}
