//! The entry table: every kind of effect the journal can record.
//!
//! Rules (see docs/format.md):
//! - a tag is never reused or renumbered; a changed layout gets a new `…V2`
//!   entry with a new tag, and the old one stays readable;
//! - tags are grouped by category in ranges (core 1–19, memory 20–29,
//!   threads 30–39, snapshots 40–49, descriptors 100–129, paths 130–149,
//!   pipes/events/tty 150–179, network 200–239, inputs 240–259);
//! - tag 0 is the file header record, and tags at or above 0x1000 are never
//!   assigned, so no tag collides with the bytes of the magic;
//! - byte strings and paths are `Cow`s archived with `AsOwned`, so a decoded
//!   entry borrows them from the journal's buffer.
//!
//! `fd`, `dirfd` and similar are WASI descriptor numbers; flag words carry the
//! WASI bit layouts unchanged (`oflags`, `fdflags`, `lookupflags`, rights).

use std::borrow::Cow;

use rkyv::with::AsOwned;

/// What an entry is about. Filters drop whole categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Category {
    /// Module identity, arguments and environment, exit, clock settings.
    Core,
    /// Contents of linear memory.
    Memory,
    /// Thread call stacks and thread exits.
    Threads,
    /// Snapshot markers and resume points.
    Snapshots,
    /// Descriptors, paths, pipes, event descriptors, epoll.
    Filesystem,
    /// Terminal settings. (Writes to descriptors 1 and 2 are also reported as
    /// stdio by [`JournalEntry::category`].)
    Stdio,
    /// Sockets.
    Network,
    /// Values the program read from the outside (clocks, randomness, input
    /// bytes, poll results), for deterministic replay.
    Inputs,
}

impl Category {
    /// Every category.
    pub const ALL: &'static [Category] = &[
        Category::Core,
        Category::Memory,
        Category::Threads,
        Category::Snapshots,
        Category::Filesystem,
        Category::Stdio,
        Category::Network,
        Category::Inputs,
    ];

    /// The category's name as used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Category::Core => "core",
            Category::Memory => "memory",
            Category::Threads => "threads",
            Category::Snapshots => "snapshots",
            Category::Filesystem => "filesystem",
            Category::Stdio => "stdio",
            Category::Network => "network",
            Category::Inputs => "inputs",
        }
    }

    /// The category with this name, if any.
    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// Why a snapshot was taken (the `trigger` field of [`SnapshotV1`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnapshotTrigger {
    /// The program first read from standard input.
    FirstStdin,
    /// The program first read its environment.
    FirstEnviron,
    /// The program blocked on input that was not there.
    Idle,
    /// The snapshot interval elapsed.
    Interval,
    /// The user pressed Ctrl-C.
    Sigint,
    /// The program asked for a snapshot.
    Explicit,
}

impl SnapshotTrigger {
    /// The byte stored in the journal.
    pub const fn as_u8(self) -> u8 {
        match self {
            SnapshotTrigger::FirstStdin => 1,
            SnapshotTrigger::FirstEnviron => 2,
            SnapshotTrigger::Idle => 3,
            SnapshotTrigger::Interval => 4,
            SnapshotTrigger::Sigint => 5,
            SnapshotTrigger::Explicit => 6,
        }
    }

    /// The trigger stored as `byte`, if known.
    pub const fn from_u8(byte: u8) -> Option<SnapshotTrigger> {
        Some(match byte {
            1 => SnapshotTrigger::FirstStdin,
            2 => SnapshotTrigger::FirstEnviron,
            3 => SnapshotTrigger::Idle,
            4 => SnapshotTrigger::Interval,
            5 => SnapshotTrigger::Sigint,
            6 => SnapshotTrigger::Explicit,
            _ => return None,
        })
    }

    /// Every trigger, in the order of their bytes.
    pub const ALL: &'static [SnapshotTrigger] = &[
        SnapshotTrigger::FirstStdin,
        SnapshotTrigger::FirstEnviron,
        SnapshotTrigger::Idle,
        SnapshotTrigger::Interval,
        SnapshotTrigger::Sigint,
        SnapshotTrigger::Explicit,
    ];

    /// The trigger with this command-line name, if any.
    pub fn from_name(name: &str) -> Option<SnapshotTrigger> {
        SnapshotTrigger::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name)
    }

    /// The trigger's name as used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            SnapshotTrigger::FirstStdin => "first-stdin",
            SnapshotTrigger::FirstEnviron => "first-environ",
            SnapshotTrigger::Idle => "idle",
            SnapshotTrigger::Interval => "interval",
            SnapshotTrigger::Sigint => "sigint",
            SnapshotTrigger::Explicit => "explicit",
        }
    }
}

/// Compression of the `data` of an [`UpdateMemoryRegionV1`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemoryCompression {
    /// `data` is the region's bytes as they are.
    None,
    /// `data` is an LZ4 block whose decompressed size is `end - start`.
    Lz4Block,
}

impl MemoryCompression {
    /// The byte stored in the journal.
    pub const fn as_u8(self) -> u8 {
        match self {
            MemoryCompression::None => 0,
            MemoryCompression::Lz4Block => 1,
        }
    }

    /// The compression stored as `byte`, if known.
    pub const fn from_u8(byte: u8) -> Option<MemoryCompression> {
        match byte {
            0 => Some(MemoryCompression::None),
            1 => Some(MemoryCompression::Lz4Block),
            _ => None,
        }
    }
}

/// One line: the kind, then `field=value` pairs as in JSON, with values
/// longer than 48 characters cut short.
impl std::fmt::Display for JournalEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind().name())?;
        if let serde_json::Value::Object(map) = self.to_json() {
            for (key, value) in map {
                if key == "type" {
                    continue;
                }
                let mut text = value.to_string();
                if text.len() > 48 {
                    let cut = (0..=45)
                        .rev()
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(0);
                    text.truncate(cut);
                    text.push('…');
                }
                write!(f, " {key}={text}")?;
            }
        }
        Ok(())
    }
}

impl JournalEntry<'_> {
    /// The entry's category. Writes to descriptors 1 and 2 count as stdio;
    /// every other entry has its kind's category.
    pub fn category(&self) -> Category {
        match self {
            JournalEntry::FileDescriptorWriteV1(w) if w.fd == 1 || w.fd == 2 => Category::Stdio,
            other => other.kind().category(),
        }
    }

    /// The entry's bulk bytes, if it carries them in one field (file and
    /// socket data, memory, random bytes, inputs): what the writer can
    /// write straight from the caller's buffer.
    pub fn bulk_data(&self) -> Option<&[u8]> {
        match self {
            JournalEntry::UpdateMemoryRegionV1(e) => Some(&e.data),
            JournalEntry::FileDescriptorWriteV1(e) => Some(&e.data),
            JournalEntry::SocketSendV1(e) => Some(&e.data),
            JournalEntry::SocketSendToV1(e) => Some(&e.data),
            JournalEntry::RandomBytesV1(e) => Some(&e.data),
            JournalEntry::InputReadV1(e) => Some(&e.data),
            JournalEntry::InitModuleV1(_)
            | JournalEntry::ProcessExitV1(_)
            | JournalEntry::EnvironmentV1(_)
            | JournalEntry::ClockSetV1(_)
            | JournalEntry::PaddingV1(_)
            | JournalEntry::ThreadStateV1(_)
            | JournalEntry::ThreadExitV1(_)
            | JournalEntry::SnapshotV1(_)
            | JournalEntry::ResumedFromSnapshotV1(_)
            | JournalEntry::TimelineCutV1(_)
            | JournalEntry::OpenFileDescriptorV1(_)
            | JournalEntry::CloseFileDescriptorV1(_)
            | JournalEntry::FileDescriptorSeekV1(_)
            | JournalEntry::FileDescriptorSetSizeV1(_)
            | JournalEntry::FileDescriptorSetTimesV1(_)
            | JournalEntry::FileDescriptorSetFlagsV1(_)
            | JournalEntry::FileDescriptorSetRightsV1(_)
            | JournalEntry::FileDescriptorAdviseV1(_)
            | JournalEntry::FileDescriptorAllocateV1(_)
            | JournalEntry::RenumberFileDescriptorV1(_)
            | JournalEntry::DuplicateFileDescriptorV1(_)
            | JournalEntry::CreateDirectoryV1(_)
            | JournalEntry::RemoveDirectoryV1(_)
            | JournalEntry::UnlinkFileV1(_)
            | JournalEntry::PathRenameV1(_)
            | JournalEntry::CreateHardLinkV1(_)
            | JournalEntry::CreateSymbolicLinkV1(_)
            | JournalEntry::PathSetTimesV1(_)
            | JournalEntry::ChangeDirectoryV1(_)
            | JournalEntry::CreatePipeV1(_)
            | JournalEntry::CreateEventV1(_)
            | JournalEntry::EpollCreateV1(_)
            | JournalEntry::EpollCtlV1(_)
            | JournalEntry::TtySetV1(_)
            | JournalEntry::SocketOpenV1(_)
            | JournalEntry::SocketBindV1(_)
            | JournalEntry::SocketListenV1(_)
            | JournalEntry::SocketConnectV1(_)
            | JournalEntry::SocketAcceptV1(_)
            | JournalEntry::SocketSetOptionV1(_)
            | JournalEntry::SocketShutdownV1(_)
            | JournalEntry::SocketJoinMulticastV1(_)
            | JournalEntry::SocketLeaveMulticastV1(_)
            | JournalEntry::ClockReadV1(_)
            | JournalEntry::PollResultV1(_) => None,
        }
    }

    /// The number of payload bytes (file data, memory, paths) the entry carries.
    /// Used for statistics; not the encoded size.
    pub fn data_len(&self) -> usize {
        match self {
            JournalEntry::UpdateMemoryRegionV1(e) => e.data.len(),
            JournalEntry::FileDescriptorWriteV1(e) => e.data.len(),
            JournalEntry::ThreadStateV1(e) => e.call_stack.len() + e.memory_stack.len(),
            JournalEntry::SocketSendV1(e) => e.data.len(),
            JournalEntry::SocketSendToV1(e) => e.data.len(),
            JournalEntry::RandomBytesV1(e) => e.data.len(),
            JournalEntry::InputReadV1(e) => e.data.len(),
            JournalEntry::PollResultV1(e) => e.events.len(),
            JournalEntry::InitModuleV1(_)
            | JournalEntry::ProcessExitV1(_)
            | JournalEntry::EnvironmentV1(_)
            | JournalEntry::ClockSetV1(_)
            | JournalEntry::PaddingV1(_)
            | JournalEntry::ThreadExitV1(_)
            | JournalEntry::SnapshotV1(_)
            | JournalEntry::ResumedFromSnapshotV1(_)
            | JournalEntry::TimelineCutV1(_)
            | JournalEntry::OpenFileDescriptorV1(_)
            | JournalEntry::CloseFileDescriptorV1(_)
            | JournalEntry::FileDescriptorSeekV1(_)
            | JournalEntry::FileDescriptorSetSizeV1(_)
            | JournalEntry::FileDescriptorSetTimesV1(_)
            | JournalEntry::FileDescriptorSetFlagsV1(_)
            | JournalEntry::FileDescriptorSetRightsV1(_)
            | JournalEntry::FileDescriptorAdviseV1(_)
            | JournalEntry::FileDescriptorAllocateV1(_)
            | JournalEntry::RenumberFileDescriptorV1(_)
            | JournalEntry::DuplicateFileDescriptorV1(_)
            | JournalEntry::CreateDirectoryV1(_)
            | JournalEntry::RemoveDirectoryV1(_)
            | JournalEntry::UnlinkFileV1(_)
            | JournalEntry::PathRenameV1(_)
            | JournalEntry::CreateHardLinkV1(_)
            | JournalEntry::CreateSymbolicLinkV1(_)
            | JournalEntry::PathSetTimesV1(_)
            | JournalEntry::ChangeDirectoryV1(_)
            | JournalEntry::CreatePipeV1(_)
            | JournalEntry::CreateEventV1(_)
            | JournalEntry::EpollCreateV1(_)
            | JournalEntry::EpollCtlV1(_)
            | JournalEntry::TtySetV1(_)
            | JournalEntry::SocketOpenV1(_)
            | JournalEntry::SocketBindV1(_)
            | JournalEntry::SocketListenV1(_)
            | JournalEntry::SocketConnectV1(_)
            | JournalEntry::SocketAcceptV1(_)
            | JournalEntry::SocketSetOptionV1(_)
            | JournalEntry::SocketShutdownV1(_)
            | JournalEntry::SocketJoinMulticastV1(_)
            | JournalEntry::SocketLeaveMulticastV1(_)
            | JournalEntry::ClockReadV1(_) => 0,
        }
    }
}

journal_entries! {
    // ----- core: 1..=19 -------------------------------------------------
    /// The module the program runs: the SHA-256 of its bytes as loaded.
    1 => InitModuleV1 in Core { wasm_hash: [u8; 32] }
    /// The program exited with this code.
    2 => ProcessExitV1 in Core { exit_code: u32 }
    /// The arguments and environment (`KEY=VALUE`) the program saw.
    3 => EnvironmentV1 in Core { args: Vec<String>, env: Vec<String> }
    /// A clock was set to a time (nanoseconds).
    4 => ClockSetV1 in Core { clock_id: u32, time_ns: u64 }
    /// Nothing: `fill` (zeros) only moves the next record so that its
    /// payload starts on a page boundary of the file (a memory region that
    /// resume maps instead of copying). Readers skip it. (Format version 3.)
    5 => PaddingV1<'a> in Core {
        #[rkyv(with = AsOwned)]
        fill: Cow<'a, [u8]>,
    }

    // ----- memory: 20..=29 ----------------------------------------------
    /// Linear memory `[start, end)` now holds `data`, compressed as `compression`
    /// says (see `MemoryCompression`).
    20 => UpdateMemoryRegionV1<'a> in Memory {
        start: u64,
        end: u64,
        compression: u8,
        #[rkyv(with = AsOwned)]
        data: Cow<'a, [u8]>,
    }

    // ----- threads: 30..=39 ---------------------------------------------
    /// A thread's state at a snapshot point: its asyncify unwind buffer
    /// (`call_stack`), its shadow stack bytes, the values of every exported
    /// mutable global (in export order), and its stack layout.
    30 => ThreadStateV1<'a> in Threads {
        thread_id: u32,
        #[rkyv(with = AsOwned)]
        call_stack: Cow<'a, [u8]>,
        #[rkyv(with = AsOwned)]
        memory_stack: Cow<'a, [u8]>,
        globals: Vec<u64>,
        stack_lower: u64,
        stack_upper: u64,
        guard_size: u64,
    }
    /// A thread exited.
    31 => ThreadExitV1 in Threads { thread_id: u32, exit_code: u32 }

    // ----- snapshots: 40..=49 -------------------------------------------
    /// A complete snapshot ends here: everything needed to resume was written
    /// before this marker. `trigger` is a `SnapshotTrigger` byte.
    40 => SnapshotV1 in Snapshots { since_epoch_ns: u64, trigger: u8 }
    /// This run resumed from the snapshot whose marker record starts at
    /// `snapshot_offset`; records between that marker and this one belong to
    /// a lost timeline and are not replayed.
    41 => ResumedFromSnapshotV1 in Snapshots { snapshot_offset: u64 }
    /// A resumed program diverged from its journal at the record at
    /// `from_offset` and went on live (`--on-divergence live`): records from
    /// there up to this one belong to a lost timeline and are not replayed.
    /// (Format version 2.)
    42 => TimelineCutV1 in Snapshots { from_offset: u64 }

    // ----- descriptors: 100..=129 ---------------------------------------
    /// `path_open` succeeded and returned `fd`.
    100 => OpenFileDescriptorV1<'a> in Filesystem {
        fd: u32,
        dirfd: u32,
        dirflags: u32,
        #[rkyv(with = AsOwned)]
        path: Cow<'a, str>,
        o_flags: u16,
        fs_rights_base: u64,
        fs_rights_inheriting: u64,
        fs_flags: u16,
    }
    /// A descriptor was closed.
    101 => CloseFileDescriptorV1 in Filesystem { fd: u32 }
    /// A descriptor's offset was moved (`whence`: 0 set, 1 cur, 2 end).
    102 => FileDescriptorSeekV1 in Filesystem { fd: u32, offset: i64, whence: u8 }
    /// `data` was written at `offset` of the file behind `fd`.
    103 => FileDescriptorWriteV1<'a> in Filesystem {
        fd: u32,
        offset: u64,
        #[rkyv(with = AsOwned)]
        data: Cow<'a, [u8]>,
    }
    /// The file behind `fd` was resized.
    104 => FileDescriptorSetSizeV1 in Filesystem { fd: u32, size: u64 }
    /// The times of the file behind `fd` were set (`fst_flags` as in WASI).
    105 => FileDescriptorSetTimesV1 in Filesystem { fd: u32, atim: u64, mtim: u64, fst_flags: u16 }
    /// The descriptor's flags were set.
    106 => FileDescriptorSetFlagsV1 in Filesystem { fd: u32, flags: u16 }
    /// The descriptor's rights were reduced.
    107 => FileDescriptorSetRightsV1 in Filesystem { fd: u32, fs_rights_base: u64, fs_rights_inheriting: u64 }
    /// Advice was given about a range of the file.
    108 => FileDescriptorAdviseV1 in Filesystem { fd: u32, offset: u64, len: u64, advice: u8 }
    /// Space was allocated for a range of the file.
    109 => FileDescriptorAllocateV1 in Filesystem { fd: u32, offset: u64, len: u64 }
    /// `fd_renumber(from, to)`: `to` now refers to what `from` did; `from` is closed.
    110 => RenumberFileDescriptorV1 in Filesystem { from_fd: u32, to_fd: u32 }
    /// `copied_fd` is a duplicate of `original_fd`.
    111 => DuplicateFileDescriptorV1 in Filesystem { original_fd: u32, copied_fd: u32, cloexec: bool }

    // ----- paths: 130..=149 ---------------------------------------------
    /// A directory was created.
    130 => CreateDirectoryV1<'a> in Filesystem { fd: u32, #[rkyv(with = AsOwned)] path: Cow<'a, str> }
    /// A directory was removed.
    131 => RemoveDirectoryV1<'a> in Filesystem { fd: u32, #[rkyv(with = AsOwned)] path: Cow<'a, str> }
    /// A file was unlinked.
    132 => UnlinkFileV1<'a> in Filesystem { fd: u32, #[rkyv(with = AsOwned)] path: Cow<'a, str> }
    /// A path was renamed.
    133 => PathRenameV1<'a> in Filesystem {
        old_fd: u32,
        #[rkyv(with = AsOwned)]
        old_path: Cow<'a, str>,
        new_fd: u32,
        #[rkyv(with = AsOwned)]
        new_path: Cow<'a, str>,
    }
    /// A hard link was created.
    134 => CreateHardLinkV1<'a> in Filesystem {
        old_fd: u32,
        #[rkyv(with = AsOwned)]
        old_path: Cow<'a, str>,
        old_flags: u32,
        new_fd: u32,
        #[rkyv(with = AsOwned)]
        new_path: Cow<'a, str>,
    }
    /// A symbolic link at `new_path` (relative to `fd`) pointing to `target` was created.
    135 => CreateSymbolicLinkV1<'a> in Filesystem {
        #[rkyv(with = AsOwned)]
        target: Cow<'a, str>,
        fd: u32,
        #[rkyv(with = AsOwned)]
        new_path: Cow<'a, str>,
    }
    /// The times of a path were set.
    136 => PathSetTimesV1<'a> in Filesystem {
        fd: u32,
        flags: u32,
        #[rkyv(with = AsOwned)]
        path: Cow<'a, str>,
        atim: u64,
        mtim: u64,
        fst_flags: u16,
    }
    /// The working directory changed.
    137 => ChangeDirectoryV1<'a> in Filesystem { #[rkyv(with = AsOwned)] path: Cow<'a, str> }

    // ----- pipes, events, epoll, tty: 150..=179 -------------------------
    /// A pipe was created.
    150 => CreatePipeV1 in Filesystem { read_fd: u32, write_fd: u32 }
    /// An event descriptor was created.
    151 => CreateEventV1 in Filesystem { initial_val: u64, flags: u16, fd: u32 }
    /// An epoll instance was created.
    152 => EpollCreateV1 in Filesystem { fd: u32 }
    /// `epoll_ctl(epfd, op, fd, {events, data})`.
    153 => EpollCtlV1 in Filesystem { epfd: u32, op: u32, fd: u32, events: u32, data: u64 }
    /// Terminal settings changed.
    154 => TtySetV1 in Stdio {
        cols: u32,
        rows: u32,
        width: u32,
        height: u32,
        stdin_tty: bool,
        stdout_tty: bool,
        stderr_tty: bool,
        echo: bool,
        line_buffered: bool,
    }

    // ----- network: 200..=239 -------------------------------------------
    /// A socket was opened (`af`, `ty`, `pt`: family, type, protocol).
    200 => SocketOpenV1 in Network { af: u16, ty: u16, pt: u16, fd: u32 }
    /// A socket was bound to an address (`ip:port`).
    201 => SocketBindV1<'a> in Network { fd: u32, #[rkyv(with = AsOwned)] addr: Cow<'a, str> }
    /// A socket started listening.
    202 => SocketListenV1 in Network { fd: u32, backlog: u32 }
    /// A socket connected.
    203 => SocketConnectV1<'a> in Network {
        fd: u32,
        #[rkyv(with = AsOwned)]
        local_addr: Cow<'a, str>,
        #[rkyv(with = AsOwned)]
        peer_addr: Cow<'a, str>,
    }
    /// A connection was accepted on `listen_fd` as `fd`.
    204 => SocketAcceptV1<'a> in Network {
        listen_fd: u32,
        fd: u32,
        #[rkyv(with = AsOwned)]
        peer_addr: Cow<'a, str>,
        fd_flags: u16,
        non_blocking: bool,
    }
    /// Bytes were sent on a connected socket.
    205 => SocketSendV1<'a> in Network { fd: u32, flags: u16, #[rkyv(with = AsOwned)] data: Cow<'a, [u8]> }
    /// Bytes were sent to an address.
    206 => SocketSendToV1<'a> in Network {
        fd: u32,
        flags: u16,
        #[rkyv(with = AsOwned)]
        addr: Cow<'a, str>,
        #[rkyv(with = AsOwned)]
        data: Cow<'a, [u8]>,
    }
    /// A socket option was set (flags as 0/1, sizes in bytes, times in ns,
    /// `u64::MAX` for "none").
    207 => SocketSetOptionV1 in Network { fd: u32, option: u32, value: u64 }
    /// A socket was shut down (`how`: 1 read, 2 write, 3 both).
    208 => SocketShutdownV1 in Network { fd: u32, how: u8 }
    /// A socket joined a multicast group.
    209 => SocketJoinMulticastV1<'a> in Network {
        fd: u32,
        #[rkyv(with = AsOwned)]
        group: Cow<'a, str>,
        #[rkyv(with = AsOwned)]
        interface: Cow<'a, str>,
    }
    /// A socket left a multicast group.
    210 => SocketLeaveMulticastV1<'a> in Network {
        fd: u32,
        #[rkyv(with = AsOwned)]
        group: Cow<'a, str>,
        #[rkyv(with = AsOwned)]
        interface: Cow<'a, str>,
    }

    // ----- inputs: 240..=259 --------------------------------------------
    /// A clock read returned this time (nanoseconds).
    240 => ClockReadV1 in Inputs { clock_id: u32, time_ns: u64 }
    /// `random_get` returned these bytes.
    241 => RandomBytesV1<'a> in Inputs { #[rkyv(with = AsOwned)] data: Cow<'a, [u8]> }
    /// A read from `fd` (stdin, a socket) returned these bytes.
    242 => InputReadV1<'a> in Inputs { fd: u32, #[rkyv(with = AsOwned)] data: Cow<'a, [u8]> }
    /// `poll_oneoff` returned these events (WASI `event` records, 32 bytes each).
    243 => PollResultV1<'a> in Inputs { #[rkyv(with = AsOwned)] events: Cow<'a, [u8]> }
}

#[cfg(test)]
mod trigger_tests {
    use super::SnapshotTrigger;

    #[test]
    fn every_trigger_round_trips_by_byte_and_by_name() {
        for &trigger in SnapshotTrigger::ALL {
            assert_eq!(SnapshotTrigger::from_u8(trigger.as_u8()), Some(trigger));
            assert_eq!(SnapshotTrigger::from_name(trigger.name()), Some(trigger));
        }
        assert_eq!(SnapshotTrigger::from_name("never"), None);
        assert_eq!(SnapshotTrigger::from_u8(0), None);
    }
}
