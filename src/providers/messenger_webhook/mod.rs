//! Meta Messenger webhooks: `X-Hub-Signature-256` verification, splitting a page webhook into one
//! item per event (what intake enqueues), and mapping one item to an [`InboundEvent`] (what the
//! processor applies). Also home of [`WebhookError`], which `telegram_webhook` re-uses.
//!
//! One bad item never costs its neighbours: [`split`] keys every item of a routable entry, even
//! one it cannot read (by a hash of its content), and leaves the verdict to [`normalize`], which
//! records what it cannot use as ignored, with the reason. Explicit nulls read as absent fields.

mod events;

use super::json::{array, get, kind_of, scalar_text};
use crate::domain::inbound::{InboundEvent, Sender};
use events::{customer_message, delivery, echo, message_edit, postback_message, reaction, read, referral};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest provider event id: SQS limits ids to 128 characters, and intake builds keys from it.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// Key under which [`split`] wraps a `standby[]` item: `{"standby": <item as received>}`. The raw
/// item stays intact inside, and [`normalize`] sees the wrapper and answers `Ignored`.
pub const STANDBY_KEY: &str = "standby";

/// Why a webhook payload (Messenger or Telegram) cannot be used. Intake answers it with a client
/// error; the processor sends an envelope whose payload fails here to the DLQ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The body is not a Messenger page webhook (`object` is missing or not `"page"`), e.g. an
    /// Instagram webhook sent to the Messenger endpoint.
    #[error("webhook object is {0}, expected \"page\"")]
    NotPage(String),
    /// A field the provider always sends is missing or has the wrong type; names the field.
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

impl WebhookError {
    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::Malformed(detail.into())
    }
}

/// Checks `X-Hub-Signature-256`: `sha256=<hex>` must be the HMAC-SHA256 of the raw body bytes as
/// received, keyed with the app secret. Compared in constant time on the decoded bytes. Anything
/// else (missing header, `sha1=`, bad hex, wrong length, empty app secret) is a rejection.
pub fn verify_signature(app_secret: &SecretString, raw_body: &[u8], header: Option<&str>) -> bool {
    let secret = app_secret.expose_secret().as_bytes();
    let Some(claimed) = header.and_then(|h| h.strip_prefix("sha256=")).and_then(decode_hex) else {
        return false;
    };
    if secret.is_empty() || claimed.len() != 32 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(raw_body);
    mac.finalize().into_bytes().as_slice().ct_eq(&claimed).into()
}

/// The thread of items that name no person (a checkbox-plugin opt-in, a malformed item): one
/// group per channel, recorded as ignored.
pub const UNTHREADED: &str = "unthreaded";

/// Prefix of a thread keyed by a Chat Plugin visitor's `user_ref` (the plugin's visitors have no
/// PSID: their postbacks, referrals and messages carry `sender.user_ref`).
pub const USER_REF_PREFIX: &str = "user_ref:";

/// One event of a page webhook, ready to be enqueued.
#[derive(Debug, Clone, PartialEq)]
pub struct MessengerItem {
    /// `entry.id`: routes the event to the channel.
    pub page_id: String,
    /// Dedupe id, at most [`MAX_EVENT_ID_LEN`] characters: `mid` for messages and echoes; a
    /// postback's `mid`, else `postback:<sha256>`; `delivery:<sha256>`, `read:<sha256>`; for the
    /// rest its kind (`message_edit`, `reaction`, `referral`, `other`) and a hash of the whole
    /// item. Standby items are prefixed `standby:` so they never collide with the same event seen
    /// later under `messaging[]`.
    pub provider_event_id: String,
    /// The person's thread ([`Person::thread`]): the FIFO group, so one person's events are
    /// applied in order.
    pub thread_id: String,
    /// The `messaging[]` item as received, or `{"standby": item}` for a `standby[]` item.
    pub payload: Value,
}

/// A page webhook, split: the events to enqueue, and the parts that could not be routed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    /// Every item of every entry that names its page, in the order received.
    pub items: Vec<MessengerItem>,
    /// Why parts of the body were left out (an entry without a page id, a `messaging` that is not
    /// an array): intake counts and logs them.
    pub dropped: Vec<String>,
}

/// Splits a page webhook body into its events, in the order received: for each `entry[]`, its
/// `messaging[]` items then its `standby[]` items. Only a body that is not a page webhook at all
/// fails. An entry that cannot be routed is reported in [`Split::dropped`] and the others kept;
/// every item of a routed entry is kept, whatever it holds. An entry with only Graph `changes`
/// (a field kamshub does not subscribe to) yields nothing.
pub fn split(body: &Value) -> Result<Split, WebhookError> {
    match get(body, "object") {
        Some(Value::String(object)) if object == "page" => {}
        Some(other) => return Err(WebhookError::NotPage(other.to_string())),
        None => return Err(WebhookError::NotPage("missing".into())),
    }
    let entries = get(body, "entry").and_then(Value::as_array);
    let entries = entries.ok_or_else(|| WebhookError::malformed("body has no entry array"))?;
    let mut split = Split::default();
    for (i, entry) in entries.iter().enumerate() {
        let Some(page_id) = id_of(entry) else {
            split.dropped.push(format!("entry[{i}] has no page id"));
            continue;
        };
        for key in ["messaging", STANDBY_KEY] {
            match get(entry, key) {
                None => {}
                Some(Value::Array(items)) => {
                    split.items.extend(items.iter().map(|raw| item(&page_id, raw, key == STANDBY_KEY)));
                }
                Some(other) => split.dropped.push(format!("entry[{i}].{key} is {}, not an array", kind_of(other))),
            }
        }
    }
    Ok(split)
}

/// A webhook field kamshub subscribes a page to, and how its items map.
pub struct EventType {
    /// The field in `subscribed_fields`.
    pub field: &'static str,
    /// The key that marks its items in `messaging[]`.
    key: &'static str,
    /// For `message` items: whether this field's are the page's own echoes.
    echo: bool,
    normalize: fn(&Item<'_>, &Value) -> Result<InboundEvent, WebhookError>,
}

/// Every webhook field kamshub subscribes a page to, each with its handler: the page's
/// subscription ([`subscribed_fields`]) and [`normalize`] both read this one list, so kamshub
/// subscribes to what it handles and handles what it subscribes to.
pub const EVENTS: &[EventType] = &[
    EventType { field: "messages", key: "message", echo: false, normalize: customer_message },
    EventType { field: "message_echoes", key: "message", echo: true, normalize: echo },
    EventType { field: "message_deliveries", key: "delivery", echo: false, normalize: delivery },
    EventType { field: "message_reads", key: "read", echo: false, normalize: read },
    EventType { field: "messaging_postbacks", key: "postback", echo: false, normalize: postback_message },
    EventType { field: "messaging_referrals", key: "referral", echo: false, normalize: referral },
    EventType { field: "message_edits", key: "message_edit", echo: false, normalize: message_edit },
    EventType { field: "message_reactions", key: "reaction", echo: false, normalize: reaction },
];

/// `subscribed_fields` of `POST /{page}/subscribed_apps`: the fields of [`EVENTS`], in order.
pub fn subscribed_fields() -> String {
    EVENTS.iter().map(|e| e.field).collect::<Vec<_>>().join(",")
}

/// Maps one item ([`MessengerItem::payload`]) with the handler [`EVENTS`] lists for it: customer
/// messages, postbacks and referrals are `Message`s, edits `Edit`s, reactions `Reaction`s, echoes
/// of the page's own messages `Echo`s, delivery and read watermarks `Receipt`s. Standby items,
/// items that name no person, and fields kamshub does not subscribe to (optin, ...) are `Ignored`
/// with the reason.
pub fn normalize(item: &Value) -> Result<InboundEvent, WebhookError> {
    if get(item, STANDBY_KEY).is_some() {
        return Ok(InboundEvent::Ignored { reason: "standby (thread handed over)".into() });
    }
    let handler = EVENTS.iter().find(|e| get(item, e.key).is_some() && (e.key != "message" || e.echo == is_echo(item)));
    let Some(handler) = handler else {
        return Ok(InboundEvent::Ignored { reason: ignored_reason(item) });
    };
    let person = Person::of(item);
    if person == Person::Nobody {
        let side = if handler.echo { "recipient" } else { "sender" };
        return Ok(InboundEvent::Ignored {
            reason: format!("{} without {side}.id or {side}.user_ref: no conversation to thread it into", handler.key),
        });
    }
    let item = Item { raw: item, person };
    (handler.normalize)(&item, get(item.raw, handler.key).unwrap_or(&Value::Null))
}

/// Why an item of a kind kamshub does not handle is ignored.
fn ignored_reason(item: &Value) -> String {
    if let Some(optin) = get(item, "optin") {
        return match (get(optin, "user_ref").and_then(scalar_text), Person::of(item)) {
            (Some(user_ref), Person::Nobody) => format!(
                "checkbox opt-in with user_ref {user_ref}: it names a plugin render, not a person, so there is no \
                 conversation to thread it into"
            ),
            _ => "unsupported messaging event optin".to_owned(),
        };
    }
    match item {
        Value::Object(_) => format!("unsupported messaging event {}", event_type(item)),
        other => format!("messaging item is {}, not an object", kind_of(other)),
    }
}

/// Who a messaging item is about: the thread it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Person {
    /// A page-scoped id: the normal case.
    Psid(String),
    /// A Chat Plugin visitor, known by `user_ref`: stable for the visitor, so it threads their
    /// conversation.
    UserRef(String),
    /// Nothing identifies a person.
    Nobody,
}

impl Person {
    /// The item's person: for the page's own echoes the recipient, else the sender.
    fn of(item: &Value) -> Person {
        let side = if is_echo(item) { "recipient" } else { "sender" };
        let party = get(item, side).unwrap_or(&Value::Null);
        if let Some(id) = id_of(party) {
            return Person::Psid(id);
        }
        match get(party, "user_ref").and_then(scalar_text) {
            Some(user_ref) => Person::UserRef(user_ref),
            None => Person::Nobody,
        }
    }

    /// The conversation thread: the PSID, `user_ref:{ref}`, or [`UNTHREADED`].
    fn thread(&self) -> String {
        match self {
            Person::Psid(psid) => psid.clone(),
            Person::UserRef(r) => format!("{USER_REF_PREFIX}{r}"),
            Person::Nobody => UNTHREADED.to_owned(),
        }
    }

    /// As the sender of a message: the thread names them.
    fn sender(&self) -> Sender {
        let id = (*self != Person::Nobody).then(|| self.thread());
        Sender { id, name: None, username: None }
    }
}

/// A messaging item being normalised, with its person.
struct Item<'a> {
    raw: &'a Value,
    person: Person,
}

impl Item<'_> {
    /// `timestamp` in Unix milliseconds. Meta sends milliseconds as a number; some of its
    /// reference pages show strings of seconds ("All JSON properties ... are strings"), so a
    /// numeric string is read too, and a value below 10^11 (before 1973 in milliseconds) is
    /// taken as seconds.
    fn timestamp_ms(&self) -> Result<i64, WebhookError> {
        let value = get(self.raw, "timestamp");
        let number = value.and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())));
        let n = number.ok_or_else(|| WebhookError::malformed("messaging item has no integer timestamp"))?;
        Ok(if (0..100_000_000_000).contains(&n) { n * 1000 } else { n })
    }
}

/// Builds one [`MessengerItem`]; never fails: an item that names no person goes to the
/// [`UNTHREADED`] group, one without a provider id gets a hash of its content.
fn item(page_id: &str, raw: &Value, standby: bool) -> MessengerItem {
    let thread_id = Person::of(raw).thread();
    let event_id = event_id(raw, &thread_id);
    let (provider_event_id, payload) = if standby {
        (bounded(format!("standby:{event_id}")), json!({ STANDBY_KEY: raw }))
    } else {
        (bounded(event_id), raw.clone())
    };
    MessengerItem { page_id: page_id.to_owned(), provider_event_id, thread_id, payload }
}

/// The provider event id of one item, before the length bound.
fn event_id(item: &Value, thread: &str) -> String {
    if let Some(mid) = get(item, "message").and_then(|m| get(m, "mid")).and_then(Value::as_str) {
        return mid.to_owned();
    }
    if let Some(postback) = get(item, "postback") {
        return postback_id(item, postback, thread);
    }
    if let Some(delivery) = get(item, "delivery") {
        let mut mids: Vec<&str> = array(delivery, "mids").filter_map(Value::as_str).collect();
        mids.sort_unstable();
        let watermark = get(delivery, "watermark").unwrap_or(&Value::Null);
        return format!("delivery:{}", sha256_hex(&json!([thread, watermark, mids]).to_string()));
    }
    if let Some(read) = get(item, "read") {
        let watermark = get(read, "watermark").unwrap_or(&Value::Null);
        return format!("read:{}", sha256_hex(&json!([thread, watermark]).to_string()));
    }
    let kind = ["message_edit", "reaction", "referral"].into_iter().find(|k| get(item, k).is_some());
    format!("{}:{}", kind.unwrap_or("other"), sha256_hex(&canonical_json(item)))
}

/// A postback's id: its `mid` (sent since Graph v11.0), else a hash of sender, time and payload.
fn postback_id(item: &Value, postback: &Value, sender: &str) -> String {
    if let Some(mid) = get(postback, "mid").and_then(Value::as_str) {
        return mid.to_owned();
    }
    let timestamp = get(item, "timestamp").unwrap_or(&Value::Null);
    let payload = get(postback, "payload").unwrap_or(&Value::Null);
    format!("postback:{}", sha256_hex(&json!([sender, timestamp, payload]).to_string()))
}

/// An echo is a message the page sent: `message.is_echo == true`.
fn is_echo(item: &Value) -> bool {
    item.pointer("/message/is_echo").and_then(Value::as_bool) == Some(true)
}

/// The event's type for operators: the first field that is not common to every item.
fn event_type(item: &Value) -> String {
    let common = ["sender", "recipient", "timestamp"];
    let keys = item.as_object().into_iter().flat_map(Map::keys);
    keys.map(String::as_str).find(|k| !common.contains(k)).unwrap_or("(empty)").to_owned()
}

/// `value.id` as a string; Meta sends ids as strings, but a number is accepted too.
fn id_of(value: &Value) -> Option<String> {
    get(value, "id").and_then(scalar_text)
}

fn str_field<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a str, WebhookError> {
    get(value, key).and_then(Value::as_str).ok_or_else(|| WebhookError::malformed(format!("{what} has no {key}")))
}

fn int_field(value: &Value, key: &str, what: &str) -> Result<i64, WebhookError> {
    get(value, key)
        .and_then(Value::as_i64)
        .ok_or_else(|| WebhookError::malformed(format!("{what} has no integer {key}")))
}

/// Keeps an id within [`MAX_EVENT_ID_LEN`]: a longer one becomes `sha256:<hex of it>`.
fn bounded(id: String) -> String {
    if id.len() <= MAX_EVENT_ID_LEN { id } else { format!("sha256:{}", sha256_hex(&id)) }
}

fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted at every level, so equal items hash equally whatever their key
/// order (serde_json keeps insertion order in this build: `preserve_order` is on).
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> =
                keys.into_iter().map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k]))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        scalar => scalar.to_string(),
    }
}

/// Hex (either case) to bytes; `None` for odd length or a non-hex digit.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    digits.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

#[cfg(test)]
mod tests;
