//! Module preparation for wasnap's snapshots.
//!
//! - [`globals`]: the load-time rewrite that exports every defined mutable
//!   global (so that `__stack_pointer` and friends can be saved and restored
//!   without special link flags);
//! - [`debug_sections`]: the load-time rewrite that leaves DWARF out of the
//!   compiled module (the engine would copy it out on every load);
//! - [`asyncify`]: checking for Binaryen's asyncify exports, and preparing a
//!   module with `wasm-opt` (`wasnap prepare`).
//!
//! Capturing and restoring snapshots is the runtime's work (crate
//! `wasnap-runtime`); this crate only rewrites modules, and has no engine.

#![warn(missing_docs)]

pub mod asyncify;
pub mod debug_sections;
pub mod globals;
