//! The sandbox under attack (issue 11): names swapped for links that climb
//! out of a host mount while a guest opens them, and guest-made links of
//! every shape. Nothing outside a mount is ever read, written, created or
//! listed.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{fixture, text, wasnap};

/// A mount directory and, beside it, a sentinel directory the guest must
/// never reach.
fn arena() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mount")).unwrap();
    std::fs::create_dir(dir.path().join("sentinel")).unwrap();
    std::fs::write(dir.path().join("sentinel/file"), "SENTINEL\n").unwrap();
    std::fs::write(dir.path().join("sentinel/sentinel-marker"), "").unwrap();
    dir
}

/// The sentinel holds exactly what `arena` put there.
fn assert_sentinel_untouched(arena: &Path) {
    let mut names: Vec<String> = std::fs::read_dir(arena.join("sentinel"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["file", "sentinel-marker"],
        "something was created outside the mount"
    );
    assert_eq!(
        std::fs::read_to_string(arena.join("sentinel/file")).unwrap(),
        "SENTINEL\n",
        "the file outside the mount was written"
    );
}

fn race(cache: &Path, mount: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = wasnap(cache);
    cmd.arg("run")
        .arg("--dir")
        .arg(format!("{}::/m", mount.display()))
        .arg(fixture("race.wasm"))
        .args(args);
    cmd
}

/// Parses probe's "probe: T tries, O opened, R reads outside, L listings outside".
fn probe_counts(out: &str) -> (u64, u64, u64, u64) {
    let numbers: Vec<u64> = out
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 4, "unexpected probe output: {out}");
    (numbers[0], numbers[1], numbers[2], numbers[3])
}

#[test]
fn racing_renames_never_reach_outside_a_host_mount() {
    let cache = tempfile::tempdir().unwrap();
    let arena = arena();
    let mount = arena.path().join("mount");
    let planted = race(cache.path(), &mount, &["plant"]).output().unwrap();
    assert!(planted.status.success(), "{}", text(&planted.stderr));

    // Two attackers at once: a guest renaming names to and from the links,
    // and a host thread swapping them atomically, so each name is a link
    // half of the time.
    let mut guest_swapper = race(cache.path(), &mount, &["swap", "100000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let host_swapper = {
        let stop = stop.clone();
        let d = mount.join("d");
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (a, b) in [("file", "elink"), ("sub", "dlink")] {
                    let flags = rustix::fs::RenameFlags::EXCHANGE;
                    let (a, b) = (d.join(a), d.join(b));
                    if rustix::fs::renameat_with(rustix::fs::CWD, &a, rustix::fs::CWD, &b, flags)
                        .is_ok()
                    {
                        swaps += 1;
                    }
                }
            }
            swaps
        })
    };
    let tries: u64 = std::env::var("WASNAP_RACE_TRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let probe = race(cache.path(), &mount, &["probe", &tries.to_string()])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let swaps = host_swapper.join().unwrap();
    guest_swapper.kill().unwrap();
    guest_swapper.wait().unwrap();

    let out = text(&probe.stdout);
    assert!(probe.status.success(), "{out}{}", text(&probe.stderr));
    let (done, opened, reads_outside, listings_outside) = probe_counts(&out);
    println!("{tries} tries against {swaps} host swaps: {out}");
    assert_eq!(done, tries);
    assert!(swaps > 0, "the host never swapped a name");
    assert!(
        opened > 0,
        "the probe never opened anything: the race did not run"
    );
    assert_eq!(reads_outside, 0, "{out}");
    assert_eq!(listings_outside, 0, "{out}");
    assert_sentinel_untouched(arena.path());
}

/// The lines of `race links DIR` about one link.
fn outcomes<'a>(out: &'a str, link: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            let _verb = words.next();
            words
                .next()
                .is_some_and(|w| w.trim_end_matches(':').split('/').next() == Some(link))
        })
        .collect()
}

/// Every way through a link that climbs out fails, whatever the mount.
fn assert_links_hold(out: &str) {
    assert!(
        out.contains("symlink abs -> /etc/passwd: ENOTCAPABLE"),
        "an absolute link was made:\n{out}"
    );
    for link in ["up_file", "up_deep", "chain1", "chain2", "up_dir"] {
        let lines = outcomes(out, link);
        assert_eq!(lines.len(), 6, "{link}: {lines:?}\n{out}");
        assert!(
            lines[0].ends_with(": ok"),
            "creating {link} is allowed: {lines:?}"
        );
        for line in &lines[1..] {
            assert!(!line.contains(": ok"), "reached through {link}: {line}");
        }
    }
    for link in ["inside", "inside2"] {
        assert!(
            out.contains(&format!("read {link}: ok inside")),
            "a link inside the mount must work: {out}"
        );
    }
    assert!(out.contains("read loop1: ELOOP"), "{out}");
}

#[test]
fn guest_links_of_every_shape_never_lead_out() {
    let cache = tempfile::tempdir().unwrap();

    // A host mount: links are stored on the host as written (the policy),
    // except absolute ones, and wasnap never follows them out.
    let arena = arena();
    let mount = arena.path().join("mount");
    let run = race(cache.path(), &mount, &["links", "/m"])
        .output()
        .unwrap();
    let out = text(&run.stdout);
    assert!(run.status.success(), "{out}{}", text(&run.stderr));
    assert_links_hold(&out);
    assert!(std::fs::symlink_metadata(mount.join("abs")).is_err());
    assert_eq!(
        std::fs::read_link(mount.join("up_file")).unwrap(),
        Path::new("../sentinel/file")
    );
    assert_sentinel_untouched(arena.path());

    // An in-memory copy mounted beside the root: climbing out of /m is
    // refused the same way.
    let copy = arena.path().join("mount-copy");
    std::fs::create_dir(&copy).unwrap();
    let run = wasnap(cache.path())
        .arg("run")
        .arg("--dir-copy")
        .arg(format!("{}::/m", copy.display()))
        .arg(fixture("race.wasm"))
        .args(["links", "/m"])
        .output()
        .unwrap();
    let out = text(&run.stdout);
    assert!(run.status.success(), "{out}{}", text(&run.stderr));
    assert_links_hold(&out);
    assert_eq!(
        std::fs::read_dir(&copy).unwrap().count(),
        0,
        "the copy's host was written"
    );
}
