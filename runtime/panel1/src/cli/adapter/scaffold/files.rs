//! What a new project is made of, embedded in the binary so that `adapter
//! new` needs no checkout: the released WIT (wit/v0.1.0 and its WASI deps),
//! the per-language templates (runtime/panel1/templates/scaffold/) and, for
//! Rust, the SDK (sdk/rust) vendored with its WIT paths rewritten.
use super::Lang;

/// One file of a project: its path in the project and its text, before the
/// `{{name}}`/`{{crate}}` substitution.
#[derive(Debug, Clone)]
pub struct Template {
    pub path: String,
    pub text: String,
    pub executable: bool,
}

macro_rules! repo_file {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../", $path))
    };
}

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/scaffold/",
            $path
        ))
    };
}

/// The released contract, as `wit/deps/<package>/<file>` in the project
/// (and in the SDK packages, see `sdk`).
pub const WIT: &[(&str, &str)] = &[
    (
        "wit/deps/panel1-provisioning/provisioning.wit",
        repo_file!("wit/v0.1.0/provisioning.wit"),
    ),
    (
        "wit/deps/cli/cli.wit",
        repo_file!("wit/v0.1.0/deps/cli/cli.wit"),
    ),
    (
        "wit/deps/clocks/clocks.wit",
        repo_file!("wit/v0.1.0/deps/clocks/clocks.wit"),
    ),
    (
        "wit/deps/filesystem/filesystem.wit",
        repo_file!("wit/v0.1.0/deps/filesystem/filesystem.wit"),
    ),
    (
        "wit/deps/http/http.wit",
        repo_file!("wit/v0.1.0/deps/http/http.wit"),
    ),
    (
        "wit/deps/io/io.wit",
        repo_file!("wit/v0.1.0/deps/io/io.wit"),
    ),
    (
        "wit/deps/random/random.wit",
        repo_file!("wit/v0.1.0/deps/random/random.wit"),
    ),
    (
        "wit/deps/sockets/sockets.wit",
        repo_file!("wit/v0.1.0/deps/sockets/sockets.wit"),
    ),
];

/// The Rust SDK's sources, vendored as `panel1-sdk/src/<file>`.
pub const SDK: &[(&str, &str)] = &[
    ("adapter.rs", repo_file!("sdk/rust/src/adapter.rs")),
    ("config.rs", repo_file!("sdk/rust/src/config.rs")),
    ("deadline.rs", repo_file!("sdk/rust/src/deadline.rs")),
    ("errors.rs", repo_file!("sdk/rust/src/errors.rs")),
    ("http.rs", repo_file!("sdk/rust/src/http.rs")),
    ("input.rs", repo_file!("sdk/rust/src/input.rs")),
    ("lib.rs", repo_file!("sdk/rust/src/lib.rs")),
    ("log.rs", repo_file!("sdk/rust/src/log.rs")),
    ("paging.rs", repo_file!("sdk/rust/src/paging.rs")),
    ("random.rs", repo_file!("sdk/rust/src/random.rs")),
    ("secrets.rs", repo_file!("sdk/rust/src/secrets.rs")),
];

/// Rewrites of the vendored SDK: `(file, from, to)`. Each `from` must occur
/// (a unit test holds the SDK to it): the WIT is found in the project, the
/// bindings follow the narrowed world, and `secrets::reveal`, whose import
/// that world leaves out, is gone.
pub const SDK_REWRITES: &[(&str, &str, &str)] = &[
    ("lib.rs", "path: \"../../wit/v0.1.0\",", "path: \"../wit\","),
    (
        "lib.rs",
        "world: \"panel1:provisioning/provisioning@0.1.0\",",
        "world: \"local:adapter/adapter@0.1.0\",",
    ),
    (
        "random.rs",
        "path: \"../../wit/v0.1.0/deps/random\",",
        "path: \"../wit/deps/random\",",
    ),
    (
        "secrets.rs",
        "\n/// The plaintext of a secret. Using this makes the component import\n/// `secrets-reveal`: the operator must grant it, or every call is denied.\n/// Prefer [`placeholder`].\npub fn reveal(name: &str) -> Result<String, SecretError> {\n    crate::bindings::panel1::provisioning::secrets_reveal::reveal(name)\n}\n",
        "",
    ),
];

/// An SDK file with its rewrites applied.
pub fn vendored(file: &str, text: &str) -> String {
    rewritten(SDK_REWRITES, file, text)
}

/// `text` (SDK file `file`) with the rewrites of `rewrites` applied.
pub fn rewritten(rewrites: &[(&str, &str, &str)], file: &str, text: &str) -> String {
    rewrites
        .iter()
        .filter(|(f, _, _)| *f == file)
        .fold(text.to_string(), |t, (_, from, to)| t.replacen(from, to, 1))
}

fn file(path: &str, text: &str) -> Template {
    Template {
        path: path.to_string(),
        text: text.to_string(),
        executable: path.ends_with(".sh"),
    }
}

/// Every project's offline test: a scenario over recorded WHM exchanges
/// (the starter makes the same requests in every language).
const TEST: &[(&str, &str)] = &[
    ("test/scenario.toml", template!("common/test/scenario.toml")),
    (
        "test/test-connection.fixture.json",
        template!("common/test/test-connection.fixture.json"),
    ),
    (
        "test/provision.fixture.json",
        template!("common/test/provision.fixture.json"),
    ),
    (
        "test/provision-retry.fixture.json",
        template!("common/test/provision-retry.fixture.json"),
    ),
    (
        "test/suspend.fixture.json",
        template!("common/test/suspend.fixture.json"),
    ),
    (
        "test/terminate-missing.fixture.json",
        template!("common/test/terminate-missing.fixture.json"),
    ),
    (
        "test/wrong-token.fixture.json",
        template!("common/test/wrong-token.fixture.json"),
    ),
    (
        "test/busy.fixture.json",
        template!("common/test/busy.fixture.json"),
    ),
];

/// Every file of a `lang` project (paths relative to the project).
pub fn project(lang: Lang) -> Vec<Template> {
    let mut files: Vec<Template> = WIT.iter().map(|(p, t)| file(p, t)).collect();
    let own: &[(&str, &str)] = match lang {
        Lang::Rust => &[
            ("Cargo.toml", template!("rust/Cargo.toml")),
            ("src/lib.rs", template!("rust/src/lib.rs")),
            ("build.sh", template!("rust/build.sh")),
            ("README.md", template!("rust/README.md")),
            (".gitignore", template!("rust/gitignore")),
            ("wit/world.wit", template!("rust/world.wit")),
            ("panel1-sdk/Cargo.toml", template!("rust/sdk-Cargo.toml")),
        ],
        Lang::Js => &[
            ("package.json", template!("js/package.json")),
            ("package-lock.json", template!("js/package-lock.json")),
            ("adapter.js", template!("js/adapter.js")),
            ("panel1.js", template!("js/panel1.js")),
            ("dev-shell.js", template!("common/dev-shell.js")),
            ("build.sh", template!("js/build.sh")),
            ("README.md", template!("js/README.md")),
            (".gitignore", template!("js/gitignore")),
            ("wit/world.wit", template!("js/world.wit")),
        ],
        Lang::Ts => &[
            ("package.json", template!("ts/package.json")),
            ("package-lock.json", template!("ts/package-lock.json")),
            ("tsconfig.json", template!("ts/tsconfig.json")),
            ("adapter.ts", template!("ts/adapter.ts")),
            ("panel1.ts", template!("ts/panel1.ts")),
            ("dev-shell.js", template!("common/dev-shell.js")),
            ("env.d.ts", template!("ts/env.d.ts")),
            ("gen-types.mjs", template!("ts/gen-types.mjs")),
            ("build.sh", template!("ts/build.sh")),
            ("README.md", template!("ts/README.md")),
            (".gitignore", template!("ts/gitignore")),
            ("wit/world.wit", template!("ts/world.wit")),
        ],
        Lang::C => &[
            ("adapter.c", template!("c/adapter.c")),
            ("panel1.c", template!("c/panel1.c")),
            ("panel1.h", template!("c/panel1.h")),
            ("json.c", template!("c/json.c")),
            ("libc/stdlib.h", template!("c/libc/stdlib.h")),
            ("libc/string.h", template!("c/libc/string.h")),
            ("libc/libc.c", template!("c/libc/libc.c")),
            ("build.sh", template!("c/build.sh")),
            ("README.md", template!("c/README.md")),
            (".gitignore", template!("c/gitignore")),
            ("wit/world.wit", template!("c/world.wit")),
        ],
        Lang::Python => &[
            ("app.py", template!("python/app.py")),
            ("panel1_http.py", template!("python/panel1_http.py")),
            ("dev_shell.py", template!("python/dev_shell.py")),
            ("requirements.txt", template!("python/requirements.txt")),
            ("build.sh", template!("python/build.sh")),
            ("README.md", template!("python/README.md")),
            (".gitignore", template!("python/gitignore")),
            ("wit/world.wit", template!("python/world.wit")),
        ],
    };
    files.extend(own.iter().map(|(p, t)| file(p, t)));
    files.extend(TEST.iter().map(|(p, t)| file(p, t)));
    if lang == Lang::Rust {
        files.extend(SDK.iter().map(|(name, text)| Template {
            path: format!("panel1-sdk/src/{name}"),
            text: vendored(name, text),
            executable: false,
        }));
    }
    files
}
