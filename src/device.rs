//! `Device`: where a tensor lives, `Cpu` or `Gpu(n)` (a wgpu adapter, `backend::wgpu`);
//! parsing TensorFlow's device names and their canonical `Display`.

use std::fmt;

use crate::error::{Error, Result};

/// A device a tensor can live on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Device {
    /// The host CPU (rayon kernels).
    #[default]
    Cpu,
    /// A GPU by ordinal (wgpu).
    Gpu(usize),
}

impl Device {
    /// Parses `"/GPU:0"`, `"/device:CPU:0"`, `"gpu:1"`, `"cpu"`, or the full TensorFlow form
    /// `"/job:localhost/replica:0/task:0/device:GPU:0"` (case-insensitive).
    #[track_caller]
    pub fn parse(s: &str) -> Result<Device> {
        // Taken outside the closure, which is not `#[track_caller]`.
        let loc = crate::error::Loc::caller();
        let bad = || Error::InvalidArgument {
            op: "Device::parse",
            message: format!(
                "cannot parse device {s:?}: expected a name like \"/CPU:0\", \"/GPU:0\" or \"/device:GPU:1\""
            ),
            location: Some(loc),
        };
        let lower = s.trim().to_ascii_lowercase();
        // Keep the last path component that names a device; job/replica/task parts are ignored.
        let part = lower.rsplit('/').find(|p| !p.is_empty()).ok_or_else(bad)?;
        let part = part.strip_prefix("device:").unwrap_or(part);
        let (kind, ord) = match part.split_once(':') {
            Some((k, o)) => (k, o.parse::<usize>().map_err(|_| bad())?),
            None => (part, 0),
        };
        match kind {
            "cpu" if ord == 0 => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu(ord)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Device {
    /// The canonical name, as TensorFlow spells it: `/device:CPU:0`, `/device:GPU:1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("/device:CPU:0"),
            Device::Gpu(n) => write!(f, "/device:GPU:{n}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        Device::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tensorflow_names() {
        assert_eq!(Device::parse("/GPU:0").unwrap(), Device::Gpu(0));
        assert_eq!(Device::parse("/device:CPU:0").unwrap(), Device::Cpu);
        assert_eq!(Device::parse("/job:localhost/replica:0/task:0/device:GPU:3").unwrap(), Device::Gpu(3));
        assert_eq!(Device::Gpu(2).to_string(), "/device:GPU:2");
        assert!(matches!(Device::parse("/TPU:0"), Err(Error::InvalidArgument { .. })));
        assert!(matches!(Device::parse("/CPU:1"), Err(Error::InvalidArgument { .. })));
    }
}
