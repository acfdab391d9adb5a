//! Which optimizer passes run: per function (`FunctionOptions::optimizer`) or for the whole
//! process (`ff::config::set_optimizer_options`, the analogue of
//! `tf.config.optimizer.set_experimental_options`).

/// One pass of the pipeline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PassKind {
    /// Drops nodes no output or side effect depends on (Grappler's pruning, XLA's DCE).
    Pruning,
    /// Evaluates nodes whose inputs are all constants, up to a size cap.
    ConstantFolding,
    /// Merges structurally equal nodes (same op, attributes and inputs).
    CommonSubexpression,
    /// Exact algebraic rewrites: `x+0`, `x*1`, `--x`, `x*x -> square`, redundant
    /// cast/reshape/transpose pairs, transposes folded into matmul flags.
    Arithmetic,
    /// Elementwise chains, reductions of them and matmul epilogues become fused kernels.
    Fusion,
    /// Plans buffer reuse and in-place execution; reports the planned peak bytes.
    Memory,
}

impl PassKind {
    /// Every pass, in pipeline order.
    pub const ALL: [PassKind; 6] = [
        PassKind::Pruning,
        PassKind::ConstantFolding,
        PassKind::CommonSubexpression,
        PassKind::Arithmetic,
        PassKind::Fusion,
        PassKind::Memory,
    ];

    /// The pass's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            PassKind::Pruning => "pruning",
            PassKind::ConstantFolding => "constant_folding",
            PassKind::CommonSubexpression => "cse",
            PassKind::Arithmetic => "arithmetic",
            PassKind::Fusion => "fusion",
            PassKind::Memory => "memory",
        }
    }
}

/// Switches for each pass, and the constant-folding size cap. The default runs every pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptimizerOptions {
    /// Remove dead nodes.
    pub pruning: bool,
    /// Fold constant subgraphs.
    pub constant_folding: bool,
    /// Merge common subexpressions.
    pub common_subexpression: bool,
    /// Exact algebraic simplification.
    pub arithmetic: bool,
    /// Fuse elementwise chains, reductions and matmul epilogues.
    pub fusion: bool,
    /// Plan buffer reuse and in-place execution.
    pub memory: bool,
    /// Constant folding never makes a constant larger than this many bytes, unless it is
    /// no larger than the constants it replaces (so folding never bloats the graph).
    pub max_folded_bytes: usize,
}

impl Default for OptimizerOptions {
    fn default() -> Self {
        OptimizerOptions::all()
    }
}

impl OptimizerOptions {
    /// Every pass on (the default).
    pub fn all() -> Self {
        OptimizerOptions {
            pruning: true,
            constant_folding: true,
            common_subexpression: true,
            arithmetic: true,
            fusion: true,
            memory: true,
            max_folded_bytes: 1 << 20,
        }
    }

    /// Every pass off: the graph runs as traced (dead nodes are still skipped by the
    /// executor, which only runs what outputs and side effects need).
    pub fn none() -> Self {
        OptimizerOptions {
            pruning: false,
            constant_folding: false,
            common_subexpression: false,
            arithmetic: false,
            fusion: false,
            memory: false,
            ..OptimizerOptions::all()
        }
    }

    /// Only `pass` on.
    pub fn only(pass: PassKind) -> Self {
        OptimizerOptions::none().with(pass, true)
    }

    /// These options with `pass` switched on or off.
    pub fn with(mut self, pass: PassKind, on: bool) -> Self {
        *self.flag(pass) = on;
        self
    }

    /// Whether `pass` runs.
    pub fn enabled(&self, pass: PassKind) -> bool {
        match pass {
            PassKind::Pruning => self.pruning,
            PassKind::ConstantFolding => self.constant_folding,
            PassKind::CommonSubexpression => self.common_subexpression,
            PassKind::Arithmetic => self.arithmetic,
            PassKind::Fusion => self.fusion,
            PassKind::Memory => self.memory,
        }
    }

    fn flag(&mut self, pass: PassKind) -> &mut bool {
        match pass {
            PassKind::Pruning => &mut self.pruning,
            PassKind::ConstantFolding => &mut self.constant_folding,
            PassKind::CommonSubexpression => &mut self.common_subexpression,
            PassKind::Arithmetic => &mut self.arithmetic,
            PassKind::Fusion => &mut self.fusion,
            PassKind::Memory => &mut self.memory,
        }
    }

    /// Whether a pass that may leave dead nodes behind runs (so pruning runs again).
    pub(crate) fn rewrites_enabled(&self) -> bool {
        self.constant_folding || self.common_subexpression || self.arithmetic
    }
}
