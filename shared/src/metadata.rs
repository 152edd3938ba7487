//! What a provider attaches to a key about itself: whose it is ([`OwnerId`]) and free-form
//! metadata ([`KeyMeta`]). Both are the provider's data, returned as given; neither is a secret,
//! and both reach the backend with each request the key makes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The provider's own id for the customer or user a key belongs to: 1 to 128 characters, none
/// of them a control character, not all blank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerId(String);

impl OwnerId {
    pub const MAX_CHARS: usize = 128;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 128 printable characters, not all blank")]
pub struct InvalidOwnerId;

impl FromStr for OwnerId {
    type Err = InvalidOwnerId;

    fn from_str(value: &str) -> Result<Self, InvalidOwnerId> {
        let chars = value.chars().count();
        let valid =
            (1..=Self::MAX_CHARS).contains(&chars) && !value.trim().is_empty() && !value.chars().any(char::is_control);
        if valid { Ok(Self(value.to_owned())) } else { Err(InvalidOwnerId) }
    }
}

impl TryFrom<String> for OwnerId {
    type Error = InvalidOwnerId;

    fn try_from(value: String) -> Result<Self, InvalidOwnerId> {
        value.parse()
    }
}

impl From<OwnerId> for String {
    fn from(id: OwnerId) -> String {
        id.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON object of at most [`KeyMeta::MAX_BYTES`] in its header form ([`KeyMeta::to_header`]);
/// `{}` when none was given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct KeyMeta(Map<String, Value>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMeta {
    #[error("must be a JSON object")]
    NotAnObject,
    #[error(
        "must be at most 4096 bytes as sent in X-Latchkey-Meta (compact JSON, every character outside printable ASCII escaped as \\uXXXX: 6 bytes, 12 outside the BMP), not {0}"
    )]
    TooLarge(usize),
}

impl KeyMeta {
    /// What API Gateway's authorizer context and a request header can carry comfortably, measured
    /// on what is sent ([`Self::to_header`]), never larger than what is stored: a backend behind
    /// nginx (8 KiB per header line by default) takes any key's header.
    pub const MAX_BYTES: usize = 4096;

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Compact JSON, as stored.
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// Compact JSON with every character a header value cannot carry escaped: the same object in
    /// printable ASCII only, which any HTTP header and API Gateway's context carry unchanged.
    /// serde_json escapes `"`, `\` and the C0 controls already; DEL (U+007F) and everything
    /// outside ASCII become JSON's `\uXXXX` (a surrogate pair outside the BMP).
    pub fn to_header(&self) -> String {
        header_form(&self.0)
    }
}

fn header_form(map: &Map<String, Value>) -> String {
    let json = serde_json::to_string(map).expect("a JSON map always serializes");
    let mut ascii = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            ascii.push(c);
        } else {
            // Outside printable ASCII means inside a string: JSON's own escape is valid there.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                ascii.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    ascii
}

/// A key record's `meta` as JSON text: DynamoDB's maps cannot hold every JSON object (no empty
/// names, at most 32 levels deep), and a text returns exactly what was stored, in both stores.
pub mod stored_as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::KeyMeta;

    pub fn serialize<S: Serializer>(meta: &KeyMeta, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&meta.to_json())
    }

    /// What was stored is read back as it was: the bound is checked where meta comes in, so a
    /// record stored under an earlier bound stays readable.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<KeyMeta, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text).map(KeyMeta).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Value> for KeyMeta {
    type Error = InvalidMeta;

    fn try_from(value: Value) -> Result<Self, InvalidMeta> {
        match value {
            Value::Object(map) => map.try_into(),
            _ => Err(InvalidMeta::NotAnObject),
        }
    }
}

impl TryFrom<Map<String, Value>> for KeyMeta {
    type Error = InvalidMeta;

    fn try_from(map: Map<String, Value>) -> Result<Self, InvalidMeta> {
        let size = header_form(&map).len();
        if size > Self::MAX_BYTES { Err(InvalidMeta::TooLarge(size)) } else { Ok(Self(map)) }
    }
}

impl From<KeyMeta> for Map<String, Value> {
    fn from(meta: KeyMeta) -> Self {
        meta.0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn owner_ids_are_printable_and_bounded() {
        for good in ["cus_123", "user@example.com", "Ünïcode owner", "a#b", &"x".repeat(128)] {
            assert_eq!(good.parse::<OwnerId>().unwrap().as_str(), good);
        }
        for bad in ["", "   ", "tab\there", "new\nline", &"x".repeat(129)] {
            assert!(bad.parse::<OwnerId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn meta_is_an_object_of_at_most_4_kib_and_travels_as_ascii() {
        let meta = KeyMeta::try_from(json!({"plan": "pro", "seats": 3, "city": "Zürich 🏔"})).unwrap();
        assert_eq!(meta.to_header(), r#"{"city":"Z\u00fcrich \ud83c\udfd4","plan":"pro","seats":3}"#);
        let back: Value = serde_json::from_str(&meta.to_header()).unwrap();
        assert_eq!(back, Value::Object(meta.as_map().clone()));
        assert_eq!(KeyMeta::try_from(json!([1])), Err(InvalidMeta::NotAnObject));
        // {"a":"…"} is 8 bytes around the string.
        assert!(KeyMeta::try_from(json!({"a": "x".repeat(4096 - 8)})).is_ok());
        assert_eq!(KeyMeta::try_from(json!({"a": "x".repeat(4096 - 7)})), Err(InvalidMeta::TooLarge(4097)));
    }

    #[test]
    fn the_header_form_is_printable_ascii_and_the_bound_is_measured_on_it() {
        let printable = |text: &str| text.bytes().all(|b| (0x20..0x7f).contains(&b));
        let meta = KeyMeta::try_from(json!({"del": "a\u{7f}b", "tab": "\t", "nul": "\u{0}"})).unwrap();
        assert_eq!(meta.to_header(), r#"{"del":"a\u007fb","nul":"\u0000","tab":"\t"}"#);
        assert!(printable(&meta.to_header()));
        let back: Value = serde_json::from_str(&meta.to_header()).unwrap();
        assert_eq!(back, Value::Object(meta.as_map().clone()));
        // 2,044 × é is 4,096 bytes of UTF-8 JSON but 12,272 as sent: refused.
        assert_eq!(KeyMeta::try_from(json!({"a": "é".repeat(2044)})), Err(InvalidMeta::TooLarge(12_272)));
        // {"a":"…"} is 8 bytes around the string; each é is 6 bytes as sent.
        let most = (4096 - 8) / 6;
        let fits = KeyMeta::try_from(json!({"a": "é".repeat(most)})).unwrap();
        assert!(fits.to_header().len() <= KeyMeta::MAX_BYTES && printable(&fits.to_header()));
        assert!(KeyMeta::try_from(json!({"a": "é".repeat(most + 1)})).is_err());
    }

    #[test]
    fn stored_meta_is_read_back_whatever_its_size() {
        #[derive(Deserialize)]
        struct Stored {
            #[serde(with = "stored_as_text")]
            meta: KeyMeta,
        }
        let text = json!({"a": "é".repeat(2044)}).to_string();
        let stored: Stored = serde_json::from_value(json!({ "meta": text })).unwrap();
        assert_eq!(stored.meta.as_map()["a"], json!("é".repeat(2044)));
    }
}
