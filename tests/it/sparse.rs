//! Sparse tensors (`ff::SparseTensor`, `ff::sparse`): construction from slices, arrays and
//! tensors; every op against a dense ndarray reference; each validation error's variant and
//! message; random sparse tensors (proptest) through to_dense / from_dense / reorder round
//! trips; and traced functions taking and returning sparse tensors, equal to eager.

use ferroflow as ff;
use ff::sparse;
use ff::{DType, Error, SparseIndexProblem, SparseOptions, SparseTensor, Tensor, TensorSpec};
use half::f16;
use ndarray::{ArrayD, IxDyn, array};
use proptest::prelude::{ProptestConfig, prop, prop_assert, prop_assert_eq, proptest};

use crate::common::*;

const NO_CHECK: SparseOptions = SparseOptions { validate: false };

/// Random sorted, distinct indices of a tensor of `shape` (each element kept with
/// probability `density`) and a value for each, drawn for `dt` (never zero).
fn random_coo(rng: &mut Rng, shape: &[usize], density: f64, dt: DType) -> (Vec<Vec<i64>>, Vec<f64>) {
    let n: usize = shape.iter().product();
    let mut idx = Vec::new();
    for flat in 0..n {
        if rng.range(0.0, 1.0) < density {
            let mut rem = flat;
            let mut row = vec![0i64; shape.len()];
            for d in (0..shape.len()).rev() {
                row[d] = (rem % shape[d]) as i64;
                rem /= shape[d];
            }
            idx.push(row);
        }
    }
    let vals = values_for(rng, dt, idx.len(), Domain::NonZero);
    (idx, vals)
}

/// The indices as an i64 `[nnz, rank]` tensor.
fn idx_tensor(idx: &[Vec<i64>], rank: usize) -> Tensor {
    let flat: Vec<i64> = idx.iter().flatten().copied().collect();
    Tensor::from_vec(flat, &[idx.len(), rank]).unwrap()
}

/// The dense reference: `default` everywhere, values (rounded to `dt`) added at their indices.
fn dense_ref(shape: &[usize], idx: &[Vec<i64>], vals: &[f64], dt: DType, default: f64) -> ArrayD<f64> {
    let mut a = ArrayD::from_elem(IxDyn(shape), default);
    let mut seen = ArrayD::from_elem(IxDyn(shape), false);
    for (row, &v) in idx.iter().zip(vals) {
        let at: Vec<usize> = row.iter().map(|&c| c as usize).collect();
        let v = round_to(dt, v);
        if seen[at.as_slice()] {
            a[at.as_slice()] += v;
        } else {
            a[at.as_slice()] = v;
            seen[at.as_slice()] = true;
        }
    }
    a
}

fn sp(rng: &mut Rng, shape: &[usize], density: f64, dt: DType) -> (SparseTensor, ArrayD<f64>) {
    let (idx, vals) = random_coo(rng, shape, density, dt);
    let st = SparseTensor::new(idx_tensor(&idx, shape.len()), tensor(dt, &[idx.len()], &vals), shape).unwrap();
    (st, dense_ref(shape, &idx, &vals, dt, 0.0))
}

/// The error of a call that must fail.
#[track_caller]
fn err<T: std::fmt::Debug>(r: ff::Result<T>) -> Error {
    r.expect_err("the call should fail")
}

// ---- construction ------------------------------------------------------------------------------

#[test]
fn construction_accepts_slices_arrays_and_tensors() {
    let want = array![[0.0f32, 1.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -2.0]].into_dyn();
    // Rows of coordinates and a value slice; integer literals are i32, widened to i64.
    let a = SparseTensor::new([[0, 1], [2, 3]], [1.5f32, -2.0], [3, 4]).unwrap();
    // ndarray arrays (owned and borrowed) and a usize shape.
    let b = SparseTensor::new(array![[0i64, 1], [2, 3]], &array![1.5f32, -2.0], [3usize, 4]).unwrap();
    // Tensors, a Vec of rows, a Shape and a dense-shape tensor.
    let c = SparseTensor::new(
        Tensor::from_slice(&[0i64, 1, 2, 3], &[2, 2]).unwrap(),
        Tensor::from_slice(&[1.5f32, -2.0], &[2]).unwrap(),
        Tensor::from_slice(&[3i64, 4], &[2]).unwrap(),
    )
    .unwrap();
    let d = SparseTensor::new(vec![[0u8, 1], [2, 3]], vec![1.5f32, -2.0], ff::Shape::new(&[3, 4])).unwrap();
    // Borrowed rows, values and dims (slices of any length).
    let rows: &[[i64; 2]] = &[[0, 1], [2, 3]];
    #[allow(clippy::needless_borrows_for_generic_args)]
    let e = SparseTensor::new(rows, &[1.5f32, -2.0], &[3i64, 4]).unwrap();
    for s in [&a, &b, &c, &d, &e] {
        assert_eq!(s.indices().dtype(), DType::I64);
        assert_eq!(s.indices().shape().dims(), &[2, 2]);
        assert_eq!(s.values().shape().dims(), &[2]);
        assert_eq!(s.shape().dims(), &[3, 4]);
        assert_eq!((s.rank(), s.nnz(), s.dtype()), (2, 2, DType::F32));
        assert_eq!(s.dense_shape().to_ndarray::<i64>().unwrap().into_raw_vec_and_offset().0, vec![3, 4]);
        assert_eq!(s.to_dense().unwrap().to_ndarray::<f32>().unwrap(), want);
        assert_eq!(s.to_ndarray_dense::<f32>().unwrap(), want);
    }
    let text = a.to_string();
    assert!(text.starts_with("SparseTensor(indices=") && text.contains("dense_shape=[3, 4]"), "{text}");
    // Empty: nnz = 0.
    let e = SparseTensor::new(Vec::<[i64; 2]>::new(), Vec::<f64>::new(), [2, 2]).unwrap();
    assert_eq!(e.nnz(), 0);
    assert_eq!(e.to_dense().unwrap().to_ndarray::<f64>().unwrap(), ArrayD::zeros(IxDyn(&[2, 2])));
}

#[test]
fn to_dense_matches_the_reference_for_every_dtype_and_rank() {
    for &dt in ALL {
        for shape in [vec![7], vec![3, 4], vec![2, 3, 4], vec![2, 0, 3], vec![1, 1, 1, 5]] {
            let ctx = format!("{dt} {shape:?}");
            let mut rng = Rng::for_case(&ctx);
            let (st, want) = sp(&mut rng, &shape, 0.4, dt);
            assert_close(&ctx, &st.to_dense().unwrap(), dt, &want, Tol::of(dt));
        }
    }
    // Rank 0: at most one entry.
    let s =
        SparseTensor::new(Tensor::from_vec(Vec::<i64>::new(), &[1, 0]).unwrap(), [4i32], Vec::<usize>::new()).unwrap();
    assert_eq!(s.to_dense().unwrap().to_scalar::<i32>().unwrap(), 4);
}

#[test]
fn to_dense_takes_a_default_value() {
    let s = SparseTensor::new([[0, 0], [1, 2]], [5i32, 6], [2, 3]).unwrap();
    // A host scalar adopts the values' dtype.
    let d = sparse::to_dense(&s, -1).unwrap();
    assert_eq!(d.dtype(), DType::I32);
    assert_eq!(d.to_ndarray::<i32>().unwrap(), array![[5, -1, -1], [-1, -1, 6]].into_dyn());
    let d = sparse::to_dense(&s, Tensor::scalar(7i32)).unwrap();
    assert_eq!(d.to_ndarray::<i32>().unwrap(), array![[5, 7, 7], [7, 7, 6]].into_dyn());
    // Strict dtypes: a strong f32 default for i32 values is an error.
    let e = err(sparse::to_dense(&s, Tensor::scalar(1.0f32)));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "sparse::to_dense");
    let e = err(sparse::to_dense(&s, Tensor::from_slice(&[1i32, 2], &[2]).unwrap()));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "sparse::to_dense");
    // Bool values: false by default.
    let b = SparseTensor::new([[1]], [true], [3]).unwrap();
    assert_eq!(b.to_dense().unwrap().to_ndarray::<bool>().unwrap(), array![false, true, false].into_dyn());
    assert_eq!(sparse::to_dense(&b, true).unwrap().to_ndarray::<bool>().unwrap(), array![true, true, true].into_dyn());
}

#[test]
fn from_dense_keeps_the_non_zero_elements_in_order() {
    let x = array![[0.0f32, 2.0, 0.0], [-0.0, f32::NAN, 3.0]];
    let s = sparse::from_dense(&x).unwrap();
    assert_eq!(s.shape().dims(), &[2, 3]);
    assert_eq!(s.indices().to_ndarray::<i64>().unwrap(), array![[0i64, 1], [1, 1], [1, 2]].into_dyn());
    let v = s.values().to_ndarray::<f32>().unwrap();
    assert_eq!((v[0], v[2]), (2.0, 3.0));
    assert!(v[1].is_nan(), "NaN is non-zero");
    // Bool: the true elements; rank 0 and rank 3.
    let b = SparseTensor::from_dense(array![[true, false], [false, true]]).unwrap();
    assert_eq!(b.nnz(), 2);
    assert_eq!(sparse::from_dense(Tensor::scalar(3i64)).unwrap().nnz(), 1);
    assert_eq!(sparse::from_dense(Tensor::scalar(0u8)).unwrap().nnz(), 0);
    let mut rng = Rng::new(3);
    let (t, want) = input(&mut rng, DType::I32, &[3, 4, 5], Domain::Small);
    let s = sparse::from_dense(&t).unwrap();
    assert_eq!(s.nnz(), want.iter().filter(|&&v| v != 0.0).count());
    assert_close(&"round trip", &s.to_dense().unwrap(), DType::I32, &want, Tol::of(DType::I32));
    // A large tensor takes the parallel scan: the same entries, in order.
    let big: Vec<f32> = (0..200_000).map(|i| if i % 7 == 0 { i as f32 } else { 0.0 }).collect();
    let s = sparse::from_dense(Tensor::from_vec(big.clone(), &[400, 500]).unwrap()).unwrap();
    assert_eq!(s.nnz(), big.iter().filter(|&&v| v != 0.0).count());
    assert_eq!(s.to_ndarray_dense::<f32>().unwrap().into_raw_vec_and_offset().0, big);
}

// ---- validation --------------------------------------------------------------------------------

#[test]
fn out_of_bounds_indices_name_the_entry_the_bound_and_the_fix() {
    let e = err(SparseTensor::new([[5, 1]], [1.0f32], [3, 4]));
    match &e {
        Error::InvalidSparseIndices { op, problem, entry, index, bound, .. } => {
            assert_eq!((*op, *problem, *entry), ("SparseTensor::new", SparseIndexProblem::OutOfBounds, 0));
            assert_eq!((index.as_str(), bound.as_str()), ("[5, 1]", "[3, 4]"));
        }
        other => panic!("wrong variant: {other}"),
    }
    check_err(&e, "SparseTensor::new");
    let msg = e.to_string();
    assert!(msg.contains("indices[0] = [5, 1] is out of bounds: expected 0 <= index < [3, 4]"), "{msg}");
    assert!(msg.contains("dense shape that holds it"), "{msg}");
    // Negative coordinates too, and the first bad entry is the one reported.
    let e = err(SparseTensor::new([[0, 0], [1, -1], [9, 9]], [1, 2, 3], [3, 4]));
    assert!(matches!(e, Error::InvalidSparseIndices { problem: SparseIndexProblem::OutOfBounds, entry: 1, .. }), "{e}");
    assert!(e.to_string().contains("indices[1] = [1, -1]"), "{e}");
}

#[test]
fn repeated_indices_are_an_error_naming_coalesce() {
    let e = err(SparseTensor::new([[0, 0], [0, 1], [0, 1]], [1.0f32, 2.0, 3.0], [3, 4]));
    assert!(matches!(e, Error::InvalidSparseIndices { problem: SparseIndexProblem::Repeated, entry: 2, .. }), "{e}");
    check_err(&e, "SparseTensor::new");
    let msg = e.to_string();
    assert!(msg.contains("indices[2] = [0, 1] is repeated"), "{msg}");
    assert!(msg.contains("ff::sparse::coalesce") && msg.contains("validate: false"), "{msg}");
}

#[test]
fn out_of_order_indices_are_an_error_naming_reorder() {
    let e = err(SparseTensor::new([[0, 2], [0, 1]], [1.0f32, 2.0], [3, 4]));
    match &e {
        Error::InvalidSparseIndices { problem, entry, index, bound, .. } => {
            assert_eq!((*problem, *entry), (SparseIndexProblem::OutOfOrder, 1));
            assert_eq!((index.as_str(), bound.as_str()), ("[0, 1]", "[0, 2]"));
        }
        other => panic!("wrong variant: {other}"),
    }
    check_err(&e, "SparseTensor::new");
    let msg = e.to_string();
    assert!(msg.contains("indices[1] = [0, 1] is out of order"), "{msg}");
    assert!(msg.contains("ff::sparse::reorder") && msg.contains("validate: false"), "{msg}");
    // The fix works: skip validation, reorder, and the result validates.
    let s = SparseTensor::new_with([[0, 2], [0, 1]], [1.0f32, 2.0], [3, 4], NO_CHECK).unwrap();
    let r = sparse::reorder(&s).unwrap();
    SparseTensor::new(r.indices(), r.values(), r.shape()).unwrap();
    assert_eq!(r.values().to_ndarray::<f32>().unwrap(), array![2.0f32, 1.0].into_dyn());
}

#[test]
fn large_inputs_report_the_first_bad_entry() {
    // Above the parallel threshold, the first error in entry order still wins.
    let n = 100_000i64;
    let mut idx: Vec<[i64; 1]> = (0..n).map(|i| [i]).collect();
    idx[70_000] = [69_990]; // out of order
    idx[90_000] = [n + 5]; // out of bounds, later
    let e = err(SparseTensor::new(&idx, vec![1.0f32; n as usize], [n as usize]));
    assert!(
        matches!(e, Error::InvalidSparseIndices { problem: SparseIndexProblem::OutOfOrder, entry: 70_000, .. }),
        "{e}"
    );
    // Below the threshold but over one scan chunk: the whole range is still checked.
    let mut idx: Vec<[i64; 1]> = (0..20_000).map(|i| [i]).collect();
    idx[19_999] = [19_998];
    let e = err(SparseTensor::new(&idx, vec![1u8; 20_000], [20_000]));
    assert!(
        matches!(e, Error::InvalidSparseIndices { problem: SparseIndexProblem::Repeated, entry: 19_999, .. }),
        "{e}"
    );
}

#[test]
fn validate_false_skips_order_and_repeat_checks_but_not_bounds() {
    let s = SparseTensor::new_with([[1, 0], [0, 1], [1, 0]], [1i32, 2, 3], [2, 2], NO_CHECK).unwrap();
    // Repeated entries add up, as tf.scatter_nd.
    assert_eq!(s.to_dense().unwrap().to_ndarray::<i32>().unwrap(), array![[0, 2], [4, 0]].into_dyn());
    let bad = SparseTensor::new_with([[0, 0], [2, 0]], [1i32, 2], [2, 2], NO_CHECK).unwrap();
    let e = err(bad.to_dense());
    assert!(matches!(e, Error::InvalidSparseIndices { problem: SparseIndexProblem::OutOfBounds, entry: 1, .. }), "{e}");
    check_err(&e, "sparse::to_dense");
    let e = err(sparse::matmul(&bad, Tensor::from_slice(&[1i32, 2], &[2, 1]).unwrap()));
    assert!(matches!(e, Error::InvalidSparseIndices { entry: 1, .. }), "{e}");
    check_err(&e, "sparse::matmul");
    assert!(matches!(err(bad.reduce_sum(Some(&[1]), false)), Error::InvalidSparseIndices { .. }));
}

#[test]
fn float_indices_and_mismatched_parts_are_clear_errors() {
    let e = err(SparseTensor::new([[0.0f32, 1.0]], [1.0f32], [3, 4]));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "SparseTensor::new");
    assert!(e.to_string().contains("integer indices") && e.to_string().contains("f32"), "{e}");
    // Lengths: 2 index rows, 3 values.
    let e = err(SparseTensor::new([[0, 1], [1, 1]], [1.0f32, 2.0, 3.0], [3, 4]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "SparseTensor::new");
    assert!(e.to_string().contains("one value per index row"), "{e}");
    // Index width is not the rank.
    let e = err(SparseTensor::new([[0, 1, 2]], [1.0f32], [3, 4]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("3 columns") || e.to_string().contains("2 columns"), "{e}");
    // Indices of rank 1, values of rank 2.
    let e = err(SparseTensor::new([0i64, 1], [1.0f32, 2.0], [3]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let e = err(SparseTensor::new([[0]], array![[1.0f32]], [3]));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // A negative dense dim.
    let e = err(SparseTensor::new([[0]], [1.0f32], [-3i64]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "SparseTensor::new");
}

// ---- ops against dense references -------------------------------------------------------------

#[test]
fn reorder_sorts_stably_and_coalesce_merges() {
    let s =
        SparseTensor::new_with([[2, 1], [0, 3], [2, 1], [0, 0]], [1.0f64, 2.0, 3.0, 4.0], [3, 4], NO_CHECK).unwrap();
    let r = s.reorder().unwrap();
    assert_eq!(r.indices().to_ndarray::<i64>().unwrap(), array![[0i64, 0], [0, 3], [2, 1], [2, 1]].into_dyn());
    assert_eq!(r.values().to_ndarray::<f64>().unwrap(), array![4.0, 2.0, 1.0, 3.0].into_dyn());
    let c = sparse::coalesce(&s).unwrap();
    assert_eq!(c.indices().to_ndarray::<i64>().unwrap(), array![[0i64, 0], [0, 3], [2, 1]].into_dyn());
    assert_eq!(c.values().to_ndarray::<f64>().unwrap(), array![4.0, 2.0, 4.0].into_dyn());
    assert_eq!(c.to_dense().unwrap().to_ndarray::<f64>().unwrap(), s.to_dense().unwrap().to_ndarray::<f64>().unwrap());
    // Large shuffles take the parallel sort and still come out stable.
    let mut rng = Rng::new(11);
    let n = 50_000;
    let rows: Vec<[i64; 2]> = (0..n).map(|_| [rng.int(0, 99), rng.int(0, 9)]).collect();
    let vals: Vec<i64> = (0..n as i64).collect();
    let s = SparseTensor::new_with(&rows, vals, [100, 10], NO_CHECK).unwrap();
    let r = s.reorder().unwrap();
    let (ri, rv) = (r.indices().to_ndarray::<i64>().unwrap(), r.values().to_ndarray::<i64>().unwrap());
    let mut want: Vec<(i64, i64, i64)> = rows.iter().zip(0..).map(|(r, i)| (r[0], r[1], i)).collect();
    want.sort();
    for (k, &(a, b, i)) in want.iter().enumerate() {
        assert_eq!((ri[[k, 0]], ri[[k, 1]], rv[k]), (a, b, i));
    }
    let coalesced = s.coalesce().unwrap().to_ndarray_dense::<i64>().unwrap();
    assert_eq!(coalesced, s.to_ndarray_dense::<i64>().unwrap());
}

#[test]
fn add_sparse_and_dense_and_sparse_and_sparse() {
    for &dt in NUM {
        let ctx = format!("add {dt}");
        let mut rng = Rng::for_case(&ctx);
        let (a, da) = sp(&mut rng, &[4, 5], 0.4, dt);
        let (b, db) = sp(&mut rng, &[4, 5], 0.4, dt);
        let (d, dd) = input(&mut rng, dt, &[4, 5], Domain::Small);
        let want = |x: &ArrayD<f64>, y: &ArrayD<f64>| (x + y).mapv(|v| wrap_f(dt, v));
        let dense_sum = sparse::add(&a, &d).unwrap();
        assert_close(&ctx, &dense_sum, dt, &want(&da, &dd), Tol::of(dt).acc(dt, 2.0));
        let sparse_sum: SparseTensor = sparse::add(&a, &b).unwrap();
        assert_close(&ctx, &sparse_sum.to_dense().unwrap(), dt, &want(&da, &db), Tol::of(dt).acc(dt, 2.0));
        // The sum is canonical: it validates.
        SparseTensor::new(sparse_sum.indices(), sparse_sum.values(), [4, 5]).unwrap();
        assert_close(&ctx, &a.add(&b).unwrap().to_dense().unwrap(), dt, &want(&da, &db), Tol::of(dt).acc(dt, 2.0));
    }
    let a = SparseTensor::new([[0, 0]], [1.0f32], [2, 2]).unwrap();
    let e = err(sparse::add(&a, ff::zeros(&[2, 3], DType::F32).unwrap()));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "sparse::add");
    let e = err(sparse::add(&a, &SparseTensor::new([[0]], [1.0f32], [2]).unwrap()));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let e = err(sparse::add(&a, &SparseTensor::new([[0, 0]], [1i32], [2, 2]).unwrap()));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "sparse::add");
}

/// `v` as a value of `dt` after integer wrapping (sums of u8 wrap).
fn wrap_f(dt: DType, v: f64) -> f64 {
    if dt.is_int() { wrap(dt, v as i64) as f64 } else { v }
}

/// The product of two f64 matrices, then wrapped to `dt`.
fn matmul_ref(a: &ArrayD<f64>, b: &ArrayD<f64>, dt: DType) -> ArrayD<f64> {
    let a2 = a.view().into_dimensionality::<ndarray::Ix2>().unwrap();
    let b2 = b.view().into_dimensionality::<ndarray::Ix2>().unwrap();
    let mut p = a2.dot(&b2).into_dyn();
    if dt.is_int() {
        // Integer products wrap per step; small values never overflow except u8's sum.
        p.mapv_inplace(|v| wrap(dt, v as i64) as f64);
    }
    p
}

#[test]
fn matmul_matches_the_dense_product() {
    for &dt in NUM {
        for (m, k, n, density) in [(5, 7, 3, 0.3), (1, 1, 1, 1.0), (6, 4, 0, 0.5), (0, 4, 3, 0.5), (40, 30, 64, 0.05)] {
            let ctx = format!("matmul {dt} [{m}, {k}] x [{k}, {n}]");
            let mut rng = Rng::for_case(&ctx);
            let (a, da) = sp(&mut rng, &[m, k], density, dt);
            let (b, db) = input(&mut rng, dt, &[k, n], Domain::Small);
            let got = sparse::matmul(&a, &b).unwrap();
            assert_close(&ctx, &got, dt, &matmul_ref(&da, &db, dt), Tol::of(dt).acc(dt, k as f64).at_least(0.0, 0.0));
            // The same as the dense matmul of the densified matrix.
            if dt.is_float() && dt != DType::F16 && dt != DType::BF16 {
                let dense = a.to_dense().unwrap().matmul(&b).unwrap();
                assert_close(&ctx, &got, dt, &values(&dense), Tol::of(dt).acc(dt, k as f64));
            }
        }
    }
}

#[test]
fn matmul_runs_rows_in_parallel_and_accepts_any_order() {
    // Big enough for the parallel path; integer-valued floats make every order exact.
    let (m, k, n) = (300, 200, 64);
    let mut rng = Rng::new(5);
    let (a, da) = sp(&mut rng, &[m, k], 0.05, DType::F32);
    let (b, db) = input(&mut rng, DType::F32, &[k, n], Domain::Small);
    let want = matmul_ref(&da, &db, DType::F32);
    let tol = Tol::of(DType::F32).acc(DType::F32, k as f64);
    assert_close(&"sorted", &a.matmul(&b).unwrap(), DType::F32, &want, tol);
    // Reversed entries (unsorted, unvalidated) take the counting-sort path.
    let rev_i = a.indices().to_ndarray::<i64>().unwrap().slice(ndarray::s![..;-1, ..]).to_owned();
    let rev_v = a.values().to_ndarray::<f32>().unwrap().slice(ndarray::s![..;-1]).to_owned();
    let r = SparseTensor::new_with(rev_i, rev_v, [m, k], NO_CHECK).unwrap();
    assert_close(&"reversed", &sparse::matmul(&r, &b).unwrap(), DType::F32, &want, tol);
    // Many rows, few entries: the one-pass row scan.
    let (a, da) = sp(&mut rng, &[3000, 20], 0.01, DType::F64);
    let (b, db) = input(&mut rng, DType::F64, &[20, 64], Domain::Small);
    let tol = Tol::of(DType::F64).acc(DType::F64, 20.0);
    assert_close(&"tall", &a.matmul(&b).unwrap(), DType::F64, &matmul_ref(&da, &db, DType::F64), tol);
}

#[test]
fn matmul_with_a_large_dense_operand_and_columns_out_of_order() {
    // b of 6000 x 64 f32 (1.5 MB), rows in parallel.
    let (m, k, n) = (400, 6000, 64);
    let mut rng = Rng::new(8);
    let (a, da) = sp(&mut rng, &[m, k], 0.01, DType::F32);
    let (b, db) = input(&mut rng, DType::F32, &[k, n], Domain::Small);
    let want = matmul_ref(&da, &db, DType::F32);
    let tol = Tol::of(DType::F32).acc(DType::F32, 100.0);
    let got = a.matmul(&b).unwrap();
    assert_close(&"blocked", &got, DType::F32, &want, tol);
    let one_pass = a.to_dense().unwrap().matmul(&b).unwrap();
    assert_close(&"dense", &got, DType::F32, &values(&one_pass), tol);
    // Columns out of order within rows (rows still sorted): the same sums.
    let idx = a.indices().to_ndarray::<i64>().unwrap();
    let vals = a.values().to_ndarray::<f32>().unwrap();
    let mut order: Vec<usize> = (0..a.nnz()).collect();
    order.sort_by_key(|&e| (idx[[e, 0]], -idx[[e, 1]]));
    let rows: Vec<[i64; 2]> = order.iter().map(|&e| [idx[[e, 0]], idx[[e, 1]]]).collect();
    let v: Vec<f32> = order.iter().map(|&e| vals[e]).collect();
    let shuffled = SparseTensor::new_with(&rows, v.clone(), [m, k], NO_CHECK).unwrap();
    assert_close(&"columns reversed", &shuffled.matmul(&b).unwrap(), DType::F32, &want, tol);
    // A column past k in an unvalidated tensor is still an error naming the entry.
    let mut bad = rows.clone();
    bad[10][1] = k as i64;
    let e = err(SparseTensor::new_with(&bad, v, [m, k], NO_CHECK).unwrap().matmul(&b));
    assert!(
        matches!(e, Error::InvalidSparseIndices { problem: SparseIndexProblem::OutOfBounds, entry: 10, .. }),
        "{e}"
    );
}

#[test]
fn matmul_errors() {
    let a = SparseTensor::new([[0, 1]], [1.0f32], [2, 3]).unwrap();
    let e = err(sparse::matmul(&a, ff::zeros(&[4, 2], DType::F32).unwrap()));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "sparse::matmul");
    let e = err(a.matmul(ff::zeros(&[3], DType::F32).unwrap()));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let e =
        err(sparse::matmul(&SparseTensor::new([[0]], [1.0f32], [2]).unwrap(), ff::zeros(&[2, 2], DType::F32).unwrap()));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "sparse::matmul");
    let e = err(sparse::matmul(&a, ff::zeros(&[3, 2], DType::F64).unwrap()));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let b = SparseTensor::new([[0, 1]], [true], [2, 3]).unwrap();
    let e = err(sparse::matmul(&b, ff::zeros(&[3, 2], DType::Bool).unwrap()));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    // Weak host scalars are not matrices; a dense f16 operand matches f16 values.
    let h = SparseTensor::new([[1, 2]], [f16::from_f32(2.0)], [2, 3]).unwrap();
    let p = h.matmul(ff::ones(&[3, 2], DType::F16).unwrap()).unwrap();
    assert_eq!(p.to_ndarray::<f16>().unwrap()[[1, 1]], f16::from_f32(2.0));
}

#[test]
fn reduce_sum_over_all_and_some_axes() {
    for &dt in NUM {
        let ctx = format!("reduce_sum {dt}");
        let mut rng = Rng::for_case(&ctx);
        let (s, d) = sp(&mut rng, &[3, 4, 5], 0.3, dt);
        let tol = Tol::of(dt).acc(dt, 60.0);
        let wrapped = |a: ArrayD<f64>| a.mapv(|v| wrap_f(dt, v));
        let all = s.reduce_sum(None, false).unwrap();
        assert_close(&ctx, &all, dt, &wrapped(ArrayD::from_elem(IxDyn(&[]), d.sum())), tol);
        let keep = sparse::reduce_sum(&s, None, true).unwrap();
        assert_eq!(keep.shape().dims(), &[1, 1, 1]);
        for axis in 0..3 {
            let got = s.reduce_sum(Some(&[axis as isize]), false).unwrap();
            assert_close(&ctx, &got, dt, &wrapped(d.sum_axis(ndarray::Axis(axis))), tol);
        }
        let got = sparse::reduce_sum(&s, Some(&[-1, 0]), true).unwrap();
        let want = d.sum_axis(ndarray::Axis(2)).sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0));
        assert_close(&ctx, &got, dt, &wrapped(want.insert_axis(ndarray::Axis(2))), tol);
    }
    let s = SparseTensor::new([[0, 1]], [true], [2, 3]).unwrap();
    let e = err(s.reduce_sum(None, false));
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    check_err(&e, "sparse::reduce_sum");
    let f = SparseTensor::new([[0, 1]], [1.0f32], [2, 3]).unwrap();
    let e = err(f.reduce_sum(Some(&[2]), false));
    assert!(matches!(e, Error::AxisOutOfRange { .. }), "{e}");
    check_err(&e, "sparse::reduce_sum");
}

#[test]
fn map_values_and_transpose() {
    let mut rng = Rng::new(9);
    let (s, d) = sp(&mut rng, &[3, 4, 2], 0.5, DType::F32);
    let m = s.map_values(|v| v * 2.0f32).unwrap();
    assert_close(&"map", &m.to_dense().unwrap(), DType::F32, &(&d * 2.0), Tol::of(DType::F32));
    let c = sparse::map_values(&s, |v| v.cast(DType::F64)).unwrap();
    assert_eq!(c.dtype(), DType::F64);
    let e = err(s.map_values(|v| v.reduce_sum(None, false)));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    check_err(&e, "sparse::map_values");
    for perm in [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]] {
        let t = s.transpose(&perm).unwrap();
        let want = d.clone().permuted_axes(IxDyn(&perm)).as_standard_layout().to_owned();
        assert_eq!(t.shape().dims(), want.shape());
        assert_close(&"transpose", &t.to_dense().unwrap(), DType::F32, &want, Tol::of(DType::F32));
        // Canonical order after the transpose.
        SparseTensor::new(t.indices(), t.values(), t.shape()).unwrap();
    }
    let e = err(sparse::transpose(&s, &[0, 0, 1]));
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    check_err(&e, "sparse::transpose");
}

// ---- proptest round trips ---------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// dense -> sparse -> dense is the identity; sparse -> dense -> sparse keeps the entries;
    /// a shuffle then reorder gives the canonical tensor back; matmul and reduce_sum agree
    /// with their dense forms.
    #[test]
    fn random_sparse_tensors_round_trip(
        dims in prop::collection::vec(0usize..6, 1..4),
        density in 0.0f64..1.0,
        seed in 0u64..1_000_000,
        dt_i in 0usize..7,
    ) {
        let dt = NUM[dt_i];
        let mut rng = Rng::new(seed);
        let (idx, vals) = random_coo(&mut rng, &dims, density, dt);
        let st = SparseTensor::new(idx_tensor(&idx, dims.len()), tensor(dt, &[idx.len()], &vals), dims.as_slice()).unwrap();
        let dense = st.to_dense().unwrap();
        prop_assert_eq!(values(&dense), dense_ref(&dims, &idx, &vals, dt, 0.0));
        let back = sparse::from_dense(&dense).unwrap();
        prop_assert_eq!(back.indices().to_ndarray::<i64>().unwrap(), st.indices().to_ndarray::<i64>().unwrap());
        prop_assert_eq!(values(back.values()), values(st.values()));
        prop_assert_eq!(values(&back.to_dense().unwrap()), values(&dense));
        // Shuffle, skip validation, reorder.
        let mut order: Vec<usize> = (0..idx.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.int(0, i as i64) as usize);
        }
        let sh_idx: Vec<Vec<i64>> = order.iter().map(|&i| idx[i].clone()).collect();
        let sh_val: Vec<f64> = order.iter().map(|&i| vals[i]).collect();
        let shuffled = SparseTensor::new_with(idx_tensor(&sh_idx, dims.len()), tensor(dt, &[idx.len()], &sh_val), dims.as_slice(), NO_CHECK).unwrap();
        let r = shuffled.reorder().unwrap();
        prop_assert_eq!(r.indices().to_ndarray::<i64>().unwrap(), st.indices().to_ndarray::<i64>().unwrap());
        prop_assert_eq!(values(r.values()), values(st.values()));
        // reduce_sum over the last axis against the dense reduction.
        let last = dims.len() as isize - 1;
        let got = values(&st.reduce_sum(Some(&[last]), false).unwrap());
        let want = values(&dense.reduce_sum(Some(&[last]), false).unwrap());
        prop_assert!(got.iter().zip(want.iter()).all(|(a, b)| close(*a, *b, Tol::of(dt).acc(dt, 6.0))), "{got} vs {want}");
        // A 2-D view through matmul: [prod(dims[..-1]), last] x [last, 3].
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let k = dims[dims.len() - 1];
        let flat = SparseTensor::new(
            idx_tensor(&idx.iter().map(|r| {
                let row = r[..r.len() - 1].iter().zip(&dims).fold(0i64, |acc, (&c, &d)| acc * d as i64 + c);
                vec![row, r[r.len() - 1]]
            }).collect::<Vec<_>>(), 2),
            st.values(),
            [rows, k],
        ).unwrap();
        let (b, _) = input(&mut rng, dt, &[k, 3], Domain::Small);
        let got = values(&flat.matmul(&b).unwrap());
        let want = values(&dense.reshape(&[rows as isize, k as isize]).unwrap().matmul(&b).unwrap());
        prop_assert!(got.iter().zip(want.iter()).all(|(a, b)| close(*a, *b, Tol::of(dt).acc(dt, 6.0).at_least(1e-2, 1e-2))), "{got} vs {want}");
    }
}

// ---- traced functions ------------------------------------------------------------------------

/// The dense form of a sparse output, for comparisons.
fn dense_of(s: &SparseTensor) -> ArrayD<f64> {
    values(&s.to_dense().unwrap())
}

#[test]
fn sparse_tensors_are_traced_arguments_and_outputs() {
    let mut rng = Rng::new(21);
    let (a, _) = sp(&mut rng, &[6, 5], 0.4, DType::F32);
    let (b, _) = sp(&mut rng, &[6, 5], 0.4, DType::F32);
    let (w, _) = input(&mut rng, DType::F32, &[5, 3], Domain::Small);
    let (d, _) = input(&mut rng, DType::F32, &[6, 5], Domain::Small);
    let body = |s: &SparseTensor, t: &SparseTensor, w: &Tensor, d: &Tensor| -> ff::Result<(SparseTensor, Tensor)> {
        let sum = sparse::add(s, t)?;
        let m = sparse::matmul(&sum, w)?;
        let r = (sum.reduce_sum(Some(&[1]), true)? + sparse::add(s, d)?.reduce_sum(Some(&[1]), true)?)?;
        let tr = sum.transpose(&[1, 0])?.map_values(|v| v * 3.0f32)?;
        let out = (m.reduce_sum(Some(&[1]), true)? + r)?;
        Ok((tr, (out + sparse::to_dense(&s.reorder()?, 1.0f32)?.reduce_sum(Some(&[1]), true)?)?))
    };
    let f = ff::function(body);
    let (ts, tt) = f.call((&a, &b, &w, &d)).unwrap();
    let (es, et) = body(&a, &b, &w, &d).unwrap();
    assert_eq!(dense_of(&ts), dense_of(&es));
    assert_eq!(ts.shape(), es.shape());
    assert_eq!(ts.indices().to_ndarray::<i64>().unwrap(), es.indices().to_ndarray::<i64>().unwrap());
    assert_eq!(values(&tt), values(&et));
    assert_eq!(f.tracing_count(), 1);
    // The same nnz and dense shape reuse the trace; new values are used.
    let a2 = a.map_values(|v| v + 1.0f32).unwrap();
    let (ts2, _) = f.call((&a2, &b, &w, &d)).unwrap();
    assert_eq!(f.tracing_count(), 1);
    assert_eq!(dense_of(&ts2), dense_of(&body(&a2, &b, &w, &d).unwrap().0));
    // A new nnz retraces (nnz is part of the indices' shape), as does a new dense shape.
    let fewer = SparseTensor::new([[0, 0]], [2.0f32], [6, 5]).unwrap();
    f.call((&fewer, &b, &w, &d)).unwrap();
    assert_eq!(f.tracing_count(), 2);
    let g = ff::function(|s: &SparseTensor| s.to_dense());
    g.call(&a).unwrap();
    g.call(&SparseTensor::new([[0, 0]], [2.0f32], [6, 7]).unwrap()).unwrap();
    g.call(&SparseTensor::new([[0, 0]], [3.0f32], [6, 7]).unwrap()).unwrap();
    assert_eq!(g.tracing_count(), 2);
}

#[test]
fn sparse_graphs_read_well_and_reduce_retracing_opens_nnz() {
    let f = ff::function(|s: &SparseTensor, w: &Tensor| sparse::matmul(s, w));
    let a = SparseTensor::new([[0, 1], [1, 0]], [1.0f32, 2.0], [2, 2]).unwrap();
    let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let cf = f.get_concrete_function((&a, &w)).unwrap();
    let text = cf.graph().to_string();
    assert!(text.contains("x_indices:0: i64[2, 2]") && text.contains("x_values:0: f32[2]"), "{text}");
    assert!(text.contains("sparse::matmul[shape=[2, 2]] x_indices:0 x_values:0 y:0"), "{text}");
    // With reduce_retracing the second nnz opens the dim: one more trace serves them all.
    let opts = ff::FunctionOptions { reduce_retracing: true, ..Default::default() };
    let g = ff::function_with(opts, |s: &SparseTensor| s.reduce_sum(Some(&[0]), false));
    for n in 1..5i64 {
        let rows: Vec<[i64; 1]> = (0..n).map(|i| [i]).collect();
        let s = SparseTensor::new(&rows, vec![1.0f32; n as usize], [8]).unwrap();
        assert_eq!(g.call(&s).unwrap().to_scalar::<f32>().unwrap(), n as f32);
    }
    assert_eq!(g.tracing_count(), 2);
    // So does an input signature with an open nnz (the parts count as tensor arguments).
    let sig = vec![TensorSpec::new(&[None, Some(1)], DType::I64), TensorSpec::new(&[None], DType::F32)];
    let opts = ff::FunctionOptions { input_signature: Some(sig), ..Default::default() };
    let h = ff::function_with(opts, |s: &SparseTensor| -> ff::Result<(SparseTensor, Tensor)> {
        Ok((s.coalesce()?, s.to_dense()?))
    });
    for n in 1..4i64 {
        let rows: Vec<[i64; 1]> = (0..n).map(|i| [i % 2]).collect();
        let s = SparseTensor::new_with(&rows, vec![1.0f32; n as usize], [3], NO_CHECK).unwrap();
        let (c, d) = h.call(&s).unwrap();
        assert_eq!(c.nnz(), (n as usize).min(2));
        assert_eq!(values(&d), dense_of(&c));
    }
    assert_eq!(h.tracing_count(), 1);
}

#[test]
fn validation_inside_a_trace_fails_when_the_graph_runs() {
    let f = ff::function(|i: &Tensor, v: &Tensor| SparseTensor::new(i, v, [3, 4])?.to_dense());
    let good = Tensor::from_slice(&[0i64, 1, 2, 3], &[2, 2]).unwrap();
    let bad = Tensor::from_slice(&[0i64, 2, 0, 1], &[2, 2]).unwrap();
    let v = Tensor::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    assert_eq!(f.call((&good, &v)).unwrap().to_ndarray::<f32>().unwrap()[[2, 3]], 2.0);
    let e = f.call((&bad, &v)).unwrap_err();
    assert!(matches!(e, Error::InvalidSparseIndices { problem: SparseIndexProblem::OutOfOrder, entry: 1, .. }), "{e}");
    assert_eq!(f.tracing_count(), 1, "the same trace: the check is a graph node");
    let loc = e.location().expect("a location");
    assert!(loc.node().is_some() && loc.file().ends_with("sparse.rs"), "{e}");
    assert!(e.to_string().contains("graph node %") && e.to_string().contains("sparse::reorder"), "{e}");
    // The check is visible in the graph.
    let text = f.get_concrete_function((&good, &v)).unwrap().graph().to_string();
    assert!(text.contains("sparse::validate[shape=[3, 4]] x:0"), "{text}");
    // A dense shape cannot be symbolic: it is part of the signature.
    let g = ff::function(|i: &Tensor, v: &Tensor, s: &Tensor| SparseTensor::new(i, v, s)?.to_dense());
    let e = g.call((&good, &v, &Tensor::from_slice(&[3i64, 4], &[2]).unwrap())).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("&[3, 4]"), "{e}");
}

/// Every sparse op through `common::run_many` in every mode: `Traced` checks that the traced
/// outcome (values or error) is exactly the eager one, the `Wgpu` modes that the GPU's is
/// the CPU's.
#[test]
fn every_op_traced_equals_eager() {
    let mut rng = Rng::new(77);
    let (idx, vals) = random_coo(&mut rng, &[5, 6], 0.3, DType::F32);
    let i = idx_tensor(&idx, 2);
    let v = tensor(DType::F32, &[idx.len()], &vals);
    let (d, _) = input(&mut rng, DType::F32, &[5, 6], Domain::Small);
    let (w, _) = input(&mut rng, DType::F32, &[6, 4], Domain::Small);
    let unsorted = Tensor::from_slice(&[3i64, 1, 0, 2, 3, 1], &[3, 2]).unwrap();
    let out_of_bounds = Tensor::from_slice(&[0i64, 1, 7, 2], &[2, 2]).unwrap();
    let sp = |xs: &[Tensor]| SparseTensor::new(&xs[0], &xs[1], [5, 6]);
    let lax = |xs: &[Tensor]| SparseTensor::new_with(&xs[0], &xs[1], [5, 6], NO_CHECK);
    type Case = Box<dyn Fn(&[Tensor]) -> ff::Result<Vec<Tensor>> + Send + Sync>;
    let parts = |s: SparseTensor| vec![s.indices().clone(), s.values().clone()];
    let cases: Vec<(&str, Case)> = vec![
        // Named after the primitive each case exercises (the tidy test looks for them).
        ("sparse::validate: SparseTensor::new", Box::new(move |xs| Ok(parts(sp(xs)?)))),
        ("sparse::to_dense", Box::new(move |xs| Ok(vec![sp(xs)?.to_dense()?]))),
        ("sparse::to_dense default", Box::new(move |xs| Ok(vec![sparse::to_dense(&sp(xs)?, 2.5f32)?]))),
        ("sparse::nonzero: from_dense", Box::new(move |xs| Ok(parts(sparse::from_dense(sp(xs)?.to_dense()?)?)))),
        ("sparse::reorder", Box::new(move |xs| Ok(parts(lax(xs)?.reorder()?)))),
        ("sparse::unique: coalesce", Box::new(move |xs| Ok(parts(lax(xs)?.coalesce()?)))),
        ("sparse::segment_sum: coalesce's values", Box::new(move |xs| Ok(vec![lax(xs)?.coalesce()?.values().clone()]))),
        ("add dense", Box::new(move |xs| Ok(vec![sparse::add(&sp(xs)?, &xs[2])?]))),
        ("add sparse", Box::new(move |xs| Ok(parts(sparse::add(&sp(xs)?, &lax(xs)?.map_values(|v| v * 2.0f32)?)?)))),
        ("sparse::matmul", Box::new(move |xs| Ok(vec![sparse::matmul(&lax(xs)?, &xs[3])?]))),
        (
            "reduce_sum",
            Box::new(move |xs| Ok(vec![sp(xs)?.reduce_sum(None, false)?, sp(xs)?.reduce_sum(Some(&[0]), true)?])),
        ),
        ("map_values", Box::new(move |xs| Ok(parts(sp(xs)?.map_values(|v| v.exp())?)))),
        ("transpose", Box::new(move |xs| Ok(parts(sp(xs)?.transpose(&[1, 0])?)))),
    ];
    for (name, f) in cases {
        let f = std::sync::Arc::new(f);
        for (ix, what) in [(&i, "valid"), (&unsorted, "unsorted"), (&out_of_bounds, "out of bounds")] {
            let n = ix.shape()[0];
            let vals = if n == idx.len() { v.clone() } else { ff::arange(1.0f32, n as f32 + 1.0, 1.0).unwrap() };
            let inputs = [ix.clone(), vals, d.clone(), w.clone()];
            // Traced against eager exactly; the Wgpu modes (on the GPU, eager and traced)
            // against the CPU: values, or an error of the same variant.
            for &mode in MODES {
                let g = f.clone();
                let out = run_many(mode, &inputs, move |xs| g(xs));
                if what == "valid" {
                    assert!(out.is_ok(), "{name} on {what} indices ({mode:?}): {:?}", out.err());
                }
            }
        }
    }
}
