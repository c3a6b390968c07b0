//! DWARF left out of the module wasnap compiles.
//!
//! The engine keeps every custom section of a module in its compiled form
//! and copies each one out again whenever the compiled module is loaded: a
//! module built with debugging information (CPython for WASI carries 15 MB
//! of DWARF in `.debug_*` sections) pays for that on every start, cached or
//! not. Nothing at run time reads DWARF (backtraces name functions from the
//! `name` section, which stays), so the load-time rewrite drops the
//! `.debug_*` custom sections and copies every other section byte for byte.
//! Journals name a module by its original bytes, so they are unaffected.

use std::borrow::Cow;

use wasm_encoder::{RawSection, Section};
use wasmparser::{Parser, Payload};

use crate::globals::PrepareError;

/// The prefix of the custom sections that hold DWARF.
pub const DEBUG_PREFIX: &str = ".debug_";

/// `wasm` without its `.debug_*` custom sections (the same bytes, borrowed,
/// when it has none).
pub fn without_debug_sections(wasm: &[u8]) -> Result<Cow<'_, [u8]>, PrepareError> {
    let mut kept = Vec::new();
    let mut dropped = false;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if let Payload::Version { encoding, .. } = &payload {
            if *encoding != wasmparser::Encoding::Module {
                return Err(PrepareError::Component);
            }
        }
        let debug =
            matches!(&payload, Payload::CustomSection(c) if c.name().starts_with(DEBUG_PREFIX));
        if let Some((id, range)) = payload.as_section() {
            if debug {
                dropped = true;
            } else {
                kept.push((id, range.start as usize..range.end as usize));
            }
        }
    }
    if !dropped {
        return Ok(Cow::Borrowed(wasm));
    }
    let mut out = Vec::with_capacity(wasm.len());
    // The magic and version: the first 8 bytes of every module.
    out.extend_from_slice(&wasm[..8]);
    for (id, range) in kept {
        RawSection {
            id,
            data: &wasm[range],
        }
        .append_to(&mut out);
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use wasm_encoder::{CustomSection, Module, RawSection as Raw};

    use super::*;

    /// A module with a function and its `name` section, then DWARF
    /// sections and a `producers` section.
    fn module(with_debug: bool) -> Vec<u8> {
        let body =
            wasmer::wat2wasm(br#"(module (func $f (export "f") (result i32) (i32.const 7)))"#)
                .unwrap()
                .into_owned();
        let mut module = Module::new();
        for payload in Parser::new(0).parse_all(&body) {
            if let Some((id, range)) = payload.unwrap().as_section() {
                module.section(&Raw {
                    id,
                    data: &body[range.start as usize..range.end as usize],
                });
            }
        }
        if with_debug {
            for name in [".debug_info", ".debug_line"] {
                module.section(&CustomSection {
                    name: name.into(),
                    data: vec![0xAA; 300].into(),
                });
            }
        }
        module.section(&CustomSection {
            name: "producers".into(),
            data: vec![0].into(),
        });
        module.finish()
    }

    fn custom_names(wasm: &[u8]) -> Vec<String> {
        Parser::new(0)
            .parse_all(wasm)
            .filter_map(|p| match p.unwrap() {
                Payload::CustomSection(c) => Some(c.name().to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn debug_sections_go_and_everything_else_stays() {
        let with = module(true);
        let without = without_debug_sections(&with).unwrap();
        assert!(matches!(without, Cow::Owned(_)));
        assert_eq!(
            custom_names(&with),
            ["name", ".debug_info", ".debug_line", "producers"]
        );
        assert_eq!(custom_names(&without), ["name", "producers"]);
        // Byte for byte what the module would be without them.
        assert_eq!(*without, module(false)[..]);
        wasmparser::Validator::new().validate_all(&without).unwrap();
    }

    #[test]
    fn a_module_without_debug_sections_is_returned_as_it_is() {
        let plain = module(false);
        let same = without_debug_sections(&plain).unwrap();
        assert!(matches!(same, Cow::Borrowed(_)));
        assert_eq!(*same, plain[..]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(without_debug_sections(b"\0asm\x01\0\0\0\x0a\xff").is_err());
    }
}
