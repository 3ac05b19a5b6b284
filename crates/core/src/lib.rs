//! Shared foundations of every FactoryChain service: the one [`ErrorCode`]
//! that maps to gRPC and HTTP, config layering (defaults < TOML < `FC_*`
//! environment), tracing set-up and the shutdown token.
//!
//! Invariant: this crate does no network I/O, and no file I/O but [`fsutil`]'s
//! private-file creation and (feature `redb`) the `redbfile` wrapper of the
//! embedded stores' database files.

pub mod config;
pub mod error;
pub mod fsutil;
#[cfg(feature = "redb")]
pub mod redbfile;
pub mod shutdown;
pub mod telemetry;
pub mod time;

pub use error::{ErrorCode, ServiceError};
pub use shutdown::Shutdown;
