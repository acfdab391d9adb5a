//! Mechanical rules of the codebase, checked on every `cargo test` (rust-analyzer's "tidy"
//! habit): every source file opens with a `//!` header; library code outside unit tests has
//! no `unwrap`/`expect`/`panic!` unless a trailing `// ok: why` proves it unreachable from
//! user input; no test is marked as expecting a panic (tests assert on `Err` variants).

use std::path::{Path, PathBuf};

use ferroflow as ff;

/// Every `.rs` file under `dir`, recursively (also the layering test's walker).
pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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

// ---- every primitive is tested ------------------------------------------------------------

/// Whether `text` names the op `name` the way the test files name their cases: a string
/// literal that starts with the op's public name, followed by a character that cannot
/// continue it (`"neg"`, `"matmul ta"`, `"sparse::to_dense default"`, and the random
/// programs' listing lines such as `"reshape(v{i}, ..)"`).
fn names_op(text: &str, name: &str) -> bool {
    let quoted = format!("\"{name}");
    text.match_indices(&quoted)
        .any(|(at, _)| text[at + quoted.len()..].chars().next().is_some_and(|c| !(c.is_alphanumeric() || c == '_')))
}

/// Every primitive's public name: each elementwise op, each op of every other kind, each
/// sparse op (the library's own lists, so a new primitive is checked here at once).
fn primitive_names() -> Vec<&'static str> {
    use ff::__internal::{BinaryOp, PrimKind, SparseKind, UnaryOp};
    let mut v: Vec<&'static str> = Vec::new();
    for k in PrimKind::ALL {
        v.extend(k.names());
    }
    // The element and sparse lists are part of the kinds' names; check that they are.
    for n in UnaryOp::ALL.iter().map(|u| u.name()).chain(BinaryOp::ALL.iter().map(|b| b.name())) {
        assert!(v.contains(&n), "PrimKind names miss the elementwise op {n}");
    }
    for n in SparseKind::ALL.iter().map(|s| s.name()) {
        assert!(v.contains(&n), "PrimKind names miss the sparse op {n}");
    }
    v
}

/// Checks that every primitive is named in `texts` or listed in `excluded` (with its
/// reason), and that no exclusion is stale (a name that is not a primitive, or is tested).
fn every_primitive_in(what: &str, texts: &[&str], excluded: &[(&str, &[&str])]) {
    let names = primitive_names();
    let skip: Vec<&str> = excluded.iter().flat_map(|(_, ns)| ns.iter().copied()).collect();
    let missing: Vec<_> = names.iter().filter(|n| !skip.contains(n) && !texts.iter().any(|t| names_op(t, n))).collect();
    assert!(
        missing.is_empty(),
        "{what}: these primitives have no case named after them (a string literal starting with the op's name), add one or exclude it with a reason: {missing:?}"
    );
    for n in &skip {
        assert!(names.contains(n), "{what}: the exclusion {n} is not a primitive");
        assert!(
            !texts.iter().any(|t| names_op(t, n)),
            "{what}: {n} is excluded but has a case now; drop the exclusion"
        );
    }
}

/// The op table covers every primitive (sparse ones in `sparse.rs`, their op table: dense
/// references for every dtype, every mode).
#[test]
fn every_primitive_is_in_the_op_table() {
    every_primitive_in(
        "op table (op_table.rs, sparse.rs)",
        &[include_str!("op_table.rs"), include_str!("sparse.rs")],
        &[("internal, no public function: relu's gradient makes it (gradients.rs checks it)", &["relu_grad"])],
    );
}

/// The finite-difference checks cover every differentiable primitive (`sparse::segment_sum`
/// is named there by the test of its `Error::NoGradient`).
#[test]
fn every_differentiable_primitive_has_a_gradient_check() {
    every_primitive_in(
        "gradient checks (gradients.rs)",
        &[include_str!("gradients.rs")],
        &[
            (
                "bool output: no gradient",
                &[
                    "logical_not",
                    "equal",
                    "not_equal",
                    "less",
                    "less_equal",
                    "greater",
                    "greater_equal",
                    "logical_and",
                    "logical_or",
                ],
            ),
            (
                "integer output: no gradient",
                &["argmax", "argmin", "sparse::validate", "sparse::reorder", "sparse::unique", "sparse::nonzero"],
            ),
            ("integer input only (the indices): no gradient", &["one_hot"]),
        ],
    );
}

/// The optimizer's random programs (optimizer_diff.rs) use every primitive.
#[test]
fn every_primitive_is_in_the_random_programs() {
    every_primitive_in(
        "random programs (optimizer_diff.rs)",
        &[include_str!("optimizer_diff.rs")],
        &[
            ("internal: only relu's gradient makes it, and the programs take no gradients", &["relu_grad"]),
            (
                "sparse values have data-dependent shapes the generator does not model; sparse.rs runs each traced (every pass) against eager",
                &[
                    "sparse::validate",
                    "sparse::to_dense",
                    "sparse::matmul",
                    "sparse::reorder",
                    "sparse::unique",
                    "sparse::segment_sum",
                    "sparse::nonzero",
                ],
            ),
        ],
    );
}
