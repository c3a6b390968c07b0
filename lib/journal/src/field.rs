//! The field types an entry may hold, and everything the entry table needs
//! from each of them: zero-copy decoding from the archived form, conversion to
//! an owned value, JSON, and deterministic sample generation for tests.
//!
//! Invariant: every archived field type has an alignment of at most 8 bytes.
//! The record format only guarantees 8-byte alignment of payloads (see
//! docs/format.md), so a field type archived with a larger alignment (`u128`,
//! for example) must not be added here.

use std::borrow::Cow;

use base64::Engine as _;
use rkyv::string::ArchivedString;
use rkyv::vec::ArchivedVec;
use rkyv::Archived;
use serde_json::Value;

/// An entry payload that can be detached from the buffer it was read from
/// (generated for every payload by the entry table).
pub trait IntoOwned {
    /// The payload at lifetime `'static`.
    type Owned: 'static;
    /// Copies whatever the payload borrows.
    fn into_owned(self) -> Self::Owned;
}

/// A field type usable in an entry declaration.
///
/// `'a` is the lifetime of the bytes the entry was read from; borrowed fields
/// (`Cow<'a, [u8]>`, `Cow<'a, str>`) point into them instead of copying.
pub trait Field<'a>: Sized {
    /// The type rkyv archives this field as.
    type Archived: 'a;
    /// The same field with every borrow turned into an owned value.
    type Owned: Field<'static>;

    /// Builds the field from its validated archived form, borrowing where it can.
    fn from_archived(archived: &'a Self::Archived) -> Self;
    /// Drops every borrow.
    fn into_owned(self) -> Self::Owned;
    /// The field as JSON. Byte strings are base64, hashes are hex.
    fn to_json(&self) -> Value;
    /// The reverse of [`Field::to_json`].
    fn from_json(value: &Value) -> Result<Self, String>;
    /// A deterministic pseudo-random value, for tests and benchmarks.
    fn sample(gen: &mut SampleGen) -> Self;
}

/// Re-borrows a field for a shorter lifetime without copying byte strings.
pub trait Reborrow<'b> {
    /// The field type at lifetime `'b`.
    type Out;
    /// The field, borrowing from `self`.
    fn reborrow(&'b self) -> Self::Out;
}

macro_rules! reborrow_by_copy {
    ($($ty:ty),*) => {$(
        impl<'b> Reborrow<'b> for $ty {
            type Out = $ty;
            fn reborrow(&'b self) -> $ty {
                self.clone()
            }
        }
    )*};
}

reborrow_by_copy!(
    u8,
    u16,
    u32,
    u64,
    i32,
    i64,
    bool,
    [u8; 32],
    Vec<String>,
    Vec<u64>
);

impl<'a: 'b, 'b> Reborrow<'b> for Cow<'a, [u8]> {
    type Out = Cow<'b, [u8]>;
    fn reborrow(&'b self) -> Cow<'b, [u8]> {
        Cow::Borrowed(self.as_ref())
    }
}

impl<'a: 'b, 'b> Reborrow<'b> for Cow<'a, str> {
    type Out = Cow<'b, str>;
    fn reborrow(&'b self) -> Cow<'b, str> {
        Cow::Borrowed(self.as_ref())
    }
}

/// A small deterministic generator (splitmix64) for sample entries. Tests,
/// golden fixtures and benchmarks use it so that the same seed always yields
/// the same entries, byte for byte.
#[derive(Debug, Clone)]
pub struct SampleGen {
    state: u64,
    max_len: usize,
}

impl SampleGen {
    /// A generator whose byte strings are at most `max_len` long.
    pub fn new(seed: u64, max_len: usize) -> Self {
        Self {
            state: seed,
            max_len,
        }
    }

    /// The next pseudo-random 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A length in `0..=max_len`.
    pub fn length(&mut self) -> usize {
        if self.max_len == 0 {
            0
        } else {
            (self.next_u64() % (self.max_len as u64 + 1)) as usize
        }
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A printable string (paths, addresses) of pseudo-random length.
    pub fn text(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789/._-";
        let len = self.length().min(64);
        (0..len)
            .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

fn expect_u64(value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("expected an unsigned integer, found {value}"))
}

fn expect_i64(value: &Value) -> Result<i64, String> {
    value
        .as_i64()
        .ok_or_else(|| format!("expected an integer, found {value}"))
}

macro_rules! unsigned_field {
    ($($ty:ty),*) => {$(
        impl<'a> Field<'a> for $ty {
            type Archived = Archived<$ty>;
            type Owned = $ty;
            #[allow(clippy::useless_conversion)]
            fn from_archived(archived: &'a Self::Archived) -> Self {
                <$ty>::from(*archived)
            }
            fn into_owned(self) -> Self {
                self
            }
            fn to_json(&self) -> Value {
                Value::from(*self)
            }
            fn from_json(value: &Value) -> Result<Self, String> {
                let wide = expect_u64(value)?;
                <$ty>::try_from(wide).map_err(|_| format!("{wide} does not fit in {}", stringify!($ty)))
            }
            fn sample(gen: &mut SampleGen) -> Self {
                gen.next_u64() as $ty
            }
        }
    )*};
}

macro_rules! signed_field {
    ($($ty:ty),*) => {$(
        impl<'a> Field<'a> for $ty {
            type Archived = Archived<$ty>;
            type Owned = $ty;
            #[allow(clippy::useless_conversion)]
            fn from_archived(archived: &'a Self::Archived) -> Self {
                <$ty>::from(*archived)
            }
            fn into_owned(self) -> Self {
                self
            }
            fn to_json(&self) -> Value {
                Value::from(*self)
            }
            fn from_json(value: &Value) -> Result<Self, String> {
                let wide = expect_i64(value)?;
                <$ty>::try_from(wide).map_err(|_| format!("{wide} does not fit in {}", stringify!($ty)))
            }
            fn sample(gen: &mut SampleGen) -> Self {
                gen.next_u64() as $ty
            }
        }
    )*};
}

unsigned_field!(u8, u16, u32, u64);
signed_field!(i32, i64);

impl<'a> Field<'a> for bool {
    type Archived = bool;
    type Owned = bool;
    fn from_archived(archived: &'a bool) -> Self {
        *archived
    }
    fn into_owned(self) -> Self {
        self
    }
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_json(value: &Value) -> Result<Self, String> {
        value
            .as_bool()
            .ok_or_else(|| format!("expected a boolean, found {value}"))
    }
    fn sample(gen: &mut SampleGen) -> Self {
        gen.next_u64() & 1 == 1
    }
}

/// A 32-byte hash, shown as lowercase hex in JSON.
impl<'a> Field<'a> for [u8; 32] {
    type Archived = [u8; 32];
    type Owned = [u8; 32];
    fn from_archived(archived: &'a [u8; 32]) -> Self {
        *archived
    }
    fn into_owned(self) -> Self {
        self
    }
    fn to_json(&self) -> Value {
        Value::String(self.iter().map(|b| format!("{b:02x}")).collect())
    }
    fn from_json(value: &Value) -> Result<Self, String> {
        let text = value
            .as_str()
            .ok_or_else(|| format!("expected a hex string, found {value}"))?;
        if text.len() != 64 || !text.is_ascii() {
            return Err(format!("expected 64 hex digits, found {text:?}"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("not a hex string: {text:?}"))?;
        }
        Ok(out)
    }
    fn sample(gen: &mut SampleGen) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(&gen.bytes(32));
        out
    }
}

/// Bytes, borrowed from the journal when read. Base64 (standard, padded) in JSON.
impl<'a> Field<'a> for Cow<'a, [u8]> {
    type Archived = ArchivedVec<u8>;
    type Owned = Cow<'static, [u8]>;
    fn from_archived(archived: &'a ArchivedVec<u8>) -> Self {
        Cow::Borrowed(archived.as_slice())
    }
    fn into_owned(self) -> Cow<'static, [u8]> {
        Cow::Owned(self.into_owned())
    }
    fn to_json(&self) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(self))
    }
    fn from_json(value: &Value) -> Result<Self, String> {
        let text = value
            .as_str()
            .ok_or_else(|| format!("expected a base64 string, found {value}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Cow::Owned)
            .map_err(|e| format!("invalid base64: {e}"))
    }
    fn sample(gen: &mut SampleGen) -> Self {
        let len = gen.length();
        Cow::Owned(gen.bytes(len))
    }
}

/// Text (paths, addresses), borrowed from the journal when read.
impl<'a> Field<'a> for Cow<'a, str> {
    type Archived = ArchivedString;
    type Owned = Cow<'static, str>;
    fn from_archived(archived: &'a ArchivedString) -> Self {
        Cow::Borrowed(archived.as_str())
    }
    fn into_owned(self) -> Cow<'static, str> {
        Cow::Owned(self.into_owned())
    }
    fn to_json(&self) -> Value {
        Value::String(self.to_string())
    }
    fn from_json(value: &Value) -> Result<Self, String> {
        value
            .as_str()
            .map(|s| Cow::Owned(s.to_owned()))
            .ok_or_else(|| format!("expected a string, found {value}"))
    }
    fn sample(gen: &mut SampleGen) -> Self {
        Cow::Owned(gen.text())
    }
}

/// A list of strings (arguments, environment). Copied when read: these are
/// small and read once per run.
impl<'a> Field<'a> for Vec<String> {
    type Archived = ArchivedVec<ArchivedString>;
    type Owned = Vec<String>;
    fn from_archived(archived: &'a Self::Archived) -> Self {
        archived.iter().map(|s| s.as_str().to_owned()).collect()
    }
    fn into_owned(self) -> Self {
        self
    }
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(|s| Value::String(s.clone())).collect())
    }
    fn from_json(value: &Value) -> Result<Self, String> {
        let items = value
            .as_array()
            .ok_or_else(|| format!("expected an array of strings, found {value}"))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("expected a string, found {item}"))
            })
            .collect()
    }
    fn sample(gen: &mut SampleGen) -> Self {
        let count = gen.length().min(6);
        (0..count).map(|_| gen.text()).collect()
    }
}

/// A list of 64-bit values (global values). Copied when read.
impl<'a> Field<'a> for Vec<u64> {
    type Archived = ArchivedVec<Archived<u64>>;
    type Owned = Vec<u64>;
    fn from_archived(archived: &'a Self::Archived) -> Self {
        archived.iter().map(|v| v.to_native()).collect()
    }
    fn into_owned(self) -> Self {
        self
    }
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(|v| Value::from(*v)).collect())
    }
    fn from_json(value: &Value) -> Result<Self, String> {
        let items = value
            .as_array()
            .ok_or_else(|| format!("expected an array of integers, found {value}"))?;
        items.iter().map(expect_u64).collect()
    }
    fn sample(gen: &mut SampleGen) -> Self {
        let count = gen.length().min(16);
        (0..count).map(|_| gen.next_u64()).collect()
    }
}
