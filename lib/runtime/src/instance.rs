//! Running `_start` with snapshots: each time a snapshot point unwinds the
//! guest, the snapshot is written to the journal, then the run stops or
//! rewinds and goes on.

use std::time::Instant;

use wasnap_journal::memory::MemoryLayers;
use wasnap_journal::{FileDescriptorSeekV1, JournalEntry, JournalWriter, ThreadStateV1};
use wasnap_wasi::fd::Handle;
use wasnap_wasi::{ExitStatus, WasiInstance};

use crate::memory_map::{MemoryRestore, RestoreFigures};
use crate::snapshot::{SnapshotControl, SnapshotError, SnapshotStats, SnapshotWrite};

/// A WASI instance whose snapshot points are served by [`SnapshotControl`].
pub type Instance = WasiInstance<SnapshotControl>;

/// Runs the program to its end, or to the snapshot it stops after.
pub(crate) fn run(instance: &mut Instance, writer: Option<&JournalWriter>) -> ExitStatus {
    loop {
        let result = instance.call_start();
        if result.is_err() || !instance.points().unwinding() {
            return instance.finish(result);
        }
        // `_start` returned because a snapshot point unwound it.
        match take_snapshot(instance, writer) {
            Ok(true) => {
                instance.ctx_mut().flush_stdio();
                return ExitStatus::Snapshotted;
            }
            Ok(false) => continue,
            Err(e) => {
                return ExitStatus::Trapped {
                    message: e.to_string(),
                    backtrace: Vec::new(),
                }
            }
        }
    }
}

/// Writes the snapshot whose unwind just finished; returns whether the
/// program stops now, else starts the rewind.
fn take_snapshot(
    instance: &mut Instance,
    writer: Option<&JournalWriter>,
) -> Result<bool, SnapshotError> {
    let started = Instant::now();
    let now = instance.ctx_mut().realtime();
    // The control lives in the store's data; take it out to use the store.
    let mut control = std::mem::take(instance.points_mut());
    // Every file descriptor's position belongs to the snapshot: reads move
    // positions without journal records of their own.
    let positions: Vec<JournalEntry<'static>> = instance
        .ctx()
        .fds()
        .iter()
        .filter_map(|(fd, desc)| match &desc.handle {
            Handle::File { pos, .. } => Some(
                FileDescriptorSeekV1 {
                    fd,
                    offset: i64::try_from(*pos).unwrap_or(i64::MAX),
                    whence: 0,
                }
                .into(),
            ),
            _ => None,
        })
        .collect();
    let outcome = (|| {
        let captured = control.capture(&mut instance.store, now)?;
        let (buf, tracking) = (captured.buf, captured.tracking);
        let writer = writer.ok_or(SnapshotError::NoJournal)?;
        let journal_before = writer.end_offset();
        let (regions, written) =
            captured.write(&instance.store, writer, &positions, &mut control.children)?;
        let memory_bytes = captured.runs.last().map_or(0, |r| r.end as u64);
        match written {
            // The operating system has the snapshot (a crash of this process
            // cannot lose it); the program goes on while it reaches the disk.
            SnapshotWrite::InPause => writer.flush()?,
            // The child writes it: the program goes on at once; a crash of
            // this process before the child ends loses nothing either.
            SnapshotWrite::ByChild => {}
            // Behind that child: buffered, written once it is done.
            SnapshotWrite::BehindChild => {}
        }
        // A snapshot is complete on disk once the sync below ends: the next
        // snapshot, and the end of the run, wait for it.
        control.push_stats(SnapshotStats {
            pause: started.elapsed(),
            memory_bytes,
            regions,
            journal_bytes: writer.end_offset() - journal_before,
            tracking,
            written,
            on_disk_after: None,
        });
        control.sync_in_background(writer.clone(), started)?;
        Ok(buf)
    })();
    let result = match outcome {
        Ok(_) if control.stops_after() => Ok(true),
        Ok(buf) => control
            .start_rewind(&mut instance.store, buf)
            .map(|()| false),
        Err(e) => Err(e),
    };
    *instance.points_mut() = control;
    result
}

/// Restores memory and globals from a snapshot; the next run continues
/// where the snapshot was taken, its memory put back as `how` says.
/// `track_writes`: the process will take
/// snapshots (see [`SnapshotControl::restore`](crate::snapshot::SnapshotControl::restore)).
pub(crate) fn restore(
    instance: &mut Instance,
    memory: &MemoryLayers,
    thread: &ThreadStateV1<'_>,
    how: MemoryRestore,
    track_writes: bool,
) -> Result<RestoreFigures, SnapshotError> {
    let mut control = std::mem::take(instance.points_mut());
    let result = control.restore(&mut instance.store, memory, thread, how, track_writes);
    *instance.points_mut() = control;
    result
}
