//! The ferroflow tour: make tensors, compute with broadcasting and operators, see weak host
//! scalars and a dtype error that points at this file, convert to and from ndarray with
//! proof of which conversions copy, and finish with matmul, softmax and seeded random numbers.
//!
//! Run it with `cargo run --release --example quickstart`.

use ferroflow as ff;
use ndarray::array;

fn main() -> ff::Result<()> {
    // ---- 1. Making tensors --------------------------------------------------------------
    section("making tensors");
    let a = ff::Tensor::from(array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]); // moves the array in
    let b = ff::Tensor::from_slice(&[10.0f32, 20.0, 30.0], &[3])?; // copies the slice
    let s = ff::Tensor::scalar(0.5f32); // rank 0
    let r = ff::arange(0i32, 6, 1)?; // i32, because the literals are i32
    let z = ff::zeros(&[2, 2], ff::DType::F64)?;
    show("a", &a);
    show("b", &b);
    show("s", &s);
    show("r", &r);
    show("z", &z);
    println!("a has shape {}, dtype {}, rank {}, {} elements", a.shape(), a.dtype(), a.rank(), a.num_elements());

    // ---- 2. Ops, broadcasting and operators ---------------------------------------------
    section("ops with broadcasting");
    // [2, 3] + [3]: b is broadcast over the rows, as in NumPy.
    let c = (&a + &b)?;
    show("a + b", &c);
    // Operators return Result, and a Result on the left chains without `?` in between.
    let y = (&a * &s + &b)?.relu()?;
    show("relu(a * s + b)", &y);
    // Every op is also a free function; a column [2, 1] against a row [3] gives [2, 3].
    let col = ff::Tensor::from_slice(&[1.0f32, -1.0], &[2, 1])?;
    show("col * b", &ff::mul(&col, &b)?);
    show("row sums", &a.reduce_sum(Some(&[-1]), false)?);
    println!("mean of all = {}", a.reduce_mean(None, false)?.to_scalar::<f32>()?);

    // ---- 3. Weak host scalars -----------------------------------------------------------
    section("weak host scalars");
    // A Rust literal next to a tensor takes the tensor's dtype (JAX's "weak type").
    let pixels = ff::Tensor::from_slice(&[10u8, 200, 250], &[3])?;
    let brighter = (&pixels + 10i32)?; // an i32 literal, but the result stays u8 ...
    show("u8 + 10i32", &brighter); // ... and u8 wraps: 250 + 10 = 4
    assert_eq!(brighter.dtype(), ff::DType::U8);
    let halved = (&a * 0.5f64)?; // an f64 literal meets an f32 tensor: f32
    assert_eq!(halved.dtype(), ff::DType::F32);
    show("f32 * 0.5f64", &halved);

    // ---- 4. A dtype error, with the line that caused it ---------------------------------
    section("a dtype error");
    let counts = ff::Tensor::from_slice(&[1i32, 2, 3], &[3])?;
    match ff::add(&b, &counts) {
        Ok(_) => unreachable!("f32 + i32 is an error in the default (strict) mode"),
        Err(e) => {
            println!("the error, as a value: {e}");
            let loc = e.location().expect("op errors carry the caller's location");
            println!("  raised at {}:{}", loc.file(), loc.line());
            assert!(loc.file().ends_with("quickstart.rs"));
        }
    }
    // The fix the message names: cast one side explicitly.
    show("after a cast", &ff::add(&b, &counts.cast(ff::DType::F32)?)?);

    // ---- 5. Conversions, and which of them copy -----------------------------------------
    section("conversions (pointers prove what copies)");
    let arr = array![[1.0f32, 2.0], [3.0, 4.0]];
    let arr_ptr = arr.as_ptr() as *const u8;
    let t = ff::Tensor::from(arr); // move: the tensor now owns the array's buffer
    println!("Tensor::from(array) moved      : {}", same(arr_ptr, t.data_ptr()));
    assert_eq!(arr_ptr, t.data_ptr());

    let view = t.as_ndarray::<f32>()?; // zero-copy, read-only view
    println!("as_ndarray is a view           : {}", same(view.as_ptr() as *const u8, t.data_ptr()));
    assert_eq!(view.as_ptr() as *const u8, t.data_ptr());

    let mut copy = t.to_ndarray::<f32>()?; // a copy the caller owns
    println!("to_ndarray copies              : {}", !same(copy.as_ptr() as *const u8, t.data_ptr()));
    assert_ne!(copy.as_ptr() as *const u8, t.data_ptr());
    copy[[0, 0]] = 100.0; // writing the copy never changes the tensor
    assert_eq!(t.as_ndarray::<f32>()?[[0, 0]], 1.0);

    let ptr = t.data_ptr();
    let moved = t.into_ndarray::<f32>()?; // the only handle: the buffer moves out
    println!("into_ndarray (unique) moves    : {}", same(moved.as_ptr() as *const u8, ptr));
    assert_eq!(moved.as_ptr() as *const u8, ptr);

    let v = ff::convert_to_tensor(moved.view())?; // from a view (a borrow): a copy
    println!("convert_to_tensor(view) copies : {}", !same(v.data_ptr(), moved.as_ptr() as *const u8));
    // Ops take arrays directly; the array is copied into a tensor for the call.
    show("ff::add(&t, &array)", &ff::add(&v, &moved)?);

    // ---- 6. matmul and softmax ----------------------------------------------------------
    section("matmul and softmax");
    let x = ff::Tensor::from(array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]); // [3, 2]
    let w = ff::Tensor::from(array![[0.5f32, -1.0, 0.0], [0.25, 1.0, 2.0]]); // [2, 3]
    let logits = x.matmul(&w)?; // [3, 3]
    let probs = logits.softmax(-1)?;
    show("logits", &logits);
    show("probs", &probs);
    let row_sums = probs.reduce_sum(Some(&[-1]), false)?.to_ndarray::<f32>()?;
    assert!(row_sums.iter().all(|s| (s - 1.0).abs() < 1e-6));
    show("argmax", &probs.argmax(Some(&[-1]), false)?);

    // ---- 7. Seeded random numbers -------------------------------------------------------
    section("seeded random");
    let n1 = ff::random::normal(&[2, 3], ff::DType::F32, Some(42))?;
    let n2 = ff::random::normal(&[2, 3], ff::DType::F32, Some(42))?;
    show("normal(seed 42)", &n1);
    assert_eq!(n1.as_ndarray::<f32>()?, n2.as_ndarray::<f32>()?);
    println!("same seed, same numbers: true");
    let big = ff::random::uniform(&[1_000_000], ff::DType::F64, Some(7))?;
    println!("mean of 1e6 uniform draws = {:.4}", big.reduce_mean(None, false)?.to_scalar::<f64>()?);

    Ok(())
}

/// Prints `label = tensor`, starting multi-line tensors on their own line.
fn show(label: &str, t: &ff::Tensor) {
    let text = t.to_string();
    if text.contains('\n') { println!("{label} =\n{text}") } else { println!("{label} = {text}") }
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn same(p: *const u8, q: *const u8) -> bool {
    std::ptr::eq(p, q)
}
