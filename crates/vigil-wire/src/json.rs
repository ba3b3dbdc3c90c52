//! A JSON document as the decoders read it: parsed once, its strings and keys
//! borrowed from the payload where they hold no escape.
//!
//! `serde_json::Value` allocates every key and every string, and keeps each object in
//! a B-tree; building it was a quarter of the instructions of taking in a 1-reading
//! envelope (BENCHMARKS.md, tenth session). An object here is its members in order,
//! looked up from the last: a key given twice means its last value, as in `Value`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object's members, in the order sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    /// The members of a `serde_json` map, borrowing its strings.
    pub(crate) fn of_map(map: &'a Map<String, Value>) -> Object<'a> {
        Object(
            map.iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::of_value(v)))
                .collect(),
        )
    }

    /// The member's value (the last one, if the key is given twice).
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'a> Json<'a> {
    /// Parses a whole document (trailing whitespace only after it). The result, and
    /// the error, are `serde_json::from_slice`'s for a `Value`.
    pub(crate) fn parse(payload: &'a [u8]) -> serde_json::Result<Json<'a>> {
        match std::str::from_utf8(payload) {
            // Every sound payload: read as text, whose strings serde_json then need
            // not check one by one (a tenth of the instructions of a decode).
            Ok(text) => Json::read(serde_json::Deserializer::from_str(text)),
            // Not UTF-8: read as bytes, for serde_json's error at the string at fault.
            Err(_) => Json::read(serde_json::Deserializer::from_slice(payload)),
        }
    }

    fn read<R: serde_json::de::Read<'a>>(
        mut d: serde_json::Deserializer<R>,
    ) -> serde_json::Result<Json<'a>> {
        let v = <Json<'a> as de::Deserialize>::deserialize(&mut d)?;
        d.end()?;
        Ok(v)
    }

    /// How deeply arrays and objects nest in it: 0 for a scalar, 1 for `[]`.
    pub(crate) fn nesting(&self) -> usize {
        match self {
            Json::Array(items) => 1 + items.iter().map(Json::nesting).max().unwrap_or(0),
            Json::Object(Object(members)) => {
                1 + members.iter().map(|(_, v)| v.nesting()).max().unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// A tree over a `serde_json::Value`, borrowing its strings.
    pub(crate) fn of_value(v: &'a Value) -> Json<'a> {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::of_value).collect()),
            Value::Object(map) => Json::Object(Object::of_map(map)),
        }
    }

    /// The same value as a `serde_json::Value` (for an error's copy of a reading). A
    /// key given twice keeps its last value, as `Value` does.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.clone().into_owned()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(Object(members)) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone().into_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub(crate) fn is_number(&self) -> bool {
        matches!(self, Json::Number(_))
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }
}

impl<'de> de::Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Json<'de>, E> {
        // As `Value` does: JSON has no non-finite numbers (serde_json refuses them).
        Ok(Number::from_f64(x).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        de::Deserialize::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key_seed(Key)? {
            members.push((key, map.next_value()?));
        }
        Ok(Json::Object(Object(members)))
    }
}

/// An object's key, borrowed when it has no escape.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, nested a few levels, with keys that repeat and strings that
    /// need escapes.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            "[a-c\"\\\\\u{1}é中]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-c\"]{0,2}", inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Parsed from text, the tree is the `Value` serde_json parses from it; and
        /// the tree over a `Value` gives that `Value` back.
        #[test]
        fn the_tree_holds_what_serde_json_parses(v in any_json()) {
            let text = serde_json::to_string(&v).unwrap();
            let tree = Json::parse(text.as_bytes()).unwrap();
            let parsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(tree.to_value(), parsed);
            prop_assert_eq!(Json::of_value(&v).to_value(), v);
        }

        /// What serde_json refuses, the tree refuses too, with the same error (the
        /// envelope's errors quote it, with its line and column), UTF-8 or not.
        #[test]
        fn the_tree_refuses_what_serde_json_refuses_alike(
            bytes in prop::collection::vec(
                prop_oneof![
                    8 => prop::sample::select(b"[]{}:,\"0123456789aenrtu.eE+-\\ \n".to_vec()),
                    1 => any::<u8>(),
                ],
                0..24,
            )
        ) {
            let ours = Json::parse(&bytes).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string());
            prop_assert_eq!(ours.map(|t| t.to_value()), theirs);
        }

        /// The nesting of a document is what the envelope's bracket scan finds.
        #[test]
        fn nesting_is_the_deepest_bracket(v in any_json()) {
            let text = serde_json::to_string(&v).unwrap();
            let tree = Json::parse(text.as_bytes()).unwrap();
            let mut depth = 0usize;
            while crate::envelope::exceeds_depth(text.as_bytes(), depth).is_some() {
                depth += 1;
            }
            prop_assert_eq!(tree.nesting(), depth);
        }
    }

    #[test]
    fn a_key_given_twice_means_its_last_value_and_unescaped_strings_are_borrowed() {
        let text = br#"{"a": 1, "b": "x\ny", "a": "last", "c": "plain"}"#;
        let tree = Json::parse(text).unwrap();
        let obj = tree.as_object().unwrap();
        assert_eq!(obj.get("a").and_then(Json::as_str), Some("last"));
        assert!(matches!(
            obj.get("c"),
            Some(Json::String(Cow::Borrowed("plain")))
        ));
        assert_eq!(obj.get("b").and_then(Json::as_str), Some("x\ny"));
        assert_eq!(
            tree.to_value(),
            serde_json::from_slice::<Value>(text).unwrap()
        );
    }
}
