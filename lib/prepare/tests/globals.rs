//! The load-time rewrite exports every defined mutable global and changes
//! nothing else.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use wasmer::{Engine, ExternType, Module, Mutability};
use wasnap_prepare::globals::{export_mutable_globals, EXPORT_PREFIX};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/wasi")
            .join(name),
    )
    .unwrap()
}

fn exports(wasm: &[u8]) -> Vec<(String, ExternType)> {
    let module = Module::new(&Engine::default(), wasm).unwrap();
    module
        .exports()
        .map(|e| (e.name().to_owned(), e.ty().clone()))
        .collect()
}

#[test]
fn a_c_program_gets_its_stack_pointer_exported() {
    let wasm = fixture("hello.wasm");
    let prepared = export_mutable_globals(&wasm).unwrap();
    assert!(!prepared.globals.is_empty());
    // __stack_pointer is global 0 in clang's output.
    assert_eq!(prepared.globals[0], (0, format!("{EXPORT_PREFIX}0")));
    let before = exports(&wasm);
    let after = exports(&prepared.wasm);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "original exports come first, unchanged"
    );
    for (index, name) in &prepared.globals {
        let (_, ty) = after
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} ({index}) not exported"));
        let ExternType::Global(g) = ty else {
            panic!("{name} is not a global")
        };
        assert_eq!(g.mutability, Mutability::Var);
    }
    // Everything but the export section is copied byte for byte: the
    // rewritten module is longer by exactly the added exports.
    assert!(prepared.wasm.len() > wasm.len());
    // Idempotent: a second rewrite adds nothing.
    assert_eq!(
        export_mutable_globals(&prepared.wasm).unwrap().wasm,
        prepared.wasm
    );
}

#[test]
fn imported_globals_shift_indices_and_exported_ones_keep_their_names() {
    let wat = r#"(module
        (import "env" "g0" (global (mut i32)))
        (global $a (mut i64) (i64.const 1))
        (global $b i32 (i32.const 2))
        (global $c (mut i32) (i32.const 3))
        (func (export "f") (result i32) global.get $c)
        (export "named_c" (global $c)))"#;
    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap();
    let prepared = export_mutable_globals(&wasm).unwrap();
    assert_eq!(
        prepared.globals,
        vec![(1, format!("{EXPORT_PREFIX}1")), (3, "named_c".to_owned())]
    );
    let names: Vec<String> = exports(&prepared.wasm)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        vec![
            "f".to_owned(),
            "named_c".to_owned(),
            format!("{EXPORT_PREFIX}1")
        ]
    );
}

#[test]
fn a_module_without_an_export_section_gets_one_in_the_right_place() {
    let wat = r#"(module
        (memory 1)
        (global (mut i32) (i32.const 7))
        (func $main)
        (start $main)
        (data (i32.const 0) "hi"))"#;
    let wasm = wasmer::wat2wasm(wat.as_bytes()).unwrap();
    let prepared = export_mutable_globals(&wasm).unwrap();
    let names: Vec<String> = exports(&prepared.wasm)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec![format!("{EXPORT_PREFIX}0")]);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(export_mutable_globals(b"\0asm\x01\0\0\0\x06\xff").is_err());
    assert!(export_mutable_globals(b"not wasm at all").is_err());
}
