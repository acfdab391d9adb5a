//! Seeded random tensors: reproducible by seed, independent of the thread count, and with the
//! right distribution (statistical tolerances are several standard errors wide).

use ferroflow as ff;
use ff::{DType, Tensor};

use crate::common::*;

fn f64s(t: &Tensor) -> Vec<f64> {
    values(t).iter().copied().collect()
}

#[test]
fn same_seed_same_values() {
    for &dt in FLOATS {
        for f in [ff::random::normal, ff::random::uniform] {
            let a = f(&[3, 50], dt, Some(42)).unwrap();
            let b = f(&[3, 50], dt, Some(42)).unwrap();
            assert_eq!((a.dtype(), a.shape().dims()), (dt, &[3, 50][..]));
            assert_eq!(f64s(&a), f64s(&b), "{dt}");
            let c = f(&[3, 50], dt, Some(43)).unwrap();
            let same = f64s(&a).iter().zip(f64s(&c)).filter(|(x, y)| *x == y).count();
            assert!(same < 30, "seeds 42 and 43 should differ ({same} of 150 equal, {dt})");
        }
    }
}

#[test]
fn element_i_depends_only_on_seed_and_i() {
    let long = ff::random::normal(&[20_000], DType::F64, Some(9)).unwrap();
    let short = ff::random::normal(&[4, 5], DType::F64, Some(9)).unwrap();
    assert_eq!(&f64s(&long)[..20], f64s(&short).as_slice());
    // f32 values are the f64 stream rounded (kept below 1 where rounding would reach it).
    let f = ff::random::uniform(&[20_000], DType::F32, Some(9)).unwrap();
    let d = ff::random::uniform(&[20_000], DType::F64, Some(9)).unwrap();
    for (x, y) in f64s(&f).iter().zip(f64s(&d)) {
        assert!(*x == y as f32 as f64 || (*x < 1.0 && y as f32 == 1.0), "{x} from {y}");
    }
}

#[test]
fn reproducible_across_thread_counts() {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for f in [ff::random::normal, ff::random::uniform] {
        let a = one.install(|| f(&[100_000], DType::F32, Some(7))).unwrap();
        let b = two.install(|| f(&[100_000], DType::F32, Some(7))).unwrap();
        let c = three.install(|| f(&[100_000], DType::F32, Some(7))).unwrap();
        let a = a.to_ndarray::<f32>().unwrap();
        assert_eq!(a, b.to_ndarray::<f32>().unwrap());
        assert_eq!(a, c.to_ndarray::<f32>().unwrap());
    }
}

#[test]
fn global_seed_gives_a_reproducible_sequence() {
    // The only test in this binary that draws with `seed: None`.
    ff::random::set_seed(1234);
    let a = f64s(&ff::random::normal(&[64], DType::F64, None).unwrap());
    let b = f64s(&ff::random::normal(&[64], DType::F64, None).unwrap());
    ff::random::set_seed(1234);
    let a2 = f64s(&ff::random::normal(&[64], DType::F64, None).unwrap());
    let b2 = f64s(&ff::random::normal(&[64], DType::F64, None).unwrap());
    assert_eq!(a, a2);
    assert_eq!(b, b2);
    assert_ne!(a, b, "successive unseeded calls draw different values");
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// Lag-1 correlation: neighbours (which share a Philox block) must be independent.
fn lag1(v: &[f64], m: f64, s: f64) -> f64 {
    v.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum::<f64>() / ((v.len() - 1) as f64 * s * s)
}

#[test]
fn normal_has_mean_zero_std_one() {
    const N: usize = 1_000_000;
    for &dt in &[DType::F32, DType::F64] {
        let v = f64s(&ff::random::normal(&[N], dt, Some(2024)).unwrap());
        assert!(v.iter().all(|x| x.is_finite()), "{dt}");
        let (m, s) = mean_std(&v);
        // Standard errors: 1e-3 for the mean, 7e-4 for the std.
        assert!(m.abs() < 5e-3, "{dt} mean {m}");
        assert!((s - 1.0).abs() < 5e-3, "{dt} std {s}");
        let within1 = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / N as f64;
        assert!((within1 - 0.682_689_5).abs() < 3e-3, "{dt} P(|x| < 1) = {within1}");
        let beyond3 = v.iter().filter(|x| x.abs() > 3.0).count() as f64 / N as f64;
        assert!((beyond3 - 0.002_699_8).abs() < 4e-4, "{dt} P(|x| > 3) = {beyond3}");
        let skew = v.iter().map(|x| ((x - m) / s).powi(3)).sum::<f64>() / N as f64;
        assert!(skew.abs() < 0.015, "{dt} skew {skew}");
        assert!(lag1(&v, m, s).abs() < 5e-3, "{dt} lag-1 correlation");
    }
}

#[test]
fn uniform_is_in_unit_interval_with_mean_half() {
    const N: usize = 1_000_000;
    for &dt in &[DType::F32, DType::F64] {
        let v = f64s(&ff::random::uniform(&[N], dt, Some(77)).unwrap());
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)), "{dt}: a value outside [0, 1)");
        let (m, s) = mean_std(&v);
        // Standard errors: 2.9e-4 for the mean.
        assert!((m - 0.5).abs() < 2e-3, "{dt} mean {m}");
        assert!((s * s - 1.0 / 12.0).abs() < 1e-3, "{dt} variance {}", s * s);
        let mut bins = [0usize; 10];
        for &x in &v {
            bins[(x * 10.0) as usize] += 1;
        }
        for (i, &b) in bins.iter().enumerate() {
            let p = b as f64 / N as f64;
            assert!((p - 0.1).abs() < 2e-3, "{dt} bin {i}: {p}");
        }
        assert!(lag1(&v, m, s).abs() < 5e-3, "{dt} lag-1 correlation");
    }
}

#[test]
fn half_precision_dtypes() {
    for &dt in &[DType::F16, DType::BF16] {
        let n = 200_000;
        let v = f64s(&ff::random::normal(&[n], dt, Some(5)).unwrap());
        let (m, s) = mean_std(&v);
        assert!(m.abs() < 1e-2 && (s - 1.0).abs() < 1e-2, "{dt} normal mean {m} std {s}");
        let u = f64s(&ff::random::uniform(&[n], dt, Some(5)).unwrap());
        // Rounding to a half type must not reach 1 (TensorFlow's uniform is in [0, 1) for
        // every float dtype); for bf16 about 0.2% of the f64 draws would round up.
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)), "{dt} uniform outside [0, 1)");
        let (m, _) = mean_std(&u);
        assert!((m - 0.5).abs() < 1e-2, "{dt} uniform mean {m}");
        // Rounded from the f64 stream of the same seed.
        let d = f64s(&ff::random::uniform(&[64], DType::F64, Some(5)).unwrap());
        let h = f64s(&ff::random::uniform(&[64], dt, Some(5)).unwrap());
        for (x, y) in h.iter().zip(&d) {
            assert!(*x == round_to(dt, *y) || (*x < 1.0 && round_to(dt, *y) == 1.0), "{dt}: {x} from {y}");
        }
    }
}

#[test]
fn shapes_scalar_and_empty() {
    let s = ff::random::normal(&[], DType::F32, Some(1)).unwrap();
    assert_eq!(s.rank(), 0);
    assert!(s.to_scalar::<f32>().unwrap().is_finite());
    let e = ff::random::uniform(&[3, 0], DType::F64, Some(1)).unwrap();
    assert_eq!((e.shape().dims(), e.num_elements()), (&[3, 0][..], 0));
}
