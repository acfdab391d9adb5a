//! Graph pictures for the book: traces three small functions (a dense layer
//! `relu(x·W + b)`, a softmax cross-entropy loss and a function that branches with
//! `ff::cond`), and one model step (a dense layer, a softmax written out of primitives and a
//! squared-error loss) as traced, after the rewriting passes and after every pass. It writes
//! each graph's Graphviz text (`Graph::to_dot`) to `book/src/img/*.dot` and, when Graphviz's
//! `dot` is on the PATH, renders `book/src/img/*.svg` next to it.
//!
//! `.ci/run` runs every example before `mdbook build book`, so the pictures in the chapters
//! "Reading graphs" and "What the graph buys you" always show the graphs the current code
//! records. The SVGs are committed as well, so the book also builds where Graphviz is
//! missing (this program then says so loudly and still succeeds).
//!
//! Run it with `cargo run --release --example graph_pictures`.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferroflow as ff;
use ff::{DType, OptimizerOptions, PassKind, Tensor, TensorSpec};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/img");
    std::fs::create_dir_all(&dir)?;
    let mut written = Vec::new();

    // ---- 1. A dense layer: relu(x·W + b), any batch size ---------------------------------
    let dense = ff::function_with(
        ff::FunctionOptions {
            name: Some("dense".into()),
            input_signature: Some(vec![
                TensorSpec::new(&[None, Some(3)], DType::F32),
                TensorSpec::new(&[Some(3), Some(2)], DType::F32),
                TensorSpec::new(&[Some(2)], DType::F32),
            ]),
            arg_names: Some(vec!["x".into(), "w".into(), "b".into()]),
            ..Default::default()
        },
        |x: &Tensor, w: &Tensor, b: &Tensor| -> ff::Result<Tensor> { (x.matmul(w)? + b)?.relu() },
    );
    let specs = (
        TensorSpec::new(&[None, Some(3)], DType::F32),
        TensorSpec::new(&[Some(3), Some(2)], DType::F32),
        TensorSpec::new(&[Some(2)], DType::F32),
    );
    let cf = dense.get_concrete_function(specs)?;
    written.push(write_graph(&dir, "dense_layer", cf.graph())?);

    // ---- 2. Softmax cross-entropy: mean over the batch of -sum(labels * log(softmax)) ------
    let loss = ff::function_with(
        ff::FunctionOptions {
            name: Some("softmax_loss".into()),
            arg_names: Some(vec!["logits".into(), "labels".into()]),
            ..Default::default()
        },
        |logits: &Tensor, labels: &Tensor| -> ff::Result<Tensor> {
            let log_p = logits.softmax(-1)?.log()?;
            let per_example = (labels * &log_p)?.reduce_sum(Some(&[-1]), false)?.neg()?;
            per_example.reduce_mean(None, false)
        },
    );
    let batch = TensorSpec::new(&[Some(4), Some(3)], DType::F32);
    let cf = loss.get_concrete_function((batch.clone(), batch))?;
    written.push(write_graph(&dir, "softmax_loss", cf.graph())?);

    // ---- 3. A branch: 2x if the sum is positive, otherwise -x ----------------------------
    let branch = ff::function_with(
        ff::FunctionOptions { name: Some("branch".into()), ..Default::default() },
        |x: &Tensor| -> ff::Result<Tensor> {
            let positive = x.reduce_sum(None, false)?.greater(0.0f32)?;
            ff::cond(&positive, || x * 2.0f32, || x.neg())
        },
    );
    let cf = branch.get_concrete_function(TensorSpec::new(&[Some(3)], DType::F32))?;
    written.push(write_graph(&dir, "cond", cf.graph())?);

    // ---- 4. A model step, before and after the optimizer ---------------------------------
    // The function of the chapter "What the graph buys you" (keep the two in step).
    let step_specs = (
        TensorSpec::new(&[Some(4), Some(5)], DType::F32),
        TensorSpec::new(&[Some(3), Some(5)], DType::F32),
        TensorSpec::new(&[Some(3)], DType::F32),
        TensorSpec::new(&[Some(4), Some(3)], DType::F32),
    );
    let rewrites_only = OptimizerOptions::all().with(PassKind::Fusion, false).with(PassKind::Memory, false);
    for (name, opts) in [
        ("opt_before", OptimizerOptions::none()),
        ("opt_rewritten", rewrites_only),
        ("opt_after", OptimizerOptions::all()),
    ] {
        let f = ff::function_with(
            ff::FunctionOptions {
                name: Some("step".into()),
                arg_names: Some(vec!["x".into(), "w".into(), "b".into(), "labels".into()]),
                optimizer: Some(opts),
                ..Default::default()
            },
            step,
        );
        let cf = f.get_concrete_function(step_specs.clone())?;
        written.push(write_graph(&dir, name, cf.optimized_graph())?);
    }

    // ---- Render -------------------------------------------------------------------------
    match render(&written) {
        Ok(svgs) => {
            for s in svgs {
                println!("rendered {}", s.display());
            }
        }
        Err(why) => {
            let bar = "!".repeat(88);
            eprintln!("{bar}");
            eprintln!("!! graph_pictures: NOT rendering SVG pictures: {why}");
            eprintln!("!! The .dot files were written; the book keeps using the committed SVGs.");
            eprintln!("!! Install Graphviz (scripts/setup.sh does: apt-get install graphviz) to render them.");
            eprintln!("{bar}");
        }
    }
    Ok(())
}

/// One training-style step: a dense layer `relu(x·W^T + b)`, a softmax written out of
/// primitives and the mean squared error against the labels, with the redundancy real code
/// has (a defensive cast, a transpose feeding the matmul, a `* 1.0` temperature, the same
/// subexpression twice, a leftover debugging value and a cast round trip).
fn step(x: &Tensor, w: &Tensor, b: &Tensor, labels: &Tensor) -> ff::Result<Tensor> {
    let x = x.cast(DType::F32)?; // defensive: x already is f32
    let h = (x.matmul(&w.transpose(&[1, 0])?)? + b)?.relu()?; // w is stored [out, in]
    let logits = (&h * 1.0f32)?; // temperature 1
    let m = logits.reduce_max(Some(&[-1]), true)?;
    let p = ((&logits - &m)?.exp()? / (&logits - &m)?.exp()?.reduce_sum(Some(&[-1]), true)?)?;
    let _pred = p.argmax(Some(&[-1]), false)?; // left over from debugging
    let y = labels.cast(DType::F64)?.cast(DType::F32)?; // a round trip through f64
    let d = (&p - &y)?;
    (&d * &d)?.reduce_mean(None, false)
}

/// Verifies `g`, writes its Graphviz text to `dir/name.dot` and returns that path.
fn write_graph(dir: &Path, name: &str, g: &ff::graph::Graph) -> AnyResult<PathBuf> {
    g.verify()?;
    println!("---- {name}: {} nodes {:?}\n{g}\n", g.node_count(), g.op_counts());
    let path = dir.join(format!("{name}.dot"));
    std::fs::write(&path, g.to_dot())?;
    println!("wrote {}", path.display());
    Ok(path)
}

/// Renders each `.dot` file to an `.svg` next to it with `dot -Tsvg`; `Err` says why not
/// (no `dot` on the PATH, or `dot` failed).
fn render(dots: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for dot in dots {
        let svg = dot.with_extension("svg");
        let status = Command::new("dot")
            .arg("-Tsvg")
            // DejaVu comes with scripts/setup.sh; Graphviz substitutes a font if it is missing.
            .args(["-Nfontname=DejaVu Sans Mono", "-Efontname=DejaVu Sans Mono", "-Nfontsize=11", "-Efontsize=9"])
            .arg(dot)
            .arg("-o")
            .arg(&svg)
            .status();
        match status {
            Ok(s) if s.success() => out.push(svg),
            Ok(s) => return Err(format!("`dot -Tsvg {}` failed ({s})", dot.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("Graphviz's `dot` is not on the PATH".into());
            }
            Err(e) => return Err(format!("could not run `dot`: {e}")),
        }
    }
    Ok(out)
}
