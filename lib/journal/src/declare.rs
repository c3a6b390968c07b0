//! The generator behind the entry table in `entry.rs`.
//!
//! One declaration per entry yields: the payload struct (rkyv-archived), the
//! variant of [`crate::JournalEntry`], the fieldless [`crate::EntryKind`] with
//! its fixed tag, name and category, payload encoding, zero-copy decoding,
//! `into_owned`, JSON in both directions, and sample generation (which the
//! round-trip tests iterate over, so a new entry cannot escape them).

/// The `'static` form of a payload type: `Name<'a>` becomes `Name<'static>`,
/// a payload without a lifetime stays as it is.
macro_rules! owned_payload {
    ($name:ident < $lt:lifetime >) => { $name<'static> };
    ($name:ident) => { $name };
}

macro_rules! journal_entries {
    (
        $(
            $(#[doc = $doc:literal])*
            $tag:literal => $name:ident $(<$lt:lifetime>)? in $category:ident {
                $( $(#[$field_attr:meta])* $field:ident : $field_ty:ty ),* $(,)?
            }
        )*
    ) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize)]
            // Field meanings are documented per entry in the table and in
            // docs/format.md ("What entries mean"), not field by field here.
            #[allow(missing_docs)]
            pub struct $name $(<$lt>)? {
                $( $(#[$field_attr])* pub $field: $field_ty, )*
            }

            impl<'a> From<$name $(<$lt>)?> for JournalEntry<'a> {
                fn from(value: $name $(<$lt>)?) -> Self {
                    JournalEntry::$name(value)
                }
            }

            impl $(<$lt>)? $crate::field::IntoOwned for $name $(<$lt>)? {
                type Owned = owned_payload!($name $(<$lt>)?);

                fn into_owned(self) -> Self::Owned {
                    $name { $( $field: $crate::field::Field::into_owned(self.$field), )* }
                }
            }
        )*

        /// One effect of a program on the outside world: the unit of the journal.
        ///
        /// Entries read from a journal borrow byte strings and paths from the
        /// journal's buffer; [`JournalEntry::into_owned`] detaches them.
        ///
        /// The enum is deliberately exhaustive (not `#[non_exhaustive]`): a
        /// match that decides what an entry *means* lists every kind, so a new
        /// kind does not compile until its meaning is written everywhere.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum JournalEntry<'a> {
            $( $(#[doc = $doc])* $name($name $(<$lt>)?), )*
        }

        /// The kind of an entry, without its data. Each kind has a fixed tag that
        /// is never reused or renumbered.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EntryKind {
            $( $(#[doc = $doc])* $name, )*
        }

        impl EntryKind {
            /// Every kind, in tag order of declaration.
            pub const ALL: &'static [EntryKind] = &[ $( EntryKind::$name, )* ];

            /// The record tag of this kind.
            pub const fn tag(self) -> u16 {
                match self { $( EntryKind::$name => $tag, )* }
            }

            /// The kind with this tag, if any.
            pub const fn from_tag(tag: u16) -> Option<EntryKind> {
                match tag { $( $tag => Some(EntryKind::$name), )* _ => None }
            }

            /// The kind's name, as used in JSON (`"type"`) and in listings.
            pub const fn name(self) -> &'static str {
                match self { $( EntryKind::$name => stringify!($name), )* }
            }

            /// The kind with this name, if any.
            pub fn from_name(name: &str) -> Option<EntryKind> {
                match name { $( stringify!($name) => Some(EntryKind::$name), )* _ => None }
            }

            /// The category the kind belongs to (for filtering).
            pub const fn category(self) -> Category {
                match self { $( EntryKind::$name => Category::$category, )* }
            }
        }

        impl<'a> JournalEntry<'a> {
            /// The kind of this entry.
            pub const fn kind(&self) -> EntryKind {
                match self { $( JournalEntry::$name(_) => EntryKind::$name, )* }
            }

            /// Detaches the entry from the buffer it was read from.
            pub fn into_owned(self) -> JournalEntry<'static> {
                match self {
                    $( JournalEntry::$name(v) => JournalEntry::$name($crate::field::IntoOwned::into_owned(v)), )*
                }
            }

            /// The same entry borrowing from `self` (byte strings are not copied).
            pub fn reborrow(&self) -> JournalEntry<'_> {
                match self {
                    $( JournalEntry::$name(v) => JournalEntry::$name($name {
                        $( $field: $crate::field::Reborrow::reborrow(&v.$field), )*
                    }), )*
                }
            }

            /// Serializes the payload (not the record header) to the end of `out`.
            ///
            /// rkyv positions are taken relative to the start of `out`, so the
            /// payload is only valid when read back at an offset with the same
            /// alignment (modulo 8) as `out.len()` had here.
            /// `arena` is scratch space for rkyv, kept by the caller across
            /// records so that encoding allocates nothing in steady state.
            pub(crate) fn encode_payload(
                &self,
                out: &mut Vec<u8>,
                arena: &mut rkyv::ser::allocator::Arena,
            ) -> Result<(), rkyv::rancor::Error> {
                match self {
                    $( JournalEntry::$name(v) => {
                        rkyv::api::low::to_bytes_in_with_alloc::<_, _, rkyv::rancor::Error>(
                            v,
                            &mut *out,
                            arena.acquire(),
                        )?;
                    } )*
                }
                Ok(())
            }

            /// Serializes the payload through `writer` (see
            /// [`encode_payload`](Self::encode_payload)), returning it.
            pub(crate) fn encode_payload_to<W: rkyv::ser::Writer<rkyv::rancor::Error>>(
                &self,
                writer: W,
                arena: &mut rkyv::ser::allocator::Arena,
            ) -> Result<W, rkyv::rancor::Error> {
                match self {
                    $( JournalEntry::$name(v) => {
                        rkyv::api::low::to_bytes_in_with_alloc::<_, _, rkyv::rancor::Error>(
                            v,
                            writer,
                            arena.acquire(),
                        )
                    } )*
                }
            }

            /// Decodes a payload with rkyv's checked access. `Ok(None)` means the
            /// tag is not one this build knows. The result borrows from `payload`.
            pub(crate) fn decode_payload(
                tag: u16,
                payload: &'a [u8],
            ) -> Result<Option<JournalEntry<'a>>, rkyv::rancor::Error> {
                match tag {
                    $( $tag => {
                        let archived = rkyv::api::low::access::<
                            <$name $(<$lt>)? as rkyv::Archive>::Archived,
                            rkyv::rancor::Error,
                        >(payload)?;
                        Ok(Some(JournalEntry::$name($name {
                            $( $field: $crate::field::Field::from_archived(&archived.$field), )*
                        })))
                    } )*
                    _ => Ok(None),
                }
            }

            /// The entry as a JSON object: `{"type": KIND, field: value, …}`.
            pub fn to_json(&self) -> serde_json::Value {
                let mut map = serde_json::Map::new();
                map.insert("type".to_owned(), serde_json::Value::from(self.kind().name()));
                match self {
                    $( JournalEntry::$name(_v) => {
                        $( map.insert(
                            stringify!($field).to_owned(),
                            $crate::field::Field::to_json(&_v.$field),
                        ); )*
                    } )*
                }
                serde_json::Value::Object(map)
            }

            /// Parses the JSON produced by [`JournalEntry::to_json`].
            pub fn from_json(value: &serde_json::Value) -> Result<JournalEntry<'static>, $crate::error::JsonError> {
                use $crate::error::JsonError;
                let object = value.as_object().ok_or(JsonError::NotAnObject)?;
                let kind_name = object
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .ok_or(JsonError::MissingType)?;
                let kind = EntryKind::from_name(kind_name)
                    .ok_or_else(|| JsonError::UnknownType(kind_name.to_owned()))?;
                #[allow(unused_variables)]
                let field = |name: &'static str| {
                    object.get(name).ok_or(JsonError::MissingField { kind: kind_name.to_owned(), field: name })
                };
                match kind {
                    $( EntryKind::$name => {
                        let known: &[&str] = &["type", $( stringify!($field), )*];
                        if let Some(extra) = object.keys().find(|k| !known.contains(&k.as_str())) {
                            return Err(JsonError::UnknownField { kind: kind_name.to_owned(), field: extra.clone() });
                        }
                        Ok(JournalEntry::$name($name {
                            $( $field: $crate::field::Field::from_json(field(stringify!($field))?)
                                .map_err(|message| JsonError::BadField {
                                    kind: kind_name.to_owned(),
                                    field: stringify!($field),
                                    message,
                                })?, )*
                        }))
                    } )*
                }
            }

            /// A deterministic pseudo-random entry of the given kind.
            pub fn sample(kind: EntryKind, gen: &mut $crate::field::SampleGen) -> JournalEntry<'static> {
                match kind {
                    $( EntryKind::$name => JournalEntry::$name($name {
                        $( $field: $crate::field::Field::sample(gen), )*
                    }), )*
                }
            }
        }
    };
}
