//! Validated, pseudonymous identifiers.
//!
//! The wire contract gives every id one grammar: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
//! That keeps ids safe inside MQTT topics (no `/`, `+`, `#`, spaces) and short enough
//! to index. Ids are pseudonyms: the platform maps them to people through its
//! registry; no name or phone number is ever an id.

use std::fmt;

/// The longest id the grammar allows.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is {len} characters long; at most {MAX_ID_LEN} are allowed")]
    TooLong { len: usize },
    #[error("must start with a letter or digit, not {found:?}")]
    BadFirst { found: char },
    #[error(
        "contains {found:?} at position {position}; only letters, digits, '.', '_' and '-' are allowed"
    )]
    BadChar { found: char, position: usize },
}

/// Checks `s` against the id grammar `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn check_id(s: &str) -> Result<(), IdError> {
    let mut chars = s.chars();
    let first = chars.next().ok_or(IdError::Empty)?;
    if !first.is_ascii_alphanumeric() {
        return Err(IdError::BadFirst { found: first });
    }
    for (i, c) in s.char_indices().skip(1) {
        if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(IdError::BadChar {
                found: c,
                position: i,
            });
        }
    }
    // All characters are ASCII past this point, so bytes == characters.
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    Ok(())
}

/// The longest id kept inline, without an allocation of its own: with its length and
/// variant, one word less than three (the size of a `String`).
const INLINE: usize = 22;

/// An id's text: inline when short (the ids of a registry of 100 000 patients, some
/// two million of them, are), else on the heap. Compared, ordered and hashed as its
/// text, like the `String` it replaces.
#[derive(Clone)]
enum IdText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl IdText {
    /// `s` is a checked id: ASCII, at most [`MAX_ID_LEN`] bytes.
    fn new(s: &str) -> IdText {
        let mut bytes = [0u8; INLINE];
        match (bytes.get_mut(..s.len()), u8::try_from(s.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(s.as_bytes());
                IdText::Inline { len, bytes }
            }
            _ => IdText::Heap(s.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Always valid: copied from a `str` whole; never cut (ids are ASCII).
            IdText::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            IdText::Heap(s) => s,
        }
    }

    /// The text's bytes, unchecked: comparing them orders as `str` does (byte by
    /// byte), without `as_str`'s UTF-8 check, which was most of a registry lookup.
    fn as_bytes(&self) -> &[u8] {
        match self {
            IdText::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            IdText::Heap(s) => s.as_bytes(),
        }
    }
}

impl PartialEq for IdText {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for IdText {}

impl PartialOrd for IdText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IdText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for IdText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(IdText);

        impl $name {
            /// Parses and validates an id.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_id(s)?;
                Ok(Self(IdText::new(s)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(|e| {
                    serde::de::Error::custom(format_args!("{} {:?} {e}", stringify!($name), s))
                })
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

id_type!(
    /// A home gateway (our edge agent or a third-party one). Re-enrolled under a new
    /// id when it loses its state, so its `batch_seq` numbering never restarts.
    GatewayId
);
id_type!(
    /// A measuring device (cuff, meter, patch, ...). Bound to one gateway.
    DeviceId
);
id_type!(
    /// A patient's pseudonym. Never a name, ID-card number or phone number.
    PatientId
);
id_type!(
    /// A doctor or desk that receives alerts.
    DoctorId
);
id_type!(
    /// A hospital, community health centre or other member of a consortium.
    InstitutionId
);
id_type!(
    /// An alert episode; stable for the episode's whole life.
    AlertId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_examples_of_the_wire_contract() {
        for s in [
            "gw-0001",
            "bpm-omron-3f9a21",
            "p-000123",
            "d-duty-01",
            "hub-tongji",
            "a",
        ] {
            assert!(check_id(s).is_ok(), "{s}");
        }
        assert!(check_id(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_topic_metacharacters_spaces_and_bad_starts_with_a_reason() {
        assert_eq!(check_id(""), Err(IdError::Empty));
        assert_eq!(check_id("-gw"), Err(IdError::BadFirst { found: '-' }));
        assert_eq!(
            check_id("gw/1"),
            Err(IdError::BadChar {
                found: '/',
                position: 2
            })
        );
        for s in ["gw+1", "gw#", "gw 1", "患者"] {
            assert!(check_id(s).is_err(), "{s}");
        }
        assert_eq!(check_id(&"a".repeat(65)), Err(IdError::TooLong { len: 65 }));
    }

    #[test]
    fn an_id_is_the_size_of_a_string_and_short_ones_are_inline() {
        assert_eq!(size_of::<PatientId>(), size_of::<String>());
        assert_eq!(size_of::<Option<PatientId>>(), size_of::<String>());
        for s in [
            "a",
            &"b".repeat(INLINE),
            &"c".repeat(INLINE + 1),
            &"d".repeat(64),
        ] {
            let id = DeviceId::parse(s).unwrap();
            assert_eq!(id.as_str(), s);
            assert_eq!(matches!(id.0, IdText::Inline { .. }), s.len() <= INLINE);
            assert_eq!(format!("{id}"), s);
            assert_eq!(format!("{id:?}"), format!("DeviceId({s:?})"));
        }
    }

    proptest! {
        #[test]
        fn every_string_of_the_grammar_is_accepted(s in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}") {
            prop_assert!(GatewayId::parse(&s).is_ok());
        }

        #[test]
        fn ids_compare_order_and_hash_as_their_text(
            a in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
            b in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
        ) {
            use std::hash::BuildHasher;
            let (x, y) = (PatientId::parse(&a).unwrap(), PatientId::parse(&b).unwrap());
            prop_assert_eq!(x.as_str(), a.as_str());
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x == y, a == b);
            let h = std::collections::hash_map::RandomState::new();
            prop_assert_eq!(h.hash_one(&x), h.hash_one(a.as_str()));
            prop_assert_eq!(x.clone(), x);
        }

        #[test]
        fn any_accepted_string_is_of_the_grammar(s in "\\PC{0,70}") {
            if check_id(&s).is_ok() {
                prop_assert!(s.len() <= 64);
                prop_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
                prop_assert!(s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()));
            }
        }
    }
}
