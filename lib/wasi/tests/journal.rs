//! Recording into a journal and replaying it, through the library: a journal
//! held in a memory buffer rebuilds the same tree and descriptors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{captured, module_hash, run_ctx};
use wasnap_journal::{Journal, JournalReader};
use wasnap_wasi::replay::{replay, ReplayOptions};
use wasnap_wasi::ExitStatus;

fn after_descriptors(out: &str) -> String {
    out[out.find("descriptors:").unwrap()..].to_owned()
}

#[test]
fn an_in_memory_journal_rebuilds_the_tree_and_descriptors() {
    let journal = Journal::in_memory();
    let (writer, mut reader) = journal.split();
    let (mut ctx, out) = captured("tree.wasm", &["build"]);
    ctx.start_recording(writer.clone(), module_hash("tree.wasm"))
        .unwrap();
    let (status, instance) = run_ctx("tree.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    drop(instance);
    writer.flush().unwrap();
    let first = String::from_utf8(out.contents()).unwrap();
    assert!(first.starts_with("built\n"), "{first}");

    // The journal's bytes, as an embedder would hold them.
    reader.restart().unwrap();
    let bytes = reader.buffer().clone();
    let mut from_bytes = JournalReader::from_buffer(bytes);

    let (mut ctx, out) = captured("tree.wasm", &["dump"]);
    let options = ReplayOptions {
        module_hash: Some(module_hash("tree.wasm")),
        ..Default::default()
    };
    let summary = replay(&mut ctx, &mut from_bytes, &options).unwrap();
    assert_eq!(summary.runs, 1);
    assert_eq!(summary.host_effects_skipped, 0);
    let (status, _) = run_ctx("tree.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    let second = String::from_utf8(out.contents()).unwrap();
    assert_eq!(after_descriptors(&first), second);
    // The dump saw the open descriptors at their offsets and the times set.
    assert!(
        second.contains(" pos=3\n") && second.contains("flags=1 "),
        "{second}"
    );
    assert!(
        second.contains("trunc.txt file size=10 links=1 mtime=2000000007000000"),
        "{second}"
    );
}

#[test]
fn a_journal_of_another_module_is_refused_unless_forced() {
    let journal = Journal::in_memory();
    let (writer, mut reader) = journal.split();
    let (mut ctx, _) = captured("hello.wasm", &[]);
    ctx.start_recording(writer.clone(), module_hash("hello.wasm"))
        .unwrap();
    let (status, _) = run_ctx("hello.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    writer.flush().unwrap();
    reader.restart().unwrap();

    let (mut ctx, _) = captured("tree.wasm", &["dump"]);
    let mut options = ReplayOptions {
        module_hash: Some(module_hash("tree.wasm")),
        ..Default::default()
    };
    let err = replay(&mut ctx, &mut reader, &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("recorded for another module") && err.contains("--force"),
        "{err}"
    );

    reader.rewind();
    options.force = true;
    let (mut ctx, _) = captured("tree.wasm", &["dump"]);
    assert!(replay(&mut ctx, &mut reader, &options).is_ok());
}
