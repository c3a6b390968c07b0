//! The `wasi_snapshot_preview1` import object: one wasmer host function per
//! syscall, each a thin shim that opens checked guest memory, calls the
//! [`WasiCtx`] method, and turns its result into an errno or a trap.

use wasmer::{Function, FunctionEnv, FunctionEnvMut, Imports, Memory, RuntimeError, Store};

use crate::ctx::WasiCtx;
use crate::errno::{Errno, SysError, SysResult, Trap};
use crate::memory::GuestMemory;
use crate::points::{is_point, NoSnapshots, Point, SnapshotPoints};

/// The import module name.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The host data behind every import.
pub struct WasiEnv<P = NoSnapshots> {
    /// The process state the calls act on.
    pub ctx: WasiCtx,
    /// The guest's exported memory, set once the instance exists.
    pub memory: Option<Memory>,
    /// What happens at snapshot points.
    pub points: P,
}

fn finish(name: &'static str, result: SysResult) -> Result<i32, RuntimeError> {
    match result {
        Ok(()) => Ok(0),
        Err(SysError::Errno(errno)) => {
            tracing::trace!(syscall = name, errno = errno.name(), "syscall failed");
            Ok(errno as i32)
        }
        Err(SysError::Trap(trap)) => Err(RuntimeError::user(Box::new(trap))),
    }
}

/// Runs one syscall implementation with checked access to guest memory.
fn call<P: SnapshotPoints>(
    env: &mut FunctionEnvMut<WasiEnv<P>>,
    name: &'static str,
    syscall: impl FnOnce(&mut WasiCtx, &GuestMemory) -> SysResult,
) -> Result<i32, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let Some(memory) = data.memory.clone() else {
        return Err(RuntimeError::user(Box::new(Trap::NoMemory)));
    };
    let view = memory.view(&store);
    if data.ctx.recording() {
        // Tells the host mounts whether this call re-executes history.
        data.ctx.replaying();
    }
    finish(name, syscall(&mut data.ctx, &GuestMemory::new(view)))
}

/// Narrows an integer argument; out of range is `INVAL` for the guest.
fn narrow<T: TryFrom<u32>>(v: u32) -> Result<T, SysError> {
    T::try_from(v).map_err(|_| SysError::Errno(Errno::Inval))
}

macro_rules! syscalls {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ) => |$ctx:ident, $mem:ident| $body:expr; )*) => {
        $(
            #[allow(unused_variables)]
            fn $name<P: SnapshotPoints>(mut env: FunctionEnvMut<WasiEnv<P>>, $($arg: $ty),*) -> Result<i32, RuntimeError> {
                if is_point(stringify!($name)) {
                    if let Some(unwound) = snapshot_point(&mut env, stringify!($name), None, false) {
                        return unwound;
                    }
                }
                call(&mut env, stringify!($name), |$ctx, $mem| $body)
            }
        )*

        /// Names of every function this host provides.
        pub const FUNCTIONS: &[&str] = &[$(stringify!($name),)* "proc_exit", "fd_read", "poll_oneoff"];

        /// The import object for a store and its environment.
        pub fn imports<P: SnapshotPoints>(store: &mut Store, env: &FunctionEnv<WasiEnv<P>>) -> Imports {
            let mut imports = Imports::new();
            $(
                imports.define(MODULE, stringify!($name), Function::new_typed_with_env(store, env, $name::<P>));
            )*
            imports.define(MODULE, "proc_exit", Function::new_typed_with_env(store, env, proc_exit::<P>));
            imports.define(MODULE, "fd_read", Function::new_typed_with_env(store, env, fd_read::<P>));
            imports.define(MODULE, "poll_oneoff", Function::new_typed_with_env(store, env, poll_oneoff::<P>));
            for (module, name) in EXPLICIT_SNAPSHOT {
                imports.define(module, name, Function::new_typed_with_env(store, env, explicit_snapshot::<P>));
            }
            imports
        }
    };
}

syscalls! {
    args_get(argv: u32, buf: u32) => |ctx, mem| ctx.args_get(mem, argv, buf);
    args_sizes_get(argc: u32, size: u32) => |ctx, mem| ctx.args_sizes_get(mem, argc, size);
    environ_get(environ: u32, buf: u32) => |ctx, mem| ctx.environ_get(mem, environ, buf);
    environ_sizes_get(count: u32, size: u32) => |ctx, mem| ctx.environ_sizes_get(mem, count, size);
    clock_res_get(id: u32, out: u32) => |ctx, mem| ctx.clock_res_get(mem, id, out);
    clock_time_get(id: u32, precision: u64, out: u32) => |ctx, mem| ctx.clock_time_get(mem, id, precision, out);
    fd_advise(fd: u32, offset: u64, len: u64, advice: u32) => |ctx, mem| ctx.fd_advise(fd, offset, len, narrow(advice)?);
    fd_allocate(fd: u32, offset: u64, len: u64) => |ctx, mem| ctx.fd_allocate(fd, offset, len);
    fd_close(fd: u32) => |ctx, mem| ctx.fd_close(fd);
    fd_datasync(fd: u32) => |ctx, mem| ctx.fd_datasync(fd);
    fd_fdstat_get(fd: u32, out: u32) => |ctx, mem| ctx.fd_fdstat_get(mem, fd, out);
    fd_fdstat_set_flags(fd: u32, flags: u32) => |ctx, mem| ctx.fd_fdstat_set_flags(fd, narrow(flags)?);
    fd_fdstat_set_rights(fd: u32, base: u64, inheriting: u64) => |ctx, mem| ctx.fd_fdstat_set_rights(fd, base, inheriting);
    fd_filestat_get(fd: u32, out: u32) => |ctx, mem| ctx.fd_filestat_get(mem, fd, out);
    fd_filestat_set_size(fd: u32, size: u64) => |ctx, mem| ctx.fd_filestat_set_size(fd, size);
    fd_filestat_set_times(fd: u32, atim: u64, mtim: u64, flags: u32) => |ctx, mem| ctx.fd_filestat_set_times(fd, atim, mtim, narrow(flags)?);
    fd_pread(fd: u32, iovs: u32, iovs_len: u32, offset: u64, nread: u32) => |ctx, mem| ctx.fd_pread(mem, fd, iovs, iovs_len, offset, nread);
    fd_prestat_get(fd: u32, out: u32) => |ctx, mem| ctx.fd_prestat_get(mem, fd, out);
    fd_prestat_dir_name(fd: u32, path: u32, len: u32) => |ctx, mem| ctx.fd_prestat_dir_name(mem, fd, path, len);
    fd_pwrite(fd: u32, iovs: u32, iovs_len: u32, offset: u64, nwritten: u32) => |ctx, mem| ctx.fd_pwrite(mem, fd, iovs, iovs_len, offset, nwritten);
    fd_readdir(fd: u32, buf: u32, buf_len: u32, cookie: u64, bufused: u32) => |ctx, mem| ctx.fd_readdir(mem, fd, buf, buf_len, cookie, bufused);
    fd_renumber(from: u32, to: u32) => |ctx, mem| ctx.fd_renumber(from, to);
    fd_seek(fd: u32, offset: i64, whence: u32, out: u32) => |ctx, mem| ctx.fd_seek(mem, fd, offset, narrow(whence)?, out);
    fd_sync(fd: u32) => |ctx, mem| ctx.fd_sync(fd);
    fd_tell(fd: u32, out: u32) => |ctx, mem| ctx.fd_tell(mem, fd, out);
    fd_write(fd: u32, iovs: u32, iovs_len: u32, nwritten: u32) => |ctx, mem| ctx.fd_write(mem, fd, iovs, iovs_len, nwritten);
    path_create_directory(fd: u32, path: u32, len: u32) => |ctx, mem| ctx.path_create_directory(mem, fd, path, len);
    path_filestat_get(fd: u32, flags: u32, path: u32, len: u32, out: u32) => |ctx, mem| ctx.path_filestat_get(mem, fd, flags, path, len, out);
    path_filestat_set_times(fd: u32, flags: u32, path: u32, len: u32, atim: u64, mtim: u64, fst: u32) => |ctx, mem| ctx.path_filestat_set_times(mem, fd, flags, path, len, atim, mtim, narrow(fst)?);
    path_link(old_fd: u32, old_flags: u32, old_path: u32, old_len: u32, new_fd: u32, new_path: u32, new_len: u32) => |ctx, mem| ctx.path_link(mem, old_fd, old_flags, old_path, old_len, new_fd, new_path, new_len);
    path_open(fd: u32, dirflags: u32, path: u32, len: u32, oflags: u32, base: u64, inheriting: u64, fdflags: u32, out: u32) => |ctx, mem| ctx.path_open(mem, fd, dirflags, path, len, narrow(oflags)?, base, inheriting, narrow(fdflags)?, out);
    path_readlink(fd: u32, path: u32, len: u32, buf: u32, buf_len: u32, bufused: u32) => |ctx, mem| ctx.path_readlink(mem, fd, path, len, buf, buf_len, bufused);
    path_remove_directory(fd: u32, path: u32, len: u32) => |ctx, mem| ctx.path_remove_directory(mem, fd, path, len);
    path_rename(fd: u32, old_path: u32, old_len: u32, new_fd: u32, new_path: u32, new_len: u32) => |ctx, mem| ctx.path_rename(mem, fd, old_path, old_len, new_fd, new_path, new_len);
    path_symlink(old_path: u32, old_len: u32, fd: u32, new_path: u32, new_len: u32) => |ctx, mem| ctx.path_symlink(mem, old_path, old_len, fd, new_path, new_len);
    path_unlink_file(fd: u32, path: u32, len: u32) => |ctx, mem| ctx.path_unlink_file(mem, fd, path, len);
    proc_raise(sig: u32) => |ctx, mem| ctx.proc_raise(narrow(sig)?);
    random_get(buf: u32, len: u32) => |ctx, mem| ctx.random_get(mem, buf, len);
    sched_yield() => |ctx, mem| ctx.sched_yield();
    sock_accept(fd: u32, flags: u32, out: u32) => |ctx, mem| ctx.sock_accept(mem, fd, narrow(flags)?, out);
    sock_recv(fd: u32, iovs: u32, iovs_len: u32, flags: u32, nread: u32, oflags: u32) => |ctx, mem| ctx.sock_recv(mem, fd, iovs, iovs_len, narrow(flags)?, nread, oflags);
    sock_send(fd: u32, iovs: u32, iovs_len: u32, flags: u32, nwritten: u32) => |ctx, mem| ctx.sock_send(mem, fd, iovs, iovs_len, narrow(flags)?, nwritten);
    sock_shutdown(fd: u32, how: u32) => |ctx, mem| ctx.sock_shutdown(fd, how);
}

/// `proc_exit` returns nothing: it always unwinds the guest with a trap.
fn proc_exit<P: SnapshotPoints>(
    mut env: FunctionEnvMut<WasiEnv<P>>,
    code: u32,
) -> Result<(), RuntimeError> {
    match env.data_mut().ctx.proc_exit(code) {
        Err(SysError::Trap(trap)) => Err(RuntimeError::user(Box::new(trap))),
        _ => Err(RuntimeError::user(Box::new(Trap::Exit(code)))),
    }
}

/// `fd_read` is a snapshot point: the first read from standard input can
/// fire a snapshot (asyncify unwind), and a rewind ends here.
fn fd_read<P: SnapshotPoints>(
    mut env: FunctionEnvMut<WasiEnv<P>>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nread: u32,
) -> Result<i32, RuntimeError> {
    if let Some(unwound) = snapshot_point(&mut env, "fd_read", Some(fd), false) {
        return unwound;
    }
    call(&mut env, "fd_read", |ctx, mem| {
        ctx.fd_read(mem, fd, iovs, iovs_len, nread)
    })
}

/// The imports a guest calls to ask for a snapshot: wasnap's own and WASIX's
/// name for it. Both take nothing and return an errno.
pub const EXPLICIT_SNAPSHOT: [(&str, &str); 2] =
    [("wasnap", "snapshot"), ("wasix_32v1", "proc_snapshot")];

/// An explicit snapshot request: the hook answers (0 once the snapshot is
/// written, after the rewind; `NOTSUP` when snapshots are not armed or the
/// module is not prepared).
fn explicit_snapshot<P: SnapshotPoints>(
    mut env: FunctionEnvMut<WasiEnv<P>>,
) -> Result<i32, RuntimeError> {
    let (data, mut store) = env.data_and_store_mut();
    match data.points.explicit(&mut store, &mut data.ctx) {
        Ok(errno) => Ok(i32::from(errno)),
        Err(e) => Err(RuntimeError::user(e)),
    }
}

/// At a snapshot point: the hook ends a rewind, or fires a due trigger
/// (starting an unwind: the import returns `Some` at once).
fn snapshot_point<P: SnapshotPoints>(
    env: &mut FunctionEnvMut<WasiEnv<P>>,
    name: &'static str,
    fd: Option<u32>,
    waits_on_stdin: bool,
) -> Option<Result<i32, RuntimeError>> {
    let (data, mut store) = env.data_and_store_mut();
    let reads_stdin = fd.is_some_and(|fd| {
        matches!(
            data.ctx.fds.get(fd).map(|d| &d.handle),
            Ok(crate::fd::Handle::Stdin)
        )
    });
    let point = Point {
        name,
        reads_stdin,
        waits_on_stdin,
    };
    match data.points.at_point(&mut store, &mut data.ctx, point) {
        Ok(true) => Some(Ok(0)),
        Ok(false) => None,
        Err(e) => Some(Err(RuntimeError::user(e))),
    }
}

/// `poll_oneoff` is a snapshot point; waiting on standard input with none
/// there counts as idle.
fn poll_oneoff<P: SnapshotPoints>(
    mut env: FunctionEnvMut<WasiEnv<P>>,
    subs: u32,
    events: u32,
    nsubs: u32,
    nevents: u32,
) -> Result<i32, RuntimeError> {
    let waits_on_stdin = {
        let (data, store) = env.data_and_store_mut();
        match (data.points.wants_idle(), data.memory.clone()) {
            (true, Some(memory)) => {
                let view = memory.view(&store);
                data.ctx
                    .waits_on_stdin(&GuestMemory::new(view), subs, nsubs)
            }
            _ => false,
        }
    };
    if let Some(unwound) = snapshot_point(&mut env, "poll_oneoff", None, waits_on_stdin) {
        return unwound;
    }
    call(&mut env, "poll_oneoff", |ctx, mem| {
        ctx.poll_oneoff(mem, subs, events, nsubs, nevents)
    })
}
