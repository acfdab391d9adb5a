//! Mechanical rules of the codebase, checked on every `cargo test` (rust-analyzer's "tidy"
//! habit): every source file opens with a `//!` header; library code outside unit tests has
//! no `unwrap`/`expect`/`panic!` unless a trailing `// ok: why` proves it unreachable from
//! user input; no test is marked as expecting a panic (tests assert on `Err` variants).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn files(sub: &str) -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(sub), &mut v);
    v.into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect()
}

#[test]
fn every_source_file_has_a_module_header() {
    let missing: Vec<_> = ["src", "tests", "benches", "examples"]
        .iter()
        .flat_map(|d| files(d))
        .filter(|(_, t)| !t.trim_start().starts_with("//!"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` header: {missing:#?}");
}

#[test]
fn library_code_does_not_panic_on_user_input() {
    let pattern = [".unwrap()", ".expect(", "panic!(", "unreachable!(", "todo!(", "unimplemented!("];
    let mut bad = Vec::new();
    for (p, text) in files("src") {
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break; // unit tests may unwrap
            }
            let code = line.split("//").next().unwrap_or("");
            if pattern.iter().any(|pat| code.contains(pat)) && !line.contains("// ok:") {
                bad.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "possible panics in library code (return an Err, or add `// ok: why`):\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_test_expects_a_panic() {
    let marker = concat!("#[should", "_panic");
    let bad: Vec<_> = ["src", "tests"]
        .iter()
        .flat_map(|d| files(d))
        .filter(|(_, t)| t.contains(marker))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(bad.is_empty(), "tests must assert on Err variants, not panics: {bad:?}");
}
