//! The `gateway` command line, run as a process.

use std::process::Command;

fn check_config(text: &str) -> (bool, String) {
    let path = std::env::temp_dir().join(format!(
        "fig-gw-cli-{}-{}.toml",
        std::process::id(),
        text.len()
    ));
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run gateway");
    let _ = std::fs::remove_file(&path);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `check-config` prints every problem with its key path and exits non-zero; a good file passes.
#[test]
fn check_config_names_each_problem() {
    let (ok, out) = check_config(
        "legacy = \"http://l:1\"\n[[capability]]\nname = \"a\"\nnew = \"http://n:1\"\nroutes = [{ prefix = \"/x\" }]\n\
         [[capability]]\nname = \"b\"\nnew = \"nope\"\nstate = \"percent\"\nroutes = [{ prefix = \"/x\" }]\n",
    );
    assert!(!ok, "{out}");
    for key in [
        "capability[1].new",
        "capability[1].state",
        "capability[1].routes[0]: ambiguous",
    ] {
        assert!(out.contains(key), "missing `{key}` in:\n{out}");
    }
    let (ok, out) = check_config(
        "legacy = \"http://l:1\"\n[[capability]]\nname = \"a\"\nnew = \"http://n:1\"\nroutes = [{ prefix = \"/x\" }]\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = check_config("legacy = \"http://l:1\"\nlisten_port = 1\n");
    assert!(!ok && out.contains("listen_port"), "{out}");
}
