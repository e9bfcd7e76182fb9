//! Identifier newtypes: parsed once at the API edge, so the rest of the code only ever sees
//! valid ids.

use std::{borrow::Cow, fmt, sync::Arc};

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} characters long; the limit is {MAX_ID_LEN}")]
    TooLong(usize),
    #[error("contains {0:?}; allowed are letters A-Z a-z, digits and - _ . : /")]
    BadCharacter(char),
}

/// Whether a byte may stand in an id, by its value: letters A-Z a-z, digits and - _ . : /.
const ALLOWED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':' | b'/');
        b += 1;
    }
    table
};

fn check(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(raw.chars().count()));
    }
    // Every allowed character is ASCII: a byte scan through a table (every id of every
    // event passes here, twice), eight bytes a step with one branch (a branch a byte was most
    // of its instructions); then, for a refusal, the character that starts at the first bad
    // byte for the message.
    let bytes = raw.as_bytes();
    let mut chunks = bytes.chunks_exact(8);
    let all_allowed = chunks.by_ref().all(|chunk| {
        chunk
            .iter()
            .fold(true, |ok, &b| ok & ALLOWED[usize::from(b)])
    }) && chunks.remainder().iter().all(|&b| ALLOWED[usize::from(b)]);
    if all_allowed {
        return Ok(());
    }
    match bytes.iter().position(|&b| !ALLOWED[usize::from(b)]) {
        Some(at) => Err(IdError::BadCharacter(
            raw[at..]
                .chars()
                .next()
                .unwrap_or(char::REPLACEMENT_CHARACTER),
        )),
        None => Ok(()),
    }
}

/// Text that passed an id's check, still the caller's (borrowed from a request where it
/// can be): ingest checks every event and forwards it as it came, so it needs the verdict,
/// not an id that owns a copy of the text; an id is made from it without checking again
/// (`EventId::from_checked`, ...).
#[derive(Debug)]
pub struct CheckedId<'a>(Cow<'a, str>);

impl<'a> CheckedId<'a> {
    /// Checks `raw` as every id is checked ([`EventId::parse`]).
    #[inline]
    pub fn check(raw: Cow<'a, str>) -> Result<Self, IdError> {
        check(&raw).map(|()| Self(raw))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `a` and `b` are the same text in memory (then equal).
fn same_text(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b)
}

/// How an id stores its text: a `String` gives itself back; a shared `Arc<str>` a copy.
trait Text {
    fn into_string(self) -> String;
}

impl Text for String {
    fn into_string(self) -> String {
        self
    }
}

impl Text for Arc<str> {
    fn into_string(self) -> String {
        self.as_ref().to_owned()
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $text:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name($text);

        impl std::hash::Hash for $name {
            // Inlined: plans hash ids by the thousand per batch, and a call per hash (which
            // the compiler chose for some builds of the tree writer) cost 400 instructions
            // an event.
            #[inline]
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state);
            }
        }

        // The text's order and equality, with one shortcut: two ids that share their text
        // (a catalog's id and its clones, which plans and reads key their maps by) are equal
        // without reading it. Plans compare such ids by the thousand per batch.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                same_text(self.as_str(), other.as_str()) || self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                if same_text(self.as_str(), other.as_str()) {
                    return std::cmp::Ordering::Equal;
                }
                self.as_str().cmp(other.as_str())
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// Parses an id: 1 to 128 characters from A-Z, a-z, 0-9 and `-_.:/`.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                check(raw).map(|()| Self(raw.into()))
            }

            /// [`Self::parse`], keeping the string it was given where the id is stored as one.
            pub fn parse_owned(raw: String) -> Result<Self, IdError> {
                check(&raw).map(|()| Self(raw.into()))
            }

            /// The id of text already checked (no second check; a copy only of text that
            /// was borrowed).
            #[inline]
            pub fn from_checked(checked: CheckedId<'_>) -> Self {
                Self(checked.0.into_owned().into())
            }

            /// The id's text, given back (no copy where the id is stored as a `String`).
            pub fn into_string(self) -> String {
                Text::into_string(self.0)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Hash, Eq and Ord are the text's (derived through `str`), so maps keyed by ids can
        // be asked with the text itself, without making an id first.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// An agency: a ministry, a province or a unit below one (`ha-noi`, `mof`). Shared, not
    /// copied, when cloned: agencies are the keys of plans, reads and rows (a block of 10,000
    /// units names each in several of them), where event ids and dossiers pass through once.
    AgencyId,
    Arc<str>
);
id_type!(
    /// An administrative procedure. Shared, not copied, when cloned: an event's procedure is
    /// the catalog's own id, and plans and reads key their procedure breakdowns by it.
    ProcedureId,
    Arc<str>
);
id_type!(
    /// The sender's id of an event; unique within its agency, reused on retry.
    EventId,
    String
);
id_type!(
    /// The agency's own id of a dossier.
    DossierId,
    String
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_text_is_checked_as_an_id_and_makes_the_same_id_without_a_copy_until_then() {
        let text = String::from("hs-1:rcv");
        let checked = CheckedId::check(Cow::Borrowed(&text)).expect("an id");
        assert!(std::ptr::eq(checked.as_str(), text.as_str()), "borrowed");
        assert_eq!(
            EventId::from_checked(checked),
            EventId::parse(&text).expect("an id")
        );
        for bad in ["", "hs 1", &"x".repeat(MAX_ID_LEN + 1)] {
            assert_eq!(
                CheckedId::check(Cow::Borrowed(bad)).err(),
                EventId::parse(bad).err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_table_allows_exactly_letters_digits_and_five_marks() {
        let allowed: String = (0..=255u8)
            .filter(|b| ALLOWED[usize::from(*b)])
            .map(char::from)
            .collect();
        assert_eq!(
            allowed,
            "-./0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn ids_compare_as_their_text_shared_or_not() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let a = AgencyId::parse("ha-noi").expect("valid");
        let shared = a.clone();
        let copy = AgencyId::parse("ha-noi").expect("valid");
        let prefix = AgencyId::parse("ha-no").expect("valid");
        assert!(
            std::ptr::eq(a.as_str(), shared.as_str()),
            "a clone shares its text"
        );
        assert!(!std::ptr::eq(a.as_str(), copy.as_str()));
        for (x, y, order) in [
            (&a, &shared, Equal),
            (&a, &copy, Equal),
            (&a, &prefix, Greater),
            (&prefix, &a, Less),
        ] {
            assert_eq!(x.cmp(y), order, "{x} against {y}");
            assert_eq!(x.partial_cmp(y), Some(order), "{x} against {y}");
            assert_eq!(x == y, order == Equal, "{x} against {y}");
            assert_eq!(
                x.as_str().cmp(y.as_str()),
                order,
                "as text: {x} against {y}"
            );
        }
        // Hashed as its text, so that a map keyed by ids can be asked with text.
        use std::hash::BuildHasher;
        let hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default();
        assert_eq!(hasher.hash_one(&copy), hasher.hash_one("ha-noi"));
    }

    #[test]
    fn valid_ids_parse() {
        for ok in ["ha-noi", "a", "HS/2026:0001_x.y", &"x".repeat(MAX_ID_LEN)] {
            assert_eq!(
                AgencyId::parse(ok).map(|id| id.to_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn invalid_ids_say_why() {
        assert_eq!(EventId::parse(""), Err(IdError::Empty));
        assert_eq!(EventId::parse(&"x".repeat(129)), Err(IdError::TooLong(129)));
        assert_eq!(EventId::parse("a b"), Err(IdError::BadCharacter(' ')));
        assert_eq!(EventId::parse("hà"), Err(IdError::BadCharacter('à')));
        assert_eq!(
            EventId::parse("a{b}").map_err(|e| e.to_string()),
            Err("contains '{'; allowed are letters A-Z a-z, digits and - _ . : /".to_owned())
        );
    }

    #[test]
    fn a_bad_character_is_found_wherever_it_stands() {
        // The scan goes eight bytes a step, then the rest: every position of both.
        for len in [1, 7, 8, 9, 16, 21] {
            for at in 0..len {
                for bad in ["~", " ", "à", "\u{0}"] {
                    let id = format!("{}{bad}{}", "a".repeat(at), "b".repeat(len - at - 1));
                    let expected = bad.chars().next().expect("a character");
                    assert_eq!(
                        EventId::parse(&id),
                        Err(IdError::BadCharacter(expected)),
                        "{id:?}"
                    );
                }
            }
            assert!(EventId::parse(&"a".repeat(len)).is_ok());
        }
    }
}
