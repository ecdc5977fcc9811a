//! Reading the deploy files as their tools would: YAML documents and TOML as trees, Dockerfiles
//! as instructions, each failure naming the file and the key.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

pub fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values (empty documents skipped).
pub fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}, document {}: {e}", i + 1))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn yaml(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: expected one YAML document");
    docs.remove(0)
}

pub fn toml_file(rel: &str) -> toml::Table {
    toml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `value[pointer]` as a string, or a panic naming the file and the key.
pub fn str_at<'a>(value: &'a Value, pointer: &str, what: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: no string at {pointer}"))
}

pub fn toml_str<'a>(table: &'a toml::Table, path: &[&str], file: &str) -> &'a str {
    let mut value = table.get(path[0]);
    for key in &path[1..] {
        value = value.and_then(|v| v.get(*key));
    }
    value
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{file}: no string at `{}`", path.join(".")))
}

pub fn socket(addr: &str, what: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|e| panic!("{what}: `{addr}` is no listen address: {e}"))
}

pub fn workspace_version() -> String {
    let root = toml_file("Cargo.toml");
    toml_str(&root, &["workspace", "package", "version"], "Cargo.toml").to_string()
}

/// A Dockerfile as the build reads it: continuation lines joined, comments dropped.
pub struct Dockerfile {
    instructions: Vec<(String, String)>,
}

impl Dockerfile {
    pub fn read(rel: &str) -> Self {
        let joined = read(rel).replace("\\\n", " ");
        let instructions = joined
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (word, rest) = l.split_once(' ').unwrap_or((l, ""));
                (word.to_ascii_uppercase(), rest.trim().to_string())
            })
            .collect();
        Self { instructions }
    }

    pub fn all<'a>(&'a self, word: &'a str) -> impl Iterator<Item = &'a str> {
        self.instructions
            .iter()
            .filter(move |(w, _)| w == word)
            .map(|(_, r)| r.as_str())
    }

    pub fn exposed(&self) -> BTreeSet<u16> {
        self.all("EXPOSE")
            .flat_map(str::split_whitespace)
            .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
            .collect()
    }

    pub fn env(&self, key: &str) -> Option<String> {
        self.all("ENV")
            .find_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_string))
    }
}

/// Files and folders the Dockerfile copies from the build context (the repository root).
pub fn context_copies(dockerfile: &Dockerfile) -> Vec<String> {
    dockerfile
        .all("COPY")
        .filter(|c| !c.starts_with("--from"))
        .flat_map(|c| {
            let parts: Vec<&str> = c.split_whitespace().collect();
            parts[..parts.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}
