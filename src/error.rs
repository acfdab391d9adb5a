//! The one error type of ferroflow, and its `Result` alias.
//!
//! Every variant names the op that failed, what it expected, what it found and, where one
//! exists, the fix. Variants that come from a user's call carry the source [`Loc`] of that
//! call (captured with `#[track_caller]`), so the message points at the user's own line
//! without `RUST_BACKTRACE`.

use std::fmt;
use std::panic::Location;

/// Where a user's call was made: the file, line and column of the op call, and, for an
/// error raised while a traced graph runs, the graph node that call created.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    at: &'static Location<'static>,
    node: Option<u32>,
}

impl Loc {
    /// The location of the caller of the `#[track_caller]` function this is called in.
    #[track_caller]
    #[inline]
    pub fn caller() -> Loc {
        Loc { at: Location::caller(), node: None }
    }
    /// The source file of the call.
    pub fn file(&self) -> &'static str {
        self.at.file()
    }
    /// The line of the call.
    pub fn line(&self) -> u32 {
        self.at.line()
    }
    /// The column of the call.
    pub fn column(&self) -> u32 {
        self.at.column()
    }
    /// The graph node (`%7` in graph text) when the error came from running a graph.
    pub fn node(&self) -> Option<u32> {
        self.node
    }
    pub(crate) fn in_node(self, node: u32) -> Loc {
        Loc { node: Some(node), ..self }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.node {
            write!(f, "graph node %{n}, created at ")?;
        }
        write!(f, "{}:{}:{}", self.at.file(), self.at.line(), self.at.column())
    }
}

impl fmt::Debug for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The result type of every fallible ferroflow call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ferroflow. Messages are lower-case and say what was
/// expected, what was found and, where one exists, the fix.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- shapes and axes -------------------------------------------------------------
    /// Two shapes that must agree (broadcasting, matmul, concat, reshape) do not.
    #[error("{op}: shape mismatch: expected {expected}, found {found}{}{}", fix_str(.fix), at(.location))]
    ShapeMismatch { op: &'static str, expected: String, found: String, fix: Option<String>, location: Option<Loc> },
    /// An axis is outside `-rank..rank`.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank}: expected an axis in {lo}..{rank}{}", at(.location), lo = -(*.rank as isize))]
    AxisOutOfRange { op: &'static str, axis: isize, rank: usize, location: Option<Loc> },
    /// An index given as data (gather, one_hot) is outside its dimension.
    #[error("{op}: index {index} is out of bounds: expected 0 <= index < {bound}{}", at(.location))]
    IndexOutOfBounds { op: &'static str, index: i64, bound: usize, location: Option<Loc> },

    // ---- dtypes ----------------------------------------------------------------------
    /// A dtype does not fit: two different dtypes in one op (strict mode), a dtype an op
    /// does not support, or a conversion to the wrong Rust element type.
    #[error("{op}: dtype mismatch: expected {expected}, found {found}{}{}", fix_str(.fix), at(.location))]
    DTypeMismatch { op: &'static str, expected: String, found: String, fix: Option<String>, location: Option<Loc> },

    // ---- arguments -------------------------------------------------------------------
    /// An argument that is wrong in a way the other variants do not name.
    #[error("{op}: invalid argument: {message}{}", at(.location))]
    InvalidArgument { op: &'static str, message: String, location: Option<Loc> },
    /// Something ferroflow cannot do (yet) on this device or dtype.
    #[error("{op}: unsupported: {message}{}", at(.location))]
    Unsupported { op: &'static str, message: String, location: Option<Loc> },

    // ---- graphs and tracing ------------------------------------------------------------
    /// A symbolic tensor (inside a traced function) was asked for its values.
    #[error("{op}: cannot read the values of symbolic tensor {name} (shape {shape}, dtype {dtype}): its value does not exist until the graph runs; convert the function's output after the call, or call ff::config::run_functions_eagerly(true) to debug{}", at(.location))]
    SymbolicTensor { op: &'static str, name: String, shape: String, dtype: crate::DType, location: Option<Loc> },
    /// A symbolic tensor was used where a host value (a `bool`) is needed.
    #[error("{op}: using symbolic tensor {name} (shape {shape}, dtype {dtype}) as a host value is not allowed in a graph: {message}{}", at(.location))]
    NotAllowedInGraph {
        op: &'static str,
        name: String,
        shape: String,
        dtype: crate::DType,
        message: String,
        location: Option<Loc>,
    },
    /// An input does not fit a function's `input_signature`.
    #[error("{function}: argument {index} does not fit the input signature: expected {expected}, found {found}")]
    SignatureMismatch { function: String, index: usize, expected: String, found: String },
    /// A `Variable` was created while tracing on a call other than the first.
    #[error("{function}: a Variable was created on a trace other than the first: create Variables once, outside the function or on its first call only{}", at(.location))]
    VariableCreatedOnNonFirstCall { function: String, location: Option<Loc> },

    // ---- gradients ---------------------------------------------------------------------
    /// `gradient` was called a second time on a non-persistent `GradientTape`.
    #[error("gradient: a non-persistent GradientTape can only be used to compute one set of gradients: expected a first call, found a second one; create the tape with GradientTape::persistent() to call gradient more than once{}", at(.location))]
    TapeExhausted { location: Option<Loc> },
    /// A gradient had to flow through an op that has none (TensorFlow's `LookupError`).
    #[error("{op}: no gradient: {message}{}", at(.location))]
    NoGradient { op: &'static str, message: String, location: Option<Loc> },

    // ---- devices -----------------------------------------------------------------------
    /// A host view was asked of a tensor that lives on a device.
    #[error("{op}: tensor lives on {device}, not on the host: copy it first with to_device(Device::Cpu) or use to_ndarray(){}", at(.location))]
    NotOnHost { op: &'static str, device: String, location: Option<Loc> },
    /// A device was named that does not exist (and soft placement is off).
    #[error("{op}: device {device} is not available: available devices are [{available}]{}{}", fix_str(.fix), at(.location))]
    DeviceUnavailable {
        op: &'static str,
        device: String,
        available: String,
        fix: Option<String>,
        location: Option<Loc>,
    },
    /// The GPU backend failed; the wgpu error is the `source()`.
    #[error("{op}: gpu error: {message}")]
    Gpu {
        op: &'static str,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },

    // ---- files -------------------------------------------------------------------------
    /// Reading or writing a file failed (`ff::io`): the path, what was being done, and the
    /// operating system's error as the `source()` when there is one.
    #[error("{op}: {path}: {message}{}", at(.location))]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        message: String,
        #[source]
        source: Option<std::io::Error>,
        location: Option<Loc>,
    },

    // ---- sparse ------------------------------------------------------------------------
    /// COO indices that are out of bounds, repeated or out of canonical (row-major) order,
    /// as TensorFlow checks them: `entry` is the row of `indices` at fault, `index` its value
    /// (`[0, 5]`), and `bound` the dense shape (out of bounds) or the index of the entry
    /// before it (repeated, out of order).
    #[error("{op}: invalid sparse indices: indices[{entry}] = {index} {}{}{}", sparse_problem(.problem, .bound), fix_str(.fix), at(.location))]
    InvalidSparseIndices {
        op: &'static str,
        problem: SparseIndexProblem,
        entry: usize,
        index: String,
        bound: String,
        fix: Option<String>,
        location: Option<Loc>,
    },
}

/// What is wrong with one entry of a sparse tensor's indices.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SparseIndexProblem {
    /// Some coordinate is negative or not below its dim of the dense shape.
    OutOfBounds,
    /// The same index as the entry before it.
    Repeated,
    /// Before the entry ahead of it in row-major order.
    OutOfOrder,
}

fn sparse_problem(p: &SparseIndexProblem, bound: &str) -> String {
    match p {
        SparseIndexProblem::OutOfBounds => format!("is out of bounds: expected 0 <= index < {bound}"),
        SparseIndexProblem::Repeated => format!("is repeated: expected each index once, found {bound} twice"),
        SparseIndexProblem::OutOfOrder => {
            format!("is out of order: expected canonical row-major order, found it after {bound}")
        }
    }
}

fn fix_str(fix: &Option<String>) -> String {
    match fix {
        Some(f) => format!("; {f}"),
        None => String::new(),
    }
}

fn at(loc: &Option<Loc>) -> String {
    match loc {
        Some(l) => format!(" (at {l})"),
        None => String::new(),
    }
}

/// A pattern matching every [`Error`] variant that carries a location, binding that field
/// (an `Option<Loc>`) to `$location`: the one list of them, for [`Error::location`] and
/// [`Error::at`]. The variants without one are named where it is used, so that a match over
/// both stays exhaustive and a new variant must be sorted into one or the other.
macro_rules! located {
    ($location:ident) => {
        Error::ShapeMismatch { location: $location, .. }
            | Error::AxisOutOfRange { location: $location, .. }
            | Error::IndexOutOfBounds { location: $location, .. }
            | Error::DTypeMismatch { location: $location, .. }
            | Error::InvalidArgument { location: $location, .. }
            | Error::Unsupported { location: $location, .. }
            | Error::SymbolicTensor { location: $location, .. }
            | Error::NotAllowedInGraph { location: $location, .. }
            | Error::VariableCreatedOnNonFirstCall { location: $location, .. }
            | Error::NotOnHost { location: $location, .. }
            | Error::DeviceUnavailable { location: $location, .. }
            | Error::InvalidSparseIndices { location: $location, .. }
            | Error::Io { location: $location, .. }
            | Error::TapeExhausted { location: $location }
            | Error::NoGradient { location: $location, .. }
    };
}

impl Error {
    /// The source location of the user's call that raised this error, when known.
    pub fn location(&self) -> Option<Loc> {
        match self {
            located!(location) => *location,
            Error::SignatureMismatch { .. } | Error::Gpu { .. } => None,
        }
    }

    /// Fills in the location when the error was raised below the user's call.
    pub(crate) fn at(mut self, loc: Loc) -> Self {
        match &mut self {
            located!(location) => {
                if location.is_none() {
                    *location = Some(loc);
                }
            }
            Error::SignatureMismatch { .. } | Error::Gpu { .. } => {}
        }
        self
    }

    // Short constructors used across the crate; the location is filled in by `at`.
    pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument { op, message: message.into(), location: None }
    }
    pub(crate) fn shape(op: &'static str, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Error::ShapeMismatch { op, expected: expected.into(), found: found.into(), fix: None, location: None }
    }
    pub(crate) fn dtype(
        op: &'static str,
        expected: impl Into<String>,
        found: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Error::DTypeMismatch { op, expected: expected.into(), found: found.into(), fix, location: None }
    }
    pub(crate) fn unsupported(op: &'static str, message: impl Into<String>) -> Self {
        Error::Unsupported { op, message: message.into(), location: None }
    }
    pub(crate) fn axis(op: &'static str, axis: isize, rank: usize) -> Self {
        Error::AxisOutOfRange { op, axis, rank, location: None }
    }
    pub(crate) fn index(op: &'static str, index: i64, bound: usize) -> Self {
        Error::IndexOutOfBounds { op, index, bound, location: None }
    }
}
