//! Snapshot support for wasnap.
//!
//! - [`globals`]: the load-time rewrite that exports every defined mutable
//!   global (so that `__stack_pointer` and friends can be saved and restored
//!   without special link flags);
//! - [`asyncify`]: checking for Binaryen's asyncify exports, and preparing a
//!   module with `wasm-opt` (`wasnap prepare`).
//!
//! Capture and resume themselves are tracked in the snapshot issue.

pub mod asyncify;
pub mod globals;
