//! Recording into a journal and replaying it, through the library: a journal
//! held in a memory buffer rebuilds the same tree and descriptors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bytes_of, captured, module_hash, program, record};
use wasnap_journal::JournalReader;
use wasnap_runtime::replay::{replay, ReplayOptions};
use wasnap_runtime::{BaseJournal, ProcessOptions};
use wasnap_wasi::ExitStatus;

fn after_descriptors(out: &str) -> String {
    out[out.find("descriptors:").unwrap()..].to_owned()
}

#[test]
fn an_in_memory_journal_rebuilds_the_tree_and_descriptors() {
    let (ctx, out) = captured("tree.wasm", &["build"]);
    let (status, mut journal) = record("tree.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    let first = String::from_utf8(out.contents()).unwrap();
    assert!(first.starts_with("built\n"), "{first}");

    // The journal's bytes, as an embedder would hold them, replayed as a
    // read-only base of a second process.
    let bytes = bytes_of(&mut journal);
    let (ctx, out) = captured("tree.wasm", &["dump"]);
    let options = ProcessOptions {
        bases: vec![BaseJournal::Buffer(bytes)],
        ..ProcessOptions::default()
    };
    let process = wasnap_runtime::Process::start(&program("tree.wasm"), ctx, options).unwrap();
    let summary = &process.report().replays[0];
    assert_eq!(summary.runs, 1);
    assert_eq!(summary.host_effects_skipped, 0);
    assert_eq!(process.run().unwrap().status, ExitStatus::Exited(0));
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
    let (ctx, _) = captured("hello.wasm", &[]);
    let (status, mut journal) = record("hello.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    let mut reader = JournalReader::from_buffer(bytes_of(&mut journal));

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

/// The runtime's replay agrees with the journal crate's reference model
/// (`wasnap_journal::state`, which compaction is proven against): the same
/// names, the same bytes, the same symlink targets, the same descriptors.
#[test]
fn runtime_replay_agrees_with_the_reference_model() {
    use wasnap_journal::state::{self, NodeKind, TargetSummary};
    use wasnap_wasi::fd::Handle;
    use wasnap_wasi::fs::{resolve, Target};

    let (ctx, _) = captured("tree.wasm", &["build"]);
    let (status, mut journal) = record("tree.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    let mut reader = JournalReader::from_buffer(bytes_of(&mut journal));
    let records = reader.read_all_owned().unwrap();
    let model = state::replay(records.iter().map(|r| (r.start, r.entry.clone())))
        .unwrap()
        .end
        .summary();

    reader.rewind();
    let (mut ctx, _) = captured("tree.wasm", &["dump"]);
    replay(&mut ctx, &mut reader, &ReplayOptions::default()).unwrap();

    let mut checked = 0;
    for ((root, path), (node, _)) in &model.names {
        assert_eq!(*root, 3, "everything hangs from the root preopen");
        let mount = &mut ctx.mounts_mut()[0];
        let resolved =
            resolve(mount, &mount.root(), path, false).unwrap_or_else(|e| panic!("{path}: {e}"));
        let Target::Entry {
            parent: wasnap_wasi::fs::DirRef::Mem(dir),
            name,
        } = &resolved.target
        else {
            panic!("{path} is not an entry")
        };
        let (dir, name) = (*dir, name.clone());
        let fs = mount.mem().unwrap();
        let ino = fs.entry_ino(dir, &name).unwrap();
        let Some(kind) = &node.kind else {
            // A name that existed before and was not changed.
            continue;
        };
        match kind {
            NodeKind::File(contents) => {
                let size = contents.size.unwrap();
                assert_eq!(
                    contents.original_until,
                    Some(0),
                    "{path} was created by the journal"
                );
                let mut expected = vec![0u8; size as usize];
                for (start, bytes) in contents.known() {
                    expected[start as usize..start as usize + bytes.len()].copy_from_slice(bytes);
                }
                let mut actual = vec![0u8; size as usize + 1];
                let n = fs.read_at(ino, 0, &mut actual).unwrap();
                assert_eq!(&actual[..n], &expected[..], "{path}");
                checked += 1;
            }
            NodeKind::Symlink(target) => {
                assert_eq!(&fs.readlink(dir, &name).unwrap(), target, "{path}")
            }
            NodeKind::Directory => assert!(fs.is_dir(ino), "{path}"),
        }
    }
    assert!(checked >= 5, "{checked} files compared");

    for (fd, d) in &model.descriptors {
        let ours = ctx
            .fds()
            .get(*fd)
            .unwrap_or_else(|_| panic!("descriptor {fd} is missing"));
        match (&d.target, &ours.handle) {
            (TargetSummary::Named(_), Handle::File { pos, .. }) => {
                assert_eq!(*pos, d.position, "position of {fd}");
                assert_eq!(ours.flags, d.flags, "flags of {fd}");
            }
            (TargetSummary::Root(_), Handle::Dir { .. }) | (TargetSummary::Stdio(_), _) => {}
            (model, ours) => panic!("descriptor {fd}: model {model:?}, runtime {ours:?}"),
        }
    }
}

/// The reference model keeps the inputs exact resume journals, in order.
#[test]
fn the_reference_model_keeps_every_input() {
    use wasnap_journal::state;
    use wasnap_journal::EntryKind;

    let data = tempfile::tempdir().unwrap();
    let lines: String = (0..5).map(|i| format!("line {i}\n")).collect();
    std::fs::write(data.path().join("input.txt"), lines).unwrap();
    let ctx = wasnap_wasi::WasiCtx::builder()
        .args(["soak.wasm", "/data/input.txt", "1"])
        .host_dir(data.path(), "/data", true)
        .stdout(wasnap_wasi::SharedOutput::default())
        .build()
        .unwrap();
    let (status, mut journal) = record("soak.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    let mut reader = JournalReader::from_buffer(bytes_of(&mut journal));
    let records = reader.read_all_owned().unwrap();
    let is_input = |kind: EntryKind| {
        matches!(
            kind,
            EntryKind::ClockReadV1
                | EntryKind::RandomBytesV1
                | EntryKind::InputReadV1
                | EntryKind::PollResultV1
        )
    };
    let journaled: Vec<_> = records
        .iter()
        .filter(|r| is_input(r.entry.kind()))
        .map(|r| r.entry.clone())
        .collect();
    // Clock, random bytes and a poll per line, and the host file read.
    assert!(journaled.len() >= 16, "{} inputs", journaled.len());
    let replayed = state::replay(records.iter().map(|r| (r.start, r.entry.clone()))).unwrap();
    let kept: Vec<_> = replayed
        .end
        .summary()
        .passthrough
        .into_iter()
        .filter(|e| is_input(e.kind()))
        .collect();
    assert_eq!(kept, journaled);
}

/// The descriptor positions a snapshot states are the model's, and the
/// positions the runtime restores.
#[test]
fn the_reference_model_and_a_resume_agree_on_snapshot_positions() {
    use wasnap_journal::state::{self, TargetSummary};
    use wasnap_journal::SnapshotTrigger;
    use wasnap_runtime::{JournalTarget, Process, ProcessOptions, SnapshotPolicy};
    use wasnap_wasi::fd::Handle;

    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("f.txt"), "abcdefghijklmnopqrstuvwxyz").unwrap();
    let ctx = |name: &str| {
        wasnap_wasi::WasiCtx::builder()
            .args([name, "/data/f.txt"])
            .seeded_dir(data.path(), "/data")
            .stdout(wasnap_wasi::SharedOutput::default())
            .build()
            .unwrap()
    };
    // Two chunks, then stop at the second snapshot.
    let policy = SnapshotPolicy::on([SnapshotTrigger::Explicit]);
    let options = |journal| ProcessOptions {
        journal: Some(JournalTarget::Memory(journal)),
        policy: SnapshotPolicy {
            stop_after: true,
            ..policy.clone()
        },
        ..ProcessOptions::default()
    };
    let program = program("chunks.async.wasm");
    let first = Process::start(
        &program,
        ctx("chunks"),
        options(wasnap_journal::Journal::in_memory()),
    )
    .unwrap()
    .run()
    .unwrap();
    let bytes = bytes_of(&mut first.journal.unwrap());
    let journal = wasnap_journal::Journal::from_buffer(bytes).unwrap();
    let second = Process::start(&program, ctx("chunks"), options(journal)).unwrap();
    assert!(second.report().resumed.is_some());
    let mut journal = second.run().unwrap().journal.unwrap();
    let records = {
        journal.reader().restart().unwrap();
        journal.reader().rewind();
        journal.reader().read_all_owned().unwrap()
    };
    let replayed = state::replay(records.iter().map(|r| (r.start, r.entry.clone()))).unwrap();
    // At the last snapshot, the model and a runtime resume agree on where
    // the file descriptor stands: after two chunks of 7 bytes.
    let model = replayed.state.summary();
    let (fd, position) = model
        .descriptors
        .iter()
        .find_map(|(fd, d)| {
            matches!(d.target, TargetSummary::Named(_)).then_some((*fd, d.position))
        })
        .unwrap_or_else(|| panic!("no open file at the snapshot: {:?}", model.descriptors));
    assert_eq!(position, 14);
    let bytes = bytes_of(&mut journal);
    let resumed = Process::start(
        &program,
        ctx("chunks"),
        ProcessOptions {
            journal: Some(JournalTarget::Memory(
                wasnap_journal::Journal::from_buffer(bytes).unwrap(),
            )),
            ..ProcessOptions::default()
        },
    )
    .unwrap();
    let Handle::File { pos, .. } = &resumed.ctx().fds().get(fd).unwrap().handle else {
        panic!("descriptor {fd} is not a file");
    };
    assert_eq!(*pos, position);
}

/// Descriptors of host mounts (here `/data`, descriptor 4; 3 is the
/// in-memory root) are reopened only if the replay needs them:
/// one opened and closed before the journal ends is never reopened (so a
/// file deleted since does not warn), one still open comes back at its
/// number and position (after a renumber too), and one opened relative to
/// a directory descriptor that is closed later comes back all the same.
#[test]
fn host_descriptors_are_reopened_only_when_the_replay_needs_them() {
    use std::borrow::Cow;
    use wasnap_journal::{
        CloseFileDescriptorV1, FileDescriptorSeekV1, Journal, JournalEntry, OpenFileDescriptorV1,
        RenumberFileDescriptorV1, WriteJournal,
    };
    use wasnap_wasi::abi::rights;
    use wasnap_wasi::fd::Handle;

    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("a.txt"), "abcdef").unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    std::fs::write(host.path().join("sub/b.txt"), "b").unwrap();
    std::fs::write(host.path().join("kept.txt"), "k").unwrap();
    let open = |fd: u32, dirfd: u32, path: &'static str, dir: bool| -> JournalEntry<'static> {
        OpenFileDescriptorV1 {
            fd,
            dirfd,
            dirflags: 0,
            path: Cow::Borrowed(path),
            o_flags: if dir {
                wasnap_wasi::abi::oflags::DIRECTORY
            } else {
                0
            },
            // A directory as a program opens one: to look things up in it.
            fs_rights_base: if dir {
                rights::PATH_OPEN | rights::FD_READDIR | rights::FD_FILESTAT_GET
            } else {
                rights::ALL
            },
            fs_rights_inheriting: rights::ALL,
            fs_flags: 0,
        }
        .into()
    };
    let close = |fd: u32| -> JournalEntry<'static> { CloseFileDescriptorV1 { fd }.into() };
    let mut entries = Vec::new();
    // Hundreds of files opened and closed, as an interpreter's imports do;
    // the last of them is deleted from the host before the replay.
    for _ in 0..300 {
        entries.push(open(5, 4, "a.txt", false));
        entries.push(close(5));
    }
    std::fs::write(host.path().join("gone.txt"), "g").unwrap();
    entries.push(open(5, 4, "gone.txt", false));
    entries.push(close(5));
    // A file opened relative to a directory descriptor closed after it.
    entries.push(open(5, 4, "sub", true));
    entries.push(open(6, 5, "b.txt", false));
    entries.push(close(5));
    // A file kept open, moved, renumbered over another one.
    entries.push(open(9, 4, "sub/b.txt", false));
    entries.push(open(7, 4, "a.txt", false));
    entries.push(
        FileDescriptorSeekV1 {
            fd: 7,
            offset: 3,
            whence: 0,
        }
        .into(),
    );
    entries.push(
        RenumberFileDescriptorV1 {
            from_fd: 7,
            to_fd: 9,
        }
        .into(),
    );
    // A file still open whose host file is gone: the one warning.
    entries.push(open(8, 4, "kept.txt", false));
    // A finished run: everything is replayed, nothing re-executed.
    entries.push(wasnap_journal::ProcessExitV1 { exit_code: 0 }.into());
    let mut journal = Journal::in_memory();
    for entry in &entries {
        journal.write(entry).unwrap();
    }
    journal.flush().unwrap();
    std::fs::remove_file(host.path().join("gone.txt")).unwrap();
    std::fs::remove_file(host.path().join("kept.txt")).unwrap();

    let mut reader = JournalReader::from_buffer(bytes_of(&mut journal));
    let mut ctx = wasnap_wasi::WasiCtx::builder()
        .host_dir(host.path(), "/data", false)
        .build()
        .unwrap();
    let summary = replay(&mut ctx, &mut reader, &ReplayOptions::default()).unwrap();
    assert_eq!(summary.warnings.len(), 1, "{summary:?} {:?}", ctx.fds());
    assert!(
        summary.warnings[0].contains("kept.txt"),
        "{:?}",
        summary.warnings
    );
    assert!(
        !host.path().join("kept.txt").exists(),
        "never created again"
    );
    for fd in [5, 7, 8] {
        assert!(
            ctx.fds().get(fd).is_err(),
            "descriptor {fd} should be closed"
        );
    }
    match &ctx.fds().get(6).unwrap().handle {
        Handle::File { pos, .. } => assert_eq!(*pos, 0),
        other => panic!("descriptor 6: {other:?}"),
    }
    match &ctx.fds().get(9).unwrap().handle {
        Handle::File { pos, .. } => assert_eq!(*pos, 3),
        other => panic!("descriptor 9: {other:?}"),
    }
}
