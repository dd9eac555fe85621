//! What a Telegram `Message` holds beyond its text: its files and other parts (one each, as the
//! richer kind where Telegram doubles them), the service message it is, and content kamshub does
//! not model field by field.

use super::{int_at, seconds_to_ms, str_at, user};
use crate::domain::SystemEvent;
use crate::domain::inbound::Attachment;
use crate::providers::json::{array, get, pick, scalars, storable};
use serde_json::{Map, Value};

/// The service message a `Message` is, if it is one.
pub(super) fn system_event(msg: &Value, chat_id: i64) -> Option<SystemEvent> {
    let members = |key: &str| array(msg, key).map(user).collect::<Vec<_>>();
    if get(msg, "new_chat_members").is_some() {
        return Some(SystemEvent::MembersJoined { members: members("new_chat_members") });
    }
    if let Some(member) = get(msg, "left_chat_member") {
        return Some(SystemEvent::MemberLeft { member: user(member) });
    }
    if let Some(title) = str_at(msg, "/new_chat_title") {
        return Some(SystemEvent::TitleChanged { title });
    }
    if get(msg, "new_chat_photo").is_some() {
        return Some(SystemEvent::PhotoChanged);
    }
    if get(msg, "delete_chat_photo").is_some() {
        return Some(SystemEvent::PhotoRemoved);
    }
    if ["group_chat_created", "supergroup_chat_created", "channel_chat_created"].iter().any(|k| get(msg, k).is_some()) {
        return Some(SystemEvent::ChatCreated);
    }
    if let Some(seconds) = int_at(msg, "/message_auto_delete_timer_changed/message_auto_delete_time") {
        return Some(SystemEvent::AutoDeleteTimerChanged { seconds });
    }
    if let Some(to) = int_at(msg, "/migrate_to_chat_id") {
        return Some(SystemEvent::MigratedTo { chat_id: to.to_string() });
    }
    if let Some(from) = int_at(msg, "/migrate_from_chat_id") {
        return Some(SystemEvent::MigratedFrom { chat_id: from.to_string() });
    }
    if let Some(pinned) = get(msg, "pinned_message") {
        // An inaccessible pinned message has `date: 0` and no content.
        let message =
            int_at(pinned, "/message_id").map(|id| format!("{}:{id}", int_at(pinned, "/chat/id").unwrap_or(chat_id)));
        let text = str_at(pinned, "/text").or_else(|| str_at(pinned, "/caption"));
        return Some(SystemEvent::MessagePinned { message, text });
    }
    if let Some(start) = int_at(msg, "/video_chat_scheduled/start_date") {
        return Some(SystemEvent::VideoChatScheduled { start_at_ms: seconds_to_ms(start) });
    }
    if get(msg, "video_chat_started").is_some() {
        return Some(SystemEvent::VideoChatStarted);
    }
    if let Some(ended) = get(msg, "video_chat_ended") {
        return Some(SystemEvent::VideoChatEnded { duration_secs: int_at(ended, "/duration").unwrap_or(0) });
    }
    if let Some(invited) = get(msg, "video_chat_participants_invited") {
        return Some(SystemEvent::VideoChatInvited { members: array(invited, "users").map(user).collect() });
    }
    if let Some(name) = str_at(msg, "/forum_topic_created/name") {
        return Some(SystemEvent::TopicCreated { name });
    }
    if let Some(edited) = get(msg, "forum_topic_edited") {
        return Some(SystemEvent::TopicEdited { name: str_at(edited, "/name") });
    }
    let flags = [
        ("forum_topic_closed", SystemEvent::TopicClosed),
        ("forum_topic_reopened", SystemEvent::TopicReopened),
        ("general_forum_topic_hidden", SystemEvent::GeneralTopicHidden),
        ("general_forum_topic_unhidden", SystemEvent::GeneralTopicUnhidden),
    ];
    if let Some((_, event)) = flags.into_iter().find(|(k, _)| get(msg, k).is_some()) {
        return Some(event);
    }
    OTHER_SERVICE
        .iter()
        .find_map(|&field| get(msg, field).map(|v| SystemEvent::Other { field: field.to_owned(), details: scalars(v) }))
}

/// Service messages named but not modelled field by field.
const OTHER_SERVICE: &[&str] = &[
    "boost_added",
    "write_access_allowed",
    "chat_background_set",
    "proximity_alert_triggered",
    "giveaway_created",
    "giveaway_winners",
    "giveaway_completed",
    "checklist_tasks_done",
    "checklist_tasks_added",
    "paid_message_price_changed",
    "direct_message_price_changed",
];

/// Fields of a `Message` that describe it rather than hold its content: a message with none of
/// its content recognised is reported by its first field not in this list.
const METADATA: &[&str] = &[
    "message_id",
    "message_thread_id",
    "direct_messages_topic",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "date",
    "business_connection_id",
    "chat",
    "forward_origin",
    "forward_from",
    "forward_from_chat",
    "forward_from_message_id",
    "forward_signature",
    "forward_sender_name",
    "forward_date",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "reply_to_checklist_task_id",
    "via_bot",
    "edit_date",
    "has_protected_content",
    "is_from_offline",
    "is_paid_post",
    "media_group_id",
    "author_signature",
    "paid_star_count",
    "text",
    "entities",
    "link_preview_options",
    "suggested_post_info",
    "effect_id",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "reply_markup",
];

/// Content kamshub does not model field by field, as a typed part that names it with its main
/// fields; or, for content no one has told kamshub about yet, a part named by its field.
pub(super) fn unmodelled(msg: &Value) -> Option<Attachment> {
    let known = [
        ("dice", &["emoji", "value"][..]),
        ("game", &["title", "description"]),
        ("invoice", &["title", "description", "currency", "total_amount"]),
        ("successful_payment", &["currency", "total_amount", "invoice_payload", "telegram_payment_charge_id"]),
        ("refunded_payment", &["currency", "total_amount", "invoice_payload", "telegram_payment_charge_id"]),
        ("web_app_data", &["data", "button_text"]),
        ("chat_shared", &["request_id", "chat_id", "title", "username"]),
        ("giveaway", &["winner_count", "winners_selection_date", "prize_description", "prize_star_count"]),
        ("paid_media", &["star_count"]),
        ("passport_data", &[]),
    ];
    for (kind, keys) in known {
        if let Some(value) = get(msg, kind) {
            return Some(described(kind, pick(value, keys)));
        }
    }
    if let Some(story) = get(msg, "story") {
        let mut details = pick(story, &["id"]);
        details.extend(pick(get(story, "chat").unwrap_or(&Value::Null), &["title", "username"]));
        return Some(described("story", details));
    }
    if let Some(shared) = get(msg, "users_shared") {
        let users =
            array(shared, "users").map(|u| Value::Object(pick(u, &["user_id", "first_name", "last_name", "username"])));
        let mut details = pick(shared, &["request_id"]);
        details.insert("users".into(), Value::Array(users.collect()));
        return Some(described("users_shared", details));
    }
    if let Some(checklist) = get(msg, "checklist") {
        let tasks = array(checklist, "tasks").map(|t| {
            let mut task = pick(t, &["id", "text"]);
            task.insert(
                "done".into(),
                Value::Bool(
                    get(t, "completed_by_user").is_some()
                        || get(t, "completion_date").is_some_and(|d| d.as_i64() != Some(0)),
                ),
            );
            Value::Object(task)
        });
        let mut details = pick(checklist, &["title"]);
        details.insert("tasks".into(), Value::Array(tasks.collect()));
        return Some(described("checklist", details));
    }
    for kind in ["gift", "unique_gift"] {
        if let Some(gift) = get(msg, kind) {
            let mut details = pick(get(gift, "gift").unwrap_or(&Value::Null), &["id", "star_count"]);
            details.extend(pick(gift, &["text"]));
            return Some(described(kind, details));
        }
    }
    if let Some(domain) = get(msg, "connected_website").and_then(Value::as_str) {
        let mut details = Map::new();
        details.insert("domain".into(), Value::String(domain.to_owned()));
        return Some(described("connected_website", details));
    }
    let fields = msg.as_object().into_iter().flat_map(Map::iter);
    let unknown =
        fields.filter(|(k, v)| !v.is_null() && !METADATA.contains(&k.as_str())).map(|(k, _)| k.clone()).next();
    unknown.map(|field| described(&field, Map::new()))
}

/// The message's non-text parts. Telegram doubles some for old clients (`animation` also sets
/// `document`, `venue` also sets `location`); each is reported once, as the richer kind.
pub(super) fn attachments(msg: &Value) -> Vec<Attachment> {
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
