//! Meta Messenger webhooks: `X-Hub-Signature-256` verification, splitting a page webhook into one
//! item per event (what intake enqueues), and mapping one item to an [`InboundEvent`] (what the
//! processor applies). Also home of [`WebhookError`], which `telegram_webhook` re-uses.

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

/// One event of a page webhook, ready to be enqueued.
#[derive(Debug, Clone, PartialEq)]
pub struct MessengerItem {
    /// `entry.id`: routes the event to the channel.
    pub page_id: String,
    /// Dedupe id, at most [`MAX_EVENT_ID_LEN`] characters: `mid` for messages and echoes; a
    /// postback's `mid`, else `postback:<sha256>`; `delivery:<sha256>`, `read:<sha256>`,
    /// `other:<sha256>` for the rest. Standby items are prefixed `standby:` so they never collide
    /// with the same event seen later under `messaging[]`.
    pub provider_event_id: String,
    /// The customer's PSID: the FIFO group, so one customer's events are applied in order.
    pub thread_id: String,
    /// The `messaging[]` item as received, or `{"standby": item}` for a `standby[]` item.
    pub payload: Value,
}

/// Splits a page webhook body into its events, in the order received: for each `entry[]`, its
/// `messaging[]` items then its `standby[]` items. An entry with only Graph `changes` (a field we
/// do not subscribe to) yields nothing rather than failing the whole delivery.
pub fn split(body: &Value) -> Result<Vec<MessengerItem>, WebhookError> {
    match body.get("object") {
        Some(Value::String(object)) if object == "page" => {}
        Some(other) => return Err(WebhookError::NotPage(other.to_string())),
        None => return Err(WebhookError::NotPage("missing".into())),
    }
    let entries = body.get("entry").and_then(Value::as_array);
    let entries = entries.ok_or_else(|| WebhookError::malformed("body has no entry array"))?;
    let mut items = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let page_id = id_of(entry).ok_or_else(|| WebhookError::malformed(format!("entry[{i}] has no page id")))?;
        let messaging = optional_array(entry, "messaging", i)?;
        let standby = optional_array(entry, STANDBY_KEY, i)?;
        if messaging.is_none() && standby.is_none() && entry.get("changes").is_none() {
            return Err(WebhookError::malformed(format!("entry[{i}] has no messaging array")));
        }
        for (j, raw) in messaging.into_iter().flatten().enumerate() {
            items.push(item(&page_id, raw, &format!("entry[{i}].messaging[{j}]"), false)?);
        }
        for (j, raw) in standby.into_iter().flatten().enumerate() {
            items.push(item(&page_id, raw, &format!("entry[{i}].standby[{j}]"), true)?);
        }
    }
    Ok(items)
}

/// Maps one item ([`MessengerItem::payload`]) to kamshub's terms: customer messages and
/// postbacks are `Message`s, echoes of the page's own messages `Echo`s, delivery and read
/// watermarks `Receipt`s; standby items and other event types (reaction, referral, optin, ...)
/// are `Ignored` with the reason.
pub fn normalize(item: &Value) -> Result<InboundEvent, WebhookError> {
    if item.get(STANDBY_KEY).is_some() {
        return Ok(InboundEvent::Ignored { reason: "standby (thread handed over)".into() });
    }
    if let Some(message) = item.get("message") {
        return if is_echo(item) { echo(item, message) } else { customer_message(item, message) };
    }
    if let Some(postback) = item.get("postback") {
        return postback_message(item, postback);
    }
    if let Some(delivery) = item.get("delivery") {
        let mids = delivery.get("mids").and_then(Value::as_array).into_iter().flatten();
        let mids = mids.filter_map(Value::as_str).map(str::to_owned).collect();
        let watermark_ms = int_field(delivery, "watermark", "delivery")?;
        return Ok(InboundEvent::Receipt(Receipt { status: ReceiptStatus::Delivered, watermark_ms, mids }));
    }
    if let Some(read) = item.get("read") {
        let watermark_ms = int_field(read, "watermark", "read")?;
        return Ok(InboundEvent::Receipt(Receipt { status: ReceiptStatus::Read, watermark_ms, mids: Vec::new() }));
    }
    Ok(InboundEvent::Ignored { reason: format!("unsupported messaging event {}", event_type(item)) })
}

/// Builds one [`MessengerItem`]; `at` names the item's place in the body for error messages.
fn item(page_id: &str, raw: &Value, at: &str, standby: bool) -> Result<MessengerItem, WebhookError> {
    let sender = raw.get("sender").and_then(id_of);
    let sender = sender.ok_or_else(|| WebhookError::malformed(format!("{at} has no sender.id")))?;
    let thread_id = if is_echo(raw) {
        let recipient = raw.get("recipient").and_then(id_of);
        recipient.ok_or_else(|| WebhookError::malformed(format!("{at} is an echo without recipient.id")))?
    } else {
        sender.clone()
    };
    let event_id = event_id(raw, &sender).map_err(|e| WebhookError::malformed(format!("{at}: {e}")))?;
    let (provider_event_id, payload) = if standby {
        (bounded(format!("standby:{event_id}")), json!({ STANDBY_KEY: raw }))
    } else {
        (bounded(event_id), raw.clone())
    };
    Ok(MessengerItem { page_id: page_id.to_owned(), provider_event_id, thread_id, payload })
}

/// The provider event id of one item, before the length bound.
fn event_id(item: &Value, sender: &str) -> Result<String, &'static str> {
    if let Some(message) = item.get("message") {
        return message.get("mid").and_then(Value::as_str).map(str::to_owned).ok_or("message has no mid");
    }
    if let Some(postback) = item.get("postback") {
        return Ok(postback_id(item, postback, sender));
    }
    if let Some(delivery) = item.get("delivery") {
        let mut mids: Vec<&str> =
            delivery.get("mids").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        mids.sort_unstable();
        let watermark = delivery.get("watermark").unwrap_or(&Value::Null);
        return Ok(format!("delivery:{}", sha256_hex(&json!([sender, watermark, mids]).to_string())));
    }
    if let Some(read) = item.get("read") {
        let watermark = read.get("watermark").unwrap_or(&Value::Null);
        return Ok(format!("read:{}", sha256_hex(&json!([sender, watermark]).to_string())));
    }
    Ok(format!("other:{}", sha256_hex(&canonical_json(item))))
}

/// A postback's id: its `mid` (sent since Graph v11.0), else a hash of sender, time and payload.
fn postback_id(item: &Value, postback: &Value, sender: &str) -> String {
    if let Some(mid) = postback.get("mid").and_then(Value::as_str) {
        return mid.to_owned();
    }
    let timestamp = item.get("timestamp").unwrap_or(&Value::Null);
    let payload = postback.get("payload").unwrap_or(&Value::Null);
    format!("postback:{}", sha256_hex(&json!([sender, timestamp, payload]).to_string()))
}

/// A customer's message.
fn customer_message(item: &Value, message: &Value) -> Result<InboundEvent, WebhookError> {
    let psid = item.get("sender").and_then(id_of).ok_or_else(|| WebhookError::malformed("message has no sender.id"))?;
    let mid = str_field(message, "mid", "message")?;
    let sent_at_ms = int_field(item, "timestamp", "messaging item")?;
    let quick_reply = message.pointer("/quick_reply/payload").and_then(Value::as_str);
    Ok(InboundEvent::Message(IncomingMessage {
        external_message_id: mid.to_owned(),
        sender: Sender { id: Some(psid), name: None, username: None },
        sent_at_ms,
        order_key: order_key(sent_at_ms, mid),
        text: message.get("text").and_then(Value::as_str).map(str::to_owned),
        attachments: attachments(message),
        reply_to: message.pointer("/reply_to/mid").and_then(Value::as_str).map(str::to_owned),
        kind: quick_reply.map_or(MessageKind::Regular, |p| MessageKind::QuickReply { payload: p.to_owned() }),
        thread_title: None,
    }))
}

/// One of the page's own messages, seen back; `metadata` carries our sendId when kamshub sent it.
fn echo(item: &Value, message: &Value) -> Result<InboundEvent, WebhookError> {
    let mid = str_field(message, "mid", "echo")?;
    let sent_at_ms = int_field(item, "timestamp", "messaging item")?;
    Ok(InboundEvent::Echo(EchoedMessage {
        external_message_id: mid.to_owned(),
        send_id: message.get("metadata").and_then(Value::as_str).map(str::to_owned),
        sent_at_ms,
        order_key: order_key(sent_at_ms, mid),
        text: message.get("text").and_then(Value::as_str).map(str::to_owned),
        attachments: attachments(message),
    }))
}

/// A button or menu press: a message whose text is the button title.
fn postback_message(item: &Value, postback: &Value) -> Result<InboundEvent, WebhookError> {
    let psid =
        item.get("sender").and_then(id_of).ok_or_else(|| WebhookError::malformed("postback has no sender.id"))?;
    let sent_at_ms = int_field(item, "timestamp", "messaging item")?;
    let id = postback_id(item, postback, &psid);
    let title = postback.get("title").and_then(Value::as_str).map(str::to_owned);
    let payload = postback.get("payload").and_then(Value::as_str).map(str::to_owned);
    Ok(InboundEvent::Message(IncomingMessage {
        order_key: order_key(sent_at_ms, &id),
        external_message_id: id,
        sender: Sender { id: Some(psid), name: None, username: None },
        sent_at_ms,
        text: title.clone(),
        attachments: Vec::new(),
        reply_to: None,
        kind: MessageKind::Postback { payload, title },
        thread_title: None,
    }))
}

/// `message.attachments[]`: the type as kind, `payload.url` (or the attachment's own `url`, as
/// fallback echoes carry it) as url, and the rest of the payload (sticker_id, reel_video_id,
/// template elements, ...) plus any `title` as details. Location coordinates become
/// `latitude`/`longitude`, as for Telegram.
fn attachments(message: &Value) -> Vec<Attachment> {
    let list = message.get("attachments").and_then(Value::as_array).into_iter().flatten();
    list.map(|a| {
        let kind = a.get("type").and_then(Value::as_str).unwrap_or("unknown").to_owned();
        let mut details = a.get("payload").and_then(Value::as_object).cloned().unwrap_or_default();
        let url = details.remove("url").or_else(|| a.get("url").cloned());
        if let Some(title) = a.get("title").filter(|t| !t.is_null()) {
            details.entry("title").or_insert_with(|| title.clone());
        }
        if let Some(Value::Object(coordinates)) = details.remove("coordinates") {
            details.insert("latitude".into(), coordinates.get("lat").cloned().unwrap_or(Value::Null));
            details.insert("longitude".into(), coordinates.get("long").cloned().unwrap_or(Value::Null));
        }
        Attachment {
            kind,
            file_id: None,
            url: url.and_then(|u| u.as_str().map(str::to_owned)),
            mime_type: None,
            size: None,
            file_name: None,
            details: if details.is_empty() { Value::Null } else { Value::Object(details) },
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
    match value.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn optional_array<'a>(entry: &'a Value, key: &str, i: usize) -> Result<Option<&'a Vec<Value>>, WebhookError> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(WebhookError::malformed(format!("entry[{i}].{key} is not an array"))),
    }
}

fn str_field<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a str, WebhookError> {
    value.get(key).and_then(Value::as_str).ok_or_else(|| WebhookError::malformed(format!("{what} has no {key}")))
}

fn int_field(value: &Value, key: &str, what: &str) -> Result<i64, WebhookError> {
    value
        .get(key)
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
        let mut items = split(body).expect("body splits");
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
        let items = split(&fixture!("batch_two_entries.json")).unwrap();
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
        let items = split(&fixture!("standby.json")).unwrap();
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
    fn malformed_shapes_name_what_is_wrong() {
        let cases = [
            (json!({ "object": "page", "entry": {} }), "malformed webhook: body has no entry array"),
            (
                json!({ "object": "page", "entry": [{ "id": PAGE, "time": 1 }] }),
                "malformed webhook: entry[0] has no messaging array",
            ),
            (
                json!({ "object": "page", "entry": [{ "id": PAGE, "messaging": {} }] }),
                "malformed webhook: entry[0].messaging is not an array",
            ),
            (json!({ "object": "page", "entry": [{ "messaging": [] }] }), "malformed webhook: entry[0] has no page id"),
            (
                page_body(json!({ "recipient": { "id": PAGE }, "timestamp": 1 })),
                "malformed webhook: entry[0].messaging[0] has no sender.id",
            ),
            (
                page_body(json!({ "sender": { "id": PSID }, "message": { "text": "x" } })),
                "malformed webhook: entry[0].messaging[0]: message has no mid",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(split(&body).unwrap_err().to_string(), expected);
        }
        let no_timestamp = json!({ "sender": { "id": PSID }, "message": { "mid": "m_1", "text": "x" } });
        assert_eq!(
            normalize(&no_timestamp).unwrap_err().to_string(),
            "malformed webhook: messaging item has no integer timestamp"
        );
    }

    #[test]
    fn an_entry_with_only_feed_changes_yields_nothing() {
        let changes = json!([{ "field": "feed", "value": {} }]);
        let body = json!({ "object": "page", "entry": [{ "id": PAGE, "time": 1, "changes": changes }] });
        assert_eq!(split(&body), Ok(vec![]));
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
            for item in split(body).unwrap() {
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
