//! The sandbox property: whatever path a guest passes, resolution relative
//! to a directory never lands outside that directory.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use wasnap_wasi::fs::mem::ROOT;
use wasnap_wasi::fs::{resolve, DirRef, Mount, Target};
use wasnap_wasi::Errno;

/// root/{outside/secret, base/{a/b/, f, up -> .., upup -> ../.., abs -> /x,
/// loop -> loop, ok -> a/b, deep -> a/b/../../up}}
fn tree() -> (Mount, u64) {
    let mut mount = Mount::memory("/", 1, 0);
    let m = mount.mem().unwrap();
    let outside = m.mkdir(ROOT, "outside", 0).unwrap();
    m.create_file(outside, "secret", 0).unwrap();
    let base = m.mkdir(ROOT, "base", 0).unwrap();
    let a = m.mkdir(base, "a", 0).unwrap();
    m.mkdir(a, "b", 0).unwrap();
    m.create_file(base, "f", 0).unwrap();
    for (name, target) in [
        ("up", ".."),
        ("upup", "../.."),
        ("abs", "/x"),
        ("loop", "loop"),
        ("ok", "a/b"),
        ("deep", "a/b/../../up"),
    ] {
        m.symlink(target, base, name, 0).unwrap();
    }
    (mount, base)
}

fn landed_in(target: &Target) -> u64 {
    match target {
        Target::SelfDir(DirRef::Mem(ino))
        | Target::Entry {
            parent: DirRef::Mem(ino),
            ..
        } => *ino,
        other => panic!("not a memory target: {other:?}"),
    }
}

fn component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "..", ".", "a", "b", "f", "up", "upup", "abs", "loop", "ok", "deep", "outside", "secret",
        "", "x",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn resolution_never_leaves_the_starting_directory(
        parts in prop::collection::vec(component(), 1..8),
        absolute in any::<bool>(),
        trailing in any::<bool>(),
        follow in any::<bool>(),
    ) {
        let (mut mount, base) = tree();
        let mut path = parts.join("/");
        if absolute { path.insert(0, '/'); }
        if trailing { path.push('/'); }
        match resolve(&mount, &DirRef::Mem(base), &path, follow) {
            Ok(resolved) => {
                let dir = landed_in(&resolved.target);
                prop_assert!(mount.mem().unwrap().is_within(base, dir), "{path:?} escaped to inode {dir}");
            }
            Err(e) => prop_assert!(
                matches!(e, Errno::Notcapable | Errno::Noent | Errno::Notdir | Errno::Loop),
                "{path:?}: unexpected {e:?}"
            ),
        }
    }
}

#[test]
fn each_way_out_is_refused_by_name() {
    let (mount, base) = tree();
    let base = DirRef::Mem(base);
    for path in [
        "..",
        "../outside/secret",
        "a/../..",
        "/outside",
        "up/outside",
        "upup",
        "abs",
        "deep/secret",
        "ok/../../../x",
    ] {
        let err = resolve(&mount, &base, path, true).unwrap_err();
        assert_eq!(err, Errno::Notcapable, "{path}");
    }
    assert_eq!(
        resolve(&mount, &base, "loop", true).unwrap_err(),
        Errno::Loop
    );
    assert_eq!(
        resolve(&mount, &base, "f/x", true).unwrap_err(),
        Errno::Notdir
    );
    // Not following the last link is fine: the link itself is inside.
    assert!(resolve(&mount, &base, "upup", false).is_ok());
    assert!(resolve(&mount, &base, "ok/../f", true).is_ok());
}
