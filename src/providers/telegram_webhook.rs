//! Telegram webhooks: the secret-token check, the keys intake needs from an `Update`, and the
//! mapping of an `Update` to an [`InboundEvent`]. Files are described, never downloaded.
//! Explicit nulls (`"audio": null`, as some client libraries write every field) read as absent.

use super::json::{array, get, pick, storable};
pub use super::messenger_webhook::WebhookError;
use crate::domain::inbound::{Attachment, InboundEvent, IncomingMessage, MessageEdit, MessageKind, Sender, order_key};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// Update fields that carry a `Message` (the four kinds we apply).
const MESSAGE_FIELDS: [&str; 4] = ["message", "edited_message", "channel_post", "edited_channel_post"];

/// What intake needs from an update, without parsing the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateKey {
    /// `update_id`: the provider event id (unique per bot, so per channel).
    pub update_id: i64,
    /// The FIFO group: the chat id as a decimal string; `user:{id}` for updates with a user but no
    /// chat (inline callback queries, inline queries, poll answers); `update:{update_id}` when
    /// the update names neither (poll state).
    pub thread_id: String,
}

/// Reads the event id and thread of an update. Fails only when `update_id` is missing or not an
/// integer, or a message-carrying update has a message without an integer `chat.id`.
pub fn update_key(update: &Value) -> Result<UpdateKey, WebhookError> {
    let update_id = update_id(update)?;
    let (field, body) = update_field(update);
    let body = body.unwrap_or(&Value::Null);
    let chat_id = if MESSAGE_FIELDS.contains(&field) {
        Some(
            int_at(body, "/chat/id")
                .ok_or_else(|| WebhookError::malformed(format!("{field} has no integer chat.id")))?,
        )
    } else if field == "callback_query" {
        int_at(body, "/message/chat/id")
    } else {
        int_at(body, "/chat/id")
    };
    let user_id = int_at(body, "/from/id").or_else(|| int_at(body, "/user/id"));
    let thread_id = match (chat_id, user_id) {
        (Some(chat), _) => chat.to_string(),
        (None, Some(user)) => format!("user:{user}"),
        (None, None) => format!("update:{update_id}"),
    };
    Ok(UpdateKey { update_id, thread_id })
}

/// Maps an update: `message`/`channel_post` → `Message`; `edited_message`/`edited_channel_post`
/// → `Edit` (same external id as the original); `callback_query` → `Message` of kind
/// `CallbackQuery`; any other update type → `Ignored`.
pub fn normalize(update: &Value) -> Result<InboundEvent, WebhookError> {
    update_id(update)?;
    let (field, body) = update_field(update);
    let Some(body) = body else {
        return Ok(InboundEvent::Ignored { reason: "update has no content".into() });
    };
    match field {
        "message" | "channel_post" => Ok(InboundEvent::Message(message(body, field)?)),
        "edited_message" | "edited_channel_post" => {
            let message = message(body, field)?;
            let edited_at_ms = body.get("edit_date").and_then(Value::as_i64).map_or(message.sent_at_ms, seconds_to_ms);
            Ok(InboundEvent::Edit(MessageEdit { message, edited_at_ms }))
        }
        "callback_query" => Ok(InboundEvent::Message(callback_query(body)?)),
        other => Ok(InboundEvent::Ignored { reason: format!("unsupported update type {other}") }),
    }
}

/// Compares the `X-Telegram-Bot-Api-Secret-Token` header with the channel's secret in constant
/// time. A missing header, or an empty expected secret (never valid for setWebhook), is `false`.
pub fn secret_matches(expected: &SecretString, header: Option<&[u8]>) -> bool {
    let expected = expected.expose_secret().as_bytes();
    match header {
        Some(header) if !expected.is_empty() => expected.ct_eq(header).into(),
        _ => false,
    }
}

fn update_id(update: &Value) -> Result<i64, WebhookError> {
    update
        .get("update_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| WebhookError::malformed("update has no integer update_id"))
}

/// The update's one optional field (Telegram sends at most one besides `update_id`): its name and
/// value, or `("(none)", None)`. Explicit nulls are skipped.
fn update_field(update: &Value) -> (&str, Option<&Value>) {
    let fields = update.as_object().into_iter().flat_map(Map::iter);
    let mut present = fields.filter(|(k, v)| *k != "update_id" && !v.is_null());
    present.next().map_or(("(none)", None), |(k, v)| (k.as_str(), Some(v)))
}

/// A `Message` (or channel post) in kamshub's terms; `field` names it in errors.
fn message(msg: &Value, field: &str) -> Result<IncomingMessage, WebhookError> {
    let missing = |what: &str| WebhookError::malformed(format!("{field} has no integer {what}"));
    let chat_id = int_at(msg, "/chat/id").ok_or_else(|| missing("chat.id"))?;
    let message_id = int_at(msg, "/message_id").ok_or_else(|| missing("message_id"))?;
    let sent_at_ms = int_at(msg, "/date").map(seconds_to_ms).ok_or_else(|| missing("date"))?;
    let reply_to = get(msg, "reply_to_message").and_then(|r| {
        let reply_chat = int_at(r, "/chat/id").unwrap_or(chat_id);
        int_at(r, "/message_id").map(|id| format!("{reply_chat}:{id}"))
    });
    Ok(IncomingMessage {
        external_message_id: format!("{chat_id}:{message_id}"),
        sender: sender(msg),
        sent_at_ms,
        order_key: order_key(sent_at_ms, &message_id.to_string()),
        text: str_at(msg, "/text").or_else(|| str_at(msg, "/caption")),
        attachments: attachments(msg),
        reply_to,
        kind: MessageKind::Regular,
        thread_title: str_at(msg, "/chat/title"),
    })
}

/// An inline-button press. It has no time of its own: `sent_at_ms` is the date of the message the
/// button is on (0 when that message is absent: inline mode), and its order key sorts it right
/// after that message. Its reply_to is that message.
fn callback_query(query: &Value) -> Result<IncomingMessage, WebhookError> {
    let id = str_at(query, "/id").ok_or_else(|| WebhookError::malformed("callback_query has no id"))?;
    let data = str_at(query, "/data");
    let chat_id = int_at(query, "/message/chat/id");
    let message_id = int_at(query, "/message/message_id");
    let sent_at_ms = int_at(query, "/message/date").map_or(0, seconds_to_ms);
    Ok(IncomingMessage {
        external_message_id: format!("callback:{id}"),
        sender: user(get(query, "from").unwrap_or(&Value::Null)),
        sent_at_ms,
        order_key: order_key(sent_at_ms, &format!("{:020}:callback:{id}", message_id.unwrap_or(0))),
        text: data.clone().or_else(|| str_at(query, "/game_short_name")),
        attachments: Vec::new(),
        reply_to: chat_id.zip(message_id).map(|(chat, message)| format!("{chat}:{message}")),
        kind: MessageKind::CallbackQuery { data },
        thread_title: str_at(query, "/message/chat/title"),
    })
}

/// Who sent a message: `sender_chat` when the message was sent on behalf of a chat (channel
/// posts, anonymous group admins, whose `from` is a placeholder bot), else `from`.
fn sender(msg: &Value) -> Sender {
    match get(msg, "sender_chat") {
        Some(chat) => Sender {
            id: int_at(chat, "/id").map(|id| id.to_string()),
            name: str_at(chat, "/title"),
            username: str_at(chat, "/username"),
        },
        None => user(get(msg, "from").unwrap_or(&Value::Null)),
    }
}

/// A Telegram `User`: id, "first last", username.
fn user(from: &Value) -> Sender {
    let name = [str_at(from, "/first_name"), str_at(from, "/last_name")].into_iter().flatten().collect::<Vec<_>>();
    Sender {
        id: int_at(from, "/id").map(|id| id.to_string()),
        name: (!name.is_empty()).then(|| name.join(" ")),
        username: str_at(from, "/username"),
    }
}

/// The message's non-text parts. Telegram doubles some for old clients (`animation` also sets
/// `document`, `venue` also sets `location`); each is reported once, as the richer kind.
fn attachments(msg: &Value) -> Vec<Attachment> {
    let mut parts = Vec::new();
    if let Some(largest) = get(msg, "photo").and_then(Value::as_array).and_then(|sizes| largest_photo(sizes)) {
        parts.push(file("photo", largest, &["file_unique_id", "width", "height"]));
    }
    let has = |key: &str| get(msg, key).is_some();
    let files: [(&str, &[&str]); 7] = [
        ("animation", &["file_unique_id", "width", "height", "duration"]),
        ("document", &["file_unique_id"]),
        ("voice", &["file_unique_id", "duration"]),
        ("audio", &["file_unique_id", "duration", "performer", "title"]),
        ("video", &["file_unique_id", "width", "height", "duration"]),
        ("video_note", &["file_unique_id", "length", "duration"]),
        ("sticker", &["file_unique_id", "emoji", "set_name", "type", "width", "height", "is_animated", "is_video"]),
    ];
    for (kind, keys) in files {
        if kind == "document" && has("animation") {
            continue;
        }
        if let Some(value) = get(msg, kind).filter(|v| v.is_object()) {
            parts.push(file(kind, value, keys));
        }
    }
    if let Some(location) = get(msg, "location").filter(|_| !has("venue")) {
        parts.push(described(
            "location",
            pick(location, &["latitude", "longitude", "horizontal_accuracy", "live_period"]),
        ));
    }
    if let Some(venue) = get(msg, "venue") {
        let mut details = pick(get(venue, "location").unwrap_or(&Value::Null), &["latitude", "longitude"]);
        details.extend(pick(venue, &["title", "address", "foursquare_id", "google_place_id"]));
        parts.push(described("venue", details));
    }
    if let Some(contact) = get(msg, "contact") {
        parts.push(described(
            "contact",
            pick(contact, &["phone_number", "first_name", "last_name", "user_id", "vcard"]),
        ));
    }
    if let Some(poll) = get(msg, "poll") {
        let mut details = pick(poll, &["id", "question", "type", "is_anonymous", "allows_multiple_answers"]);
        let options: Vec<Value> = array(poll, "options").filter_map(|o| get(o, "text")).map(storable).collect();
        details.insert("options".into(), Value::Array(options));
        parts.push(described("poll", details));
    }
    parts
}

/// The biggest `PhotoSize` by pixels (then bytes); Telegram lists them smallest first.
fn largest_photo(sizes: &[Value]) -> Option<&Value> {
    let dim = |s: &Value, k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
    let pixels = |s: &Value| dim(s, "width").saturating_mul(dim(s, "height"));
    sizes.iter().filter(|s| s.is_object()).max_by_key(|s| (pixels(s), dim(s, "file_size")))
}

/// A file-backed part: `file_id`, `mime_type`, `file_size`, `file_name`, and `keys` as details.
fn file(kind: &str, value: &Value, keys: &[&str]) -> Attachment {
    Attachment {
        file_id: str_at(value, "/file_id"),
        mime_type: str_at(value, "/mime_type"),
        size: get(value, "file_size").and_then(Value::as_i64).and_then(|n| u64::try_from(n).ok()),
        file_name: str_at(value, "/file_name"),
        ..described(kind, pick(value, keys))
    }
}

/// A part described only by its details.
fn described(kind: &str, details: Map<String, Value>) -> Attachment {
    Attachment {
        kind: kind.to_owned(),
        file_id: None,
        url: None,
        mime_type: None,
        size: None,
        file_name: None,
        details: if details.is_empty() { Value::Null } else { Value::Object(details) },
    }
}

fn int_at(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

fn str_at(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

fn seconds_to_ms(seconds: i64) -> i64 {
    seconds.saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    macro_rules! fixture {
        ($name:literal) => {
            serde_json::from_str::<Value>(include_str!(concat!("../../tests/fixtures/telegram/", $name)))
                .expect("fixture is JSON")
        };
    }

    const AINO: i64 = 284_619_503;

    fn message_of(update: &Value) -> IncomingMessage {
        match normalize(update).expect("update normalizes") {
            InboundEvent::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn only_attachment(update: &Value) -> Attachment {
        let mut attachments = message_of(update).attachments;
        assert_eq!(attachments.len(), 1, "{attachments:?}");
        attachments.remove(0)
    }

    fn aino() -> Sender {
        Sender { id: Some(AINO.to_string()), name: Some("Aino Virtanen".into()), username: Some("ainov".into()) }
    }

    #[test]
    fn private_text_message() {
        let message = message_of(&fixture!("private_text.json"));
        assert_eq!(message.external_message_id, "284619503:4821");
        assert_eq!(message.sender, aino());
        assert_eq!(message.sent_at_ms, 1_718_020_442_000);
        assert_eq!(message.order_key, order_key(1_718_020_442_000, "4821"));
        assert_eq!(message.text.as_deref(), Some("Hei! Is my order #5531 shipped yet?"));
        assert_eq!(message.kind, MessageKind::Regular);
        assert_eq!((message.thread_title, message.reply_to), (None, None));
        assert!(message.attachments.is_empty());
    }

    #[test]
    fn group_messages_keep_each_sender_and_the_group_title() {
        let first = message_of(&fixture!("group_message.json"));
        let second = message_of(&fixture!("group_message_other_member.json"));
        assert_eq!(first.external_message_id, "-1001234567890:90417");
        assert_eq!(first.sender.name.as_deref(), Some("Lars"));
        assert_eq!(first.sender.username.as_deref(), Some("lars_support_fan"));
        assert_eq!(second.sender.id.as_deref(), Some("731902845"));
        assert_eq!(second.sender.name.as_deref(), Some("Mira Koskinen"));
        for m in [&first, &second] {
            assert_eq!(m.thread_title.as_deref(), Some("Kams Customers Lounge"));
        }
        assert_eq!(first.reply_to.as_deref(), Some("-1001234567890:90412"));
        assert!(first.order_key < second.order_key, "same second: message_id breaks the tie");
    }

    #[test]
    fn channel_post_without_from_is_sent_by_the_channel() {
        let update = fixture!("channel_post.json");
        assert!(update["channel_post"].get("from").is_none());
        let message = message_of(&update);
        assert_eq!(message.external_message_id, "-1009876543210:312");
        let channel = Sender {
            id: Some("-1009876543210".into()),
            name: Some("Kams Announcements".into()),
            username: Some("kams_news".into()),
        };
        assert_eq!(message.sender, channel);
        assert_eq!(message.thread_title.as_deref(), Some("Kams Announcements"));
        assert_eq!(message.text.as_deref(), Some("Summer sale starts Monday: 20% off all plans."));
    }

    #[test]
    fn edited_message_keeps_the_external_id_and_is_ordered_by_edit_date() {
        let original = message_of(&fixture!("private_text.json"));
        let InboundEvent::Edit(edit) = normalize(&fixture!("edited_message.json")).unwrap() else {
            panic!("expected an edit")
        };
        assert_eq!(edit.message.external_message_id, original.external_message_id);
        assert_eq!(edit.message.order_key, original.order_key);
        assert_eq!(edit.message.text.as_deref(), Some("Hei! Is my order #5532 shipped yet?"));
        assert_eq!(edit.edited_at_ms, 1_718_020_517_000);

        let mut no_edit_date = fixture!("edited_message.json");
        no_edit_date["edited_message"].as_object_mut().unwrap().remove("edit_date");
        let InboundEvent::Edit(edit) = normalize(&no_edit_date).unwrap() else { panic!("expected an edit") };
        assert_eq!(edit.edited_at_ms, 1_718_020_442_000, "falls back to date");
    }

    #[test]
    fn edited_channel_post_is_an_edit() {
        let mut update = fixture!("channel_post.json");
        let post = update.as_object_mut().unwrap().remove("channel_post").unwrap();
        update["edited_channel_post"] = post;
        update["edited_channel_post"]["edit_date"] = json!(1_718_021_060);
        let InboundEvent::Edit(edit) = normalize(&update).unwrap() else { panic!("expected an edit") };
        assert_eq!(edit.message.external_message_id, "-1009876543210:312");
        assert_eq!(edit.edited_at_ms, 1_718_021_060_000);
    }

    #[test]
    fn callback_query_is_a_message_right_after_the_one_with_the_button() {
        let message = message_of(&fixture!("callback_query.json"));
        assert_eq!(message.external_message_id, "callback:1222459138461028763");
        assert_eq!(message.sender, aino());
        assert_eq!(message.text.as_deref(), Some("feedback:yes:5531"));
        assert_eq!(message.kind, MessageKind::CallbackQuery { data: Some("feedback:yes:5531".into()) });
        assert_eq!(message.sent_at_ms, 1_718_020_460_000);
        assert_eq!(message.reply_to.as_deref(), Some("284619503:4825"));
        let button_message = order_key(1_718_020_460_000, "4825");
        let next_message = order_key(1_718_020_460_000, "4826");
        assert!(button_message < message.order_key && message.order_key < next_message, "{}", message.order_key);
    }

    #[test]
    fn inline_callback_query_has_no_message_so_time_zero() {
        let message = message_of(&fixture!("callback_query_inline.json"));
        assert_eq!(message.external_message_id, "callback:1222459138461028799");
        assert_eq!(message.sent_at_ms, 0);
        assert_eq!(message.reply_to, None);
        assert_eq!(message.text.as_deref(), Some("track:5531"));

        let mut game = fixture!("callback_query_inline.json");
        let query = game["callback_query"].as_object_mut().unwrap();
        query.remove("data");
        query.insert("game_short_name".into(), json!("parcel_dash"));
        let message = message_of(&game);
        assert_eq!(message.text.as_deref(), Some("parcel_dash"));
        assert_eq!(message.kind, MessageKind::CallbackQuery { data: None });
    }

    #[test]
    fn photo_keeps_the_largest_size_and_the_caption() {
        let update = fixture!("photo_caption.json");
        assert_eq!(message_of(&update).text.as_deref(), Some("The box arrived like this"));
        let photo = only_attachment(&update);
        assert_eq!(photo.kind, "photo");
        assert_eq!(
            photo.file_id.as_deref(),
            Some("AgACAgQAAxkBAAIBb2ZnR1mXK3fVb2s3AAFqv9sAAUt9XwACvr8xG4bGQFM-1280x960")
        );
        assert_eq!(photo.size, Some(187_344));
        assert_eq!(photo.details, json!({ "file_unique_id": "AQADvr8xG4bGQFN-", "width": 1280, "height": 960 }));
    }

    #[test]
    fn document_keeps_name_type_and_size() {
        let document = only_attachment(&fixture!("document.json"));
        assert_eq!(document.kind, "document");
        assert_eq!(
            document.file_id.as_deref(),
            Some("BQACAgQAAxkBAAIBcGZnR4bJ5wABbrP3sXJ0K3lWjUYvAAK5EgACbsZAU3ZpS9t1M1QxNQQ")
        );
        assert_eq!(document.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(document.file_name.as_deref(), Some("invoice-5531.pdf"));
        assert_eq!(document.size, Some(48_213));
        assert_eq!(message_of(&fixture!("document.json")).text, None);
    }

    #[test]
    fn voice_keeps_its_duration() {
        let voice = only_attachment(&fixture!("voice.json"));
        assert_eq!(
            (voice.kind.as_str(), voice.mime_type.as_deref(), voice.size),
            ("voice", Some("audio/ogg"), Some(24_576))
        );
        assert_eq!(voice.details, json!({ "file_unique_id": "AgADuhIAAm7GQFM", "duration": 7 }));
    }

    #[test]
    fn audio_keeps_duration_performer_and_title() {
        let audio = only_attachment(&fixture!("audio.json"));
        assert_eq!(audio.kind, "audio");
        assert_eq!(audio.file_name.as_deref(), Some("hold-music.mp3"));
        assert_eq!(audio.details["duration"], 214);
        assert_eq!(audio.details["performer"], "Kams House Band");
        assert_eq!(audio.details["title"], "Hold the Line");
    }

    #[test]
    fn video_keeps_dimensions_and_the_caption() {
        let update = fixture!("video.json");
        let video = only_attachment(&update);
        assert_eq!((video.kind.as_str(), video.mime_type.as_deref()), ("video", Some("video/mp4")));
        assert_eq!(
            (&video.details["width"], &video.details["height"], &video.details["duration"]),
            (&json!(720), &json!(1280), &json!(12))
        );
        assert!(video.details.get("thumbnail").is_none());
        assert_eq!(message_of(&update).text.as_deref(), Some("Unboxing, see 0:07"));
    }

    #[test]
    fn sticker_keeps_emoji_and_set() {
        let sticker = only_attachment(&fixture!("sticker.json"));
        assert_eq!(sticker.kind, "sticker");
        assert_eq!(sticker.details["emoji"], "👍");
        assert_eq!(sticker.details["set_name"], "HotCherry");
        assert_eq!(sticker.size, Some(6_743));
    }

    #[test]
    fn location_keeps_coordinates() {
        let location = only_attachment(&fixture!("location.json"));
        assert_eq!(location.kind, "location");
        assert_eq!(location.file_id, None);
        assert_eq!(
            location.details,
            json!({ "latitude": 60.169857, "longitude": 24.938379, "horizontal_accuracy": 35 })
        );
    }

    #[test]
    fn venue_is_reported_once_not_also_as_a_location() {
        let mut update = fixture!("location.json");
        update["message"]["venue"] = json!({
            "location": { "latitude": 60.169857, "longitude": 24.938379 },
            "title": "Kams Pickup Point",
            "address": "Mannerheimintie 1, Helsinki"
        });
        let venue = only_attachment(&update);
        assert_eq!(venue.kind, "venue");
        assert_eq!(venue.details["title"], "Kams Pickup Point");
        assert_eq!(venue.details["latitude"], 60.169857);
    }

    #[test]
    fn contact_keeps_phone_name_and_user_id() {
        let contact = only_attachment(&fixture!("contact.json"));
        assert_eq!(contact.kind, "contact");
        let details =
            json!({ "phone_number": "+358401234567", "first_name": "Aino", "last_name": "Virtanen", "user_id": AINO });
        assert_eq!(contact.details, details);
    }

    #[test]
    fn poll_message_keeps_question_and_options() {
        let mut update = fixture!("private_text.json");
        update["message"].as_object_mut().unwrap().remove("text");
        update["message"]["poll"] = fixture!("poll.json")["poll"].clone();
        let poll = only_attachment(&update);
        assert_eq!(poll.kind, "poll");
        assert_eq!(poll.details["question"], "Which delivery slot suits you?");
        assert_eq!(poll.details["options"], json!(["Morning", "Evening"]));
    }

    #[test]
    fn unsupported_update_types_are_ignored() {
        for (update, kind) in
            [(fixture!("my_chat_member.json"), "my_chat_member"), (fixture!("poll_answer.json"), "poll_answer")]
        {
            let reason = format!("unsupported update type {kind}");
            assert_eq!(normalize(&update).unwrap(), InboundEvent::Ignored { reason });
        }
    }

    #[test]
    fn an_update_without_an_integer_update_id_is_an_error() {
        let expected = WebhookError::Malformed("update has no integer update_id".into());
        let missing = fixture!("missing_update_id.json");
        assert_eq!(update_key(&missing), Err(expected.clone()));
        assert_eq!(normalize(&missing), Err(expected.clone()));
        let mut as_string = fixture!("private_text.json");
        as_string["update_id"] = json!("827391045");
        assert_eq!(update_key(&as_string), Err(expected));
    }

    #[test]
    fn a_message_without_chat_id_is_an_error() {
        let mut update = fixture!("private_text.json");
        update["message"].as_object_mut().unwrap().remove("chat");
        let expected = WebhookError::Malformed("message has no integer chat.id".into());
        assert_eq!(update_key(&update), Err(expected.clone()));
        assert_eq!(normalize(&update), Err(expected));
    }

    #[test]
    fn update_key_picks_the_conversation_of_each_update_type() {
        let cases = [
            (fixture!("private_text.json"), 827_391_045, "284619503"),
            (fixture!("edited_message.json"), 827_391_052, "284619503"),
            (fixture!("group_message.json"), 827_391_046, "-1001234567890"),
            (fixture!("group_message_other_member.json"), 827_391_047, "-1001234567890"),
            (fixture!("channel_post.json"), 827_391_048, "-1009876543210"),
            (fixture!("callback_query.json"), 827_391_049, "284619503"),
            (fixture!("callback_query_inline.json"), 827_391_050, "user:5120938471"),
            (fixture!("photo_caption.json"), 827_391_053, "284619503"),
            (fixture!("document.json"), 827_391_054, "284619503"),
            (fixture!("voice.json"), 827_391_055, "284619503"),
            (fixture!("audio.json"), 827_391_056, "284619503"),
            (fixture!("video.json"), 827_391_057, "284619503"),
            (fixture!("sticker.json"), 827_391_058, "284619503"),
            (fixture!("location.json"), 827_391_059, "284619503"),
            (fixture!("contact.json"), 827_391_060, "284619503"),
            (fixture!("my_chat_member.json"), 827_391_061, "-1001234567890"),
            (fixture!("poll_answer.json"), 827_391_062, "user:5120938471"),
            (fixture!("poll.json"), 827_391_063, "update:827391063"),
            (
                json!({ "update_id": 827_391_064, "inline_query": { "id": "7", "from": { "id": 42 }, "query": "" } }),
                827_391_064,
                "user:42",
            ),
        ];
        for (update, update_id, thread_id) in cases {
            assert_eq!(update_key(&update), Ok(UpdateKey { update_id, thread_id: thread_id.into() }), "{update}");
        }
    }

    #[test]
    fn secret_matches_only_the_exact_secret() {
        let expected = SecretString::from("kH3_q9-Zt2mWx7Lp0aV5".to_owned());
        assert!(secret_matches(&expected, Some(b"kH3_q9-Zt2mWx7Lp0aV5")));
        assert!(!secret_matches(&expected, Some(b"kH3_q9-Zt2mWx7Lp0aV6")), "different");
        assert!(!secret_matches(&expected, Some(b"kH3_q9-Zt2mWx7Lp0aV")), "shorter");
        assert!(!secret_matches(&expected, Some(b"kH3_q9-Zt2mWx7Lp0aV5x")), "longer");
        assert!(!secret_matches(&expected, Some(b"")), "empty");
        assert!(!secret_matches(&expected, None), "missing");
        assert!(!secret_matches(&SecretString::from(String::new()), Some(b"")), "empty expected never matches");
    }
}
