//! One error type for the library. `main` prints it on one line and exits non-zero.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// Invalid configuration or flag: names the setting and what was expected.
    #[error("config: {0}")]
    Config(String),
    /// Missing, truncated or corrupt data files, or labels out of range.
    #[error("data: {0}")]
    Data(String),
    /// File-system errors while writing outputs or reading inputs, with the path.
    #[error("io: {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The loss or the parameters stopped being finite.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// The GPU backend was asked for and cannot be used.
    #[error("cuda: {0}")]
    Cuda(String),
    /// Stopped by a signal (SIGINT, SIGTERM) after writing the outputs so far.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// Anything else, with its context.
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}

/// `bail!(Config, "...")`-style shorthand for an early error return.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::$kind(format!($($arg)*)))
    };
}
