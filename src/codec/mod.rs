//! Wire encodings of Terraform values: msgpack `DynamicValue`s, the JSON type encoding, and JSON
//! state. Everything here converts between bytes and the framework's `Value`/`Type`; nothing
//! else in the provider touches these formats.

pub mod json;
pub mod json_type;
pub mod msgpack;
