//! `ff::data::Dataset`: elements are rows, tuples stay aligned, batch / drop_remainder /
//! repeat / take / skip / cardinality, shuffle is a seeded buffered shuffle that reshuffles
//! each epoch deterministically, map eager and traced, prefetch (same sequence, errors in
//! order, the thread stops when dropped), zero-copy batches, and the errors.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferroflow as ff;
use ff::data::{Dataset, Repeat};
use ff::{DType, Error, Tensor};
use ndarray::Array2;

/// A [n, 3] f32 tensor whose row i is [i, i + 0.5, -i].
fn rows(n: usize) -> Tensor {
    Tensor::from(Array2::from_shape_fn((n, 3), |(i, j)| match j {
        0 => i as f32,
        1 => i as f32 + 0.5,
        _ => -(i as f32),
    }))
}

/// The row ids (column 0) of an element or batch.
fn ids(t: &Tensor) -> Vec<usize> {
    let a = t.to_ndarray::<f32>().unwrap();
    if a.ndim() == 1 { vec![a[0] as usize] } else { a.outer_iter().map(|r| r[0] as usize).collect() }
}

fn order(ds: &Dataset<Tensor>) -> Vec<usize> {
    ds.iter().flat_map(|x| ids(&x.unwrap())).collect()
}

#[test]
fn elements_are_rows_and_tuples_stay_aligned() {
    let x = rows(5);
    let y = Tensor::from_slice(&[10i64, 11, 12, 13, 14], &[5]).unwrap();
    let ds = Dataset::from_tensor_slices((x.clone(), y)).unwrap();
    assert_eq!(ds.cardinality(), Some(5));
    let mut n = 0;
    for (i, e) in ds.iter().enumerate() {
        let (xi, yi) = e.unwrap();
        assert_eq!(xi.shape().dims(), &[3]);
        assert_eq!(
            xi.to_ndarray::<f32>().unwrap().iter().copied().collect::<Vec<f32>>(),
            vec![i as f32, i as f32 + 0.5, -(i as f32)]
        );
        assert_eq!(yi.rank(), 0);
        assert_eq!(yi.to_scalar::<i64>().unwrap(), 10 + i as i64);
        n += 1;
    }
    assert_eq!(n, 5);
    // A host array works the same; it is converted once, here.
    let ds = Dataset::from_tensor_slices(ndarray::array![1.0f64, 2.0, 3.0]).unwrap();
    let v: Vec<f64> = ds.iter().map(|e| e.unwrap().to_scalar::<f64>().unwrap()).collect();
    assert_eq!(v, vec![1.0, 2.0, 3.0]);
}

#[test]
fn batch_repeat_take_skip() {
    let ds = Dataset::from_tensor_slices(rows(10)).unwrap();
    let b: Vec<Vec<usize>> = ds.batch(4).iter().map(|e| ids(&e.unwrap())).collect();
    assert_eq!(b, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    assert_eq!(ds.batch(4).cardinality(), Some(3));
    let b: Vec<Vec<usize>> = ds.batch_drop_remainder(4).iter().map(|e| ids(&e.unwrap())).collect();
    assert_eq!(b.len(), 2);
    assert_eq!(ds.batch_drop_remainder(4).cardinality(), Some(2));
    assert_eq!(order(&ds.take(3).repeat(2)), vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(order(&ds.skip(7)), vec![7, 8, 9]);
    assert_eq!(order(&ds.repeat(Repeat::Forever).take(23)).len(), 23);
    assert_eq!(ds.repeat(Repeat::Forever).cardinality(), None);
    assert_eq!(ds.repeat(3).batch(7).cardinality(), Some(5));
    // Batches of batches stack again.
    let bb: Vec<Tensor> = ds.batch(2).batch(2).iter().map(|e| e.unwrap()).collect();
    assert_eq!(bb[0].shape().dims(), &[2, 2, 3]);
    assert_eq!(bb[2].shape().dims(), &[1, 2, 3]);
}

#[test]
fn shuffle_is_seeded_buffered_and_reshuffles_each_epoch() {
    let n = 100;
    let ds = Dataset::from_tensor_slices(rows(n)).unwrap().shuffle(n, Some(42));
    let e1 = order(&ds);
    let e2 = order(&ds);
    let mut sorted = e1.clone();
    sorted.sort();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
    assert_ne!(e1, (0..n).collect::<Vec<_>>());
    assert_ne!(e1, e2, "each epoch draws a new order");
    // The same seed on a new dataset replays the same epochs.
    let again = Dataset::from_tensor_slices(rows(n)).unwrap().shuffle(n, Some(42));
    assert_eq!(order(&again), e1);
    assert_eq!(order(&again), e2);
    let other = Dataset::from_tensor_slices(rows(n)).unwrap().shuffle(n, Some(43));
    assert_ne!(order(&other), e1);
    // shuffle before repeat: a new order each pass.
    let rep = order(&Dataset::from_tensor_slices(rows(n)).unwrap().shuffle(n, Some(42)).repeat(2));
    assert_eq!(&rep[..n], &e1[..]);
    assert_eq!(&rep[n..], &e2[..]);
    // A buffer of 1 keeps the order; a buffer of b emits output j from the first j + b inputs.
    let ds = Dataset::from_tensor_slices(rows(n)).unwrap();
    assert_eq!(order(&ds.shuffle(1, Some(1))), (0..n).collect::<Vec<_>>());
    for b in [2usize, 5, 10] {
        let o = order(&ds.shuffle(b, Some(9)));
        assert!(o.iter().enumerate().all(|(j, &i)| i < j + b), "buffer {b}: {o:?}");
        assert_eq!(o.iter().copied().collect::<HashSet<_>>().len(), n);
    }
    // Shuffled batches are gathered rows, still aligned across components.
    let y = Tensor::from_slice(&(0..n as i64).collect::<Vec<_>>(), &[n]).unwrap();
    let ds = Dataset::from_tensor_slices((rows(n), y)).unwrap().shuffle(32, Some(3)).batch(16);
    for e in &ds {
        let (x, y) = e.unwrap();
        let yi: Vec<usize> = y.to_ndarray::<i64>().unwrap().iter().map(|&v| v as usize).collect();
        assert_eq!(ids(&x), yi);
    }
}

#[test]
fn map_runs_eager_closures_and_traced_functions() {
    let ds = Dataset::from_tensor_slices(rows(6)).unwrap();
    let eager = ds.map(|x: Tensor| (&x * 2.0f32)? + 1.0f32);
    let f = ff::function(|x: &Tensor| (x * 2.0f32)? + 1.0f32);
    let f2 = f.clone();
    let traced = ds.map(move |x: Tensor| f2.call((&x,)));
    let a: Vec<Vec<f32>> =
        eager.iter().map(|e| e.unwrap().to_ndarray::<f32>().unwrap().iter().copied().collect::<Vec<f32>>()).collect();
    let b: Vec<Vec<f32>> =
        traced.iter().map(|e| e.unwrap().to_ndarray::<f32>().unwrap().iter().copied().collect::<Vec<f32>>()).collect();
    assert_eq!(a, b);
    assert_eq!(a[3], vec![7.0, 8.0, -5.0]);
    assert_eq!(f.tracing_count(), 1, "one trace for every element");
    // map can change the structure: (x) -> (x, sum of x), then batch both.
    let pairs = ds.map(|x: Tensor| Ok((x.clone(), x.reduce_sum(None, false)?))).batch(4);
    let (x, s) = pairs.iter().next().unwrap().unwrap();
    assert_eq!(x.shape().dims(), &[4, 3]);
    assert_eq!(s.to_ndarray::<f32>().unwrap().iter().copied().collect::<Vec<f32>>(), vec![0.5, 1.5, 2.5, 3.5]);
}

#[test]
fn prefetch_keeps_the_sequence_and_propagates_errors() {
    let ds = Dataset::from_tensor_slices(rows(50)).unwrap().shuffle(20, Some(5)).batch(8);
    let plain: Vec<Vec<usize>> = ds.iter().map(|e| ids(&e.unwrap())).collect();
    let pre = Dataset::from_tensor_slices(rows(50)).unwrap().shuffle(20, Some(5)).batch(8).prefetch(2);
    let got: Vec<Vec<usize>> = pre.iter().map(|e| ids(&e.unwrap())).collect();
    assert_eq!(plain, got);
    // An error in map arrives in order, then the iteration ends.
    let bad = Dataset::from_tensor_slices(rows(10))
        .unwrap()
        .map(|x: Tensor| if ids(&x)[0] == 3 { x.reshape(&[7]) } else { Ok(x) })
        .prefetch(4);
    let items: Vec<ff::Result<Tensor>> = bad.iter().collect();
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(|r| r.is_ok()));
    assert!(matches!(items[3], Err(Error::ShapeMismatch { .. }) | Err(Error::InvalidArgument { .. })));
}

#[test]
fn dropping_a_prefetching_iterator_stops_its_thread() {
    let marker = Arc::new(AtomicUsize::new(0));
    let m2 = marker.clone();
    let ds = Dataset::from_tensor_slices(rows(4))
        .unwrap()
        .repeat(Repeat::Forever)
        .map(move |x: Tensor| {
            m2.fetch_add(1, Ordering::Relaxed);
            Ok(x)
        })
        .prefetch(2);
    let mut it = ds.iter();
    for _ in 0..10 {
        it.next().unwrap().unwrap();
    }
    drop(it);
    drop(ds);
    // The thread held the last other handle on the closure (and so on `marker`).
    let t0 = Instant::now();
    while Arc::strong_count(&marker) > 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the prefetch thread did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = marker.load(Ordering::Relaxed);
    assert!((10..=13).contains(&done), "ran {done} maps: 10 taken, at most 2 buffered + 1 in flight");
}

#[test]
fn batches_are_cut_from_the_converted_tensors() {
    // The source array is moved into the tensor (no copy) and a batch of every row in
    // order is that tensor itself; other batches are one slice or gather op, never a
    // conversion of host data.
    let a = Array2::from_shape_fn((8, 4), |(i, j)| (i * 4 + j) as f32);
    let p = a.as_ptr() as *const u8;
    let ds = Dataset::from_tensor_slices(a).unwrap();
    let all = ds.batch(8).iter().next().unwrap().unwrap();
    assert_eq!(all.data_ptr(), p, "the whole batch shares the converted buffer");
    let twice: Vec<Tensor> = ds.batch(8).repeat(2).iter().map(|e| e.unwrap()).collect();
    assert!(twice.iter().all(|t| t.data_ptr() == p), "every epoch reuses it");
    let part = ds.batch(3).iter().nth(1).unwrap().unwrap();
    assert_eq!(part.to_ndarray::<f32>().unwrap().as_slice().unwrap()[0], 12.0);
}

#[test]
fn dataset_errors_are_variants() {
    let e = Dataset::from_tensor_slices((rows(3), rows(4))).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "Dataset::from_tensor_slices", .. }), "{e}");
    let e = Dataset::from_tensor_slices(Tensor::scalar(1.0f32)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let ds = Dataset::from_tensor_slices(rows(3)).unwrap();
    for bad in [ds.batch(0), ds.shuffle(0, None), ds.prefetch(0)] {
        let items: Vec<_> = bad.iter().collect();
        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], Err(Error::InvalidArgument { .. })));
    }
    // Elements of different shapes cannot be stacked.
    let ragged = ds.map(|x: Tensor| if ids(&x)[0] == 1 { x.slice(&[0], &[2]) } else { Ok(x) }).batch(3);
    let e = ragged.iter().next().unwrap().unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "Dataset::batch", .. }), "{e}");
    // Inside a traced function, a symbolic tensor cannot be sliced into a dataset.
    let f = ff::function(|x: &Tensor| {
        let e = Dataset::from_tensor_slices(x.clone()).unwrap_err();
        assert!(matches!(e, Error::SymbolicTensor { .. }), "{e}");
        Ok(x.clone())
    });
    f.call((&rows(2),)).unwrap();
    let _ = DType::F32;
}

#[test]
fn iterating_runs_one_op_per_component_per_batch_and_copies_nothing_across_devices() {
    // Counted with the profiler on this thread: a shuffled batch is one gather per
    // component; nothing else runs (no conversion of host data), and no host<->device copy.
    let n = 64;
    let y = Tensor::from_slice(&(0..n as i64).collect::<Vec<_>>(), &[n]).unwrap();
    let ds = Dataset::from_tensor_slices((rows(n), y)).unwrap().shuffle(n, Some(1)).batch(16).repeat(2);
    let before = ff::profiler::thread_transfers();
    let prof = ff::profiler::Profiler::start();
    let mut batches = 0;
    for b in &ds {
        b.unwrap();
        batches += 1;
    }
    let profile = prof.stop();
    let copies = ff::profiler::thread_transfers() - before;
    assert_eq!(batches, 8);
    assert_eq!(copies.total_count(), 0);
    let names: Vec<&str> = profile.thread_events().iter().map(|e| e.name).collect();
    assert_eq!(names.len(), 2 * batches, "one op per component per batch: {names:?}");
    assert!(names.iter().all(|&n| n == "gather"), "{names:?}");
}

#[test]
fn a_shuffled_pipeline_over_gpu_data_gathers_there_and_sends_only_the_order() {
    crate::common::need_gpu!("a_shuffled_pipeline_over_gpu_data_gathers_there_and_sends_only_the_order");
    let gpu = ff::Device::Gpu(0);
    let n = 48;
    let x = rows(n);
    let y = Tensor::from_slice(&(0..n as i32).collect::<Vec<_>>(), &[n]).unwrap();
    let (gx, gy) = (x.to_device(gpu).unwrap(), y.to_device(gpu).unwrap());
    let cpu = Dataset::from_tensor_slices((x, y)).unwrap().shuffle(n, Some(5)).batch(16);
    let on_gpu = Dataset::from_tensor_slices((gx, gy)).unwrap().shuffle(n, Some(5)).batch(16);
    // Under the strict policy: the batches gather on the GPU, and each sends its row order
    // once (one small upload shared by both components), nothing else.
    let before = ff::profiler::thread_transfers();
    let got: Vec<(Tensor, Tensor)> =
        ff::config::with_device_policy(ff::DevicePolicy::Explicit, || on_gpu.iter().collect::<ff::Result<Vec<_>>>())
            .unwrap();
    let moved = ff::profiler::thread_transfers() - before;
    assert_eq!(got.len(), 3);
    assert_eq!((moved.host_to_device.count, moved.host_to_device.bytes), (3, 3 * 16 * 8), "{moved}");
    assert_eq!(moved.device_to_host.count, 0, "{moved}");
    for (g, c) in got.iter().zip(&cpu) {
        let c = c.unwrap();
        assert_eq!((g.0.device(), g.1.device()), (gpu, gpu));
        assert_eq!(g.0.to_ndarray::<f32>().unwrap(), c.0.to_ndarray::<f32>().unwrap());
        assert_eq!(g.1.to_ndarray::<i32>().unwrap(), c.1.to_ndarray::<i32>().unwrap());
    }
}
