use super::*;

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "panel1-scaffold-unit-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn names_must_be_lowercase_identifiers() {
    let longest = "a".repeat(40);
    let too_long = "a".repeat(41);
    for ok in ["acme", "my-panel", "whm-2", "a", longest.as_str()] {
        assert!(check_name(ok).is_ok(), "{ok} refused");
    }
    for bad in [
        "",
        "Acme",
        "2fast",
        "-x",
        "x-",
        "x_",
        "whm_2",
        "my panel",
        "../up",
        "a/b",
        "é",
        too_long.as_str(),
    ] {
        assert!(
            matches!(check_name(bad), Err(ScaffoldError::Name(n)) if n == bad),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn a_non_empty_target_or_a_file_is_refused_and_nothing_is_written() {
    let root = temp("target");
    let busy = root.join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    assert!(matches!(
        create("acme", Lang::Rust, &busy),
        Err(ScaffoldError::NotEmpty(_))
    ));
    let names: Vec<_> = std::fs::read_dir(&busy).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "the directory was touched");
    let file = root.join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(
        create("acme", Lang::Js, &file),
        Err(ScaffoldError::NotEmpty(_))
    ));
    // A bad name is refused before the directory is even created.
    let fresh = root.join("fresh");
    assert!(matches!(
        create("Bad", Lang::Rust, &fresh),
        Err(ScaffoldError::Name(_))
    ));
    assert!(!fresh.exists());
    // Only `busy` and `file` remain: no staging directory left behind.
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_empty_target_directory_is_filled() {
    let root = temp("empty");
    let n = create("acme", Lang::Js, &root).unwrap();
    assert!(n > 10);
    assert!(root.join("adapter.js").is_file() && root.join("wit/world.wit").is_file());
    let mode = std::fs::metadata(root.join("build.sh")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        mode.permissions().mode() & 0o111,
        0o111,
        "build.sh is executable"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn every_sdk_rewrite_applies_and_no_project_references_the_repo() {
    for (file, from, _) in files::SDK_REWRITES {
        let (_, original) = files::SDK
            .iter()
            .find(|(f, _)| f == file)
            .expect("an SDK file");
        assert!(
            original.contains(from),
            "sdk/rust/src/{file} no longer contains `{from}`"
        );
        assert!(
            !files::vendored(file, original).contains(from),
            "{file}: not rewritten"
        );
    }
    for lang in [Lang::Rust, Lang::Js, Lang::Ts, Lang::Python, Lang::C] {
        for t in render("acme", lang) {
            assert!(!t.text.contains("{{"), "{}: unfilled placeholder", t.path);
            assert!(
                !t.text.contains("../../wit"),
                "{}: points into a checkout",
                t.path
            );
            if t.path == "wit/world.wit" {
                assert!(
                    t.text
                        .lines()
                        .filter(|l| l.trim_start().starts_with("import"))
                        .all(|l| !l.contains("secrets-reveal")),
                    "{lang:?} world imports secrets-reveal"
                );
            }
        }
    }
    let rust = render("my-panel", Lang::Rust);
    let secrets = rust
        .iter()
        .find(|t| t.path == "panel1-sdk/src/secrets.rs")
        .unwrap();
    assert!(!secrets.text.contains("secrets_reveal"));
    let build = rust.iter().find(|t| t.path == "build.sh").unwrap();
    assert!(build.text.contains("release/my_panel.wasm") && build.text.contains("my-panel.wasm"));
}

#[test]
fn every_project_gets_an_offline_scenario_for_its_own_component() {
    for lang in [Lang::Rust, Lang::Js, Lang::Ts, Lang::Python, Lang::C] {
        let root = temp("scenario");
        create("acme", lang, &root).unwrap();
        let scenario = super::super::scenario::load(&root.join("test/scenario.toml"))
            .unwrap_or_else(|e| panic!("{lang:?}: {e}"));
        assert_eq!(scenario.component, Some(root.join("test/../acme.wasm")));
        assert_eq!(scenario.steps.len(), 7, "{lang:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
