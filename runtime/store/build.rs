// `sqlx::migrate!` embeds migrations/ at build time; without this, editing
// or adding a migration would not rebuild the crate that embeds them.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
