//! The authorizer's raw event parser (`functions/authorizer/src/event.rs`): `AuthorizerEvent::parse`
//! of arbitrary bytes, then `header_pairs` and `request_id`.
//!
//! The parser's own source file is compiled in with `#[path]` (so what is fuzzed is exactly that
//! file, not a copy), because the authorizer crate as a whole links the AWS SDK, JWT and HTTP
//! stacks: instrumented, they would add minutes to every cold build for code this parser never
//! calls. The file needs only serde and serde_json.
//!
//! Beyond "no panic", an accepted event agrees with an independent reading of the same JSON
//! (objects read as ordered lists of entries, so repeated names are kept): `methodArn`, the
//! request id, and every header pair in order, from `multiValueHeaders` when that gives any pair,
//! else from `headers`; `null` maps and values are absent. A borrowed name or value points into
//! the input.
#![no_main]

#[allow(dead_code)]
#[path = "../../functions/authorizer/src/event.rs"]
mod event;

use std::borrow::Cow;
use std::fmt;

use event::AuthorizerEvent;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

/// A JSON value with objects kept as ordered entries (repeated names included). Strings are
/// decoded; other scalars are only told apart.
#[derive(Debug)]
enum Json {
    Null,
    Scalar,
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
                Ok(Json::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Json, E> {
                Ok(Json::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Json, E> {
                Ok(Json::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
                Ok(Json::Scalar)
            }
            fn visit_str<E>(self, value: &str) -> Result<Json, E> {
                Ok(Json::Str(value.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }
        deserializer.deserialize_any(JsonVisitor)
    }
}

impl Json {
    /// The value of the one entry `name` (the parser refuses repeated known fields).
    fn field(&self, name: &str) -> Option<&Json> {
        let Json::Object(entries) = self else { return None };
        let mut found = entries.iter().filter(|(key, _)| key == name).map(|(_, value)| value);
        let first = found.next();
        assert!(found.next().is_none(), "a repeated `{name}` was accepted");
        first
    }

    fn text(&self) -> Option<&str> {
        match self {
            Json::Str(text) => Some(text),
            _ => None,
        }
    }
}

/// The header pairs of a map as documented: a string value is one pair, a list gives one pair per
/// string (nulls skipped), null and object values give none. `None`: the parser must refuse it.
fn header_pairs(map: Option<&Json>) -> Option<Vec<(&str, &str)>> {
    let entries = match map {
        None | Some(Json::Null) => return Some(Vec::new()),
        Some(Json::Object(entries)) => entries,
        Some(_) => return None,
    };
    let mut pairs = Vec::new();
    for (name, value) in entries {
        match value {
            Json::Str(value) => pairs.push((name.as_str(), value.as_str())),
            Json::Null | Json::Object(_) => {}
            Json::Array(values) => {
                for value in values {
                    match value {
                        Json::Str(value) => pairs.push((name.as_str(), value.as_str())),
                        Json::Null => {}
                        _ => return None,
                    }
                }
            }
            Json::Scalar => return None,
        }
    }
    Some(pairs)
}

/// `text` is a slice of `input` (the same memory, not only equal text).
fn points_into(text: &str, input: &[u8]) -> bool {
    let input = input.as_ptr_range();
    input.start as usize <= text.as_ptr() as usize && text.as_ptr() as usize + text.len() <= input.end as usize
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = AuthorizerEvent::parse(data) else { return };
    let pairs: Vec<(&str, &str)> = event.header_pairs().collect();
    let request_id = event.request_id();
    let texts = event.headers.0.iter().flat_map(|(name, value)| [name, value]);
    for text in texts.chain([&event.method_arn]) {
        if let Cow::Borrowed(text) = text {
            assert!(points_into(text, data), "a borrowed {text:?} is not from the input");
        }
    }

    // Read the event again, independently. serde_json skips the fields the parser does not need
    // without checking their numbers' range, which this reading does: such an input is left at
    // "no panic".
    let Ok(json) = serde_json::from_slice::<Json>(data) else { return };
    // An event and its requestContext are objects: serde's derived structs would also read
    // arrays by position, which the parser refuses.
    assert!(matches!(json, Json::Object(_)), "accepted a non-object event");
    let context = json.field("requestContext");
    assert!(matches!(context, None | Some(Json::Null) | Some(Json::Object(_))), "accepted a non-object requestContext");
    assert_eq!(json.field("methodArn").and_then(Json::text), Some(event.method_arn.as_ref()));
    let expected_request_id = json.field("requestContext").and_then(|context| context.field("requestId"));
    assert_eq!(expected_request_id.and_then(Json::text), request_id);

    let multi = header_pairs(json.field("multiValueHeaders")).expect("accepted bad multiValueHeaders");
    let expected =
        if multi.is_empty() { header_pairs(json.field("headers")).expect("accepted bad headers") } else { multi };
    assert_eq!(pairs, expected);
});
