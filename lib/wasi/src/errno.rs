//! Every errno the host returns, and every mapping into it, in one place.
//!
//! A syscall either returns an [`Errno`] to the guest (the guest goes on) or
//! raises a [`Trap`] (the guest stops): see [`SysError`].

use std::io;

macro_rules! errnos {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        /// A `wasi_snapshot_preview1` errno.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum Errno {
            $(#[doc = $text] $name = $value,)*
        }

        impl Errno {
            /// The errno's name as the specification spells it (`"badf"`).
            pub fn name(self) -> &'static str {
                match self { $(Errno::$name => stringify!($name),)* }
            }

            /// A one-line description.
            pub fn description(self) -> &'static str {
                match self { $(Errno::$name => $text,)* }
            }

            /// Every errno, in numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];
        }
    };
}

errnos! {
    Success = 0, "No error occurred.";
    TooBig = 1, "Argument list too long.";
    Acces = 2, "Permission denied.";
    Addrinuse = 3, "Address in use.";
    Addrnotavail = 4, "Address not available.";
    Afnosupport = 5, "Address family not supported.";
    Again = 6, "Resource unavailable, or operation would block.";
    Already = 7, "Connection already in progress.";
    Badf = 8, "Bad file descriptor.";
    Badmsg = 9, "Bad message.";
    Busy = 10, "Device or resource busy.";
    Canceled = 11, "Operation canceled.";
    Child = 12, "No child processes.";
    Connaborted = 13, "Connection aborted.";
    Connrefused = 14, "Connection refused.";
    Connreset = 15, "Connection reset.";
    Deadlk = 16, "Resource deadlock would occur.";
    Destaddrreq = 17, "Destination address required.";
    Dom = 18, "Mathematics argument out of domain of function.";
    Dquot = 19, "Reserved.";
    Exist = 20, "File exists.";
    Fault = 21, "Bad address.";
    Fbig = 22, "File too large.";
    Hostunreach = 23, "Host is unreachable.";
    Idrm = 24, "Identifier removed.";
    Ilseq = 25, "Illegal byte sequence.";
    Inprogress = 26, "Operation in progress.";
    Intr = 27, "Interrupted function.";
    Inval = 28, "Invalid argument.";
    Io = 29, "I/O error.";
    Isconn = 30, "Socket is connected.";
    Isdir = 31, "Is a directory.";
    Loop = 32, "Too many levels of symbolic links.";
    Mfile = 33, "File descriptor value too large.";
    Mlink = 34, "Too many links.";
    Msgsize = 35, "Message too large.";
    Multihop = 36, "Reserved.";
    Nametoolong = 37, "Filename too long.";
    Netdown = 38, "Network is down.";
    Netreset = 39, "Connection aborted by network.";
    Netunreach = 40, "Network unreachable.";
    Nfile = 41, "Too many files open in system.";
    Nobufs = 42, "No buffer space available.";
    Nodev = 43, "No such device.";
    Noent = 44, "No such file or directory.";
    Noexec = 45, "Executable file format error.";
    Nolck = 46, "No locks available.";
    Nolink = 47, "Reserved.";
    Nomem = 48, "Not enough space.";
    Nomsg = 49, "No message of the desired type.";
    Noprotoopt = 50, "Protocol not available.";
    Nospc = 51, "No space left on device.";
    Nosys = 52, "Function not supported.";
    Notconn = 53, "The socket is not connected.";
    Notdir = 54, "Not a directory or a symbolic link to a directory.";
    Notempty = 55, "Directory not empty.";
    Notrecoverable = 56, "State not recoverable.";
    Notsock = 57, "Not a socket.";
    Notsup = 58, "Not supported, or operation not supported on socket.";
    Notty = 59, "Inappropriate I/O control operation.";
    Nxio = 60, "No such device or address.";
    Overflow = 61, "Value too large to be stored in data type.";
    Ownerdead = 62, "Previous owner died.";
    Perm = 63, "Operation not permitted.";
    Pipe = 64, "Broken pipe.";
    Proto = 65, "Protocol error.";
    Protonosupport = 66, "Protocol not supported.";
    Prototype = 67, "Protocol wrong type for socket.";
    Range = 68, "Result too large.";
    Rofs = 69, "Read-only file system.";
    Spipe = 70, "Invalid seek.";
    Srch = 71, "No such process.";
    Stale = 72, "Reserved.";
    Timedout = 73, "Connection timed out.";
    Txtbsy = 74, "Text file busy.";
    Xdev = 75, "Cross-device link.";
    Notcapable = 76, "Extension: Capabilities insufficient.";
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            self.name().to_ascii_uppercase(),
            self.description()
        )
    }
}

impl std::error::Error for Errno {}

impl Errno {
    /// Maps a Linux errno number (from a host system call) to WASI.
    pub fn from_host_errno(code: i32) -> Errno {
        // Linux x86-64/aarch64 numbering (asm-generic).
        match code {
            1 => Errno::Perm,
            2 => Errno::Noent,
            3 => Errno::Srch,
            4 => Errno::Intr,
            5 => Errno::Io,
            6 => Errno::Nxio,
            7 => Errno::TooBig,
            8 => Errno::Noexec,
            9 => Errno::Badf,
            10 => Errno::Child,
            11 => Errno::Again,
            12 => Errno::Nomem,
            13 => Errno::Acces,
            14 => Errno::Fault,
            16 => Errno::Busy,
            17 => Errno::Exist,
            18 => Errno::Xdev,
            19 => Errno::Nodev,
            20 => Errno::Notdir,
            21 => Errno::Isdir,
            22 => Errno::Inval,
            23 => Errno::Nfile,
            24 => Errno::Mfile,
            25 => Errno::Notty,
            26 => Errno::Txtbsy,
            27 => Errno::Fbig,
            28 => Errno::Nospc,
            29 => Errno::Spipe,
            30 => Errno::Rofs,
            31 => Errno::Mlink,
            32 => Errno::Pipe,
            33 => Errno::Dom,
            34 => Errno::Range,
            35 => Errno::Deadlk,
            36 => Errno::Nametoolong,
            37 => Errno::Nolck,
            38 => Errno::Nosys,
            39 => Errno::Notempty,
            40 => Errno::Loop,
            61 => Errno::Nomsg,
            75 => Errno::Overflow,
            84 => Errno::Ilseq,
            88 => Errno::Notsock,
            90 => Errno::Msgsize,
            95 => Errno::Notsup,
            97 => Errno::Afnosupport,
            98 => Errno::Addrinuse,
            99 => Errno::Addrnotavail,
            100 => Errno::Netdown,
            101 => Errno::Netunreach,
            103 => Errno::Connaborted,
            104 => Errno::Connreset,
            105 => Errno::Nobufs,
            106 => Errno::Isconn,
            107 => Errno::Notconn,
            110 => Errno::Timedout,
            111 => Errno::Connrefused,
            113 => Errno::Hostunreach,
            114 => Errno::Already,
            115 => Errno::Inprogress,
            _ => Errno::Io,
        }
    }
}

impl From<io::Error> for Errno {
    fn from(error: io::Error) -> Errno {
        if let Some(code) = error.raw_os_error() {
            return Errno::from_host_errno(code);
        }
        use io::ErrorKind as K;
        match error.kind() {
            K::NotFound => Errno::Noent,
            K::PermissionDenied => Errno::Acces,
            K::ConnectionRefused => Errno::Connrefused,
            K::ConnectionReset => Errno::Connreset,
            K::ConnectionAborted => Errno::Connaborted,
            K::NotConnected => Errno::Notconn,
            K::AddrInUse => Errno::Addrinuse,
            K::AddrNotAvailable => Errno::Addrnotavail,
            K::BrokenPipe => Errno::Pipe,
            K::AlreadyExists => Errno::Exist,
            K::WouldBlock => Errno::Again,
            K::InvalidInput => Errno::Inval,
            K::InvalidData => Errno::Ilseq,
            K::TimedOut => Errno::Timedout,
            K::Interrupted => Errno::Intr,
            K::Unsupported => Errno::Notsup,
            K::OutOfMemory => Errno::Nomem,
            K::UnexpectedEof => Errno::Io,
            _ => Errno::Io,
        }
    }
}

impl From<virtual_fs::FsError> for Errno {
    fn from(error: virtual_fs::FsError) -> Errno {
        use virtual_fs::FsError as F;
        match error {
            F::EntryNotFound => Errno::Noent,
            F::AlreadyExists => Errno::Exist,
            F::PermissionDenied => Errno::Acces,
            F::NotAFile => Errno::Isdir,
            F::BaseNotDirectory => Errno::Notdir,
            F::DirectoryNotEmpty => Errno::Notempty,
            F::InvalidInput => Errno::Inval,
            F::InvalidData => Errno::Ilseq,
            F::IOError | F::UnexpectedEof | F::Lock => Errno::Io,
            F::Unsupported => Errno::Notsup,
            _ => Errno::Io,
        }
    }
}

/// Why a syscall stops the guest instead of returning an errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Trap {
    /// `proc_exit`: the program ended with this exit code.
    #[error("the program exited with code {0}")]
    Exit(u32),
    /// `proc_raise` of a signal whose default action ends the process.
    #[error("the program raised signal {0}")]
    Signal(u8),
    /// The guest passed a pointer (or a length) outside its linear memory.
    #[error("guest memory access out of bounds: {len} bytes at {ptr:#x} (memory is {memory_size:#x} bytes)")]
    OutOfBounds {
        /// The guest address.
        ptr: u64,
        /// Length in bytes.
        len: u64,
        /// The memory's size.
        memory_size: u64,
    },
    /// The module does not export a memory called `memory`.
    #[error("the module exports no memory named `memory`")]
    NoMemory,
    /// A resumed program did something other than what its journal holds.
    #[error(transparent)]
    Divergence(Box<crate::effects::Divergence>),
    /// The journal could not be written: running on without recording
    /// would lose data silently.
    #[error("cannot write the journal {journal}: {source}")]
    Journal {
        /// The journal's name (its path, or `<memory>`).
        journal: String,
        /// What the journal said.
        source: wasnap_journal::JournalError,
    },
}

/// Why a syscall's implementation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// Returned to the guest as an errno.
    #[error("{0}")]
    Errno(Errno),
    /// Stops the guest.
    #[error(transparent)]
    Trap(Trap),
}

impl From<Errno> for SysError {
    fn from(errno: Errno) -> SysError {
        SysError::Errno(errno)
    }
}

impl From<Trap> for SysError {
    fn from(trap: Trap) -> SysError {
        SysError::Trap(trap)
    }
}

impl From<io::Error> for SysError {
    fn from(error: io::Error) -> SysError {
        SysError::Errno(error.into())
    }
}

/// What every syscall implementation returns.
pub type SysResult<T = ()> = Result<T, SysError>;
