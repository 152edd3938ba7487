//! The REQUEST authorizer event, read straight from the bytes Lambda delivers: only the fields
//! the decision needs, borrowed where JSON escaping allows. The rest of the (large) event is
//! skipped without being built.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent<'a> {
    #[serde(borrow)]
    pub method_arn: Cow<'a, str>,
    #[serde(borrow, default)]
    pub headers: HeaderList<'a>,
    #[serde(borrow, default)]
    pub multi_value_headers: HeaderList<'a>,
    #[serde(borrow, default)]
    pub request_context: Option<RequestContext<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext<'a> {
    #[serde(borrow, default)]
    pub request_id: Option<Cow<'a, str>>,
}

/// Every (name, value) pair of a header map, whether its values are strings (`headers`) or
/// lists of strings (`multiValueHeaders`); `null` maps and values count as absent.
#[derive(Debug, Default)]
pub struct HeaderList<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> AuthorizerEvent<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The request's headers: every value of `multiValueHeaders` when API Gateway sent it (so
    /// repeated headers are all seen), else `headers`.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let list = if self.multi_value_headers.0.is_empty() { &self.headers } else { &self.multi_value_headers };
        list.0.iter().map(|(name, value)| (name.as_ref(), value.as_ref()))
    }

    pub fn request_id(&self) -> Option<&str> {
        self.request_context.as_ref()?.request_id.as_deref()
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
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let HeaderValues(values) = map.next_value()?;
            for value in values {
                pairs.push((name.clone(), value));
            }
        }
        Ok(HeaderList(pairs))
    }
}

/// A header's value(s): a string, a list of strings, or null.
struct HeaderValues<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for HeaderValues<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;

        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = HeaderValues<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value or a list of them")
            }

            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(HeaderValues(vec![Cow::Borrowed(value)]))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(HeaderValues(vec![Cow::Owned(value.to_owned())]))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(HeaderValues(Vec::new()))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut values = Vec::with_capacity(1);
                while let Some(value) = seq.next_element::<Option<Cow<'de, str>>>()? {
                    values.extend(value);
                }
                Ok(HeaderValues(values))
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                // Not a header; skip it rather than fail the whole event.
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(HeaderValues(Vec::new()))
            }
        }

        deserializer.deserialize_any(ValuesVisitor)
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
    fn null_maps_and_escaped_values() {
        let raw = br#"{"methodArn":"arn","headers":null,"multiValueHeaders":null}"#;
        assert_eq!(AuthorizerEvent::parse(raw).unwrap().header_pairs().count(), 0);
        let raw = br#"{"methodArn":"arn","headers":{"x-api-key":"a\u0062c","x":null}}"#;
        let event = AuthorizerEvent::parse(raw).unwrap();
        assert_eq!(event.header_pairs().collect::<Vec<_>>(), [("x-api-key", "abc")]);
        assert!(AuthorizerEvent::parse(br#"{"headers":{}}"#).is_err(), "methodArn is required");
    }
}
