//! `ff::io`: `.npy` and `.npz` round trips bit-exact for every dtype NumPy has (NaN
//! payloads, -0.0, infinities, subnormals, empty and scalar shapes), files from an
//! independent writer (ndarray-npy: C and Fortran order; hand-made big-endian; a deflated
//! archive as `np.savez_compressed` writes), model checkpoints, and every error.

use std::path::PathBuf;

use ferroflow as ff;
use ff::nn::{Dense, Layer, Sequential};
use ff::{DType, Error, Tensor};
use half::f16;
use ndarray::{Array2, ArrayD, IxDyn, ShapeBuilder};

use crate::common::same_tensor;

/// A fresh path in the temp dir for this test.
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ff-io-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Tensors of every .npy dtype, with the float values that are easy to lose.
fn samples() -> Vec<Tensor> {
    let f32s = vec![
        0.0f32,
        -0.0,
        1.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234), // a NaN with a payload
        f32::from_bits(0xff80_0001), // a signalling NaN
        f32::MIN_POSITIVE / 8.0,     // subnormal
        f32::MAX,
        -3.25,
        7.0,
        1e-30,
    ];
    let f64s: Vec<f64> = vec![f64::from_bits(0x7ff0_0000_0000_0001), -0.0, 1e-310, f64::MAX, 2.5, f64::NAN];
    vec![
        Tensor::from_slice(&f32s, &[3, 4]).unwrap(),
        Tensor::from_slice(&f64s, &[2, 3]).unwrap(),
        Tensor::from_vec(f32s.iter().map(|&x| f16::from_f32(x)).collect(), &[12]).unwrap(),
        Tensor::from_vec(vec![f16::from_bits(0x7e01), f16::from_bits(0x8000)], &[2, 1]).unwrap(),
        Tensor::from_slice(&[i32::MIN, -1, 0, i32::MAX], &[2, 2]).unwrap(),
        Tensor::from_slice(&[i64::MIN, 7, i64::MAX], &[3]).unwrap(),
        Tensor::from_slice(&[0u8, 128, 255], &[3]).unwrap(),
        Tensor::from_slice(&[true, false, true, true], &[2, 2]).unwrap(),
        Tensor::scalar(3.5f64),
        Tensor::from_vec(Vec::<f32>::new(), &[0, 3]).unwrap(),
        ff::random::normal(&[5, 7, 3], DType::F32, Some(1)).unwrap(),
    ]
}

/// Exactly equal, bit for bit (NaN payloads included, unlike `common::bits`).
fn identical(a: &Tensor, b: &Tensor) {
    same_tensor(a, b).unwrap();
    let raw = |t: &Tensor| -> Vec<u64> {
        match t.dtype() {
            DType::F32 => t.to_ndarray::<f32>().unwrap().iter().map(|v| v.to_bits() as u64).collect(),
            DType::F64 => t.to_ndarray::<f64>().unwrap().iter().map(|v| v.to_bits()).collect(),
            DType::F16 => t.to_ndarray::<f16>().unwrap().iter().map(|v| v.to_bits() as u64).collect(),
            _ => vec![],
        }
    };
    assert_eq!(raw(a), raw(b));
}

#[test]
fn npy_round_trips_are_bit_exact_for_every_dtype() {
    for (i, t) in samples().iter().enumerate() {
        let p = tmp(&format!("rt{i}.npy"));
        ff::io::save_npy(&p, t).unwrap();
        identical(t, &ff::io::load_npy(&p).unwrap());
    }
}

#[test]
fn npy_files_agree_with_an_independent_implementation() {
    // ff writes, ndarray-npy reads.
    let t = ff::random::normal(&[4, 6], DType::F64, Some(2)).unwrap();
    let p = tmp("ours.npy");
    ff::io::save_npy(&p, &t).unwrap();
    let back: ArrayD<f64> = ndarray_npy::read_npy(&p).unwrap();
    assert_eq!(back, t.to_ndarray::<f64>().unwrap());
    // ndarray-npy writes (C and Fortran order), ff reads.
    let a = Array2::from_shape_fn((3, 5), |(i, j)| (i * 10 + j) as i64);
    let mut f = Array2::<i64>::zeros((3, 5).f());
    f.assign(&a);
    for (name, arr) in [("c.npy", &a), ("f.npy", &f)] {
        let p = tmp(name);
        ndarray_npy::write_npy(&p, arr).unwrap();
        let t = ff::io::load_npy(&p).unwrap();
        assert_eq!(t.to_ndarray::<i64>().unwrap(), a.clone().into_dyn(), "{name}");
    }
    // Big-endian data ('>f8'), as NumPy writes for a byte-swapped array.
    let header = ndarray_npy::npy::header::Header {
        type_descriptor: py_literal::Value::String(">f8".into()),
        layout: ndarray_npy::npy::header::Layout::Standard,
        shape: vec![2],
    };
    let mut bytes = header.to_bytes().unwrap();
    for v in [1.5f64, -2.0] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    let p = tmp("be.npy");
    std::fs::write(&p, bytes).unwrap();
    assert_eq!(
        ff::io::load_npy(&p).unwrap().to_ndarray::<f64>().unwrap().iter().copied().collect::<Vec<f64>>(),
        vec![1.5, -2.0]
    );
}

#[test]
fn npz_round_trips_and_reads_compressed_archives() {
    let ts = samples();
    let named: Vec<(String, &Tensor)> = ts.iter().enumerate().map(|(i, t)| (format!("a{i}"), t)).collect();
    let p = tmp("all.npz");
    ff::io::save_npz(&p, &named).unwrap();
    let back = ff::io::load_npz(&p).unwrap();
    assert_eq!(back.len(), ts.len());
    for ((n, t), (m, u)) in named.iter().zip(&back) {
        assert_eq!(n, m);
        identical(t, u);
    }
    // A deflated archive, as np.savez_compressed writes.
    let mut npy = Vec::new();
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let q = tmp("one.npy");
    ff::io::save_npy(&q, &x).unwrap();
    npy.extend(std::fs::read(&q).unwrap());
    let p = tmp("compressed.npz");
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file("x.npy", o).unwrap();
        z.write_all(&npy).unwrap();
        z.finish().unwrap();
    }
    let back = ff::io::load_npz(&p).unwrap();
    assert_eq!(back[0].0, "x");
    identical(&x, &back[0].1);
}

#[test]
fn io_errors_are_variants() {
    let missing = tmp("does-not-exist.npy");
    let e = ff::io::load_npy(&missing).unwrap_err();
    match &e {
        Error::Io { path, source, .. } => {
            assert_eq!(path, &missing);
            assert!(source.is_some());
        }
        other => panic!("expected Io, got {other}"),
    }
    assert!(e.to_string().contains("does-not-exist.npy"), "{e}");
    let junk = tmp("junk.npy");
    std::fs::write(&junk, b"not a numpy file at all").unwrap();
    assert!(matches!(ff::io::load_npy(&junk).unwrap_err(), Error::Io { .. }));
    // Truncated data.
    let p = tmp("short.npy");
    ff::io::save_npy(&p, &ff::ones(&[10], DType::F64).unwrap()).unwrap();
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 3]).unwrap();
    let e = ff::io::load_npy(&p).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("data bytes"), "{e}");
    // A dtype ferroflow does not hold.
    let p = tmp("i16.npy");
    ndarray_npy::write_npy(&p, &ndarray::array![1i16, 2]).unwrap();
    let e = ff::io::load_npy(&p).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("<i2"), "{e}");
    // bf16 has no NumPy type.
    let bf = ff::ones(&[2], DType::BF16).unwrap();
    assert!(matches!(ff::io::save_npy(tmp("bf.npy"), &bf).unwrap_err(), Error::Unsupported { .. }));
    assert!(matches!(ff::io::save_npz(tmp("bf.npz"), &[("b", &bf)]).unwrap_err(), Error::Unsupported { .. }));
    // Duplicate names.
    let one = ff::ones(&[1], DType::F32).unwrap();
    let e = ff::io::save_npz(tmp("dup.npz"), &[("a", &one), ("a", &one)]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    // A directory that does not exist.
    let e = ff::io::save_npy(tmp("no/such/dir/x.npy"), &one).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    // Symbolic tensors have no values to save.
    let f = ff::function(|x: &Tensor| {
        let e = ff::io::save_npy(tmp("sym.npy"), x).unwrap_err();
        assert!(matches!(e, Error::SymbolicTensor { .. }), "{e}");
        Ok(x.clone())
    });
    f.call((&one,)).unwrap();
    let _ = IxDyn(&[0]);
}

fn model(seed: u64) -> Sequential {
    Sequential::new(vec![
        Box::new(Dense::new(6, 5, Some(seed)).unwrap()),
        Box::new(Dense::new(5, 2, Some(seed + 1)).unwrap()),
    ])
}

#[test]
fn checkpoints_restore_a_model_exactly() {
    let a = model(1);
    let b = model(100);
    let x = ff::random::normal(&[3, 6], DType::F32, Some(4)).unwrap();
    assert!(same_tensor(&a.call(&x).unwrap(), &b.call(&x).unwrap()).is_err());
    let p = tmp("model.npz");
    ff::io::save_weights(&p, &a).unwrap();
    ff::io::load_weights(&p, &b).unwrap();
    same_tensor(&a.call(&x).unwrap(), &b.call(&x).unwrap()).unwrap();
    // The checkpoint is an ordinary .npz named by variable path.
    let names: Vec<String> = ff::io::load_npz(&p).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0/kernel", "0/bias", "1/kernel", "1/bias"]);
    // Restoring part of a model (the first layer) from the whole checkpoint is fine.
    let first = Dense::new(6, 5, Some(9)).unwrap();
    let vars: Vec<(String, ff::Variable)> =
        first.named_variables().into_iter().map(|(n, v)| (format!("0/{n}"), v)).collect();
    ff::io::restore_variables(&p, &vars).unwrap();
    same_tensor(&a.layers()[0].call(&x).unwrap(), &first.call(&x).unwrap()).unwrap();
}

#[test]
fn restore_checks_names_shapes_and_dtypes_and_changes_nothing_on_error() {
    let a = model(1);
    let p = tmp("ck.npz");
    ff::io::save_weights(&p, &a).unwrap();
    let before = |m: &Sequential| m.variables().iter().map(|v| v.value()).collect::<Vec<_>>();
    // Missing name.
    let wider = Sequential::new(vec![Box::new(Dense::new(6, 5, Some(3)).unwrap())])
        .with(Dense::new(5, 2, Some(4)).unwrap())
        .with(Dense::new(2, 2, Some(5)).unwrap());
    let old = before(&wider);
    let e = ff::io::load_weights(&p, &wider).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("'2/kernel'"), "{e}");
    for (o, n) in old.iter().zip(before(&wider)) {
        same_tensor(o, &n).unwrap(); // nothing was assigned, not even the layers that matched
    }
    // Shape.
    let other = Sequential::new(vec![Box::new(Dense::new(6, 4, Some(3)).unwrap())]);
    let e = ff::io::load_weights(&p, &other).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "restore_variables", .. }), "{e}");
    // Dtype.
    let f64_layer =
        Dense::with_options(6, 5, ff::nn::DenseOptions { dtype: DType::F64, ..Default::default() }).unwrap();
    let vars: Vec<(String, ff::Variable)> =
        f64_layer.named_variables().into_iter().map(|(n, v)| (format!("0/{n}"), v)).collect();
    let e = ff::io::restore_variables(&p, &vars).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let e = ff::io::load_weights(tmp("missing.npz"), &a).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let _ = Array2::<f32>::zeros((1, 1));
}
