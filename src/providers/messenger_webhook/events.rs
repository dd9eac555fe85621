//! How each kind of Messenger messaging item maps to an [`InboundEvent`], one handler per entry of
//! [`super::EVENTS`].

use super::{Item, WebhookError, bounded, event_id, int_field, postback_id, str_field};
use crate::domain::inbound::{
    Attachment, EchoedMessage, InboundEvent, IncomingMessage, MessageEdit, MessageKind, ReactionUpdate, Receipt,
    ReceiptStatus, order_key,
};
use crate::domain::{Reaction, Revision, SystemEvent};
use crate::providers::json::{array, get, scalar_text, storable};
use serde_json::{Map, Value};

/// A customer's message.
pub(super) fn customer_message(item: &Item<'_>, message: &Value) -> Result<InboundEvent, WebhookError> {
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
        thread: None,
        revision: Revision { at_ms: sent_at_ms, seq: 0 },
    }))
}

/// One of the page's own messages, seen back; `metadata` carries our sendId when kamshub sent it.
pub(super) fn echo(item: &Item<'_>, message: &Value) -> Result<InboundEvent, WebhookError> {
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
pub(super) fn postback_message(item: &Item<'_>, postback: &Value) -> Result<InboundEvent, WebhookError> {
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
        thread: None,
        revision: Revision { at_ms: sent_at_ms, seq: 0 },
    }))
}

pub(super) fn delivery(_: &Item<'_>, delivery: &Value) -> Result<InboundEvent, WebhookError> {
    let mids = array(delivery, "mids").filter_map(Value::as_str).map(str::to_owned).collect();
    let watermark_ms = int_field(delivery, "watermark", "delivery")?;
    Ok(InboundEvent::Receipt(Receipt { status: ReceiptStatus::Delivered, watermark_ms, mids }))
}

pub(super) fn read(_: &Item<'_>, read: &Value) -> Result<InboundEvent, WebhookError> {
    let watermark_ms = int_field(read, "watermark", "read")?;
    Ok(InboundEvent::Receipt(Receipt { status: ReceiptStatus::Read, watermark_ms, mids: Vec::new() }))
}

/// A customer's edit of an earlier message: its new text. Messenger counts a message's edits
/// (`num_edit`; a number, or a numeric string in Meta's examples), which orders two edits within
/// the same millisecond. Attachments cannot be edited on Messenger, so the message's stay.
pub(super) fn message_edit(item: &Item<'_>, edit: &Value) -> Result<InboundEvent, WebhookError> {
    let mid = str_field(edit, "mid", "message_edit")?;
    let at_ms = item.timestamp_ms()?;
    let num_edit = get(edit, "num_edit").and_then(|n| n.as_i64().or_else(|| n.as_str()?.trim().parse().ok()));
    let num_edit = num_edit.ok_or_else(|| WebhookError::malformed("message_edit has no integer num_edit"))?;
    Ok(InboundEvent::Edit(MessageEdit {
        message: IncomingMessage {
            external_message_id: mid.to_owned(),
            sender: item.person.sender(),
            sent_at_ms: at_ms,
            order_key: order_key(at_ms, mid),
            text: get(edit, "text").and_then(Value::as_str).map(str::to_owned),
            attachments: Vec::new(),
            reply_to: None,
            kind: MessageKind::Regular,
            thread_title: None,
            thread: None,
            revision: Revision { at_ms, seq: num_edit },
        },
        replaces_attachments: false,
    }))
}

/// A person's reaction to a message (theirs or the page's), or its withdrawal. Messenger keeps
/// one reaction per person and message, so the update is the person's whole set: one emoji, or
/// none after `unreact` (which may omit which one).
pub(super) fn reaction(item: &Item<'_>, reaction: &Value) -> Result<InboundEvent, WebhookError> {
    let mid = str_field(reaction, "mid", "reaction")?;
    let at_ms = item.timestamp_ms()?;
    let emoji = match get(reaction, "action").and_then(Value::as_str) {
        Some("unreact") => Vec::new(),
        _ => {
            let named = get(reaction, "emoji").or_else(|| get(reaction, "reaction")).and_then(Value::as_str);
            vec![named.unwrap_or("other").to_owned()]
        }
    };
    Ok(InboundEvent::Reaction(ReactionUpdate {
        target: mid.to_owned(),
        reaction: Reaction { by: item.person.sender(), emoji, revision: Revision { at_ms, seq: 0 } },
    }))
}

/// The person came (back) to the conversation from an m.me link, an ad, or the website's Chat
/// Plugin: a system event in their conversation, keyed like its event id.
pub(super) fn referral(item: &Item<'_>, referral: &Value) -> Result<InboundEvent, WebhookError> {
    let at_ms = item.timestamp_ms()?;
    let id = bounded(event_id(item.raw, &item.person.thread()));
    let text = |key: &str| get(referral, key).and_then(scalar_text);
    let event = SystemEvent::Referral {
        source: text("source"),
        reference: text("ref"),
        ad_title: referral.pointer("/ads_context_data/ad_title").and_then(scalar_text),
        page_url: text("referer_uri"),
    };
    Ok(InboundEvent::Message(IncomingMessage {
        order_key: order_key(at_ms, &id),
        external_message_id: id,
        sender: item.person.sender(),
        sent_at_ms: at_ms,
        text: None,
        attachments: Vec::new(),
        reply_to: None,
        kind: MessageKind::System { event },
        thread_title: None,
        thread: None,
        revision: Revision { at_ms, seq: 0 },
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
