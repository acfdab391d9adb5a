//! Files (`ff::io`): tensors as NumPy `.npy` / `.npz` files, and a model's variables as
//! an `.npz` checkpoint (`save_variables` / `restore_variables`, or `save_weights` /
//! `load_weights` for a whole `Layer`).
//!
//! Round trips are bit-exact for every dtype NumPy has (f32, f64, f16, i32, i64, u8,
//! bool); bf16, which NumPy lacks, is `Error::Unsupported`. Files are written to a
//! temporary name and renamed, so a crash never leaves half a checkpoint under the real
//! name. Every I/O failure is `Error::Io` with the path.

mod npy;

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Loc, Result};
use crate::nn::Layer;
use crate::tensor::Tensor;
use crate::variable::Variable;
use npy::{ReadError, WriteError};

fn io_error(op: &'static str, path: &Path, what: &str, e: std::io::Error, loc: Loc) -> Error {
    Error::Io { op, path: path.to_path_buf(), message: format!("{what}: {e}"), source: Some(e), location: Some(loc) }
}

fn bad_file(op: &'static str, path: &Path, message: String, loc: Loc) -> Error {
    Error::Io { op, path: path.to_path_buf(), message, source: None, location: Some(loc) }
}

fn read_error(op: &'static str, path: &Path, entry: Option<&str>, e: ReadError, loc: Loc) -> Error {
    let inside = entry.map(|n| format!(" (array '{n}')")).unwrap_or_default();
    match e {
        ReadError::Io(e) => io_error(op, path, &format!("could not read{inside}"), e, loc),
        ReadError::Bad(b) => bad_file(op, path, format!("not a valid .npy file{inside}: {}", b.0), loc),
        ReadError::Ff(e) => e.at(loc),
    }
}

/// Writes through `body` to a temporary file next to `path`, then renames it over `path`.
fn write_atomically(
    op: &'static str,
    path: &Path,
    loc: Loc,
    body: impl FnOnce(&mut BufWriter<File>) -> std::result::Result<(), WriteError>,
) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let file = File::create(&tmp).map_err(|e| io_error(op, path, "could not create the file", e, loc))?;
    let mut w = BufWriter::new(file);
    let result = body(&mut w).and_then(|_| w.flush().map_err(WriteError::Io));
    let result = result.and_then(|_| {
        let f = w.into_inner().map_err(|e| WriteError::Io(e.into_error()))?;
        f.sync_all().map_err(WriteError::Io)
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(match e {
            WriteError::Io(e) => io_error(op, path, "could not write", e, loc),
            WriteError::Ff(e) => e.at(loc),
        });
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(op, path, "could not rename the finished file into place", e, loc)
    })
}

fn open(op: &'static str, path: &Path, loc: Loc) -> Result<BufReader<File>> {
    File::open(path).map(BufReader::new).map_err(|e| io_error(op, path, "could not open", e, loc))
}

/// Saves `t` as a NumPy `.npy` file (`np.load(path)` reads it). Errors: `Unsupported` for
/// bf16, `SymbolicTensor` inside a traced function, `Io` when the file cannot be written.
#[track_caller]
pub fn save_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    let loc = Loc::caller();
    let path = path.as_ref();
    check_saveable("save_npy", t, loc)?;
    write_atomically("save_npy", path, loc, |w| npy::write(t, "save_npy", w))
}

/// Loads a `.npy` file (as `np.save` writes it, either byte order, C or Fortran order);
/// the dtype and shape come from the file. Errors: `Io` (missing file, bad header or
/// data, naming the path), `Unsupported` for dtypes ferroflow lacks (i16, u32,
/// complex, strings: convert them in NumPy first).
#[track_caller]
pub fn load_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let loc = Loc::caller();
    let path = path.as_ref();
    let mut r = open("load_npy", path, loc)?;
    npy::read(&mut r, "load_npy").map_err(|e| read_error("load_npy", path, None, e, loc))
}

fn check_saveable(op: &'static str, t: &Tensor, loc: Loc) -> Result<()> {
    if t.is_symbolic() {
        return Err(t.symbolic_error(op).at(loc));
    }
    if npy::descr(t.dtype()).is_none() {
        return Err(Error::Unsupported {
            op,
            message:
                "bf16 tensors: NumPy's formats have no bfloat16 type; cast to f32 first (exact) and back after loading"
                    .into(),
            location: Some(loc),
        });
    }
    Ok(())
}

fn check_names<'a>(op: &'static str, names: impl Iterator<Item = &'a str>, loc: Loc) -> Result<()> {
    let mut seen = HashSet::new();
    for n in names {
        if n.is_empty() || !seen.insert(n) {
            return Err(Error::InvalidArgument {
                op,
                message: if n.is_empty() {
                    "expected a non-empty name for every array".into()
                } else {
                    format!("expected unique names, found '{n}' twice")
                },
                location: Some(loc),
            });
        }
    }
    Ok(())
}

fn write_npz(op: &'static str, path: &Path, arrays: &[(&str, &Tensor)], loc: Loc) -> Result<()> {
    check_names(op, arrays.iter().map(|(n, _)| *n), loc)?;
    for (_, t) in arrays {
        check_saveable(op, t, loc)?;
    }
    write_atomically(op, path, loc, |w| {
        let mut z = zip::ZipWriter::new(w);
        for (name, t) in arrays {
            // Stored, as np.savez writes; zip64 only where an entry needs it.
            let big = t.num_elements().saturating_mul(t.dtype().size_of()) >= u32::MAX as usize - 4096;
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .large_file(big);
            z.start_file(format!("{name}.npy"), opts).map_err(zip_write)?;
            npy::write(t, op, &mut z)?;
        }
        z.finish().map_err(zip_write)?;
        Ok(())
    })
}

fn zip_write(e: zip::result::ZipError) -> WriteError {
    match e {
        zip::result::ZipError::Io(e) => WriteError::Io(e),
        other => WriteError::Io(std::io::Error::other(other.to_string())),
    }
}

/// Saves named tensors as a NumPy `.npz` archive (`np.load(path)["w"]` reads one), in
/// order. Names must be unique and non-empty (`InvalidArgument`).
#[track_caller]
pub fn save_npz<S: AsRef<str>, T: Borrow<Tensor>>(path: impl AsRef<Path>, arrays: &[(S, T)]) -> Result<()> {
    let loc = Loc::caller();
    let list: Vec<(&str, &Tensor)> = arrays.iter().map(|(n, t)| (n.as_ref(), t.borrow())).collect();
    write_npz("save_npz", path.as_ref(), &list, loc)
}

/// Loads every array of an `.npz` archive (`np.savez` or `np.savez_compressed`), in file
/// order, with the `.npy` suffix taken off the names.
#[track_caller]
pub fn load_npz(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    load_npz_at("load_npz", path.as_ref(), Loc::caller())
}

fn load_npz_at(op: &'static str, path: &Path, loc: Loc) -> Result<Vec<(String, Tensor)>> {
    let r = open(op, path, loc)?;
    let zip_err = |e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(e) => io_error(op, path, "could not read", e, loc),
        other => bad_file(op, path, format!("not a valid .npz (zip) archive: {other}"), loc),
    };
    let mut z = zip::ZipArchive::new(r).map_err(zip_err)?;
    let mut out = Vec::with_capacity(z.len());
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(zip_err)?;
        let full = f.name().to_string();
        let name = full.strip_suffix(".npy").unwrap_or(&full).to_string();
        let t = npy::read(&mut f, op).map_err(|e| read_error(op, path, Some(&name), e, loc))?;
        out.push((name, t));
    }
    Ok(out)
}

fn outside_trace(op: &'static str, loc: Loc) -> Result<()> {
    if crate::graph::trace::active().is_some() {
        return Err(Error::InvalidArgument {
            op,
            message: "checkpoints are read and written eagerly: call it outside traced functions".into(),
            location: Some(loc),
        });
    }
    Ok(())
}

/// Saves the current values of named variables as an `.npz` checkpoint (the names are the
/// archive's array names; `layer.named_variables()` gives them for a model).
#[track_caller]
pub fn save_variables<S: AsRef<str>, V: Borrow<Variable>>(path: impl AsRef<Path>, vars: &[(S, V)]) -> Result<()> {
    save_variables_at(path.as_ref(), vars, Loc::caller())
}

fn save_variables_at<S: AsRef<str>, V: Borrow<Variable>>(path: &Path, vars: &[(S, V)], loc: Loc) -> Result<()> {
    outside_trace("save_variables", loc)?;
    let values: Vec<(&str, Tensor)> = vars.iter().map(|(n, v)| (n.as_ref(), v.borrow().current())).collect();
    let list: Vec<(&str, &Tensor)> = values.iter().map(|(n, t)| (*n, t)).collect();
    write_npz("save_variables", path, &list, loc)
}

/// Restores named variables from a checkpoint written by `save_variables` (or any `.npz`).
/// Every variable must find an array of its name, shape and dtype in the file; all are
/// checked before any is assigned, so a failed restore changes nothing. Arrays the list
/// does not name are ignored (restoring part of a model is allowed).
///
/// Errors: `InvalidArgument` naming a missing variable (and the names the file has),
/// `ShapeMismatch` / `DTypeMismatch` naming the variable, `Io` for the file.
#[track_caller]
pub fn restore_variables<S: AsRef<str>, V: Borrow<Variable>>(path: impl AsRef<Path>, vars: &[(S, V)]) -> Result<()> {
    restore_variables_at(path.as_ref(), vars, Loc::caller())
}

fn restore_variables_at<S: AsRef<str>, V: Borrow<Variable>>(path: &Path, vars: &[(S, V)], loc: Loc) -> Result<()> {
    let op = "restore_variables";
    outside_trace(op, loc)?;
    check_names(op, vars.iter().map(|(n, _)| n.as_ref()), loc)?;
    let arrays = load_npz_at(op, path, loc)?;
    let mut plan = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let (name, var) = (name.as_ref(), var.borrow());
        let Some((_, t)) = arrays.iter().find(|(n, _)| n == name) else {
            let have: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::InvalidArgument {
                op,
                message: format!(
                    "variable '{name}' is not in {}: the file has [{}]; was it saved from a model built the same way?",
                    path.display(),
                    have.join(", ")
                ),
                location: Some(loc),
            });
        };
        if t.dtype() != var.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: format!("'{name}' of the variable's dtype {}", var.dtype()),
                found: format!("{} in {}", t.dtype(), path.display()),
                fix: None,
                location: Some(loc),
            });
        }
        if t.shape() != var.shape() {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("'{name}' of the variable's shape {}", var.shape()),
                found: format!("shape {} in {}", t.shape(), path.display()),
                fix: None,
                location: Some(loc),
            });
        }
        plan.push((var, t.clone()));
    }
    for (var, t) in plan {
        var.assign(&t).map_err(|e| e.at(loc))?;
    }
    Ok(())
}

/// Saves every variable of a model (`layer.named_variables()`) to an `.npz` checkpoint.
#[track_caller]
pub fn save_weights(path: impl AsRef<Path>, layer: &(impl Layer + ?Sized)) -> Result<()> {
    save_variables_at(path.as_ref(), &layer.named_variables(), Loc::caller())
}

/// Restores every variable of a model from a checkpoint written by `save_weights`; see
/// [`restore_variables`] for the checks.
#[track_caller]
pub fn load_weights(path: impl AsRef<Path>, layer: &(impl Layer + ?Sized)) -> Result<()> {
    restore_variables_at(path.as_ref(), &layer.named_variables(), Loc::caller())
}
