//! Export every defined mutable global.
//!
//! The rewrite copies every section byte for byte and rebuilds only the
//! export section: the original exports, in order, then one export
//! `__wasnap_global_N` per defined mutable global `N` that was not exported
//! already. Function, table, memory and global indices are unchanged, so the
//! rewritten module behaves exactly like the original.

use std::ops::Range;

use wasm_encoder::{Encode, ExportKind, ExportSection, RawSection, Section};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// The prefix of the exports the rewrite adds.
pub const EXPORT_PREFIX: &str = "__wasnap_global_";

const EXPORT_SECTION_ID: u8 = 7;

/// A module with its mutable globals exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The rewritten module.
    pub wasm: Vec<u8>,
    /// Every defined mutable global: its index and the export that names it,
    /// in index order. Snapshots save their values in this order.
    pub globals: Vec<(u32, String)>,
}

/// Why a module cannot be rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The input does not parse.
    #[error("not a valid WebAssembly module: {0}")]
    Parse(String),
    /// A component, not a core module.
    #[error("component modules are not supported")]
    Component,
}

impl From<wasmparser::BinaryReaderError> for PrepareError {
    fn from(e: wasmparser::BinaryReaderError) -> PrepareError {
        PrepareError::Parse(e.to_string())
    }
}

fn export_kind(kind: ExternalKind) -> ExportKind {
    match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        // Any other kind is copied as a function would be misread; refuse
        // it in `export_mutable_globals` instead.
        _ => ExportKind::Func,
    }
}

/// Rewrites `wasm` so that every defined mutable global is exported.
pub fn export_mutable_globals(wasm: &[u8]) -> Result<Prepared, PrepareError> {
    let mut imported_globals = 0u32;
    let mut mutable: Vec<u32> = Vec::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    // Sections as (id, content range), in order; the export section's slot
    // is remembered so that the rebuilt one goes back in the same place.
    let mut sections: Vec<(u8, Range<usize>)> = Vec::new();
    let mut export_slot = None;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        match &payload {
            Payload::Version { encoding, .. } if *encoding != wasmparser::Encoding::Module => {
                return Err(PrepareError::Component);
            }
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    if let TypeRef::Global(_) = import?.ty {
                        imported_globals += 1;
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for (i, global) in reader.clone().into_iter().enumerate() {
                    if global?.ty.mutable {
                        mutable.push(imported_globals + i as u32);
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    let export = export?;
                    if !matches!(
                        export.kind,
                        ExternalKind::Func
                            | ExternalKind::Table
                            | ExternalKind::Memory
                            | ExternalKind::Global
                            | ExternalKind::Tag
                    ) {
                        return Err(PrepareError::Parse(format!(
                            "unsupported export kind of `{}`",
                            export.name
                        )));
                    }
                    exports.push((export.name.to_owned(), export.kind, export.index));
                }
                export_slot = Some(sections.len());
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            sections.push((id, range.start as usize..range.end as usize));
        }
    }

    let mut globals = Vec::with_capacity(mutable.len());
    let mut added = Vec::new();
    for &index in &mutable {
        let existing = exports
            .iter()
            .find(|(_, kind, i)| *kind == ExternalKind::Global && *i == index);
        let name = match existing {
            Some((name, _, _)) => name.clone(),
            None => {
                let name = format!("{EXPORT_PREFIX}{index}");
                added.push((name.clone(), index));
                name
            }
        };
        globals.push((index, name));
    }
    if added.is_empty() {
        return Ok(Prepared {
            wasm: wasm.to_vec(),
            globals,
        });
    }

    let mut export_section = ExportSection::new();
    for (name, kind, index) in &exports {
        export_section.export(name, export_kind(*kind), *index);
    }
    for (name, index) in &added {
        export_section.export(name, ExportKind::Global, *index);
    }
    // Without an export section, the new one goes after the last section
    // whose id orders before it (type..global are 1..6; custom sections 0
    // stay where they are).
    let slot = export_slot.unwrap_or_else(|| {
        sections
            .iter()
            .rposition(|(id, _)| (1..EXPORT_SECTION_ID).contains(id))
            .map_or(0, |p| p + 1)
    });

    let mut out = Vec::with_capacity(wasm.len() + 32 * added.len());
    out.extend_from_slice(&wasm[..8]); // magic and version
    for (position, (id, range)) in sections.iter().enumerate() {
        if position == slot && export_slot.is_none() {
            out.push(EXPORT_SECTION_ID);
            export_section.encode(&mut out);
        }
        if Some(position) == export_slot {
            out.push(export_section.id());
            export_section.encode(&mut out);
            continue;
        }
        RawSection {
            id: *id,
            data: &wasm[range.clone()],
        }
        .append_to(&mut out);
    }
    if slot == sections.len() && export_slot.is_none() {
        out.push(EXPORT_SECTION_ID);
        export_section.encode(&mut out);
    }
    Ok(Prepared { wasm: out, globals })
}
