//! Dependencies run one way (README "Code layout"): every module of `shared/src` imports
//! only from modules of its own layer or below. The composition root (`app`) is the
//! only place that knows which router, clients and settings a function is built from.
use std::path::{Path, PathBuf};

/// Bottom to top. A module may use any module whose layer is not above its own.
const LAYERS: &[&[&str]] = &[
    &["domain"],
    &["auth", "adapters"],
    &["providers"],
    &["lambda"],
    &["ingest"],
    &["pipeline"],
    &["sync"],
    &["ops", "verity"],
    &["app"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names as `crate::<module>`.
fn crate_references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        found.push(name);
        rest = after;
    }
    found
}

#[test]
fn no_module_imports_one_above_it() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let own = layer(&top).unwrap_or_else(|| panic!("{top} has no layer in LAYERS"));
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_references(&text) {
            checked += 1;
            let theirs = layer(&used).unwrap_or_else(|| panic!("{used} has no layer in LAYERS"));
            if theirs > own {
                violations.push(format!(
                    "{} uses crate::{used} (layer {theirs} above {own})",
                    relative.display()
                ));
            }
        }
    }
    assert!(checked > 200, "the scan found only {checked} references");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_references() {
    assert_eq!(
        crate_references("use crate::sync::x; crate::app::y(); crate::domain"),
        ["sync", "app", "domain"]
    );
}
