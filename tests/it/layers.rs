//! The layering rules of ARCHITECTURE.md ("Layers"), checked on every `cargo test`: each
//! source file belongs to one layer, and imports (`crate::` paths in code, not comments)
//! only reach its own layer or the ones below. Two more rules: only `runtime` (and the
//! public `ff::gpu`) names a backend's insides (`backend::cpu`, `backend::wgpu`); the graph
//! asks the backends nothing but `backend::caps`.

use std::path::{Path, PathBuf};

use crate::tidy::rust_files;

/// The layers, bottom first: a file may import from its own layer and those before it.
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &["error", "dtype", "shape", "device", "config", "profiler", "with_dtype"]),
    ("tensor", &["tensor"]),
    ("prim", &["prim"]),
    ("backend", &["backend"]),
    ("runtime", &["runtime"]),
    ("graph", &["graph"]),
    ("dispatch", &["dispatch"]),
    // The public surface: ops and everything written over them.
    (
        "api",
        &[
            "ops",
            "autograd",
            "variable",
            "sparse",
            "function",
            "nn",
            "optim",
            "data",
            "io",
            "image",
            "random",
            "gpu",
            "interop",
            "lib",
            "book_doctests",
        ],
    ),
];

fn layer_of_module(m: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&m))
}

/// The top module of a file under `src/` (`src/graph/opt/fuse.rs` -> `graph`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::a::b` path in the code of `text` (comments and unit tests left out), as
/// (line number, "a", "a::b").
fn crate_paths(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let path: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut parts = path.split("::").filter(|s| !s.is_empty());
            let first = parts.next().unwrap_or_default().to_string();
            let second = parts.next().map(|s| format!("{first}::{s}")).unwrap_or_else(|| first.clone());
            out.push((i + 1, first, second));
            rest = after;
        }
    }
    out
}

fn sources() -> (PathBuf, Vec<(PathBuf, String)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let v = files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap_or_default())).collect();
    (src, v)
}

#[test]
fn every_source_file_has_a_layer() {
    let (src, files) = sources();
    let orphans: Vec<_> =
        files.iter().map(|(p, _)| module_of(&src, p)).filter(|m| layer_of_module(m).is_none()).collect();
    assert!(orphans.is_empty(), "modules in no layer (add them to LAYERS and to ARCHITECTURE.md): {orphans:?}");
}

#[test]
fn imports_only_reach_down() {
    let (src, files) = sources();
    let mut bad = Vec::new();
    for (p, text) in &files {
        let me = module_of(&src, p);
        let Some(mine) = layer_of_module(&me) else { continue };
        for (line, first, _) in crate_paths(text) {
            // Crate-root re-exports (`crate::Device`, `crate::DType`) are the base types.
            if first.starts_with(|c: char| c.is_uppercase()) {
                continue;
            }
            match layer_of_module(&first) {
                Some(theirs) if theirs > mine => bad.push(format!(
                    "{}:{line}: {} layer imports `crate::{first}` ({} layer)",
                    p.display(),
                    LAYERS[mine].0,
                    LAYERS[theirs].0
                )),
                _ => {}
            }
        }
    }
    assert!(bad.is_empty(), "imports that reach up a layer (see ARCHITECTURE.md, Layers):\n{}", bad.join("\n"));
}

#[test]
fn backends_insides_are_named_by_runtime_only() {
    let (src, files) = sources();
    let mut bad = Vec::new();
    for (p, text) in &files {
        let me = module_of(&src, p);
        if me == "backend" || me == "runtime" || me == "gpu" {
            continue;
        }
        for (line, _, two) in crate_paths(text) {
            let allowed = me == "graph" && two == "backend::caps";
            if two.starts_with("backend::") && !allowed {
                bad.push(format!("{}:{line}: `crate::{two}`", p.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "only runtime (and ff::gpu) call into a backend; the graph asks `backend::caps` only:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_paths() {
    // The rules above pass vacuously if the path scan finds nothing: check it on a sample.
    let found = crate_paths("use crate::graph::trace::active; // crate::ops in a comment\n");
    assert_eq!(found, vec![(1, "graph".to_string(), "graph::trace".to_string())]);
}
