// Selects the 0.2.0 world in the shared SDK source (`#[cfg(panel1_world_v2)]`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(panel1_world_v2)");
    println!("cargo::rustc-cfg=panel1_world_v2");
}
