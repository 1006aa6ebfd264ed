//! `scripts/dist.sh`: the archive authors install without a checkout holds
//! a stripped `panel1` that runs on its own, and the debug info split off
//! beside it still belongs to that binary (its .gnu_debuglink names it).

use crate::outside::TempDir;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?}: {text}");
    text
}

#[test]
fn the_release_archive_holds_a_stripped_binary_and_its_debug_info_apart() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = Path::new(env!("CARGO_BIN_EXE_panel1"));
    let out = TempDir::new("dist-out");
    run(Command::new("bash")
        .arg(repo.join("scripts/dist.sh"))
        .arg(bin)
        .arg(out.path()));
    let archive = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("an archive");
    let stem = archive
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".tar.gz")
        .to_string();
    let debug = out.path().join(format!("{stem}.debug"));
    assert!(debug.is_file());
    let sums = std::fs::read_to_string(out.path().join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("{stem}.tar.gz")) && sums.contains(&format!("{stem}.debug")));

    // Unpacked somewhere else, the binary works alone.
    let unpacked = TempDir::new("dist-unpacked");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(unpacked.path()));
    let dir = unpacked.path().join(&stem);
    let stripped = dir.join("panel1");
    assert!(dir.join("README.md").is_file() && dir.join("docs/adapters.md").is_file());
    let help = run(Command::new(&stripped)
        .arg("--help")
        .current_dir(unpacked.path()));
    assert!(help.contains("adapter"), "{help}");
    let project = unpacked.path().join("acme");
    run(Command::new(&stripped)
        .args(["adapter", "new", "acme", "--lang", "c", "--dir"])
        .arg(&project));
    assert!(project.join("test/scenario.toml").is_file());

    // No debug sections left in it; the .debug file has them, and the
    // binary's debuglink names that file.
    let sections = run(Command::new("readelf").arg("-S").arg(&stripped));
    assert!(!sections.contains(".debug_line"), "{sections}");
    assert!(sections.contains(".gnu_debuglink"), "{sections}");
    let dsections = run(Command::new("readelf").arg("-S").arg(&debug));
    assert!(dsections.contains(".debug_line"), "{dsections}");
    let link = run(Command::new("readelf")
        .args(["--string-dump=.gnu_debuglink"])
        .arg(&stripped));
    assert!(link.contains(&format!("{stem}.debug")), "{link}");
    let full = std::fs::metadata(bin).unwrap().len();
    let small = std::fs::metadata(&stripped).unwrap().len();
    assert!(small * 2 < full, "stripped {small} bytes of {full}");
}
