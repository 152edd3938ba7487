//! The REQUEST authorizer event, read straight from the bytes Lambda delivers: only the fields
//! the decision needs, borrowed where JSON escaping allows. The rest of the (large) event is
//! skipped without being built.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The event's fields as they arrive, read in one pass: both header maps are built as lists of
/// borrowed pairs, which costs less than skipping one and reading the other a second time.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent<'a> {
    #[serde(borrow)]
    method_arn: Cow<'a, str>,
    #[serde(borrow, default)]
    headers: HeaderList<'a>,
    #[serde(borrow, default)]
    multi_value_headers: HeaderList<'a>,
    #[serde(borrow, default)]
    request_context: Option<RequestContext<'a>>,
}

#[derive(Debug)]
pub struct AuthorizerEvent<'a> {
    pub method_arn: Cow<'a, str>,
    /// Every value of `multiValueHeaders` when API Gateway sent it (so repeated headers are all
    /// seen), else `headers`.
    pub headers: HeaderList<'a>,
    pub request_context: Option<RequestContext<'a>>,
}

#[derive(Debug)]
pub struct RequestContext<'a> {
    request_id: Option<Text<'a>>,
    /// `identity.sourceIp`: the address API Gateway saw the request come from.
    source_ip: Option<Text<'a>>,
}

/// `requestContext.identity`, of which only `sourceIp` is read; a map only, like its parent.
struct Identity<'a> {
    source_ip: Option<Text<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Identity<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdentityVisitor;

        impl<'de> Visitor<'de> for IdentityVisitor {
            type Value = Identity<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an identity object")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Identity { source_ip: None })
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut source_ip = None;
                while let Some(Text(name)) = map.next_key()? {
                    if name == "sourceIp" {
                        if source_ip.is_some() {
                            return Err(de::Error::duplicate_field("sourceIp"));
                        }
                        source_ip = Some(map.next_value::<Option<Text<'de>>>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Identity { source_ip: source_ip.flatten() })
            }
        }

        deserializer.deserialize_any(IdentityVisitor)
    }
}

/// Read as a map only, in the event's one pass: serde's derived structs would also take a JSON
/// array, by position (found by fuzzing).
impl<'de: 'a, 'a> Deserialize<'de> for RequestContext<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContextVisitor;

        impl<'de> Visitor<'de> for ContextVisitor {
            type Value = RequestContext<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a requestContext object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let (mut request_id, mut seen) = (None, false);
                let mut identity: Option<Identity<'de>> = None;
                while let Some(Text(name)) = map.next_key()? {
                    if name == "identity" {
                        if identity.is_some() {
                            return Err(de::Error::duplicate_field("identity"));
                        }
                        identity = Some(map.next_value()?);
                    } else if name == "requestId" {
                        // Twice is malformed, as serde's derived structs have it (found by fuzzing).
                        if std::mem::replace(&mut seen, true) {
                            return Err(de::Error::duplicate_field("requestId"));
                        }
                        request_id = map.next_value::<Option<Text<'de>>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RequestContext { request_id, source_ip: identity.and_then(|identity| identity.source_ip) })
            }
        }

        deserializer.deserialize_map(ContextVisitor)
    }
}

/// Every (name, value) pair of a header map, whether its values are strings (`headers`) or
/// lists of strings (`multiValueHeaders`); `null` maps and values count as absent.
#[derive(Debug, Default)]
pub struct HeaderList<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> AuthorizerEvent<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        // serde's derived structs also read a JSON array, by position; an event is an object.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(de::Error::custom("an authorizer event is a JSON object"));
        }
        // Valid UTF-8 as a whole, checked once: each string is then read without a check of its
        // own (from a `str`, serde_json checks only escapes), which was a tenth of the decision.
        let text = std::str::from_utf8(bytes).map_err(|_| de::Error::custom("an authorizer event is UTF-8"))?;
        let raw: RawEvent<'a> = serde_json::from_str(text)?;
        let headers = if raw.multi_value_headers.0.is_empty() { raw.headers } else { raw.multi_value_headers };
        Ok(Self { method_arn: raw.method_arn, headers, request_context: raw.request_context })
    }

    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.0.iter().map(|(name, value)| (name.as_ref(), value.as_ref()))
    }

    /// The caller's address as API Gateway reports it; `None` when absent or not an address.
    pub fn source_ip(&self) -> Option<std::net::IpAddr> {
        self.request_context.as_ref()?.source_ip.as_ref()?.0.parse().ok()
    }

    pub fn request_id(&self) -> Option<&str> {
        self.request_context.as_ref()?.request_id.as_ref().map(|Text(id)| id.as_ref())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderList<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_option(HeaderListVisitor)
    }
}

struct HeaderListVisitor;

impl<'de> Visitor<'de> for HeaderListVisitor {
    type Value = HeaderList<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of header names to strings or lists of strings")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(HeaderList::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(HeaderList::default())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(Text(name)) = map.next_key()? {
            map.next_value_seed(HeaderValues { name, pairs: &mut pairs })?;
        }
        Ok(HeaderList(pairs))
    }
}

/// A string, borrowed from the event unless JSON escapes forced a copy. (serde's own
/// `Cow<str>` always copies outside a `#[serde(borrow)]` field.)
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(value)))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(value.to_owned())))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// A header's value(s) (a string, a list of strings, or null), pushed straight onto the list
/// as (name, value) pairs: no allocation per header.
struct HeaderValues<'l, 'a> {
    name: Cow<'a, str>,
    pairs: &'l mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'de, 'l> DeserializeSeed<'de> for HeaderValues<'l, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'l> Visitor<'de> for HeaderValues<'l, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a header value or a list of them")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<(), E> {
        self.pairs.push((self.name, Cow::Borrowed(value)));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.pairs.push((self.name, Cow::Owned(value.to_owned())));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some(value) = seq.next_element::<Option<Text<'de>>>()? {
            self.pairs.extend(value.map(|Text(value)| (self.name.clone(), value)));
        }
        Ok(())
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        // Not a header; skip it rather than fail the whole event.
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_header_maps_and_skips_the_rest() {
        let raw = br#"{"type":"REQUEST","methodArn":"arn:aws:execute-api:us-east-1:123:abc/prod/GET/whoami",
            "headers":{"X-Api-Key":"k1","Accept":"*/*"},
            "multiValueHeaders":{"X-Api-Key":["k1","k2"],"Accept":["*/*"]},
            "queryStringParameters":null,"requestContext":{"requestId":"r-1","identity":{"sourceIp":"1.2.3.4"}}}"#;
        let event = AuthorizerEvent::parse(raw).unwrap();
        assert_eq!(event.method_arn, "arn:aws:execute-api:us-east-1:123:abc/prod/GET/whoami");
        let pairs: Vec<_> = event.header_pairs().collect();
        assert_eq!(pairs, [("X-Api-Key", "k1"), ("X-Api-Key", "k2"), ("Accept", "*/*")]);
        assert_eq!(event.request_id(), Some("r-1"));
    }

    #[test]
    fn only_objects_are_events() {
        // Found by fuzzing: serde reads a struct from an array by position.
        let array = br#"["arn:aws:execute-api:eu-west-1:1:a/prod/GET/whoami", {"x-api-key": "lk_x"}, null, ["r-1"]]"#;
        assert!(AuthorizerEvent::parse(array).is_err());
        assert!(AuthorizerEvent::parse(br#"{"methodArn": "arn", "requestContext": ["r-1"]}"#).is_err());
        assert!(AuthorizerEvent::parse(br#" {"methodArn": "arn", "requestContext": null}"#).is_ok());
        let twice = br#"{"methodArn": "arn", "requestContext": {"requestId": "a", "requestId": "b"}}"#;
        assert!(AuthorizerEvent::parse(twice).is_err());
    }

    #[test]
    fn null_maps_and_escaped_values() {
        let raw = br#"{"methodArn":"arn","headers":null,"multiValueHeaders":null}"#;
        assert_eq!(AuthorizerEvent::parse(raw).unwrap().header_pairs().count(), 0);
        let raw = br#"{"methodArn":"arn","headers":{"x-api-key":"a\u0062c","x":null}}"#;
        let event = AuthorizerEvent::parse(raw).unwrap();
        assert_eq!(event.header_pairs().collect::<Vec<_>>(), [("x-api-key", "abc")]);
        assert!(AuthorizerEvent::parse(br#"{"headers":{}}"#).is_err(), "methodArn is required");
    }
}
