//! MessagePack encoding of `DynamicValue.msgpack`, typed against a schema's implied type, following
//! Terraform's object wire format: nil for null (every object attribute present), ext 0 for unknown,
//! ext 12 for refined unknown, numbers as int/float/decimal string, dynamic values as
//! `[bin(type JSON), value]`.

use std::collections::BTreeMap;

use rmp::Marker;

use super::json_type;
use crate::framework::value::{Number, Refinements, Type, Value};

/// Extension type code of a plain unknown value.
const EXT_UNKNOWN: i8 = 0;
/// Extension type code of an unknown value with refinements.
const EXT_REFINED: i8 = 12;
/// cty refuses refinement payloads over 1 KiB; so do we, on both sides.
const MAX_REFINEMENT_BYTES: usize = 1024;
/// cty truncates string-prefix refinements to 256 bytes.
const MAX_PREFIX_BYTES: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MsgpackError {
    #[error("at {path}: value does not match type {ty}")]
    TypeMismatch { path: String, ty: String },
    #[error("at {path}: object has no attribute {name:?}")]
    UnknownAttribute { path: String, name: String },
    #[error("at {path}: tuple needs {want} elements, got {got}")]
    TupleLength {
        path: String,
        want: usize,
        got: usize,
    },
    #[error("unexpected end of msgpack data")]
    Eof,
    #[error("at {path}: unexpected msgpack marker {marker:?} for type {ty}")]
    Marker {
        path: String,
        marker: String,
        ty: String,
    },
    #[error("at {path}: invalid UTF-8 in string")]
    Utf8 { path: String },
    #[error("at {path}: invalid dynamic type: {source}")]
    DynamicType {
        path: String,
        source: json_type::TypeJsonError,
    },
    #[error("refinement payload too large ({0} bytes)")]
    RefinementTooLarge(usize),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

// ------------------------------------------------------------------ encoding

/// Encodes `value` as msgpack for type `ty`.
pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, MsgpackError> {
    let mut out = Vec::new();
    encode_into(&mut out, value, ty, &mut String::new())?;
    Ok(out)
}

// Writes into a Vec cannot fail; the rmp API still returns Results.
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) {
    r.expect("writing msgpack into a Vec cannot fail");
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn mismatch(path: &str, ty: &Type) -> MsgpackError {
    MsgpackError::TypeMismatch {
        path: display_path(path),
        ty: json_type::to_string(ty),
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(root)".to_string()
    } else {
        path.to_string()
    }
}

fn encode_into(
    out: &mut Vec<u8>,
    value: &Value,
    ty: &Type,
    path: &mut String,
) -> Result<(), MsgpackError> {
    match (value, ty) {
        (Value::Null, _) => ok(rmp::encode::write_nil(out)),
        (Value::Unknown(r), _) => encode_unknown(out, r)?,
        (Value::Dynamic(inner_ty, inner), Type::Dynamic) => {
            if matches!(**inner, Value::Unknown(_) | Value::Null) {
                // A wholly unknown or null dynamic value is written bare, never wrapped.
                encode_into(out, inner, inner_ty, path)?;
            } else {
                ok(rmp::encode::write_array_len(out, 2));
                ok(rmp::encode::write_bin(
                    out,
                    json_type::to_string(inner_ty).as_bytes(),
                ));
                encode_into(out, inner, inner_ty, path)?;
            }
        }
        (Value::Dynamic(_, inner), concrete) => encode_into(out, inner, concrete, path)?,
        (v, Type::Dynamic) => {
            let inferred = infer_type(v);
            ok(rmp::encode::write_array_len(out, 2));
            ok(rmp::encode::write_bin(
                out,
                json_type::to_string(&inferred).as_bytes(),
            ));
            encode_into(out, v, &inferred, path)?;
        }
        (Value::String(s), Type::String) => ok(rmp::encode::write_str(out, s)),
        (Value::Bool(b), Type::Bool) => ok(rmp::encode::write_bool(out, *b)),
        (Value::Number(n), Type::Number) => encode_number(out, n),
        (Value::List(items) | Value::Set(items), Type::List(elem) | Type::Set(elem)) => {
            ok(rmp::encode::write_array_len(out, len_u32(items.len())));
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                encode_into(out, item, elem, path)?;
                path.truncate(len);
            }
        }
        (Value::Tuple(items) | Value::List(items), Type::Tuple(elems)) => {
            if items.len() != elems.len() {
                return Err(MsgpackError::TupleLength {
                    path: display_path(path),
                    want: elems.len(),
                    got: items.len(),
                });
            }
            ok(rmp::encode::write_array_len(out, len_u32(items.len())));
            for (i, (item, ety)) in items.iter().zip(elems).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                encode_into(out, item, ety, path)?;
                path.truncate(len);
            }
        }
        (Value::Map(m) | Value::Object(m), Type::Map(elem)) => {
            ok(rmp::encode::write_map_len(out, len_u32(m.len())));
            for (k, v) in m {
                ok(rmp::encode::write_str(out, k));
                let len = path.len();
                path.push_str(&format!("[{k:?}]"));
                encode_into(out, v, elem, path)?;
                path.truncate(len);
            }
        }
        (Value::Object(m) | Value::Map(m), Type::Object(attrs)) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(MsgpackError::UnknownAttribute {
                    path: display_path(path),
                    name: extra.clone(),
                });
            }
            // Terraform requires exactly one entry per attribute: absent ones are written as nil.
            ok(rmp::encode::write_map_len(out, len_u32(attrs.len())));
            for (name, aty) in attrs {
                ok(rmp::encode::write_str(out, name));
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                encode_into(out, m.get(name).unwrap_or(&Value::Null), aty, path)?;
                path.truncate(len);
            }
        }
        (_, ty) => return Err(mismatch(path, ty)),
    }
    Ok(())
}

fn encode_number(out: &mut Vec<u8>, n: &Number) {
    match n.normalized() {
        Number::Int(i) => {
            ok(rmp::encode::write_sint(out, i));
        }
        Number::Float(f) => ok(rmp::encode::write_f64(out, f)),
        // Too large or precise for int64/float64: cty sends the decimal text.
        Number::Decimal(s) => ok(rmp::encode::write_str(out, &s)),
    }
}

fn encode_unknown(out: &mut Vec<u8>, r: &Refinements) -> Result<(), MsgpackError> {
    if r.is_empty() {
        // Same bytes as cty: fixext1, type 0, one zero byte of ignored payload.
        out.extend_from_slice(&[0xd4, EXT_UNKNOWN as u8, 0x00]);
        return Ok(());
    }
    let mut payload = Vec::new();
    let mut entries: Vec<(u8, Vec<u8>)> = Vec::new();
    if let Some(nullable) = r.nullable {
        let mut b = Vec::new();
        ok(rmp::encode::write_bool(&mut b, nullable));
        entries.push((1, b));
    }
    if let Some(prefix) = &r.string_prefix {
        let mut cut = prefix.len().min(MAX_PREFIX_BYTES);
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut b = Vec::new();
        ok(rmp::encode::write_str(&mut b, &prefix[..cut]));
        entries.push((2, b));
    }
    for (key, bound) in [(3u8, &r.number_lower), (4u8, &r.number_upper)] {
        if let Some((n, inclusive)) = bound {
            let mut b = Vec::new();
            ok(rmp::encode::write_array_len(&mut b, 2));
            encode_number(&mut b, n);
            ok(rmp::encode::write_bool(&mut b, *inclusive));
            entries.push((key, b));
        }
    }
    for (key, bound) in [(5u8, r.length_lower), (6u8, r.length_upper)] {
        if let Some(n) = bound {
            let mut b = Vec::new();
            ok(rmp::encode::write_sint(&mut b, n));
            entries.push((key, b));
        }
    }
    ok(rmp::encode::write_map_len(
        &mut payload,
        len_u32(entries.len()),
    ));
    for (k, v) in entries {
        ok(rmp::encode::write_sint(&mut payload, i64::from(k)));
        payload.extend_from_slice(&v);
    }
    if payload.len() > MAX_REFINEMENT_BYTES {
        return Err(MsgpackError::RefinementTooLarge(payload.len()));
    }
    ok(rmp::encode::write_ext_meta(
        out,
        len_u32(payload.len()),
        EXT_REFINED,
    ));
    out.extend_from_slice(&payload);
    Ok(())
}

/// The type a value in a `dynamic` slot is sent with when the caller did not say.
pub fn infer_type(v: &Value) -> Type {
    match v {
        Value::Null | Value::Unknown(_) => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::list(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Set(items) => Type::set(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Map(m) => Type::map(m.values().next().map_or(Type::Dynamic, infer_type)),
        Value::Object(m) => {
            Type::Object(m.iter().map(|(k, v)| (k.clone(), infer_type(v))).collect())
        }
        Value::Tuple(items) => Type::Tuple(items.iter().map(infer_type).collect()),
        Value::Dynamic(t, _) => t.clone(),
    }
}

// ------------------------------------------------------------------ decoding

/// Decodes msgpack bytes as a value of type `ty`.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, MsgpackError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = r.value(ty, &mut String::new())?;
    if r.pos != bytes.len() {
        return Err(MsgpackError::Trailing(bytes.len() - r.pos));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).ok_or(MsgpackError::Eof)?;
        let s = self.buf.get(self.pos..end).ok_or(MsgpackError::Eof)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.take(1)?[0])
    }
    fn be(&mut self, n: usize) -> Result<u64, MsgpackError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
    fn marker(&mut self) -> Result<Marker, MsgpackError> {
        Ok(Marker::from_u8(self.u8()?))
    }
    fn peek_marker(&self) -> Result<Marker, MsgpackError> {
        self.buf
            .get(self.pos)
            .map(|b| Marker::from_u8(*b))
            .ok_or(MsgpackError::Eof)
    }

    fn bad(&self, path: &str, m: Marker, ty: &Type) -> MsgpackError {
        MsgpackError::Marker {
            path: display_path(path),
            marker: format!("{m:?}"),
            ty: json_type::to_string(ty),
        }
    }

    /// Length of a str/bin after its marker.
    fn blob_len(&mut self, m: Marker) -> Result<Option<usize>, MsgpackError> {
        Ok(Some(match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 | Marker::Bin8 => self.be(1)? as usize,
            Marker::Str16 | Marker::Bin16 => self.be(2)? as usize,
            Marker::Str32 | Marker::Bin32 => self.be(4)? as usize,
            _ => return Ok(None),
        }))
    }
    fn array_len(&mut self, m: Marker) -> Result<Option<usize>, MsgpackError> {
        Ok(Some(match m {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => self.be(2)? as usize,
            Marker::Array32 => self.be(4)? as usize,
            _ => return Ok(None),
        }))
    }
    fn map_len(&mut self, m: Marker) -> Result<Option<usize>, MsgpackError> {
        Ok(Some(match m {
            Marker::FixMap(n) => usize::from(n),
            Marker::Map16 => self.be(2)? as usize,
            Marker::Map32 => self.be(4)? as usize,
            _ => return Ok(None),
        }))
    }
    /// Ext header after its marker: (payload length, type code).
    fn ext_header(&mut self, m: Marker) -> Result<Option<(usize, i8)>, MsgpackError> {
        let len = match m {
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Ext8 => self.be(1)? as usize,
            Marker::Ext16 => self.be(2)? as usize,
            Marker::Ext32 => self.be(4)? as usize,
            _ => return Ok(None),
        };
        let code = self.u8()? as i8;
        Ok(Some((len, code)))
    }

    fn string(&mut self, m: Marker, path: &str) -> Result<Option<String>, MsgpackError> {
        match self.blob_len(m)? {
            Some(n) => {
                let b = self.take(n)?;
                String::from_utf8(b.to_vec())
                    .map(Some)
                    .map_err(|_| MsgpackError::Utf8 {
                        path: display_path(path),
                    })
            }
            None => Ok(None),
        }
    }

    /// Numbers arrive as int, float or decimal string.
    fn number(&mut self, m: Marker, path: &str) -> Result<Option<Number>, MsgpackError> {
        Ok(Some(match m {
            Marker::FixPos(n) => Number::Int(i64::from(n)),
            Marker::FixNeg(n) => Number::Int(i64::from(n)),
            Marker::U8 => Number::Int(self.be(1)? as i64),
            Marker::U16 => Number::Int(self.be(2)? as i64),
            Marker::U32 => Number::Int(self.be(4)? as i64),
            Marker::U64 => {
                let u = self.be(8)?;
                i64::try_from(u).map_or_else(|_| Number::Decimal(u.to_string()), Number::Int)
            }
            Marker::I8 => Number::Int(i64::from(self.be(1)? as u8 as i8)),
            Marker::I16 => Number::Int(i64::from(self.be(2)? as u16 as i16)),
            Marker::I32 => Number::Int(i64::from(self.be(4)? as u32 as i32)),
            Marker::I64 => Number::Int(self.be(8)? as i64),
            Marker::F32 => Number::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Marker::F64 => Number::Float(f64::from_bits(self.be(8)?)),
            m => match self.string(m, path)? {
                Some(s) => Number::Decimal(s),
                None => return Ok(None),
            },
        }))
    }

    fn refinements(&mut self, len: usize) -> Result<Refinements, MsgpackError> {
        if len > MAX_REFINEMENT_BYTES {
            return Err(MsgpackError::RefinementTooLarge(len));
        }
        let payload = self.take(len)?;
        let mut r = Reader {
            buf: payload,
            pos: 0,
        };
        let mut out = Refinements::default();
        let path = "(refinements)";
        let m = r.marker()?;
        let n = r
            .map_len(m)?
            .ok_or_else(|| r.bad(path, m, &Type::Dynamic))?;
        for _ in 0..n {
            let km = r.marker()?;
            let key = r.number(km, path)?.and_then(|k| k.as_i64());
            let vm = r.marker()?;
            match key {
                Some(1) => match vm {
                    Marker::True => out.nullable = Some(true),
                    Marker::False => out.nullable = Some(false),
                    _ => return Err(r.bad(path, vm, &Type::Bool)),
                },
                Some(2) => out.string_prefix = r.string(vm, path)?,
                Some(k @ (3 | 4)) => {
                    let len = r
                        .array_len(vm)?
                        .ok_or_else(|| r.bad(path, vm, &Type::Number))?;
                    if len != 2 {
                        return Err(r.bad(path, vm, &Type::Number));
                    }
                    let nm = r.marker()?;
                    let num = r
                        .number(nm, path)?
                        .ok_or_else(|| r.bad(path, nm, &Type::Number))?;
                    let im = r.marker()?;
                    let inclusive = matches!(im, Marker::True);
                    if k == 3 {
                        out.number_lower = Some((num, inclusive));
                    } else {
                        out.number_upper = Some((num, inclusive));
                    }
                }
                Some(k @ (5 | 6)) => {
                    let num = r.number(vm, path)?.and_then(|n| n.as_i64());
                    if k == 5 {
                        out.length_lower = num;
                    } else {
                        out.length_upper = num;
                    }
                }
                // Refinement kinds we do not know are skipped, as cty's decoder does.
                _ => r.skip(vm)?,
            }
        }
        Ok(out)
    }

    /// Skips one value whose marker was already read.
    fn skip(&mut self, m: Marker) -> Result<(), MsgpackError> {
        if let Some(n) = self.blob_len(m)? {
            self.take(n)?;
        } else if let Some(n) = self.array_len(m)? {
            for _ in 0..n {
                let m = self.marker()?;
                self.skip(m)?;
            }
        } else if let Some(n) = self.map_len(m)? {
            for _ in 0..2 * n {
                let m = self.marker()?;
                self.skip(m)?;
            }
        } else if let Some((n, _)) = self.ext_header(m)? {
            self.take(n)?;
        } else {
            let _ = self.number(m, "")?;
        }
        Ok(())
    }

    fn value(&mut self, ty: &Type, path: &mut String) -> Result<Value, MsgpackError> {
        let m = self.marker()?;
        if matches!(m, Marker::Null) {
            return Ok(Value::Null);
        }
        // Any extension type is an unknown value; only type 12 carries refinements.
        if let Some((len, code)) = self.ext_header(m)? {
            if code == EXT_REFINED && len > 1 {
                return Ok(Value::Unknown(self.refinements(len)?));
            }
            self.take(len)?;
            return Ok(Value::unknown());
        }
        match ty {
            Type::Dynamic => {
                let n = self.array_len(m)?.ok_or_else(|| self.bad(path, m, ty))?;
                if n != 2 {
                    return Err(self.bad(path, m, ty));
                }
                let tm = self.marker()?;
                let len = self.blob_len(tm)?.ok_or_else(|| self.bad(path, tm, ty))?;
                let raw = self.take(len)?;
                let inner_ty =
                    json_type::from_slice(raw).map_err(|source| MsgpackError::DynamicType {
                        path: display_path(path),
                        source,
                    })?;
                let inner = self.value(&inner_ty, path)?;
                Ok(Value::Dynamic(inner_ty, Box::new(inner)))
            }
            Type::String => self
                .string(m, path)?
                .map(Value::String)
                .ok_or_else(|| self.bad(path, m, ty)),
            Type::Bool => match m {
                Marker::True => Ok(Value::Bool(true)),
                Marker::False => Ok(Value::Bool(false)),
                _ => Err(self.bad(path, m, ty)),
            },
            Type::Number => self
                .number(m, path)?
                .map(Value::Number)
                .ok_or_else(|| self.bad(path, m, ty)),
            Type::List(elem) | Type::Set(elem) => {
                let n = self.array_len(m)?.ok_or_else(|| self.bad(path, m, ty))?;
                let mut items = Vec::with_capacity(n.min(4096));
                for i in 0..n {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    items.push(self.value(elem, path)?);
                    path.truncate(len);
                }
                Ok(if matches!(ty, Type::Set(_)) {
                    Value::Set(items)
                } else {
                    Value::List(items)
                })
            }
            Type::Tuple(elems) => {
                let n = self.array_len(m)?.ok_or_else(|| self.bad(path, m, ty))?;
                if n != elems.len() {
                    return Err(MsgpackError::TupleLength {
                        path: display_path(path),
                        want: elems.len(),
                        got: n,
                    });
                }
                let mut items = Vec::with_capacity(n);
                for (i, ety) in elems.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    items.push(self.value(ety, path)?);
                    path.truncate(len);
                }
                Ok(Value::Tuple(items))
            }
            Type::Map(elem) => {
                let n = self.map_len(m)?.ok_or_else(|| self.bad(path, m, ty))?;
                let mut out = BTreeMap::new();
                for _ in 0..n {
                    let km = self.marker()?;
                    let k = self
                        .string(km, path)?
                        .ok_or_else(|| self.bad(path, km, &Type::String))?;
                    let len = path.len();
                    path.push_str(&format!("[{k:?}]"));
                    let v = self.value(elem, path)?;
                    path.truncate(len);
                    out.insert(k, v);
                }
                Ok(Value::Map(out))
            }
            Type::Object(attrs) => {
                let n = self.map_len(m)?.ok_or_else(|| self.bad(path, m, ty))?;
                let mut out = BTreeMap::new();
                for _ in 0..n {
                    let km = self.marker()?;
                    let k = self
                        .string(km, path)?
                        .ok_or_else(|| self.bad(path, km, &Type::String))?;
                    let aty = attrs
                        .get(&k)
                        .ok_or_else(|| MsgpackError::UnknownAttribute {
                            path: display_path(path),
                            name: k.clone(),
                        })?;
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&k);
                    let v = self.value(aty, path)?;
                    path.truncate(len);
                    out.insert(k, v);
                }
                // Be lenient where Terraform is strict: a missing attribute reads as null.
                for name in attrs.keys() {
                    out.entry(name.clone()).or_insert(Value::Null);
                }
                Ok(Value::Object(out))
            }
        }
    }
}

/// True when the next value in `bytes` is msgpack nil (an absent DynamicValue reads as null too).
pub fn is_nil(bytes: &[u8]) -> bool {
    bytes.is_empty()
        || Reader { buf: bytes, pos: 0 }
            .peek_marker()
            .is_ok_and(|m| matches!(m, Marker::Null))
}
