//! A serde `Deserializer` over the positioned YAML tree.
//!
//! Going straight from [`Node`] to the typed structs (instead of through `serde_json::Value`)
//! lets a string field take a plain scalar exactly as written: `pageId: 1234567890` and
//! `phoneNumber: +14155238886` stay the admin's text rather than becoming numbers first.
//! Self-describing reads (`deserialize_any`, used by untagged enums) type plain scalars with the
//! YAML 1.2 core schema. Paired with `serde_path_to_error`, every error comes with the path of
//! the field that caused it.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::yaml::Node;

/// A deserialization error: serde's message, positioned later from the path.
#[derive(Debug, Clone)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Deserializes from one [`Node`].
pub struct NodeDeserializer<'a>(pub &'a Node);

impl<'a> NodeDeserializer<'a> {
    fn scalar(&self) -> Option<(&'a str, bool)> {
        match self.0 {
            Node::Scalar { value, plain, .. } => Some((&**value, *plain)),
            _ => None,
        }
    }

    fn unexpected(&self) -> de::Unexpected<'a> {
        match self.0 {
            Node::Scalar { value, .. } => de::Unexpected::Str(value),
            Node::Map { .. } => de::Unexpected::Map,
            Node::Seq { .. } => de::Unexpected::Seq,
        }
    }

    fn parse<T: std::str::FromStr>(&self, exp: &dyn de::Expected) -> Result<T, Error> {
        match self.scalar() {
            Some((text, true)) => text
                .parse()
                .map_err(|_| de::Error::invalid_value(self.unexpected(), exp)),
            _ => Err(de::Error::invalid_type(self.unexpected(), exp)),
        }
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident : $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let v: $ty = self.parse(&visitor)?;
            visitor.$visit(v)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Node::Scalar { value, plain, .. } => {
                if !plain {
                    return visitor.visit_str(value);
                }
                match super::yaml::Node::to_json(self.0) {
                    serde_json::Value::Null => visitor.visit_unit(),
                    serde_json::Value::Bool(b) => visitor.visit_bool(b),
                    serde_json::Value::Number(n) => {
                        if let Some(i) = n.as_i64() {
                            visitor.visit_i64(i)
                        } else {
                            visitor.visit_f64(n.as_f64().unwrap_or_default())
                        }
                    }
                    _ => visitor.visit_str(value),
                }
            }
            Node::Map { entries, .. } => visitor.visit_map(Entries {
                iter: entries.iter(),
                value: None,
            }),
            Node::Seq { items, .. } => visitor.visit_seq(Items(items.iter())),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(("true" | "True" | "TRUE", true)) => visitor.visit_bool(true),
            Some(("false" | "False" | "FALSE", true)) => visitor.visit_bool(false),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    parse_number! {
        deserialize_i8 => visit_i8: i8, deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32, deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8, deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32, deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32, deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Node::Scalar { value, .. } => visitor.visit_str(value),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(("" | "~" | "null" | "Null" | "NULL", true)) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Node::Scalar { value, .. } => {
                visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(&**value))
            }
            Node::Map { entries, .. } if entries.len() == 1 => visitor.visit_enum(Variant {
                key: &entries[0].0,
                value: &entries[0].2,
            }),
            Node::Map { entries, .. } => Err(Error(format!(
                "expected exactly one of the alternatives as a key, found {}",
                if entries.is_empty() {
                    "none".to_owned()
                } else {
                    entries
                        .iter()
                        .map(|e| format!("`{}`", e.0))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))),
            Node::Seq { .. } => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct ignored_any
    }
}

struct Entries<'a> {
    iter: std::slice::Iter<'a, (Box<str>, super::yaml::Pos, Node)>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((key, _, value)) => {
                self.value = Some(value);
                seed.deserialize(IntoDeserializer::<Error>::into_deserializer(&**key))
                    .map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .expect("serde asks for a value after its key");
        seed.deserialize(NodeDeserializer(value))
    }
}

struct Items<'a>(std::slice::Iter<'a, Node>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|n| seed.deserialize(NodeDeserializer(n)))
            .transpose()
    }
}

struct Variant<'a> {
    key: &'a str,
    value: &'a Node,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = NodeDeserializer<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(self.key))?;
        Ok((v, NodeDeserializer(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDeserializer<'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Err(Error("expected a plain name, not a mapping".into()))
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Sample {
        page_id: String,
        phone: String,
        port: u16,
        on: bool,
        maybe: Option<u32>,
        kind: Kind,
        which: Which,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    enum Kind {
        ToAll,
        LeastBusy,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    enum Which {
        User(String),
        Role(String),
    }

    fn load<T: for<'de> Deserialize<'de>>(yaml: &str) -> Result<T, String> {
        let docs = super::super::yaml::parse(yaml).unwrap();
        let node = docs[0].root.as_ref().unwrap();
        serde_path_to_error::deserialize(NodeDeserializer(node))
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn string_fields_keep_plain_scalars_as_written() {
        let s: Sample = load(
            "pageId: 1234567890\nphone: +14155238886\nport: 993\non: true\nmaybe: ~\nkind: toAll\nwhich: {user: alice}\n",
        )
        .unwrap();
        assert_eq!(s.page_id, "1234567890");
        assert_eq!(s.phone, "+14155238886");
        assert_eq!(s.port, 993);
        assert_eq!(s.maybe, None);
        assert_eq!(s.which, Which::User("alice".into()));
    }

    #[test]
    fn errors_carry_the_field_path_and_name_the_alternatives() {
        let err = load::<Sample>(
            "pageId: x\nphone: y\nport: 993\non: true\nkind: roundRobin\nwhich: {user: a}\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("kind: unknown variant `roundRobin`"),
            "{err}"
        );
        assert!(err.contains("toAll") && err.contains("leastBusy"), "{err}");
        let err = load::<Sample>("pageId: x\nphone: y\nport: high\n").unwrap_err();
        assert!(err.starts_with("port: invalid value"), "{err}");
        let err = load::<Sample>("pageId: x\nphone: y\nport: 1\non: yes\n").unwrap_err();
        assert!(err.starts_with("on: invalid type"), "{err}");
    }
}
