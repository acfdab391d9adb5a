//! The elementwise primitives, one line each: variant, public name, the dtypes it accepts,
//! the scalar function (a CPU kernel trait and its method, called fully qualified so
//! inherent methods such as `i32::pow` cannot shadow it) and the WGSL expression the GPU
//! backend will generate from (math goes through `ff_exp`, `ff_sin`, ... helpers that
//! `backend::wgpu::math` defines per dtype: builtins for f32, software for f64). CPU
//! dispatch is generated from these same tables (`backend::cpu::elementwise`), so adding an
//! elementwise op touches this file (and, for a new scalar function, the kernel trait that
//! defines it, and for a new math function its GPU helper).

/// Which dtypes an op accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub(crate) enum Accepts {
    /// f16, bf16, f32, f64.
    Float,
    /// Floats, i32, i64.
    Signed,
    /// Every dtype but bool.
    Num,
    /// bool only.
    Bool,
    /// Every dtype.
    All,
}

impl Accepts {
    /// `Ok` when `d` is accepted, else `op`'s dtype error with the usual fix.
    pub(crate) fn check(self, op: &'static str, d: crate::DType) -> crate::error::Result<()> {
        if self.allows(d) {
            return Ok(());
        }
        let fix = match self {
            Accepts::Float => Some("cast the input to a float dtype first: x.cast(DType::F32)".into()),
            Accepts::Bool => Some("compare first (e.g. x.not_equal(0)) to get a bool tensor".into()),
            _ => None,
        };
        Err(crate::error::Error::dtype(op, self.describe(), d.name(), fix))
    }
    pub(crate) fn allows(self, d: crate::DType) -> bool {
        use crate::DType::*;
        match self {
            Accepts::Float => d.is_float(),
            Accepts::Signed => d.is_float() || matches!(d, I32 | I64),
            Accepts::Num => d != Bool,
            Accepts::Bool => d == Bool,
            Accepts::All => true,
        }
    }
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Accepts::Float => "a float dtype (f16, bf16, f32, f64)",
            Accepts::Signed => "a float or signed integer dtype (f16, bf16, f32, f64, i32, i64)",
            Accepts::Num => "a numeric dtype (not bool)",
            Accepts::Bool => "bool",
            Accepts::All => "any dtype",
        }
    }
}

/// Calls `$m!` with the unary table: `Variant "name" Accepts Trait::scalar_fn "wgsl";`.
macro_rules! unary_table {
    ($m:ident) => {
        $m! {
            Neg "neg" Signed NumK::neg "-x";
            Abs "abs" Num NumK::abs "abs(x)";
            Square "square" Num NumK::square "x * x";
            Relu "relu" Num NumK::relu "ff_relu(x)";
            Exp "exp" Float FloatK::exp "ff_exp(x)";
            Log "log" Float FloatK::ln "ff_log(x)";
            Sqrt "sqrt" Float FloatK::sqrt "sqrt(x)";
            Rsqrt "rsqrt" Float FloatK::rsqrt "inverseSqrt(x)";
            Sigmoid "sigmoid" Float FloatK::sigmoid "ff_sigmoid(x)";
            Tanh "tanh" Float FloatK::tanh "ff_tanh(x)";
            Gelu "gelu" Float FloatK::gelu "0.5 * x * (1.0 + ff_erf(x * 0.7071067811865476))";
            Sin "sin" Float FloatK::sin "ff_sin(x)";
            Cos "cos" Float FloatK::cos "ff_cos(x)";
            LogicalNot "logical_not" Bool BoolK::not "!x";
        }
    };
}

/// Calls `$m!` with the binary table: `Variant "name" Accepts Out Trait::scalar_fn "wgsl";` where
/// `Out` is `Same` (the input dtype) or `Bool` (comparisons).
macro_rules! binary_table {
    ($m:ident) => {
        $m! {
            Add "add" Num Same NumK::add "a + b";
            Sub "sub" Num Same NumK::sub "a - b";
            Mul "mul" Num Same NumK::mul "a * b";
            Div "div" Float Same FloatK::div "a / b";
            FloorDiv "floor_div" Num Same NumK::floor_div "ff_floor_div(a, b)";
            Pow "pow" Num Same NumK::pow "ff_pow(a, b)";
            Maximum "maximum" Num Same NumK::maximum "ff_max(a, b)";
            Minimum "minimum" Num Same NumK::minimum "ff_min(a, b)";
            Equal "equal" All Bool CmpK::eq "a == b";
            NotEqual "not_equal" All Bool CmpK::ne "a != b";
            Less "less" Num Bool CmpK::lt "a < b";
            LessEqual "less_equal" Num Bool CmpK::le "a <= b";
            Greater "greater" Num Bool CmpK::gt "a > b";
            GreaterEqual "greater_equal" Num Bool CmpK::ge "a >= b";
            LogicalAnd "logical_and" Bool Same BoolK::and "a && b";
            LogicalOr "logical_or" Bool Same BoolK::or "a || b";
            ReluGrad "relu_grad" Num Same NumK::relu_grad "select(T(0), a, b > T(0))";
        }
    };
}

pub(crate) use {binary_table, unary_table};

macro_rules! define_unary {
    ($($v:ident $name:literal $acc:ident $k:ident::$f:ident $wgsl:literal;)*) => {
        /// An elementwise op of one input.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum UnaryOp { $($v,)* }
        impl UnaryOp {
            /// Every unary op, in table order (the tidy test reads it).
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$v,)*];
            pub fn name(self) -> &'static str { match self { $(UnaryOp::$v => $name,)* } }
            pub(crate) fn accepts(self) -> Accepts { match self { $(UnaryOp::$v => Accepts::$acc,)* } }
            #[allow(dead_code)] // read by the GPU backend
            pub(crate) fn wgsl(self) -> &'static str { match self { $(UnaryOp::$v => $wgsl,)* } }
        }
    };
}

macro_rules! define_binary {
    ($($v:ident $name:literal $acc:ident $out:ident $k:ident::$f:ident $wgsl:literal;)*) => {
        /// An elementwise op of two broadcast inputs of one dtype.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum BinaryOp { $($v,)* }
        impl BinaryOp {
            /// Every binary op, in table order (the tidy test reads it).
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$v,)*];
            pub fn name(self) -> &'static str { match self { $(BinaryOp::$v => $name,)* } }
            pub(crate) fn accepts(self) -> Accepts { match self { $(BinaryOp::$v => Accepts::$acc,)* } }
            /// Whether the output is bool (a comparison) rather than the input dtype.
            pub(crate) fn is_comparison(self) -> bool {
                match self { $(BinaryOp::$v => stringify!($out) == "Bool",)* }
            }
            #[allow(dead_code)] // read by the GPU backend
            pub(crate) fn wgsl(self) -> &'static str { match self { $(BinaryOp::$v => $wgsl,)* } }
        }
    };
}

unary_table!(define_unary);
binary_table!(define_binary);
