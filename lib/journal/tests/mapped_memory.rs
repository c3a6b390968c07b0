//! Memory regions that resume maps from the journal file: the writer puts
//! their data on page boundaries of the file, and restoring the layers
//! (mapped pages, then copies) gives the same bytes as applying every region
//! in order.

#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::os::unix::fs::FileExt;

use proptest::prelude::*;
use wasnap_journal::memory::{compressed_region, MemoryImage, MemoryLayers, RestoreStep};
use wasnap_journal::{
    is_mapped_region, ClockSetV1, EntryKind, Journal, JournalEntry, JournalOptions, JournalReader,
    UpdateMemoryRegionV1, WriteJournal, PAGE_LEN,
};

fn raw_region(start: u64, bytes: Vec<u8>) -> JournalEntry<'static> {
    UpdateMemoryRegionV1 {
        start,
        end: start + bytes.len() as u64,
        compression: 0,
        data: Cow::Owned(bytes),
    }
    .into()
}

/// What restoring by the layers' steps gives, read back as the runtime's
/// mapping would (pages of the file).
fn restored(layers: &MemoryLayers) -> Vec<u8> {
    let mut memory = vec![0u8; layers.len() as usize];
    for step in layers.steps() {
        match step {
            RestoreStep::Map {
                start,
                len,
                file,
                offset,
            } => {
                assert_eq!(start % PAGE_LEN, 0);
                assert_eq!(offset % PAGE_LEN, 0, "mapped from a page boundary");
                let end = (start + len).min(memory.len() as u64);
                file.read_exact_at(&mut memory[start as usize..end as usize], offset)
                    .unwrap();
            }
            RestoreStep::Copy { start, bytes } => {
                memory[start as usize..start as usize + bytes.len()].copy_from_slice(bytes)
            }
        }
    }
    memory
}

/// Writes `entries` to a journal file and reads the regions back into
/// layers (through the reader's shared buffer) and into an image.
fn layers_of(entries: &[JournalEntry<'static>]) -> (MemoryLayers, MemoryImage, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.journal");
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    for entry in entries {
        journal.write(entry).unwrap();
    }
    journal.flush().unwrap();
    drop(journal);
    let mut reader = JournalReader::open(&path).unwrap();
    let backing = reader.backing();
    let mut layers = MemoryLayers::new();
    let mut image = MemoryImage::new();
    let mut paddings = 0;
    while let Some(record) = reader.read_next().unwrap() {
        match &record.entry {
            JournalEntry::UpdateMemoryRegionV1(region) => {
                if is_mapped_region(&record.entry) {
                    let (_, span) = backing.share(&region.data).unwrap();
                    let offset = span.unwrap().offset;
                    assert_eq!(offset % PAGE_LEN, 0, "mapped data is page-aligned");
                }
                let shared = backing.share(&region.data);
                layers.push(region, shared).unwrap();
                image.apply(region).unwrap();
            }
            JournalEntry::PaddingV1(_) => paddings += 1,
            _ => {}
        }
    }
    (layers, image, paddings)
}

#[test]
fn large_uncompressed_regions_are_mapped_from_page_boundaries() {
    let page = PAGE_LEN as usize;
    let entries = vec![
        // Something before, so the region does not land aligned by chance.
        ClockSetV1 {
            clock_id: 1,
            time_ns: 5,
        }
        .into(),
        raw_region(0, vec![7u8; 16 * page]),
        raw_region(16 * page as u64, (0..32 * page).map(|i| i as u8).collect()),
        // Small: copied, not mapped.
        raw_region(PAGE_LEN, vec![9u8; page]),
        compressed_region(3 * PAGE_LEN + 5, &[1, 2, 3]).into(),
    ];
    let (layers, image, paddings) = layers_of(&entries);
    assert_eq!(paddings, 2, "one padding record per mapped region");
    assert_eq!(layers.mapped_bytes(), 48 * PAGE_LEN);
    assert_eq!(restored(&layers), image.as_bytes());
}

#[test]
fn a_memory_journal_copies() {
    let journal = Journal::in_memory();
    journal.write(&raw_region(0, vec![3u8; 16 * 4096])).unwrap();
    journal.flush().unwrap();
    let (_, mut reader) = journal.split();
    reader.restart().unwrap();
    let backing = reader.backing();
    let mut record = reader.read_next().unwrap().unwrap();
    if let JournalEntry::PaddingV1(_) = &record.entry {
        record = reader.read_next().unwrap().unwrap();
    }
    let JournalEntry::UpdateMemoryRegionV1(region) = &record.entry else {
        panic!("{}", record.entry);
    };
    let mut layers = MemoryLayers::new();
    layers.push(region, backing.share(&region.data)).unwrap();
    assert_eq!(layers.mapped_bytes(), 0);
    assert!(matches!(
        layers.steps()[0],
        RestoreStep::Copy { start: 0, bytes } if bytes.len() == 16 * 4096
    ));
}

#[test]
fn a_padding_record_is_exactly_the_gap() {
    // Every alignment of the writer's position: the region's payload lands
    // on a page boundary whatever came before.
    for before in 0..80usize {
        let mut entries: Vec<JournalEntry<'static>> = (0..before)
            .map(|i| {
                ClockSetV1 {
                    clock_id: i as u32,
                    time_ns: 0,
                }
                .into()
            })
            .collect();
        entries.push(raw_region(0, vec![1u8; 16 * 4096]));
        let (layers, _, paddings) = layers_of(&entries);
        assert_eq!(
            layers.mapped_bytes(),
            16 * PAGE_LEN,
            "{before} records before"
        );
        assert!(paddings <= 1);
    }
    assert!(EntryKind::ALL.contains(&EntryKind::PaddingV1));
}

fn region_strategy() -> impl Strategy<Value = JournalEntry<'static>> {
    let page = PAGE_LEN;
    prop_oneof![
        // Mapped: page-aligned, whole pages, at least 16.
        (0u64..48, 16u64..40, any::<u8>()).prop_map(move |(p, n, b)| raw_region(
            p * page,
            (0..n * page)
                .map(|i| b.wrapping_add((i / 97) as u8))
                .collect()
        )),
        // Copied: anywhere, small, compressed or not.
        (0u64..(90 * page), 1usize..9000, any::<u8>(), any::<bool>()).prop_map(
            |(start, len, b, compress)| {
                let bytes: Vec<u8> = (0..len).map(|i| b ^ (i as u8)).collect();
                if compress {
                    compressed_region(start, &bytes).into()
                } else {
                    raw_region(start, bytes)
                }
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn restoring_layers_equals_applying_regions(entries in proptest::collection::vec(region_strategy(), 1..12)) {
        let (layers, image, _) = layers_of(&entries);
        let mut memory = restored(&layers);
        let mut expected = image.as_bytes().to_vec();
        expected.resize(memory.len().max(expected.len()), 0);
        memory.resize(expected.len(), 0);
        prop_assert!(memory == expected, "restored memory differs from the applied image");
        let mapped = layers.steps().iter().filter(|s| matches!(s, RestoreStep::Map { .. })).count();
        let any_mapped = entries.iter().any(is_mapped_region);
        // The last mapped region always keeps its pages.
        prop_assert_eq!(any_mapped, mapped > 0);
    }
}
