//! Embeds every schema file under `schemas/` into the crate, so the catalog is data: adding a
//! `vN.avsc` needs no code change to be loaded, checked and (for the latest version) written with.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let schemas = Path::new(&root).join("schemas");
    println!("cargo:rerun-if-changed=schemas");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&schemas).expect("contracts/schemas is readable") {
        let dir = dir.expect("contracts/schemas entry is readable").path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).expect("schema folder is readable") {
            let file = file.expect("schema file entry is readable").path();
            if file.extension().is_some_and(|e| e == "avsc") {
                files.push(file);
            }
        }
    }
    files.sort();
    let mut out = String::from("&[\n");
    for file in &files {
        let relative = file.strip_prefix(&schemas).expect("file is under schemas/");
        writeln!(
            out,
            "    SchemaFile {{ path: {:?}, json: include_str!({:?}) }},",
            relative.display().to_string(),
            file.display().to_string()
        )
        .expect("writing to a String cannot fail");
    }
    out.push(']');
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("schema_files.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
