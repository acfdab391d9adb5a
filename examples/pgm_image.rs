//! Everyday hand-offs to the host, part 1: pictures.
//!
//! Builds an RGB image with tensor ops (broadcasting a row against a column), converts it to
//! grayscale with `ff::image::rgb_to_grayscale`, and writes both with `to_ndarray()` output as
//! binary PPM/PGM files into the system temp dir. Then samples two activation functions with
//! `linspace` and plots them as an SVG file and as ASCII art in the terminal.
//!
//! Run it with `cargo run --release --example pgm_image`.

use std::fmt::Write as _;
use std::path::PathBuf;

use ferroflow as ff;
use ndarray::{ArrayD, Axis};

const H: usize = 192;
const W: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ---- An RGB image from ops ----------------------------------------------------------
    // Coordinates in [0, 1]: a column [H, 1] and a row [1, W] broadcast to [H, W].
    let ys = ff::linspace(0.0f32, 1.0, H)?.reshape(&[H as isize, 1])?;
    let xs = ff::linspace(0.0f32, 1.0, W)?.reshape(&[1, W as isize])?;
    let red = xs.broadcast_to(&[H, W])?; // brighter to the right
    let green = ys.broadcast_to(&[H, W])?; // brighter to the bottom
    // Blue: concentric rings around the centre, sin(24 r) mapped from [-1, 1] to [0, 1].
    let dx = (&xs - 0.5f32)?;
    let dy = (&ys - 0.5f32)?;
    let r = (dx.square()? + dy.square()?)?.sqrt()?;
    let blue = (((r * 24.0f32)?.sin()? + 1.0f32)? * 0.5f32)?;
    // Stack the channels last ([H, W, 3]), scale to 0..=255 and cast (floats truncate).
    let rgb = ff::stack(&[red, green, blue], -1)?;
    let rgb_u8 = (rgb * 255.0f32)?.clip(0.0f32, 255.0f32)?.cast(ff::DType::U8)?;
    println!("rgb image : shape {}, dtype {}", rgb_u8.shape(), rgb_u8.dtype());

    // ---- Grayscale, as tf.image.rgb_to_grayscale ----------------------------------------
    let gray = ff::image::rgb_to_grayscale(&rgb_u8)?; // [H, W, 1], still u8
    println!("grayscale : shape {}, dtype {}", gray.shape(), gray.dtype());
    // The classic check: pure red 255 weighs 0.2989 and lands on 76.
    let red_px = ff::Tensor::from_slice(&[255u8, 0, 0], &[1, 1, 3])?;
    let red_gray = ff::image::rgb_to_grayscale(&red_px)?.reshape(&[])?.to_scalar::<u8>()?;
    println!("pure red 255 in grayscale: {red_gray}");
    assert_eq!(red_gray, 76);

    // ---- Hand the pixels to the host and write files ------------------------------------
    // `to_ndarray` copies once into an array we own; the file writer needs plain bytes.
    let rgb_host: ArrayD<u8> = rgb_u8.to_ndarray::<u8>()?;
    let gray_host: ArrayD<u8> = gray.to_ndarray::<u8>()?.remove_axis(Axis(2)); // [H, W]
    let dir = std::env::temp_dir();
    let ppm = write_pnm(dir.join("ferroflow_rings.ppm"), "P6", W, H, rgb_host.as_slice().ok_or("not contiguous")?)?;
    let pgm = write_pnm(dir.join("ferroflow_rings.pgm"), "P5", W, H, gray_host.as_slice().ok_or("not contiguous")?)?;
    println!("wrote {} and {}", ppm.display(), pgm.display());

    // A tiny preview: every 16th pixel of the grayscale image as ASCII shades.
    let shades = b" .:-=+*#%@";
    for row in gray_host.outer_iter().step_by(16) {
        let line: String =
            row.iter().step_by(8).map(|&v| shades[v as usize * (shades.len() - 1) / 255] as char).collect();
        println!("  {line}");
    }

    // ---- Plot functions: SVG file and ASCII art -----------------------------------------
    let x = ff::linspace(-3.0f32, 3.0, 121)?;
    // Drawn in this order, so where curves cross the later one shows in the ASCII plot.
    let curves = [("gelu", x.gelu()?, "#d62728"), ("tanh", x.tanh()?, "#2ca02c"), ("sigmoid", x.sigmoid()?, "#1f77b4")];
    let xh = x.to_ndarray::<f32>()?;
    let series: Vec<(&str, Vec<f32>, &str)> = curves
        .iter()
        .map(|(name, y, color)| Ok((*name, y.to_ndarray::<f32>()?.iter().copied().collect(), *color)))
        .collect::<ff::Result<_>>()?;
    let svg_path = dir.join("ferroflow_activations.svg");
    std::fs::write(&svg_path, svg_plot(xh.as_slice().ok_or("not contiguous")?, &series))?;
    println!("wrote {}", svg_path.display());
    print!("{}", ascii_plot(xh.as_slice().ok_or("not contiguous")?, &series, 64, 19));
    Ok(())
}

/// Writes a binary PPM (`P6`, RGB) or PGM (`P5`, gray) file: a short text header, then bytes.
fn write_pnm(path: PathBuf, magic: &str, w: usize, h: usize, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut data = format!("{magic}\n{w} {h}\n255\n").into_bytes();
    data.extend_from_slice(bytes);
    std::fs::write(&path, data)?;
    Ok(path)
}

/// A minimal SVG line plot: one polyline per series, axes through the origin.
fn svg_plot(x: &[f32], series: &[(&str, Vec<f32>, &str)]) -> String {
    let (w, h, pad) = (480.0f32, 320.0f32, 30.0f32);
    let (x0, x1) = (x[0], x[x.len() - 1]);
    let (y0, y1) = (-1.25f32, 3.25f32);
    let px = |v: f32| pad + (v - x0) / (x1 - x0) * (w - 2.0 * pad);
    let py = |v: f32| h - pad - (v - y0) / (y1 - y0) * (h - 2.0 * pad);
    let mut s =
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">"#);
    s.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(s, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="gray"/>"#, px(x0), py(0.0), px(x1), py(0.0));
    let _ = write!(s, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="gray"/>"#, px(0.0), py(y0), px(0.0), py(y1));
    for (i, (name, y, color)) in series.iter().enumerate() {
        let pts: Vec<String> = x.iter().zip(y).map(|(&a, &b)| format!("{:.1},{:.1}", px(a), py(b))).collect();
        let _ = write!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, pts.join(" "));
        let _ =
            write!(s, r#"<text x="{}" y="{}" fill="{color}">{name}</text>"#, pad + 10.0, pad + 16.0 * (i as f32 + 1.0));
    }
    s.push_str("</svg>\n");
    s
}

/// The same curves as characters on a `cols` x `rows` grid (first letter of each name).
fn ascii_plot(x: &[f32], series: &[(&str, Vec<f32>, &str)], cols: usize, rows: usize) -> String {
    let (y0, y1) = (-1.25f32, 3.25f32);
    let mut grid = vec![vec![' '; cols]; rows];
    let zero_row = ((y1 - 0.0) / (y1 - y0) * (rows - 1) as f32).round() as usize;
    grid[zero_row].iter_mut().for_each(|c| *c = '-');
    for (name, y, _) in series {
        let mark = name.chars().next().unwrap_or('*');
        for (i, &v) in y.iter().enumerate() {
            let c = i * (cols - 1) / (x.len() - 1);
            let r = ((y1 - v) / (y1 - y0) * (rows - 1) as f32).round().clamp(0.0, (rows - 1) as f32) as usize;
            grid[r][c] = mark;
        }
    }
    let mut out =
        format!("  y in [{y0}, {y1}], x in [{}, {}]; s = sigmoid, t = tanh, g = gelu\n", x[0], x[x.len() - 1]);
    for row in grid {
        out.push_str("  |");
        out.extend(row);
        out.push('\n');
    }
    out
}
