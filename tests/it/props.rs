//! Property test: random shapes (rank 0-4, dims 0-5), axes (in and out of range, negative),
//! dtypes and indices thrown at every op. Every call must return `Ok` or a typed `Err`, never
//! panic (calls run under `catch_unwind`). For each case the outcome is predicted by an
//! independent rule: an `Ok` must have the predicted shape and dtype (and readable values),
//! an `Err` the predicted variant, with a location in this file.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferroflow as ff;
use ff::{DType, Error, Tensor};
use proptest::prelude::{ProptestConfig, Strategy, any, prop, prop_assert, prop_assert_eq};
use proptest::test_runner::TestCaseError;
use proptest::test_runner::TestRunner;

use crate::common::*;

type R = ff::Result<Tensor>;

#[derive(Clone, Debug)]
struct Case {
    op: usize,
    a: Vec<usize>,
    b: Vec<usize>,
    /// How the second shape is derived from the first: 0 same, 1 some dims 1, 2 a suffix, 3 free.
    bk: u8,
    da: DType,
    db: DType,
    axes: Option<Vec<isize>>,
    axis: isize,
    keep: bool,
    idx: Vec<i64>,
    di: DType,
    depth: usize,
    perm: Vec<usize>,
    dims: Vec<isize>,
    ta: bool,
    tb: bool,
    seed: u64,
}

impl Case {
    fn rank(&self) -> usize {
        self.a.len()
    }
    /// The second shape, usually related to the first so that broadcasting often works.
    fn b_shape(&self) -> Vec<usize> {
        match self.bk {
            0 => self.a.clone(),
            1 => self
                .a
                .iter()
                .enumerate()
                .map(|(i, &d)| if self.b.get(i).is_none_or(|m| m % 2 == 0) { 1 } else { d })
                .collect(),
            2 => self.a[self.a.len() - self.b.len().min(self.a.len())..].to_vec(),
            _ => self.b.clone(),
        }
    }
    /// The second dtype: usually the first (so shapes get tested), sometimes another.
    fn b_dtype(&self) -> DType {
        if self.seed.is_multiple_of(5) { self.db } else { self.da }
    }
    fn x(&self) -> Tensor {
        make(self.da, &self.a, self.seed)
    }
    fn y(&self) -> Tensor {
        make(self.b_dtype(), &self.b_shape(), self.seed ^ 1)
    }
    fn index_tensor(&self) -> Tensor {
        tensor(self.di, &[self.idx.len()], &self.idx.iter().map(|&i| i as f64).collect::<Vec<_>>())
    }
    /// The index values as the index tensor holds them.
    fn index_values(&self) -> Vec<f64> {
        exact(self.di, &[self.idx.len()], &self.idx.iter().map(|&i| i as f64).collect::<Vec<_>>())
            .iter()
            .copied()
            .collect()
    }
}

fn make(dt: DType, shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    tensor(dt, shape, &values_for(&mut rng, dt, n, Domain::Small))
}

const N_OPS: usize = 65;

fn case() -> impl Strategy<Value = Case> {
    let dtype = || prop::sample::select(DType::ALL.to_vec());
    let shape = || prop::collection::vec(0usize..=5, 0..=4);
    (
        (0..N_OPS, shape(), shape(), 0u8..4, dtype(), dtype()),
        (prop::option::weighted(0.8, prop::collection::vec(-6isize..6, 0..=3)), -6isize..6, any::<bool>()),
        (prop::collection::vec(-3i64..8, 0..=6), dtype(), 0usize..6, prop::collection::vec(0usize..5, 0..=5)),
        (prop::collection::vec(-2isize..7, 0..=4), any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(|((op, a, b, bk, da, db), (axes, axis, keep), (idx, di, depth, perm), (dims, ta, tb, seed))| {
            Case { op, a, b, bk, da, db, axes, axis, keep, idx, di, depth, perm, dims, ta, tb, seed }
        })
}

// ---- predictions ----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Shape,
    DType,
    Axis,
    Index,
    Invalid,
}

fn kind(e: &Error) -> Option<Kind> {
    match e {
        Error::ShapeMismatch { .. } => Some(Kind::Shape),
        Error::DTypeMismatch { .. } => Some(Kind::DType),
        Error::AxisOutOfRange { .. } => Some(Kind::Axis),
        Error::IndexOutOfBounds { .. } => Some(Kind::Index),
        Error::InvalidArgument { .. } => Some(Kind::Invalid),
        _ => None,
    }
}

#[derive(Debug)]
enum Want {
    Ok(Vec<usize>, DType),
    Err(Kind),
}
use Want::Err as E;

fn ok(shape: Vec<usize>, dt: DType) -> Want {
    Want::Ok(shape, dt)
}

fn norm_axis(axis: isize, rank: usize) -> Result<usize, Kind> {
    let r = rank as isize;
    if axis < -r || axis >= r { Err(Kind::Axis) } else { Ok(if axis < 0 { axis + r } else { axis } as usize) }
}

fn norm_axes(axes: Option<&[isize]>, rank: usize) -> Result<Vec<usize>, Kind> {
    let Some(axes) = axes else { return Ok((0..rank).collect()) };
    let mut v = axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<Vec<_>, _>>()?;
    v.sort_unstable();
    if v.windows(2).any(|w| w[0] == w[1]) {
        return Err(Kind::Invalid);
    }
    Ok(v)
}

fn reduced(shape: &[usize], axes: &[usize], keep: bool) -> Vec<usize> {
    (0..shape.len())
        .filter_map(|d| {
            if !axes.contains(&d) {
                Some(shape[d])
            } else if keep {
                Some(1)
            } else {
                None
            }
        })
        .collect()
}

fn accepts(class: &str, dt: DType) -> bool {
    match class {
        "float" => dt.is_float(),
        "signed" => dt.is_float() || matches!(dt, I32 | I64),
        "num" => dt != Bool,
        "bool" => dt == Bool,
        _ => true,
    }
}

// ---- the ops --------------------------------------------------------------------------------

const UNARY: [(&str, &str); 14] = [
    ("neg", "signed"),
    ("abs", "num"),
    ("square", "num"),
    ("relu", "num"),
    ("exp", "float"),
    ("log", "float"),
    ("sqrt", "float"),
    ("rsqrt", "float"),
    ("sigmoid", "float"),
    ("tanh", "float"),
    ("gelu", "float"),
    ("sin", "float"),
    ("cos", "float"),
    ("logical_not", "bool"),
];

/// Name, accepted class, and whether the output is bool (`"cmp"`), true division (`"div"`) or
/// the input dtype (`""`).
const BINARY: [(&str, &str, &str); 16] = [
    ("add", "num", ""),
    ("sub", "num", ""),
    ("mul", "num", ""),
    ("div", "num", "div"),
    ("floor_div", "num", ""),
    ("pow", "num", ""),
    ("maximum", "num", ""),
    ("minimum", "num", ""),
    ("equal", "all", "cmp"),
    ("not_equal", "all", "cmp"),
    ("less", "num", "cmp"),
    ("less_equal", "num", "cmp"),
    ("greater", "num", "cmp"),
    ("greater_equal", "num", "cmp"),
    ("logical_and", "bool", "cmp"),
    ("logical_or", "bool", "cmp"),
];

/// An op to call, its name (for messages) and the predicted outcome.
type Call = Box<dyn FnOnce() -> ff::Result<Vec<Tensor>>>;

fn one(f: impl FnOnce() -> R + 'static) -> Call {
    Box::new(move || f().map(|t| vec![t]))
}

/// Builds the call for `c` and predicts its outcome, one `Want` per output.
fn plan(c: &Case) -> (String, Call, Vec<Want>) {
    let (x, y, r, da) = (c.x(), c.y(), c.rank(), c.da);
    let db = c.b_dtype();
    let bs = c.b_shape();
    let same = |w: Want| vec![w];
    match c.op {
        op @ 0..=13 => {
            let (name, class) = UNARY[op];
            let want = if accepts(class, da) { ok(c.a.clone(), da) } else { E(Kind::DType) };
            (name.into(), one(move || unary_op(op, &x)), same(want))
        }
        op @ 14..=29 => {
            let (name, class, out) = BINARY[op - 14];
            let want = if da != db || !accepts(class, da) {
                E(Kind::DType)
            } else {
                match broadcast(&c.a, &bs) {
                    None => E(Kind::Shape),
                    Some(s) => ok(
                        s,
                        match (out, da) {
                            ("cmp", _) => Bool,
                            ("div", U8) => F32,
                            ("div", I32 | I64) => F64,
                            _ => da,
                        },
                    ),
                }
            };
            (name.into(), one(move || binary_op(op - 14, &x, &y)), same(want))
        }
        30 => {
            let want = if da == Bool { E(Kind::DType) } else { ok(c.a.clone(), da) };
            ("add".into(), one(move || &x + 2i32), same(want))
        }
        31 => {
            let want = if da.is_float() { ok(c.a.clone(), da) } else { E(Kind::DType) };
            ("mul".into(), one(move || &x * 0.5f64), same(want))
        }
        32 => {
            let cond_dt = if c.seed.is_multiple_of(6) { da } else { Bool };
            let cond = make(cond_dt, &bs, c.seed ^ 2);
            let ys = c.a[c.a.len() - (c.seed as usize % (r + 1))..].to_vec();
            let other = make(db, &ys, c.seed ^ 3);
            let want = if cond_dt != Bool || da != db {
                E(Kind::DType)
            } else {
                match broadcast(&bs, &c.a).and_then(|s| broadcast(&s, &ys)) {
                    None => E(Kind::Shape),
                    Some(s) => ok(s, da),
                }
            };
            ("where_".into(), one(move || ff::where_(&cond, &x, &other)), same(want))
        }
        33 => {
            let lo = make(db, &[], c.seed ^ 4);
            let hi = make(da, &bs, c.seed ^ 5);
            // clip checks the dtypes under its own name, then runs maximum then minimum: a
            // bool dtype error comes from the first, a shape error (hi does not broadcast)
            // from the second.
            let (name, want) = if da != db {
                ("clip", E(Kind::DType))
            } else if da == Bool {
                ("maximum", E(Kind::DType))
            } else {
                match broadcast(&c.a, &bs) {
                    None => ("minimum", E(Kind::Shape)),
                    Some(s) => ("clip", ok(s, da)),
                }
            };
            (name.into(), one(move || ff::clip(&x, &lo, &hi)), same(want))
        }
        op @ 34..=38 => {
            let names = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"];
            let want = match norm_axes(c.axes.as_deref(), r) {
                Err(k) => E(k),
                Ok(_) if da == Bool => E(Kind::DType),
                Ok(ax) => ok(reduced(&c.a, &ax, c.keep), da),
            };
            let (axes, keep) = (c.axes.clone(), c.keep);
            let f = move || {
                let a = axes.as_deref();
                match op {
                    34 => ff::reduce_sum(&x, a, keep),
                    35 => ff::reduce_mean(&x, a, keep),
                    36 => ff::reduce_max(&x, a, keep),
                    37 => ff::reduce_min(&x, a, keep),
                    _ => ff::reduce_prod(&x, a, keep),
                }
            };
            (names[op - 34].into(), one(f), same(want))
        }
        op @ 39..=40 => {
            // One axis most of the time; the generated list otherwise (often invalid).
            let axes = match &c.axes {
                Some(v) if !c.seed.is_multiple_of(3) => Some(vec![v.first().copied().unwrap_or(c.axis)]),
                other => other.clone(),
            };
            let red = match axes.as_deref() {
                None => Ok((0..r).collect::<Vec<_>>()),
                Some([a]) => norm_axis(*a, r).map(|a| vec![a]),
                Some(_) => Err(Kind::Invalid),
            };
            let want = match red {
                Err(k) => E(k),
                Ok(_) if da == Bool => E(Kind::DType),
                Ok(ax) if ax.iter().map(|&d| c.a[d]).product::<usize>() == 0 => E(Kind::Invalid),
                Ok(ax) => ok(reduced(&c.a, &ax, c.keep), I64),
            };
            let keep = c.keep;
            let name = if op == 39 { "argmax" } else { "argmin" };
            let f = move || {
                if op == 39 { ff::argmax(&x, axes.as_deref(), keep) } else { ff::argmin(&x, axes.as_deref(), keep) }
            };
            (name.into(), one(f), same(want))
        }
        41 => {
            let dims = c.dims.clone();
            let n: usize = c.a.iter().product();
            let want = if dims.iter().filter(|&&d| d == -1).count() > 1 || dims.iter().any(|&d| d < -1) {
                E(Kind::Invalid)
            } else {
                let known: usize = dims.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
                let mut out: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
                match dims.iter().position(|&d| d == -1) {
                    Some(_) if known == 0 || !n.is_multiple_of(known) => E(Kind::Shape),
                    Some(i) => {
                        out[i] = n / known;
                        ok(out, da)
                    }
                    None if known != n => E(Kind::Shape),
                    None => ok(out, da),
                }
            };
            ("reshape".into(), one(move || x.reshape(&dims)), same(want))
        }
        42 => {
            let perm = if c.seed.is_multiple_of(2) { (0..r).rev().collect() } else { c.perm.clone() };
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            let want = if sorted == (0..r).collect::<Vec<_>>() {
                ok(perm.iter().map(|&p| c.a[p]).collect(), da)
            } else {
                E(Kind::Invalid)
            };
            ("transpose".into(), one(move || x.transpose(&perm)), same(want))
        }
        43 => {
            let axis = c.axis;
            let want = match norm_axis(axis, r + 1) {
                Err(k) => E(k),
                Ok(a) => {
                    let mut s = c.a.clone();
                    s.insert(a, 1);
                    ok(s, da)
                }
            };
            ("expand_dims".into(), one(move || ff::expand_dims(&x, axis)), same(want))
        }
        44 => {
            let axes = c.axes.clone();
            let want = match norm_axes(axes.as_deref(), r) {
                Err(k) => E(k),
                Ok(ax) if axes.is_some() && ax.iter().any(|&d| c.a[d] != 1) => E(Kind::Invalid),
                Ok(ax) => ok((0..r).filter(|d| !(ax.contains(d) && c.a[*d] == 1)).map(|d| c.a[d]).collect(), da),
            };
            ("squeeze".into(), one(move || x.squeeze(axes.as_deref())), same(want))
        }
        45 => {
            let target = bs.clone();
            let want = if broadcast(&c.a, &target).as_ref() == Some(&target) {
                ok(target.clone(), da)
            } else {
                E(Kind::Shape)
            };
            ("broadcast_to".into(), one(move || x.broadcast_to(&target)), same(want))
        }
        46 => {
            let axis = c.axis;
            let want = match norm_axis(axis, r) {
                Err(k) => E(k),
                Ok(_) if da != db => E(Kind::DType),
                Ok(a) if bs.len() != r || (0..r).any(|d| d != a && bs[d] != c.a[d]) => E(Kind::Shape),
                Ok(a) => {
                    let mut s = c.a.clone();
                    s[a] += bs[a];
                    ok(s, da)
                }
            };
            ("concat".into(), one(move || ff::concat(&[x, y], axis)), same(want))
        }
        47 => {
            let axis = c.axis;
            let want = match norm_axis(axis, r + 1) {
                Err(k) => E(k),
                Ok(_) if da != db => E(Kind::DType),
                Ok(_) if bs != c.a => E(Kind::Shape),
                Ok(a) => {
                    let mut s = c.a.clone();
                    s.insert(a, 2);
                    ok(s, da)
                }
            };
            ("stack".into(), one(move || ff::stack(&[x, y], axis)), same(want))
        }
        48 | 49 => {
            let axis = c.axis;
            let spec = if c.op == 48 {
                ff::SplitSpec::Parts(c.depth)
            } else {
                ff::SplitSpec::Sizes(c.idx.iter().map(|i| i.unsigned_abs() as usize % 4).collect())
            };
            let wants = match norm_axis(axis, r) {
                Err(k) => vec![E(k)],
                Ok(a) => {
                    let dim = c.a[a];
                    let sizes = match &spec {
                        ff::SplitSpec::Parts(0) => Err(Kind::Invalid),
                        ff::SplitSpec::Parts(n) if !dim.is_multiple_of(*n) => Err(Kind::Invalid),
                        ff::SplitSpec::Parts(n) => Ok(vec![dim / n; *n]),
                        ff::SplitSpec::Sizes(s) if s.iter().sum::<usize>() != dim => Err(Kind::Shape),
                        ff::SplitSpec::Sizes(s) => Ok(s.clone()),
                    };
                    match sizes {
                        Err(k) => vec![E(k)],
                        Ok(sizes) => sizes
                            .iter()
                            .map(|&n| {
                                let mut s = c.a.clone();
                                s[a] = n;
                                ok(s, da)
                            })
                            .collect(),
                    }
                }
            };
            ("split".into(), Box::new(move || ff::split(&x, spec, axis)), wants)
        }
        50 => {
            let begin: Vec<usize> = c.idx.iter().map(|i| i.unsigned_abs() as usize % 7).take(r).collect();
            let size: Vec<isize> = c.dims.iter().copied().take(r).collect();
            let want = if begin.len() != r || size.len() != r || size.iter().any(|&s| s < -1) {
                E(Kind::Invalid)
            } else {
                let eff: Vec<usize> = (0..r)
                    .map(|d| if size[d] < 0 { c.a[d].saturating_sub(begin[d]) } else { size[d] as usize })
                    .collect();
                if (0..r).any(|d| begin[d] + eff[d] > c.a[d]) { E(Kind::Invalid) } else { ok(eff, da) }
            };
            ("slice".into(), one(move || x.slice(&begin, &size)), same(want))
        }
        51 => {
            let axis = c.axis;
            let (it, iv) = (c.index_tensor(), c.index_values());
            let want = match norm_axis(axis, r) {
                Err(k) => E(k),
                Ok(_) if !matches!(c.di, I32 | I64) => E(Kind::DType),
                Ok(a) if iv.iter().any(|&i| i < 0.0 || i >= c.a[a] as f64) => E(Kind::Index),
                Ok(a) => {
                    let mut s = c.a[..a].to_vec();
                    s.push(iv.len());
                    s.extend_from_slice(&c.a[a + 1..]);
                    ok(s, da)
                }
            };
            ("gather".into(), one(move || ff::gather(&x, &it, axis)), same(want))
        }
        52 => {
            let depth = c.depth;
            let (it, iv) = (c.index_tensor(), c.index_values());
            let want = if !matches!(c.di, I32 | I64 | U8) {
                E(Kind::DType)
            } else if iv.iter().any(|&i| i < 0.0 || i >= depth as f64) {
                E(Kind::Index)
            } else {
                ok(vec![iv.len(), depth], F32)
            };
            ("one_hot".into(), one(move || ff::one_hot(&it, depth)), same(want))
        }
        53 => {
            let (ta, tb) = (c.ta, c.tb);
            // Usually a b whose inner dim fits a.
            let ys: Vec<usize> = if c.bk != 3 && r >= 2 {
                let k = if ta { c.a[r - 2] } else { c.a[r - 1] };
                let n = c.b.first().copied().unwrap_or(2);
                let mut s = if c.bk == 2 { vec![] } else { c.a[..r - 2].to_vec() };
                s.extend(if tb { [n, k] } else { [k, n] });
                s
            } else {
                c.b.clone()
            };
            let yt = make(db, &ys, c.seed ^ 6);
            let want = if da != db || da == Bool {
                E(Kind::DType)
            } else if r < 2 || ys.len() < 2 {
                E(Kind::Invalid)
            } else {
                let rb = ys.len();
                let (m, ka) = if ta { (c.a[r - 1], c.a[r - 2]) } else { (c.a[r - 2], c.a[r - 1]) };
                let (kb, n) = if tb { (ys[rb - 1], ys[rb - 2]) } else { (ys[rb - 2], ys[rb - 1]) };
                match broadcast(&c.a[..r - 2], &ys[..rb - 2]) {
                    _ if ka != kb => E(Kind::Shape),
                    None => E(Kind::Shape),
                    Some(mut s) => {
                        s.extend([m, n]);
                        ok(s, da)
                    }
                }
            };
            ("matmul".into(), one(move || ff::matmul_with(&x, &yt, ta, tb)), same(want))
        }
        op @ 54..=55 => {
            let axis = c.axis;
            let want = match norm_axis(axis, r.max(1)) {
                Err(k) => E(k),
                Ok(_) if !da.is_float() => E(Kind::DType),
                Ok(_) => ok(c.a.clone(), da),
            };
            let (name, log) = if op == 54 { ("softmax", false) } else { ("log_softmax", true) };
            (name.into(), one(move || if log { ff::log_softmax(&x, axis) } else { ff::softmax(&x, axis) }), same(want))
        }
        56 => {
            let to = c.db;
            ("cast".into(), one(move || x.cast(to)), same(ok(c.a.clone(), to)))
        }
        57 => {
            let want = if r == 0 || c.a[r - 1] != 3 {
                E(Kind::Invalid)
            } else if da == Bool {
                E(Kind::DType)
            } else {
                let mut s = c.a.clone();
                s[r - 1] = 1;
                ok(s, da)
            };
            ("rgb_to_grayscale".into(), one(move || ff::image::rgb_to_grayscale(&x)), same(want))
        }
        58 => {
            let want = if da == F32 { ok(c.a.clone(), F32) } else { E(Kind::DType) };
            let copy = c.keep;
            let f = move || {
                if copy {
                    x.to_ndarray::<f32>().map(Tensor::from)
                } else {
                    x.as_ndarray::<f32>().map(|v| Tensor::from(v.to_owned()))
                }
            };
            (if copy { "to_ndarray" } else { "as_ndarray" }.into(), one(f), same(want))
        }
        59 => {
            let want = if da != I64 {
                E(Kind::DType)
            } else if r != 0 {
                E(Kind::Shape)
            } else {
                ok(vec![], I64)
            };
            ("to_scalar".into(), one(move || x.to_scalar::<i64>().map(Tensor::scalar)), same(want))
        }
        60 => {
            let (shape, depth) = (c.a.clone(), c.depth);
            match c.seed % 4 {
                0 => ("zeros".into(), one(move || ff::zeros(&shape, da)), same(ok(c.a.clone(), da))),
                1 => ("ones".into(), one(move || ff::ones(&shape, da)), same(ok(c.a.clone(), da))),
                2 => ("full".into(), one(move || ff::full(&shape, 1u8)), same(ok(c.a.clone(), U8))),
                _ => ("eye".into(), one(move || ff::eye(depth, da)), same(ok(vec![depth, depth], da))),
            }
        }
        61 | 62 => {
            let (s, l, d) = (c.axis as f64, c.depth as f64, *c.idx.first().unwrap_or(&0) as f64);
            let (s, l, d) = if c.op == 62 { (s / 2.0, l / 2.0, d / 2.0) } else { (s, l, d) };
            let want = if d == 0.0 || (l - s) * d < 0.0 {
                E(Kind::Invalid)
            } else {
                ok(vec![((l - s) / d).ceil() as usize], if c.op == 61 { I32 } else { F32 })
            };
            let int = c.op == 61;
            let g = move || {
                if int { ff::arange(s as i32, l as i32, d as i32) } else { ff::arange(s as f32, l as f32, d as f32) }
            };
            ("arange".into(), one(g), same(want))
        }
        63 => {
            let (s, e, n) = (c.axis as f64, c.depth as f64, c.idx.len());
            match c.seed % 3 {
                0 => ("linspace".into(), one(move || ff::linspace(s as f32, e as f32, n)), same(ok(vec![n], F32))),
                1 => ("linspace".into(), one(move || ff::linspace(s, e, n)), same(ok(vec![n], F64))),
                _ => ("linspace".into(), one(move || ff::linspace(s as i32, e as i32, n)), same(E(Kind::DType))),
            }
        }
        _ => {
            let (shape, seed, uniform) = (c.a.clone(), c.seed, c.keep);
            let want = if da.is_float() { ok(c.a.clone(), da) } else { E(Kind::DType) };
            let name = if uniform { "random::uniform" } else { "random::normal" };
            let f = move || {
                if uniform {
                    ff::random::uniform(&shape, da, Some(seed))
                } else {
                    ff::random::normal(&shape, da, Some(seed))
                }
            };
            (name.into(), one(f), same(want))
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let (name, call, wants) = plan(c);
    let result = match catch_unwind(AssertUnwindSafe(call)) {
        Ok(r) => r,
        Err(p) => return Err(TestCaseError::fail(format!("{name} panicked: {}\n{c:?}", panic_message(&*p)))),
    };
    match (result, wants.first()) {
        (Ok(outs), _) => {
            let predicted: Vec<_> = wants
                .iter()
                .filter_map(|w| if let Want::Ok(s, d) = w { Some((s.clone(), *d)) } else { None })
                .collect();
            prop_assert_eq!(predicted.len(), wants.len(), "{} returned Ok, predicted {:?}\n{:?}", name, wants, c);
            prop_assert_eq!(outs.len(), predicted.len(), "{}: number of outputs\n{:?}", name, c);
            for (t, (s, d)) in outs.iter().zip(&predicted) {
                prop_assert_eq!(t.shape().dims(), &s[..], "{}: shape\n{:?}", name, c);
                prop_assert_eq!(t.dtype(), *d, "{}: dtype\n{:?}", name, c);
                let n = catch_unwind(AssertUnwindSafe(|| values(t).len()));
                prop_assert_eq!(n.ok(), Some(s.iter().product::<usize>()), "{}: values\n{:?}", name, c);
            }
        }
        (Err(e), Some(Want::Err(k))) => {
            prop_assert_eq!(kind(&e), Some(*k), "{}: {}\n{:?}", name, e, c);
            let msg = e.to_string();
            prop_assert!(msg.starts_with(&format!("{name}:")), "message should name {}: {}\n{:?}", name, msg, c);
            let at = e.location().map(|l| l.file());
            prop_assert!(at.is_some_and(|f| f.ends_with("props.rs")), "{}: location {:?}: {}", name, at, msg);
        }
        (Err(e), _) => {
            return Err(TestCaseError::fail(format!("{name}: unexpected error {e}, predicted {wants:?}\n{c:?}")));
        }
    }
    Ok(())
}

/// 10,000 random calls spread over all 65 op variants (each variant gets ~150).
#[test]
fn every_op_returns_ok_or_a_typed_error() {
    let config = ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let per_op: Vec<AtomicUsize> = (0..N_OPS).map(|_| AtomicUsize::new(0)).collect();
    let result = runner.run(&case(), |c| {
        per_op[c.op].fetch_add(1, Ordering::Relaxed);
        check(&c)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let counts: Vec<usize> = per_op.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    assert!(counts.iter().sum::<usize>() >= 10_000, "{counts:?}");
    assert!(counts.iter().all(|&n| n >= 50), "every op variant should be exercised: {counts:?}");
}
