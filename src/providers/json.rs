//! Reading provider JSON the way both webhook normalisers need it: explicit nulls read as absent
//! fields, and values copied into kamshub's records kept to a shape every store can hold (bounded
//! depth, integers that fit 64 bits, no `$`-prefixed or dotted keys).

use serde_json::{Map, Value};
use std::borrow::Cow;

/// Deepest nesting kept in a copied value: provider content is a few levels deep; anything deeper
/// is cut (the raw event keeps it all).
const MAX_DEPTH: usize = 8;

/// `value[key]`, with an explicit `null` read as absent.
pub(crate) fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get(key).filter(|v| !v.is_null())
}

/// The elements of the array at `value[key]`; nothing when it is absent, null or not an array.
pub(crate) fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    get(value, key).and_then(Value::as_array).into_iter().flatten()
}

/// The named fields of an object that are present, each kept to a storable shape.
pub(crate) fn pick(value: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|&k| get(value, k).map(|v| (k.to_owned(), storable(v))))
        .filter(|(_, v)| !v.is_null())
        .collect()
}

/// The scalar (string, number, boolean) fields at the top level of an object, kept storable;
/// null when there are none.
pub(crate) fn scalars(value: &Value) -> Value {
    let fields = value.as_object().into_iter().flatten();
    let kept: Map<String, Value> = fields
        .filter(|(k, v)| {
            !v.is_object() && !v.is_array() && !v.is_null() && !k.starts_with('$') && !k.contains(['.', '\0'])
        })
        .map(|(k, v)| (k.clone(), storable(v)))
        .collect();
    if kept.is_empty() { Value::Null } else { Value::Object(kept) }
}

/// A copy of `value` every store can hold: nesting beyond [`MAX_DEPTH`] dropped, integers beyond
/// 64 bits as their decimal text, keys starting with `$` or holding `.` (MongoDB reserves them) or
/// a NUL (BSON keys cannot hold one) dropped, nulls dropped from objects.
pub(crate) fn storable(value: &Value) -> Value {
    fn walk(value: &Value, depth: usize) -> Option<Value> {
        match value {
            Value::Null => None,
            Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Some(Value::String(n.to_string())),
            Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => None,
            Value::Array(items) => Some(Value::Array(items.iter().filter_map(|v| walk(v, depth + 1)).collect())),
            Value::Object(map) => Some(Value::Object(
                map.iter()
                    .filter(|(k, _)| !k.starts_with('$') && !k.contains(['.', '\0']))
                    .filter_map(|(k, v)| walk(v, depth + 1).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }
    walk(value, 0).unwrap_or(Value::Null)
}

/// JSON text with every `\u` escape of a lone UTF-16 surrogate (a high one not followed by a low
/// one, or a low one alone) replaced by `\ufffd`. JSON readers written in JavaScript or Python
/// accept lone surrogates and a client can send them (a string cut between the two halves of an
/// emoji); Rust strings cannot hold them, so without this one broken character would make a whole
/// webhook unreadable, and with it every neighbour in the same POST. Escaped backslashes are
/// honoured; bytes outside escapes are left alone.
pub(crate) fn lone_surrogates_replaced(json: &[u8]) -> Cow<'_, [u8]> {
    fn unit(json: &[u8], at: usize) -> Option<u16> {
        let digits = json.get(at + 2..at + 6)?;
        if json.get(at..at + 2)? != b"\\u" {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }
    let is_high = |u: u16| (0xD800..0xDC00).contains(&u);
    let is_low = |u: u16| (0xDC00..0xE000).contains(&u);
    let mut lone = Vec::new();
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(json, i) {
            Some(u) if is_high(u) && unit(json, i + 6).is_some_and(is_low) => i += 12,
            Some(u) if is_high(u) || is_low(u) => {
                lone.push(i);
                i += 6;
            }
            Some(_) => i += 6,
            None => i += 2,
        }
    }
    if lone.is_empty() {
        return Cow::Borrowed(json);
    }
    let mut fixed = json.to_vec();
    for at in lone {
        fixed[at..at + 6].copy_from_slice(b"\\ufffd");
    }
    Cow::Owned(fixed)
}

/// A string or number as text (ids arrive as either).
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explicit_nulls_read_as_absent() {
        let v = json!({"audio": null, "photo": [1, 2], "text": "x"});
        assert_eq!(get(&v, "audio"), None);
        assert_eq!(get(&v, "missing"), None);
        assert_eq!(get(&v, "text"), Some(&json!("x")));
        assert_eq!(array(&v, "photo").count(), 2);
        assert_eq!(array(&v, "audio").count(), 0);
        assert_eq!(array(&v, "text").count(), 0, "not an array: nothing");
    }

    #[test]
    fn lone_surrogate_escapes_become_replacement_characters_and_pairs_stay() {
        let cases: [(&[u8], &[u8]); 7] = [
            (br#"{"t":"half \ud83d pair"}"#, br#"{"t":"half \ufffd pair"}"#),
            (br#"{"t":"\udc00"}"#, br#"{"t":"\ufffd"}"#),
            (br#"{"t":"\ud83d\ude80"}"#, br#"{"t":"\ud83d\ude80"}"#),
            (br#"{"t":"\ud83d\ud83d\ude80"}"#, br#"{"t":"\ufffd\ud83d\ude80"}"#),
            (br#"{"t":"\\ud83d"}"#, br#"{"t":"\\ud83d"}"#),
            (br#"{"t":"\u00e4 \n"}"#, br#"{"t":"\u00e4 \n"}"#),
            (br#"{"t":"cut \ud83"#, br#"{"t":"cut \ud83"#),
        ];
        for (input, expected) in cases {
            assert_eq!(lone_surrogates_replaced(input).as_ref(), expected, "{}", String::from_utf8_lossy(input));
        }
        let fixed = lone_surrogates_replaced(br#"{"t":"half \ud83d pair"}"#);
        let value: Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(value["t"], "half \u{FFFD} pair");
        assert!(matches!(lone_surrogates_replaced(b"{}"), Cow::Borrowed(_)), "untouched input is not copied");
    }

    #[test]
    fn storable_values_fit_any_store() {
        let deep = (0..20).fold(json!(1), |inner, _| json!({ "k": inner }));
        let v = json!({
            "big": u64::MAX, "small": -5, "float": 1.5, "$where": 1, "a.b": 2, "nul\u{0}key": 3, "gone": null,
            "list": [null, 1, {"$gt": 0, "ok": true}], "deep": deep,
        });
        let kept = storable(&v);
        assert_eq!(kept["big"], json!("18446744073709551615"), "beyond 64 bits: kept as text");
        assert_eq!((&kept["small"], &kept["float"]), (&json!(-5), &json!(1.5)));
        for dropped in ["$where", "a.b", "nul\u{0}key", "gone"] {
            assert!(kept.get(dropped).is_none(), "{dropped:?}");
        }
        assert_eq!(kept["list"], json!([1, {"ok": true}]));
        let mut depth = 0;
        let mut at = &kept["deep"];
        while let Some(inner) = at.get("k") {
            depth += 1;
            at = inner;
        }
        assert!(depth < MAX_DEPTH, "cut at the depth limit: {depth}");
        assert_eq!(
            pick(&v, &["small", "gone", "big"]),
            storable(&json!({"small": -5, "big": u64::MAX})).as_object().cloned().unwrap()
        );
    }
}
