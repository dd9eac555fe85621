//! Meta Messenger webhooks: `X-Hub-Signature-256` verification, splitting a page webhook into one
//! item per event (what intake enqueues), and mapping one item to an [`InboundEvent`] (what the
//! processor applies). Also home of [`WebhookError`], which `telegram_webhook` re-uses.
//!
//! One bad item never costs its neighbours: [`split`] keys every item of a routable entry, even
//! one it cannot read (by a hash of its content), and leaves the verdict to [`normalize`], which
//! records what it cannot use as ignored, with the reason. Explicit nulls read as absent fields.

use super::json::{array, get, kind_of, scalar_text, storable};
use crate::domain::inbound::{
    Attachment, EchoedMessage, InboundEvent, IncomingMessage, MessageKind, Receipt, ReceiptStatus, Sender, order_key,
};
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
    /// postback's `mid`, else `postback:<sha256>`; `delivery:<sha256>`, `read:<sha256>`,
    /// `other:<sha256>` for the rest (a hash of the whole item). Standby items are prefixed
    /// `standby:` so they never collide with the same event seen later under `messaging[]`.
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

/// Maps one item ([`MessengerItem::payload`]) to kamshub's terms: customer messages and
/// postbacks are `Message`s, echoes of the page's own messages `Echo`s, delivery and read
/// watermarks `Receipt`s. Standby items, items that name no person, and other event types
/// (optin, ...) are `Ignored` with the reason.
pub fn normalize(item: &Value) -> Result<InboundEvent, WebhookError> {
    if get(item, STANDBY_KEY).is_some() {
        return Ok(InboundEvent::Ignored { reason: "standby (thread handed over)".into() });
    }
    let person = Person::of(item);
    let known = ["message", "postback", "delivery", "read"].into_iter().find(|k| get(item, k).is_some());
    let Some(key) = known else {
        return Ok(InboundEvent::Ignored { reason: ignored_reason(item) });
    };
    if person == Person::Nobody {
        let side = if is_echo(item) { "recipient" } else { "sender" };
        return Ok(InboundEvent::Ignored {
            reason: format!("{key} without {side}.id or {side}.user_ref: no conversation to thread it into"),
        });
    }
    let item = Item { raw: item, person };
    let body = get(item.raw, key).unwrap_or(&Value::Null);
    match key {
        "message" if is_echo(item.raw) => echo(&item, body),
        "message" => customer_message(&item, body),
        "postback" => postback_message(&item, body),
        "delivery" => {
            let mids = array(body, "mids").filter_map(Value::as_str).map(str::to_owned).collect();
            let watermark_ms = int_field(body, "watermark", "delivery")?;
            Ok(InboundEvent::Receipt(Receipt { status: ReceiptStatus::Delivered, watermark_ms, mids }))
        }
        _ => {
            let watermark_ms = int_field(body, "watermark", "read")?;
            Ok(InboundEvent::Receipt(Receipt { status: ReceiptStatus::Read, watermark_ms, mids: Vec::new() }))
        }
    }
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
    format!("other:{}", sha256_hex(&canonical_json(item)))
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

/// A customer's message.
fn customer_message(item: &Item<'_>, message: &Value) -> Result<InboundEvent, WebhookError> {
    let mid = str_field(message, "mid", "message")?;
    let sent_at_ms = item.timestamp_ms()?;
    let quick_reply = message.pointer("/quick_reply/payload").and_then(Value::as_str);
    Ok(InboundEvent::Message(IncomingMessage {
        external_message_id: mid.to_owned(),
        sender: item.person.sender(),
        sent_at_ms,
        order_key: order_key(sent_at_ms, mid),
        text: get(message, "text").and_then(Value::as_str).map(str::to_owned),
        attachments: attachments(message),
        reply_to: message.pointer("/reply_to/mid").and_then(Value::as_str).map(str::to_owned),
        kind: quick_reply.map_or(MessageKind::Regular, |p| MessageKind::QuickReply { payload: p.to_owned() }),
        thread_title: None,
    }))
}

/// One of the page's own messages, seen back; `metadata` carries our sendId when kamshub sent it.
fn echo(item: &Item<'_>, message: &Value) -> Result<InboundEvent, WebhookError> {
    let mid = str_field(message, "mid", "echo")?;
    let sent_at_ms = item.timestamp_ms()?;
    Ok(InboundEvent::Echo(EchoedMessage {
        external_message_id: mid.to_owned(),
        send_id: get(message, "metadata").and_then(Value::as_str).map(str::to_owned),
        sent_at_ms,
        order_key: order_key(sent_at_ms, mid),
        text: get(message, "text").and_then(Value::as_str).map(str::to_owned),
        attachments: attachments(message),
    }))
}

/// A button or menu press: a message whose text is the button title. Chat Plugin visitors press
/// them too: their postbacks carry `sender.user_ref` and thread by it.
fn postback_message(item: &Item<'_>, postback: &Value) -> Result<InboundEvent, WebhookError> {
    let sent_at_ms = item.timestamp_ms()?;
    let id = postback_id(item.raw, postback, &item.person.thread());
    let title = get(postback, "title").and_then(Value::as_str).map(str::to_owned);
    let payload = get(postback, "payload").and_then(Value::as_str).map(str::to_owned);
    Ok(InboundEvent::Message(IncomingMessage {
        order_key: order_key(sent_at_ms, &id),
        external_message_id: id,
        sender: item.person.sender(),
        sent_at_ms,
        text: title.clone(),
        attachments: Vec::new(),
        reply_to: None,
        kind: MessageKind::Postback { payload, title },
        thread_title: None,
    }))
}

/// `message.attachments[]`: the type as kind, `payload.url` (or the attachment's own `url`, as
/// fallback echoes carry it, or `URL`, as legacy fallback attachments do) as url, and the rest of
/// the payload (sticker_id, reel_video_id, template elements, ...) plus any `title` as details,
/// kept to a shape every store can hold. Location coordinates become `latitude`/`longitude`, as
/// for Telegram. An attachment that is not an object is skipped; a missing or null list is none.
fn attachments(message: &Value) -> Vec<Attachment> {
    array(message, "attachments")
        .filter(|a| a.is_object())
        .map(|a| {
            let kind = get(a, "type").and_then(Value::as_str).unwrap_or("unknown").to_owned();
            let mut details = get(a, "payload").and_then(Value::as_object).cloned().unwrap_or_default();
            let link = details.remove("url").filter(|u| !u.is_null());
            let url = link.or_else(|| get(a, "url").or_else(|| get(a, "URL")).cloned());
            if let Some(title) = get(a, "title") {
                details.entry("title").or_insert_with(|| title.clone());
            }
            if let Some(Value::Object(coordinates)) = details.remove("coordinates") {
                details.insert("latitude".into(), coordinates.get("lat").cloned().unwrap_or(Value::Null));
                details.insert("longitude".into(), coordinates.get("long").cloned().unwrap_or(Value::Null));
            }
            let details = storable(&Value::Object(details));
            Attachment {
                kind,
                file_id: None,
                url: url.and_then(|u| u.as_str().map(str::to_owned)),
                mime_type: None,
                size: None,
                file_name: None,
                details: if details.as_object().is_some_and(Map::is_empty) { Value::Null } else { details },
            }
        })
        .collect()
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
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            serde_json::from_str::<Value>(include_str!(concat!("../../tests/fixtures/messenger/", $name)))
                .expect("fixture is JSON")
        };
    }

    const PAGE: &str = "107362198765432";
    const PSID: &str = "6543210987654321";

    fn only_item(body: &Value) -> MessengerItem {
        let mut items = split(body).expect("body splits").items;
        assert_eq!(items.len(), 1, "one item expected: {items:?}");
        items.remove(0)
    }

    fn message_of(event: InboundEvent) -> IncomingMessage {
        match event {
            InboundEvent::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// A page webhook with one entry holding one messaging item.
    fn page_body(item: Value) -> Value {
        json!({ "object": "page", "entry": [{ "id": PAGE, "time": 1, "messaging": [item] }] })
    }

    fn is_hex_id(id: &str, prefix: &str) -> bool {
        id.strip_prefix(prefix).is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    #[test]
    fn split_walks_every_messaging_item_across_entries_in_order() {
        let items = split(&fixture!("batch_two_entries.json")).unwrap().items;
        let pages: Vec<&str> = items.iter().map(|i| i.page_id.as_str()).collect();
        assert_eq!(pages, [PAGE, PAGE, PAGE, "109874561230987"]);
        let threads: Vec<&str> = items.iter().map(|i| i.thread_id.as_str()).collect();
        assert_eq!(threads, [PSID, PSID, PSID, "7281930465172839"]);
        assert_eq!(
            items[0].provider_event_id,
            "m_vK3q1Yt7b2Wm0sZc8RkJxHh5pL9eD4fGaN6uTiV2oQyCwEr1MbXn7Us3Pd0Kj5Fl8Ah2Zg9Ye4Wt6Rs1Qp3Ov"
        );
        assert!(is_hex_id(&items[1].provider_event_id, "delivery:"), "{}", items[1].provider_event_id);
        assert!(is_hex_id(&items[2].provider_event_id, "read:"), "{}", items[2].provider_event_id);
        assert_eq!(
            items[3].provider_event_id,
            "m_Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3Ab4Cd5Ef6Gh7Ij8Kl9Mn0Op1Qr2St3Uv4Wx5Yz6Ab7Cd"
        );
        assert_eq!(items[0].payload, fixture!("batch_two_entries.json")["entry"][0]["messaging"][0]);
    }

    #[test]
    fn text_message_becomes_an_incoming_message_from_the_psid() {
        let item = only_item(&fixture!("text.json"));
        let mid = "m_Zp4Lx8Nc2Vb6Qw0Er5Ty9Ui3Op7As1Df5Gh9Jk3Lz7Xc1Vb5Nm9Qw3Er7Ty1Ui5Op9As3Df7Gh1Jk5Lz9X";
        assert_eq!(
            (item.page_id.as_str(), item.thread_id.as_str(), item.provider_event_id.as_str()),
            (PAGE, PSID, mid)
        );
        let message = message_of(normalize(&item.payload).unwrap());
        assert_eq!(message.external_message_id, mid);
        assert_eq!(message.sender, Sender { id: Some(PSID.into()), name: None, username: None });
        assert_eq!(message.text.as_deref(), Some("Where is my parcel? Tracking says \"in transit\" since Monday."));
        assert_eq!(message.sent_at_ms, 1_718_020_501_107);
        assert_eq!(message.order_key, order_key(1_718_020_501_107, mid));
        assert_eq!(message.kind, MessageKind::Regular);
        assert!(message.attachments.is_empty() && message.reply_to.is_none());
    }

    #[test]
    fn image_and_sticker_attachments_keep_their_url_and_ids() {
        let message = message_of(normalize(&only_item(&fixture!("image.json")).payload).unwrap());
        assert_eq!(message.text, None);
        let kinds: Vec<&str> = message.attachments.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["image", "sticker"]);
        let image = &message.attachments[0];
        assert!(image.url.as_deref().unwrap().starts_with("https://scontent.xx.fbcdn.net/v/t1.15752-9/448012345_"));
        assert_eq!(image.details, Value::Null);
        assert_eq!(message.attachments[1].details, json!({ "sticker_id": 369239263222822_u64 }));
    }

    #[test]
    fn quick_reply_payload_sets_the_kind() {
        let message = message_of(normalize(&only_item(&fixture!("quick_reply.json")).payload).unwrap());
        assert_eq!(message.kind, MessageKind::QuickReply { payload: "TRACK_ORDER".into() });
        assert_eq!(message.text.as_deref(), Some("Track my order"));
    }

    #[test]
    fn reply_to_names_the_replied_message() {
        let message = message_of(normalize(&only_item(&fixture!("reply_to.json")).payload).unwrap());
        let replied = "m_Qe7Rt2Yu4Io6Pa8Sd0Fg1Hj3Kl5Zx7Cv9Bn2Mq4We6Rt8Yu0Io2Pa4Sd6Fg8Hj0Kl2Zx4Cv6Bn8Mq0We";
        assert_eq!(message.reply_to.as_deref(), Some(replied));
    }

    #[test]
    fn echo_with_metadata_is_threaded_on_the_recipient_and_carries_the_send_id() {
        let item = only_item(&fixture!("echo_metadata.json"));
        let mid = "m_Ec1Ho2Me3Ta4Da5Ta6Se7Nt8By9Ka0Ms1Hu2Bx3Yz4Ab5Cd6Ef7Gh8Ij9Kl0Mn1Op2Qr3St4Uv5Wx6Yz7A";
        assert_eq!((item.thread_id.as_str(), item.provider_event_id.as_str()), (PSID, mid));
        let InboundEvent::Echo(echo) = normalize(&item.payload).unwrap() else { panic!("expected an echo") };
        assert_eq!(echo.external_message_id, mid);
        assert_eq!(echo.send_id.as_deref(), Some("snd_01J0ZK4M8Q3V7T2R5W9X6Y1N0P"));
        assert_eq!(echo.text.as_deref(), Some("It left our warehouse on Tuesday; expect it by Friday."));
        assert_eq!((echo.sent_at_ms, echo.order_key.clone()), (1_718_020_820_512, order_key(1_718_020_820_512, mid)));
    }

    #[test]
    fn echo_without_metadata_was_sent_outside_kamshub() {
        let item = only_item(&fixture!("echo_without_metadata.json"));
        assert_eq!(item.thread_id, PSID);
        let InboundEvent::Echo(echo) = normalize(&item.payload).unwrap() else { panic!("expected an echo") };
        assert_eq!(echo.send_id, None);
        assert_eq!(echo.text, None);
        assert_eq!(echo.attachments.len(), 1);
        assert_eq!(echo.attachments[0].kind, "image");
    }

    #[test]
    fn delivery_with_mids_is_a_receipt_with_a_stable_id_whatever_the_mid_order() {
        let body = fixture!("delivery_with_mids.json");
        let item = only_item(&body);
        assert!(is_hex_id(&item.provider_event_id, "delivery:"));
        let InboundEvent::Receipt(receipt) = normalize(&item.payload).unwrap() else { panic!("expected a receipt") };
        assert_eq!(receipt.status, ReceiptStatus::Delivered);
        assert_eq!(receipt.watermark_ms, 1_718_020_820_512);
        assert_eq!(receipt.mids.len(), 2);

        let mut reordered = body.clone();
        reordered["entry"][0]["messaging"][0]["delivery"]["mids"].as_array_mut().unwrap().reverse();
        assert_eq!(only_item(&reordered).provider_event_id, item.provider_event_id);
        assert_eq!(only_item(&body).provider_event_id, item.provider_event_id, "same input, same id");
    }

    #[test]
    fn delivery_without_mids_is_a_receipt_with_no_mids() {
        let item = only_item(&fixture!("delivery_without_mids.json"));
        assert!(is_hex_id(&item.provider_event_id, "delivery:"));
        assert_ne!(item.provider_event_id, only_item(&fixture!("delivery_with_mids.json")).provider_event_id);
        let event = normalize(&item.payload).unwrap();
        let expected = Receipt { status: ReceiptStatus::Delivered, watermark_ms: 1_718_020_820_512, mids: vec![] };
        assert_eq!(event, InboundEvent::Receipt(expected));
    }

    #[test]
    fn read_is_a_read_receipt() {
        let item = only_item(&fixture!("read.json"));
        assert!(is_hex_id(&item.provider_event_id, "read:"));
        assert_eq!(item.thread_id, PSID);
        let expected = Receipt { status: ReceiptStatus::Read, watermark_ms: 1_718_020_820_512, mids: vec![] };
        assert_eq!(normalize(&item.payload).unwrap(), InboundEvent::Receipt(expected));
    }

    #[test]
    fn postback_with_mid_is_a_message_titled_by_the_button() {
        let item = only_item(&fixture!("postback_with_mid.json"));
        let mid = "m_Pb1Ta2Lk3To4Ap5Er6So7Nn8Qw9Er0Ty1Ui2Op3As4Df5Gh6Jk7Lz8Xc9Vb0Nm1Qw2Er3Ty4Ui5Op6As7D";
        assert_eq!(item.provider_event_id, mid);
        let message = message_of(normalize(&item.payload).unwrap());
        assert_eq!(message.external_message_id, mid);
        assert_eq!(message.text.as_deref(), Some("Talk to a person"));
        let kind =
            MessageKind::Postback { payload: Some("HUMAN_HANDOFF".into()), title: Some("Talk to a person".into()) };
        assert_eq!(message.kind, kind);
        assert_eq!(message.sender.id.as_deref(), Some(PSID));
    }

    #[test]
    fn postback_without_mid_gets_a_stable_hash_id_used_for_both_keys() {
        let body = fixture!("postback_without_mid.json");
        let item = only_item(&body);
        assert!(is_hex_id(&item.provider_event_id, "postback:"), "{}", item.provider_event_id);
        assert_eq!(only_item(&body).provider_event_id, item.provider_event_id);
        let message = message_of(normalize(&item.payload).unwrap());
        assert_eq!(message.external_message_id, item.provider_event_id);
        assert_eq!(message.text.as_deref(), Some("Opening hours"));
    }

    #[test]
    fn standby_items_are_kept_apart_and_ignored() {
        let items = split(&fixture!("standby.json")).unwrap().items;
        assert_eq!(items.len(), 2);
        for item in &items {
            assert_eq!(item.thread_id, PSID, "customer message and page echo share the customer's thread");
            assert!(item.provider_event_id.starts_with("standby:m_"), "{}", item.provider_event_id);
            assert!(item.payload[STANDBY_KEY]["message"]["mid"].is_string(), "raw item kept inside the wrapper");
            let reason = "standby (thread handed over)".to_owned();
            assert_eq!(normalize(&item.payload).unwrap(), InboundEvent::Ignored { reason });
        }
    }

    #[test]
    fn other_event_types_are_ignored_with_a_key_order_independent_id() {
        let body = fixture!("reaction.json");
        let item = only_item(&body);
        assert!(is_hex_id(&item.provider_event_id, "other:"));
        let reason = "unsupported messaging event reaction".to_owned();
        assert_eq!(normalize(&item.payload).unwrap(), InboundEvent::Ignored { reason });

        let raw = &body["entry"][0]["messaging"][0];
        let mut reversed = Map::new();
        for (k, v) in raw.as_object().unwrap().iter().rev() {
            reversed.insert(k.clone(), v.clone());
        }
        let reordered = page_body(Value::Object(reversed));
        assert_eq!(only_item(&reordered).provider_event_id, item.provider_event_id);
    }

    #[test]
    fn a_body_that_is_not_a_page_webhook_is_refused() {
        assert_eq!(split(&fixture!("instagram_object.json")), Err(WebhookError::NotPage("\"instagram\"".into())));
        assert_eq!(split(&json!({ "entry": [] })), Err(WebhookError::NotPage("missing".into())));
    }

    #[test]
    fn only_a_body_that_is_no_page_webhook_fails_whole() {
        let expected = "malformed webhook: body has no entry array";
        assert_eq!(split(&json!({ "object": "page", "entry": {} })).unwrap_err().to_string(), expected);
        assert_eq!(split(&json!({ "object": "page", "entry": null })).unwrap_err().to_string(), expected);
    }

    #[test]
    fn entries_that_cannot_be_routed_are_reported_and_the_rest_kept() {
        let good = json!({ "sender": { "id": PSID }, "timestamp": 1, "message": { "mid": "m_1", "text": "x" } });
        let body = json!({ "object": "page", "entry": [
            { "messaging": [good.clone()] },
            { "id": PAGE, "messaging": {} },
            { "id": PAGE, "time": 1 },
            { "id": PAGE, "messaging": [good.clone()] },
        ]});
        let split = split(&body).unwrap();
        assert_eq!(split.dropped, ["entry[0] has no page id", "entry[1].messaging is an object, not an array"]);
        assert_eq!(split.items.len(), 1);
        assert_eq!(split.items[0].payload, good);
    }

    #[test]
    fn a_first_item_without_sender_keeps_its_neighbour() {
        let items = split(&fixture!("batch_first_item_without_sender.json")).unwrap().items;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].thread_id, UNTHREADED, "nobody to thread it to");
        assert!(items[0].provider_event_id.starts_with("m_No1Se2Nd3Er"), "{}", items[0].provider_event_id);
        let InboundEvent::Ignored { reason } = normalize(&items[0].payload).unwrap() else { panic!("ignored") };
        assert_eq!(reason, "message without sender.id or sender.user_ref: no conversation to thread it into");
        assert_eq!(items[1].thread_id, "7281930465172839");
        let message = message_of(normalize(&items[1].payload).unwrap());
        assert_eq!(message.text.as_deref(), Some("Is the Helsinki pickup point open today?"));
    }

    #[test]
    fn items_that_cannot_be_read_are_kept_keyed_by_their_content() {
        for raw in [json!("hello"), json!(null), json!([1, 2]), json!({}), json!({ "recipient": { "id": PAGE } })] {
            let item = only_item(&page_body(raw.clone()));
            assert_eq!(item.thread_id, UNTHREADED, "{raw}");
            assert!(is_hex_id(&item.provider_event_id, "other:"), "{}", item.provider_event_id);
            assert!(matches!(normalize(&item.payload), Ok(InboundEvent::Ignored { .. })), "{raw}");
        }
        let no_mid = json!({ "sender": { "id": PSID }, "timestamp": 1, "message": { "text": "x" } });
        let item = only_item(&page_body(no_mid));
        assert!(is_hex_id(&item.provider_event_id, "other:"));
        assert_eq!(normalize(&item.payload).unwrap_err().to_string(), "malformed webhook: message has no mid");
        let no_timestamp = json!({ "sender": { "id": PSID }, "message": { "mid": "m_1", "text": "x" } });
        assert_eq!(
            normalize(&no_timestamp).unwrap_err().to_string(),
            "malformed webhook: messaging item has no integer timestamp"
        );
    }

    #[test]
    fn chat_plugin_postbacks_thread_by_user_ref() {
        let item = only_item(&fixture!("postback_user_ref.json"));
        let thread = "user_ref:cp_5f1d3a9e-7b42-4c0e-9a61-2b8e4d7c1f30";
        assert_eq!(item.thread_id, thread);
        let message = message_of(normalize(&item.payload).unwrap());
        assert_eq!(message.sender.id.as_deref(), Some(thread));
        assert_eq!(message.text.as_deref(), Some("Get Started"));
        assert_eq!(message.sent_at_ms, 1_527_459_824_000, "a string of seconds");
    }

    #[test]
    fn a_checkbox_opt_in_names_no_person_and_is_ignored_with_the_reason() {
        let item = only_item(&fixture!("optin_checkbox.json"));
        assert_eq!(item.thread_id, UNTHREADED);
        let InboundEvent::Ignored { reason } = normalize(&item.payload).unwrap() else { panic!("ignored") };
        assert!(reason.starts_with("checkbox opt-in with user_ref chk_9d2c7e10"), "{reason}");
        assert!(reason.contains("not a person"), "{reason}");
    }

    #[test]
    fn legacy_fallback_attachments_keep_their_url() {
        let message = message_of(normalize(&only_item(&fixture!("fallback_legacy_url.json")).payload).unwrap());
        let fallback = &message.attachments[0];
        assert_eq!(fallback.kind, "fallback");
        assert!(fallback.url.as_deref().unwrap().starts_with("https://l.facebook.com/l.php?u=https%3A%2F%2Fshop"));
        assert_eq!(fallback.details, json!({ "title": "Order #5531 | Kams Shop" }));
    }

    #[test]
    fn explicit_nulls_are_absent_fields() {
        let message = message_of(normalize(&only_item(&fixture!("explicit_nulls.json")).payload).unwrap());
        assert_eq!(message.text.as_deref(), Some("Null everywhere"));
        assert!(message.attachments.is_empty(), "{:?}", message.attachments);
        assert_eq!((message.reply_to, message.kind), (None, MessageKind::Regular));
    }

    #[test]
    fn timestamps_as_numeric_strings_and_seconds_are_read() {
        let at = |timestamp: Value| {
            let item = json!({ "sender": { "id": PSID }, "timestamp": timestamp, "message": { "mid": "m_1" } });
            message_of(normalize(&item).unwrap()).sent_at_ms
        };
        assert_eq!(at(json!(1_718_020_501_107_i64)), 1_718_020_501_107);
        assert_eq!(at(json!("1718020501107")), 1_718_020_501_107);
        assert_eq!(at(json!("1527459824")), 1_527_459_824_000, "seconds, as Meta's postback reference shows");
    }

    #[test]
    fn an_entry_with_only_feed_changes_yields_nothing() {
        let changes = json!([{ "field": "feed", "value": {} }]);
        let body = json!({ "object": "page", "entry": [{ "id": PAGE, "time": 1, "changes": changes }] });
        assert_eq!(split(&body), Ok(Split::default()));
    }

    #[test]
    fn every_event_id_fits_in_128_characters() {
        let bodies = [
            fixture!("batch_two_entries.json"),
            fixture!("instagram_object.json")
                .as_object()
                .cloned()
                .map(|mut b| {
                    b.insert("object".into(), json!("page"));
                    Value::Object(b)
                })
                .unwrap(),
            fixture!("standby.json"),
        ];
        for body in &bodies {
            for item in split(body).unwrap().items {
                assert!(item.provider_event_id.len() <= MAX_EVENT_ID_LEN, "{}", item.provider_event_id);
            }
        }
        let long_mid = format!("m_{}", "x".repeat(200));
        let body = page_body(json!({ "sender": { "id": PSID }, "timestamp": 1, "message": { "mid": long_mid } }));
        let id = only_item(&body).provider_event_id;
        assert!(is_hex_id(&id, "sha256:"), "{id}");
    }

    const APP_SECRET: &str = "9f2c4e7a1b3d5f60718293a4b5c6d7e8";
    /// Computed independently: `hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()` in python3.
    const SIGNATURE: &str = "sha256=f02c597edf72715b180ff21db2190317b2756b470a06b8bc2e9b02f0985440c9";
    const SIGNED_BODY: &[u8] = include_bytes!("../../tests/fixtures/messenger/signed_body.json");

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn signature_over_the_raw_escaped_unicode_body_is_accepted() {
        assert!(std::str::from_utf8(SIGNED_BODY).unwrap().contains(r"\u00e4\u00f6\u00e5"));
        assert!(verify_signature(&secret(APP_SECRET), SIGNED_BODY, Some(SIGNATURE)));
        assert!(verify_signature(
            &secret(APP_SECRET),
            SIGNED_BODY,
            Some(&SIGNATURE.to_uppercase().replace("SHA256=", "sha256="))
        ));
    }

    #[test]
    fn the_same_body_reserialised_is_rejected() {
        let value: Value = serde_json::from_slice(SIGNED_BODY).unwrap();
        let reserialised = serde_json::to_vec(&value).unwrap();
        assert_ne!(reserialised, SIGNED_BODY, "serde writes äöå as UTF-8, not escaped");
        assert!(!verify_signature(&secret(APP_SECRET), &reserialised, Some(SIGNATURE)));
    }

    #[test]
    fn wrong_secret_missing_or_malformed_headers_are_rejected() {
        let body = SIGNED_BODY;
        assert!(!verify_signature(&secret("0f2c4e7a1b3d5f60718293a4b5c6d7e8"), body, Some(SIGNATURE)));
        assert!(!verify_signature(&secret(""), body, Some(SIGNATURE)));
        assert!(!verify_signature(&secret(APP_SECRET), body, None));
        let hex = SIGNATURE.trim_start_matches("sha256=");
        for header in [
            format!("sha1={hex}"),
            hex.to_owned(),
            "sha1=2fd4e1c67a2d28fced849ee1bb76e7391b93eb12".to_owned(),
            format!("sha256={}", &hex[..62]),
            format!("sha256={hex}00"),
            format!("sha256={}zz", &hex[..62]),
            "sha256=".to_owned(),
            String::new(),
        ] {
            assert!(!verify_signature(&secret(APP_SECRET), body, Some(&header)), "{header}");
        }
    }
}
