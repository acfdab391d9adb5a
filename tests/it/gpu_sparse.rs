//! The sparse primitives on the GPU (`backend::wgpu::sparse`): each of the seven, eager on
//! the GPU and inside a traced function placed there, against the CPU kernel on random data
//! (repeated and unsorted indices, empty nnz, rank 1 to 3, every dtype the GPU computes):
//! bit-equal, matmul of floats within the GPU tolerance. Soft placement is off for the GPU
//! runs, so a missing kernel is an error rather than a silent CPU fallback, and every output
//! must live on the GPU. Also: every index error's variant, problem, entry and message; exact
//! transfer counts (only the 4-byte status or count read-back crosses the bus); and the
//! submissions of a traced call with a sync point.

use ferroflow as ff;
use ff::sparse;
use ff::{DType, Device, Error, SparseIndexProblem, SparseOptions, SparseTensor, Tensor};

use crate::common::*;

const GPU: Device = Device::Gpu(0);
const LAX: SparseOptions = SparseOptions { validate: false };

/// The dtypes GPU:0 computes in (what the sparse value kernels need).
fn gpu_dtypes() -> Vec<DType> {
    ff::gpu::compute_dtypes(GPU).unwrap()
}

/// `nnz` random in-bounds indices of `shape`, drawn from few values per dim (so repeats are
/// common), in random order.
fn random_indices(rng: &mut Rng, shape: &[usize], nnz: usize) -> Tensor {
    let v: Vec<i64> =
        (0..nnz).flat_map(|_| shape.iter().map(|&d| rng.int(0, d as i64 - 1)).collect::<Vec<_>>()).collect();
    Tensor::from_vec(v, &[nnz, shape.len()]).unwrap()
}

/// Sorted, distinct indices of `shape` (each element kept with probability `density`).
fn canonical_indices(rng: &mut Rng, shape: &[usize], density: f64) -> Tensor {
    let (mut v, mut kept) = (Vec::new(), 0);
    let n: usize = shape.iter().product();
    for flat in 0..n {
        if rng.range(0.0, 1.0) < density {
            kept += 1;
            let mut rem = flat;
            let mut row = vec![0i64; shape.len()];
            for d in (0..shape.len()).rev() {
                row[d] = (rem % shape[d]) as i64;
                rem /= shape[d];
            }
            v.extend(row);
        }
    }
    let nnz = v.len().checked_div(shape.len()).unwrap_or(kept);
    Tensor::from_vec(v, &[nnz, shape.len()]).unwrap()
}

/// Values for `nnz` entries of `dt`, with -0.0 among floats (to_dense must add it to +0.0).
fn random_values(rng: &mut Rng, dt: DType, nnz: usize) -> Tensor {
    let mut v = values_for(rng, dt, nnz, Domain::Any);
    if dt.is_float() && nnz > 2 {
        v[1] = -0.0;
    }
    tensor(dt, &[nnz], &v)
}

/// The outcome of `f` on the CPU, on the GPU eagerly and traced on the GPU (inputs uploaded,
/// soft placement off). Panics unless every GPU output lives on the GPU.
#[track_caller]
fn on_all(
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> ff::Result<Vec<Tensor>> + Send + Sync + 'static,
) -> [ff::Result<Vec<Tensor>>; 3] {
    let f: OpFn = std::sync::Arc::new(f);
    let cpu = f(inputs);
    let up: Vec<Tensor> = inputs.iter().map(|t| t.to_device(GPU).unwrap()).collect();
    let strict = |r: ff::Result<Vec<Tensor>>| {
        if let Ok(ts) = &r {
            for t in ts {
                assert_eq!(t.device(), GPU, "a GPU output left the GPU ({})", describe(inputs));
            }
        }
        r
    };
    let eager = strict(ff::config::with_soft_device_placement(false, || ff::with_device(GPU, || f(&up))));
    let traced = strict(ff::config::with_soft_device_placement(false, || call_traced(&f, &up)));
    [cpu, eager, traced]
}

/// Checks both GPU outcomes against the CPU's: the same bits (`exact`), or floats within the
/// GPU tolerance; errors of the same variant and message.
#[track_caller]
fn agree(what: &str, [cpu, eager, traced]: [ff::Result<Vec<Tensor>>; 3], exact: bool) {
    for (mode, gpu) in [("eager", eager), ("traced", traced)] {
        match (&cpu, &gpu) {
            (Ok(want), Ok(got)) => {
                assert_eq!(want.len(), got.len(), "{what} ({mode})");
                for (w, g) in want.iter().zip(got) {
                    let r =
                        if exact { same_tensor(w, g) } else { gpu_matches(&Ok(vec![w.clone()]), &Ok(vec![g.clone()])) };
                    if let Err(why) = r {
                        panic!("{what} on the GPU ({mode}) differs from the CPU: {why}");
                    }
                }
            }
            (Err(w), Err(g)) => {
                assert_eq!(std::mem::discriminant(w), std::mem::discriminant(g), "{what} ({mode}): {g} vs {w}");
                assert_eq!(message_sans_location(w), message_sans_location(g), "{what} ({mode})");
            }
            _ => panic!("{what} ({mode}): GPU {:?}, CPU {:?}", gpu.as_ref().err(), cpu.as_ref().err()),
        }
    }
}

fn parts(s: SparseTensor) -> Vec<Tensor> {
    vec![s.indices().clone(), s.values().clone()]
}

const SHAPES: &[&[usize]] = &[&[7], &[4, 5], &[3, 2, 4]];
const NNZ: &[usize] = &[0, 1, 9, 40];

#[test]
fn to_dense_reorder_and_coalesce_match_the_cpu_bit_for_bit() {
    need_gpu!("to_dense_reorder_and_coalesce_match_the_cpu_bit_for_bit");
    let mut rng = Rng::new(5);
    for &shape in SHAPES {
        for &nnz in NNZ {
            let idx = random_indices(&mut rng, shape, nnz);
            // Index-only primitives: reorder (SparseReorder) and coalesce's indices (SparseUnique).
            let sh = shape.to_vec();
            let what = format!("reorder/unique {shape:?} nnz {nnz}");
            agree(
                &what,
                on_all(std::slice::from_ref(&idx), move |xs| {
                    let v = ff::zeros(&[xs[0].shape()[0]], DType::I32)?;
                    let s = SparseTensor::new_with(&xs[0], &v, &sh[..], LAX)?;
                    Ok(vec![s.reorder()?.indices().clone(), sparse::coalesce(&s)?.indices().clone()])
                }),
                true,
            );
            for dt in gpu_dtypes() {
                let vals = random_values(&mut rng, dt, nnz);
                let sh = shape.to_vec();
                let default = if dt == DType::Bool { 0.0 } else { 2.0 };
                let what = format!("to_dense/coalesce/reorder {dt} {shape:?} nnz {nnz}");
                agree(
                    &what,
                    on_all(&[idx.clone(), vals], move |xs| {
                        let s = SparseTensor::new_with(&xs[0], &xs[1], &sh[..], LAX)?;
                        let d = sparse::to_dense(&s, tensor(dt, &[], &[default]))?;
                        let mut out = vec![d];
                        out.extend(parts(s.coalesce()?));
                        out.extend(parts(s.reorder()?));
                        Ok(out)
                    }),
                    true,
                );
            }
        }
    }
}

/// f16 sums of duplicates round to nearest even after every add, as the CPU's: ties, the
/// rounding past 65504 to infinity (and just below it), f16 subnormals, signed zeros. The
/// GPU rounds on the bits (NVIDIA's driver skipped or changed the f32 -> f16 rounding).
#[test]
fn f16_duplicate_sums_round_like_the_cpu_at_the_edges() {
    need_gpu!("f16_duplicate_sums_round_like_the_cpu_at_the_edges");
    if !gpu_dtypes().contains(&DType::F16) {
        eprintln!("SKIPPED: f16_duplicate_sums_round_like_the_cpu_at_the_edges: GPU:0 computes no f16");
        return;
    }
    let pairs = [
        (2048.0, 1.0),
        (2048.0, 3.0),
        (2050.0, 1.0),
        (65504.0, 16.0),
        (65504.0, 8.0),
        (-65504.0, -32.0),
        (6.0e-8, 6.0e-8),
        (6.0e-8, 1.2e-7),
        (6.1e-5, -3.0e-8),
        (1.0e-4, -1.0e-4),
        (-0.0, -0.0),
        (-0.0, 0.0),
        (f64::INFINITY, -1.0),
    ];
    let n = pairs.len();
    // Entry 2i and 2i + 1 share index i; the third copy of index 0 makes a run of three.
    let mut ix: Vec<f64> = (0..n).flat_map(|i| [i as f64, i as f64]).collect();
    let mut v: Vec<f64> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    ix.push(0.0);
    v.push(1.0);
    let idx = tensor(DType::I64, &[ix.len(), 1], &ix);
    let vals = tensor(DType::F16, &[v.len()], &v);
    agree(
        "f16 sums at the rounding edges",
        on_all(&[idx, vals], move |xs| {
            let s = SparseTensor::new_with(&xs[0], &xs[1], [n], LAX)?;
            let d = sparse::to_dense(&s, tensor(DType::F16, &[], &[0.0]))?;
            let mut out = vec![d];
            out.extend(parts(s.coalesce()?));
            Ok(out)
        }),
        true,
    );
}

#[test]
fn validate_and_from_dense_match_the_cpu() {
    need_gpu!("validate_and_from_dense_match_the_cpu");
    let mut rng = Rng::new(6);
    for &shape in SHAPES.iter().chain([&[][..], &[3, 1, 2, 2][..]].iter()) {
        for density in [0.0, 0.3, 1.0] {
            // SparseValidate on canonical indices: the same indices back.
            let idx = canonical_indices(&mut rng, shape, density);
            let nnz = idx.shape()[0];
            let vals = random_values(&mut rng, DType::F32, nnz);
            let sh = shape.to_vec();
            agree(
                &format!("validate {shape:?} nnz {nnz}"),
                on_all(&[idx, vals], move |xs| Ok(parts(SparseTensor::new(&xs[0], &xs[1], &sh[..])?))),
                true,
            );
            // NonZero (from_dense), every dtype the GPU holds; NaN counts, -0.0 does not.
            for dt in gpu_dtypes() {
                let n: usize = shape.iter().product();
                let mut v: Vec<f64> = values_for(&mut rng, dt, n, Domain::Small);
                for (k, x) in v.iter_mut().enumerate() {
                    if rng.range(0.0, 1.0) >= density {
                        *x = if dt.is_float() && k % 3 == 0 { -0.0 } else { 0.0 };
                    } else if dt.is_float() && k % 5 == 0 {
                        *x = f64::NAN;
                    }
                }
                let x = tensor(dt, shape, &v);
                agree(
                    &format!("from_dense {dt} {shape:?} density {density}"),
                    on_all(&[x], |xs| Ok(parts(sparse::from_dense(&xs[0])?))),
                    true,
                );
            }
        }
    }
}

#[test]
fn matmul_matches_the_cpu_sorted_or_not() {
    need_gpu!("matmul_matches_the_cpu_sorted_or_not");
    let mut rng = Rng::new(7);
    let dtypes: Vec<DType> = gpu_dtypes().into_iter().filter(|d| *d != DType::Bool).collect();
    for &(m, k, n) in &[(5, 6, 3), (1, 1, 1), (9, 4, 70), (3, 5, 0), (0, 4, 2)] {
        for &nnz in NNZ {
            let shape = [m, k];
            let unsorted = if m * k > 0 {
                random_indices(&mut rng, &shape, nnz)
            } else {
                Tensor::from_vec(Vec::<i64>::new(), &[0, 2]).unwrap()
            };
            let canonical = canonical_indices(&mut rng, &shape, nnz as f64 / 40.0);
            for dt in &dtypes {
                let dt = *dt;
                for (order, idx) in [("unsorted", &unsorted), ("canonical", &canonical)] {
                    let vals = random_values(&mut rng, dt, idx.shape()[0]);
                    let (b, _) = input(&mut rng, dt, &[k, n], Domain::Any);
                    let exact = !dt.is_float();
                    agree(
                        &format!("matmul {dt} {order} [{m}, {k}] x [{k}, {n}] nnz {}", idx.shape()[0]),
                        on_all(&[idx.clone(), vals, b], move |xs| {
                            let s = SparseTensor::new_with(&xs[0], &xs[1], [m, k], LAX)?;
                            Ok(vec![sparse::matmul(&s, &xs[2])?])
                        }),
                        exact,
                    );
                }
            }
        }
    }
}

/// Runs `f` on the GPU (eager, soft placement off) and on the CPU; both must fail with
/// `InvalidSparseIndices` of `problem` at `entry`, with the same message.
#[track_caller]
fn same_index_error(
    what: &str,
    inputs: &[Tensor],
    problem: SparseIndexProblem,
    entry: usize,
    f: impl Fn(&[Tensor]) -> ff::Result<Vec<Tensor>> + Send + Sync + 'static,
) {
    let outcomes = on_all(inputs, f);
    for (mode, r) in ["cpu", "gpu eager", "gpu traced"].iter().zip(&outcomes) {
        match r {
            Err(Error::InvalidSparseIndices { problem: p, entry: e, .. }) => {
                assert_eq!((*p, *e), (problem, entry), "{what} ({mode}): {}", r.as_ref().unwrap_err());
            }
            other => panic!("{what} ({mode}): expected InvalidSparseIndices, got {:?}", other.as_ref().map(|_| ())),
        }
    }
    agree(what, outcomes, true);
}

#[test]
fn every_index_error_is_the_cpu_error() {
    need_gpu!("every_index_error_is_the_cpu_error");
    let i = |v: &[i64], cols: usize| Tensor::from_slice(v, &[v.len() / cols, cols]).unwrap();
    let f = |n: usize| Tensor::from_vec(vec![1.0f32; n], &[n]).unwrap();
    use SparseIndexProblem::*;
    // SparseValidate: out of bounds (negative, too large, past 2^32 in the high word),
    // repeated, out of order; the first bad entry wins, bounds before order.
    let validate = |xs: &[Tensor]| Ok(parts(SparseTensor::new(&xs[0], &xs[1], [3, 4])?));
    same_index_error("validate oob", &[i(&[0, 1, 2, 4], 2), f(2)], OutOfBounds, 1, validate);
    same_index_error("validate negative", &[i(&[0, 1, -1, 2], 2), f(2)], OutOfBounds, 1, validate);
    same_index_error("validate huge", &[i(&[0, 1, 1 << 33, 0], 2), f(2)], OutOfBounds, 1, validate);
    same_index_error("validate repeated", &[i(&[0, 1, 1, 2, 1, 2], 2), f(3)], Repeated, 2, validate);
    same_index_error("validate order", &[i(&[0, 1, 2, 0, 1, 3], 2), f(3)], OutOfOrder, 2, validate);
    same_index_error("validate first", &[i(&[1, 0, 0, 9, 0, 1], 2), f(3)], OutOfBounds, 1, validate);
    let rank0 = Tensor::from_vec(Vec::<i64>::new(), &[2, 0]).unwrap();
    same_index_error("validate rank 0", &[rank0, f(2)], Repeated, 1, |xs| {
        Ok(parts(SparseTensor::new(&xs[0], &xs[1], Vec::<usize>::new())?))
    });
    // SparseToDense and SparseMatMul check bounds only (order does not matter to them).
    let to_dense = |xs: &[Tensor]| Ok(vec![SparseTensor::new_with(&xs[0], &xs[1], [3, 4], LAX)?.to_dense()?]);
    same_index_error("to_dense oob", &[i(&[2, 0, 0, 1, 3, 0, 0, -2], 2), f(4)], OutOfBounds, 2, to_dense);
    let b = Tensor::from_vec(vec![1.0f32; 8], &[4, 2]).unwrap();
    let matmul =
        |xs: &[Tensor]| Ok(vec![sparse::matmul(&SparseTensor::new_with(&xs[0], &xs[1], [3, 4], LAX)?, &xs[2])?]);
    same_index_error("matmul oob col", &[i(&[2, 0, 0, 1, 1, 4], 2), f(3), b.clone()], OutOfBounds, 2, matmul);
    same_index_error("matmul oob row", &[i(&[0, 0, 3, 1, 1, 4], 2), f(3), b.clone()], OutOfBounds, 1, matmul);
    let empty_b = Tensor::from_vec(Vec::<f32>::new(), &[4, 0]).unwrap();
    same_index_error("matmul oob n = 0", &[i(&[0, 0, 0, 5], 2), f(2), empty_b], OutOfBounds, 1, matmul);
    // A dense output past the storage-binding limit is a clear error, not a wgpu panic.
    let s = SparseTensor::new(i(&[0, 1], 2).to_device(GPU).unwrap(), f(1).to_device(GPU).unwrap(), [1 << 16, 1 << 16])
        .unwrap();
    let e = ff::config::with_soft_device_placement(false, || s.to_dense()).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("storage-binding limit"), "{e}");
    // The message names the entry, its index and the bound, as on the CPU.
    let e = ff::with_device(GPU, || SparseTensor::new(&i(&[0, 1, 0, 1], 2).to_device(GPU)?, f(2), [3, 4])).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("indices[1] = [0, 1] is repeated") && m.contains("coalesce"), "{m}");
}

#[test]
fn one_sparse_op_moves_only_its_status_or_count() {
    need_gpu!("one_sparse_op_moves_only_its_status_or_count");
    let mut rng = Rng::new(8);
    let idx = random_indices(&mut rng, &[6, 5], 30).to_device(GPU).unwrap();
    let vals = random_values(&mut rng, DType::F32, 30).to_device(GPU).unwrap();
    let b = input(&mut rng, DType::F32, &[5, 3], Domain::Any).0.to_device(GPU).unwrap();
    let s = SparseTensor::new_with(&idx, &vals, [6, 5], LAX).unwrap();
    let count = |f: &dyn Fn() -> ff::Result<Vec<Tensor>>| {
        let before = ff::profiler::thread_transfers();
        let out = f().unwrap();
        let d = ff::profiler::thread_transfers() - before;
        for t in &out {
            assert_eq!(t.device(), GPU);
        }
        d
    };
    // matmul: one 4-byte status read-back (unsorted rows, so a sort ran on the GPU too).
    let d = count(&|| Ok(vec![sparse::matmul(&s, &b)?]));
    assert_eq!((d.host_to_device.count, d.device_to_host.count, d.device_to_host.bytes), (0, 1, 4), "{d}");
    // to_dense with a host default: the default is a kernel parameter; one status word.
    let d = count(&|| Ok(vec![sparse::to_dense(&s, 1.5f32)?]));
    assert_eq!((d.host_to_device.count, d.device_to_host.count, d.device_to_host.bytes), (0, 1, 4), "{d}");
    // reorder: no sync at all (its gathers run on the GPU).
    let d = count(&|| Ok(parts(s.reorder()?)));
    assert_eq!(d.total_count(), 0, "{d}");
    // coalesce: unique and segment_sum each read back their count.
    let d = count(&|| Ok(parts(s.coalesce()?)));
    assert_eq!((d.host_to_device.count, d.device_to_host.count, d.device_to_host.bytes), (0, 2, 8), "{d}");
    // from_dense: the count of non-zeros; its values are gathered on the GPU.
    let dense = sparse::to_dense(&s, 0.0f32).unwrap();
    let d = count(&|| Ok(parts(SparseTensor::from_dense(&dense)?)));
    assert_eq!((d.host_to_device.count, d.device_to_host.count, d.device_to_host.bytes), (0, 1, 4), "{d}");
}

#[test]
fn a_traced_function_with_a_sync_point_submits_at_the_sync_and_at_the_end() {
    need_gpu!("a_traced_function_with_a_sync_point_submits_at_the_sync_and_at_the_end");
    let f = ff::function(|i: &Tensor, v: &Tensor, b: &Tensor| {
        let s = SparseTensor::new_with(i, &v.relu()?, [6, 5], LAX)?;
        (sparse::matmul(&s, b)? * 2.0f32)?.exp()
    });
    let mut rng = Rng::new(9);
    let i = random_indices(&mut rng, &[6, 5], 12);
    let v = random_values(&mut rng, DType::F32, 12);
    let b = input(&mut rng, DType::F32, &[5, 4], Domain::Any).0;
    let want = f.call((&i, &v, &b)).unwrap();
    let (gi, gv, gb) = (i.to_device(GPU).unwrap(), v.to_device(GPU).unwrap(), b.to_device(GPU).unwrap());
    let _ = f.call((&gi, &gv, &gb)).unwrap(); // traces
    let before = (ff::profiler::thread_transfers(), ff::gpu::thread_submissions());
    let y = f.call((&gi, &gv, &gb)).unwrap();
    let subs = ff::gpu::thread_submissions() - before.1;
    let d = ff::profiler::thread_transfers() - before.0;
    assert_eq!(y.device(), GPU);
    // The status read-back submits what came before it; the plan's end submits the rest.
    // (Another test thread may flush the shared encoder for us: at most two.)
    assert!((1..=2).contains(&subs), "a sync point and the end: {subs} submissions");
    assert_eq!((d.host_to_device.count, d.device_to_host.count), (0, 1), "only the status word: {d}");
    if let Err(why) = gpu_matches(&Ok(vec![want]), &Ok(vec![y])) {
        panic!("{why}");
    }
}

#[test]
fn from_dense_of_a_gpu_tensor_stays_on_the_gpu_under_the_explicit_policy() {
    need_gpu!("from_dense_of_a_gpu_tensor_stays_on_the_gpu_under_the_explicit_policy");
    let x = Tensor::from(ndarray::arr2(&[[0.0f32, 1.5], [-2.0, 0.0]]).into_dyn());
    let g = x.to_device(GPU).unwrap();
    let s = ff::config::with_device_policy(ff::DevicePolicy::Explicit, || SparseTensor::from_dense(&g)).unwrap();
    assert_eq!((s.indices().device(), s.values().device()), (GPU, GPU));
    assert_eq!(s.indices().to_ndarray::<i64>().unwrap().into_raw_vec_and_offset().0, vec![0, 1, 1, 0]);
    assert_eq!(s.values().to_ndarray::<f32>().unwrap().into_raw_vec_and_offset().0, vec![1.5, -2.0]);
}

#[test]
fn reduce_sum_and_transpose_of_gpu_tensors_work_under_the_explicit_policy() {
    need_gpu!("reduce_sum_and_transpose_of_gpu_tensors_work_under_the_explicit_policy");
    // Both gather the indices' columns by a small index vector made on the host: it goes to
    // the GPU as an explicit copy, so the strict policy has no implicit copy to refuse.
    let mut rng = Rng::new(21);
    let i = canonical_indices(&mut rng, &[4, 3, 5], 0.3);
    let v = random_values(&mut rng, DType::F32, i.shape()[0]);
    let cpu = SparseTensor::new(&i, &v, [4, 3, 5]).unwrap();
    let gpu = SparseTensor::new(i.to_device(GPU).unwrap(), v.to_device(GPU).unwrap(), [4, 3, 5]).unwrap();
    let strict = |f: &dyn Fn(&SparseTensor) -> ff::Result<Vec<Tensor>>| {
        ff::config::with_device_policy(ff::DevicePolicy::Explicit, || f(&gpu))
    };
    let sum = |s: &SparseTensor| -> ff::Result<Vec<Tensor>> { Ok(vec![sparse::reduce_sum(s, Some(&[0, 2]), true)?]) };
    let tr = |s: &SparseTensor| -> ff::Result<Vec<Tensor>> { Ok(parts(sparse::transpose(s, &[2, 0, 1])?)) };
    for (what, f) in [("reduce_sum", &sum as &dyn Fn(&SparseTensor) -> ff::Result<Vec<Tensor>>), ("transpose", &tr)] {
        let got = strict(f);
        let got = got.unwrap_or_else(|e| panic!("{what} under the explicit policy: {e}"));
        assert!(got.iter().all(|t| t.device() == GPU), "{what}: results left the GPU");
        if let Err(why) = gpu_matches(&f(&cpu), &Ok(got)) {
            panic!("{what}: {why}");
        }
    }
}
