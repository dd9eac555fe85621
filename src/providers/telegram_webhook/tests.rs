//! Tests of the Telegram normaliser, on the fixtures in tests/fixtures/telegram.

use super::*;
use crate::domain::inbound::Attachment;
use serde_json::json;

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!("../../../tests/fixtures/telegram/", $name)))
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
    assert_eq!(edit.message.revision, Revision { at_ms: 1_718_020_517_000, seq: 827_391_052 });
    assert!(edit.replaces_attachments, "a Telegram edit carries the whole message");

    let mut no_edit_date = fixture!("edited_message.json");
    no_edit_date["edited_message"].as_object_mut().unwrap().remove("edit_date");
    let InboundEvent::Edit(edit) = normalize(&no_edit_date).unwrap() else { panic!("expected an edit") };
    assert_eq!(edit.message.revision.at_ms, 1_718_020_442_000, "falls back to date");
}

#[test]
fn edited_channel_post_is_an_edit() {
    let mut update = fixture!("channel_post.json");
    let post = update.as_object_mut().unwrap().remove("channel_post").unwrap();
    update["edited_channel_post"] = post;
    update["edited_channel_post"]["edit_date"] = json!(1_718_021_060);
    let InboundEvent::Edit(edit) = normalize(&update).unwrap() else { panic!("expected an edit") };
    assert_eq!(edit.message.external_message_id, "-1009876543210:312");
    assert_eq!(edit.message.revision.at_ms, 1_718_021_060_000);
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
    assert_eq!(photo.file_id.as_deref(), Some("AgACAgQAAxkBAAIBb2ZnR1mXK3fVb2s3AAFqv9sAAUt9XwACvr8xG4bGQFM-1280x960"));
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
    assert_eq!(location.details, json!({ "latitude": 60.169857, "longitude": 24.938379, "horizontal_accuracy": 35 }));
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
fn update_types_kamshub_does_not_subscribe_to_are_ignored() {
    let business = json!({ "update_id": 5, "business_message": { "message_id": 1, "chat": { "id": 1 }, "date": 1 } });
    for (update, kind) in [(fixture!("poll_answer.json"), "poll_answer"), (business, "business_message")] {
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

/// A fixture read by name at run time (for names the tests compute).
fn fixture_named(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/telegram/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn updates(name: &str) -> Vec<Value> {
    fixture_named(name).as_array().cloned().expect("a list of updates")
}

fn event_of(message: &IncomingMessage) -> &SystemEvent {
    match &message.kind {
        MessageKind::System { event } => event,
        other => panic!("expected a system event, got {other:?}"),
    }
}

fn summary_of(m: &IncomingMessage) -> String {
    crate::domain::summary(m.text.as_deref(), &m.kind, &m.sender, &m.attachments)
}

const DESK: &str = "-1001987654321";

#[test]
fn a_forum_topic_is_its_own_conversation_in_its_chats_queue_group() {
    let created = message_of(&fixture!("forum_topic_created.json"));
    let topic = format!("{DESK}:topic:77");
    assert_eq!(created.thread.as_deref(), Some(topic.as_str()));
    assert_eq!(event_of(&created), &SystemEvent::TopicCreated { name: "Order #5531: damaged box".into() });
    assert_eq!(created.thread_title.as_deref(), Some("Kams Support Desk › Order #5531: damaged box"));
    assert_eq!(summary_of(&created), "Mira Koskinen created the topic “Order #5531: damaged box”");

    let inside = message_of(&fixture!("forum_topic_message.json"));
    assert_eq!(inside.thread.as_deref(), Some(topic.as_str()));
    assert_eq!(inside.reply_to, None, "hanging under the topic's creation is where it is, not a reply");
    assert_eq!(inside.thread_title, created.thread_title, "named by the creation message it hangs under");
    let reply = message_of(&fixture!("forum_topic_reply.json"));
    assert_eq!((reply.thread.as_deref(), reply.reply_to.as_deref()), (Some(topic.as_str()), Some("-1001987654321:78")));
    assert_eq!(reply.thread_title, None, "no topic name in it: the conversation keeps its title");

    let general = message_of(&fixture!("forum_general_message.json"));
    assert_eq!(
        (general.thread, general.thread_title.as_deref()),
        (None, Some("Kams Support Desk")),
        "General is the chat"
    );
    let reply_thread = message_of(&fixture!("supergroup_reply_thread.json"));
    assert_eq!(reply_thread.thread, None, "a reply thread of a group that is no forum stays in the chat");
    assert_eq!(reply_thread.reply_to.as_deref(), Some("-1001234567890:90412"));

    for name in ["forum_topic_created.json", "forum_topic_message.json", "forum_topic_reply.json"] {
        assert_eq!(update_key(&fixture_named(name)).unwrap().thread_id, DESK, "{name}: the chat is the queue group");
    }
    assert_eq!(parse_thread(&topic), (DESK, Some(77)));
    assert_eq!(parse_thread("284619503"), ("284619503", None));
    assert_eq!(parse_thread("-100:topic:x"), ("-100:topic:x", None), "not a topic thread kamshub made");
}

#[test]
fn service_messages_are_typed_system_events_with_a_summary() {
    let expected = [
        "Mira Koskinen added Aino Virtanen and Lars",
        "Lars joined",
        "Lars left",
        "Mira Koskinen changed the title to “Kams Customers Lounge (EU)”",
        "Mira Koskinen changed the photo",
        "Mira Koskinen removed the photo",
        "Mira Koskinen pinned “Closed on the 21st, open from 10 on the 22nd”",
        "Mira Koskinen pinned a message",
        "Mira Koskinen created the group",
        "Mira Koskinen set messages to auto-delete after 1 day",
        "Video chat scheduled for 2024-06-10 20:00 UTC",
        "Video chat started",
        "Mira Koskinen invited Aino Virtanen and Lars to the video chat",
        "Video chat ended (30 min 30 s)",
        "Mira Koskinen renamed the topic to “Order #5531: replaced”",
        "Mira Koskinen closed the topic",
        "Mira Koskinen reopened the topic",
        "Mira Koskinen hid the General topic",
        "Mira Koskinen showed the General topic",
        "Lars boosted the group 4 times",
        "Aino Virtanen allowed the bot to write",
        "Mira Koskinen changed the chat background",
        "Proximity alert: 120 m",
    ];
    let updates = updates("service_messages.json");
    assert_eq!(updates.len(), expected.len());
    for (update, summary) in updates.iter().zip(expected) {
        let message = message_of(update);
        event_of(&message);
        assert_eq!((message.text.as_deref(), message.attachments.len()), (None, 0), "{update}");
        assert_eq!(summary_of(&message), summary, "{update}");
    }
    let pinned = message_of(&updates[6]);
    assert_eq!(
        event_of(&pinned),
        &SystemEvent::MessagePinned {
            message: Some("-1001234567890:90417".into()),
            text: Some("Closed on the 21st, open from 10 on the 22nd".into())
        }
    );
    let renamed = message_of(&updates[14]);
    assert_eq!(renamed.thread.as_deref(), Some("-1001987654321:topic:77"));
    assert_eq!(renamed.thread_title.as_deref(), Some("Kams Support Desk › Order #5531: replaced"));
}

#[test]
fn unmodelled_content_is_a_typed_part_with_a_summary() {
    let expected = [
        ("dice", "🎲 rolled 4"),
        ("game", "Game: Parcel Dash"),
        ("invoice", "Invoice: Express shipping (14.90 EUR)"),
        ("successful_payment", "Payment received (14.90 EUR)"),
        ("refunded_payment", "Payment refunded (50 stars)"),
        ("story", "Story from Kams Announcements"),
        ("web_app_data", "Web app data from “Pick a delivery slot”"),
        ("users_shared", "Shared 2 users"),
        ("chat_shared", "Shared the chat Kams Customers Lounge"),
        ("checklist", "Checklist: Before you return the parcel (1/3 done)"),
        ("giveaway", "Giveaway: 3 winners"),
        ("paid_media", "Paid media (25 stars)"),
        ("passport_data", "Telegram Passport data"),
        ("connected_website", "Logged in on shop.kams.example"),
        ("gift", "Gift (15 stars)"),
        ("some_future_content", "Unsupported content: some future content"),
    ];
    let updates = updates("unmodelled_content.json");
    assert_eq!(updates.len(), expected.len());
    for (update, (kind, summary)) in updates.iter().zip(expected) {
        let message = message_of(update);
        assert_eq!((message.text.as_deref(), &message.kind), (None, &MessageKind::Regular), "{update}");
        assert_eq!(message.attachments.len(), 1, "{update}");
        assert_eq!(message.attachments[0].kind, kind);
        assert_eq!(summary_of(&message), summary);
    }
    let invoice = &message_of(&updates[2]).attachments[0];
    assert_eq!(invoice.details["total_amount"], 1490);
    assert_eq!(message_of(&updates[12]).attachments[0].details, Value::Null, "passport data is not copied");
    assert!(message_of(&updates[15]).attachments[0].details.is_null(), "unknown content is named, not copied");
}

#[test]
fn a_group_migration_is_seen_from_both_sides() {
    let to = message_of(&fixture!("migrate_to_chat_id.json"));
    assert_eq!(event_of(&to), &SystemEvent::MigratedTo { chat_id: "-1002003004005".into() });
    assert_eq!(to.external_message_id, "-4012345678:311");
    let from = message_of(&fixture!("migrate_from_chat_id.json"));
    assert_eq!(event_of(&from), &SystemEvent::MigratedFrom { chat_id: "-4012345678".into() });
    assert_eq!(from.external_message_id, "-1002003004005:1");
    assert_eq!(summary_of(&to), "The group became a supergroup (chat -1002003004005)");
}

#[test]
fn explicit_nulls_are_absent_fields() {
    let update = fixture!("explicit_nulls.json");
    let message = message_of(&update);
    assert_eq!(message.text.as_deref(), Some("Sent from a client library that writes every field"));
    assert!(message.attachments.is_empty(), "{:?}", message.attachments);
    assert_eq!((message.kind, message.reply_to, message.thread), (MessageKind::Regular, None, None));
    assert_eq!(message.sender, Sender { id: Some(AINO.to_string()), name: Some("Aino".into()), username: None });
    assert_eq!(update_key(&update).unwrap().thread_id, "284619503", "the null edited_message is no update type");
    let media = message_of(&fixture!("explicit_null_media.json"));
    assert_eq!(media.text.as_deref(), Some("the receipt"), "a null text leaves the caption");
    let kinds: Vec<&str> = media.attachments.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["photo"], "no empty audio or document");
}

#[test]
fn reactions_are_each_reactors_whole_set_ordered_by_update() {
    let reaction = |name| match normalize(&fixture_named(name)).unwrap() {
        InboundEvent::Reaction(r) => r,
        other => panic!("expected a reaction, got {other:?}"),
    };
    let added = reaction("message_reaction.json");
    assert_eq!(added.target, "-1001234567890:90417");
    assert_eq!(added.reaction.by.id.as_deref(), Some("284619503"));
    assert_eq!(added.reaction.emoji, ["👍"]);
    let changed = reaction("message_reaction_changed.json");
    assert_eq!(changed.reaction.emoji, ["🔥", "custom_emoji:5368324170671202286"]);
    assert!(changed.reaction.revision > added.reaction.revision, "same second: update_id orders them");
    assert!(reaction("message_reaction_removed.json").reaction.emoji.is_empty());
    let anonymous = reaction("message_reaction_anonymous.json");
    assert_eq!(anonymous.reaction.by.name.as_deref(), Some("Kams Customers Lounge"));
    assert_eq!(anonymous.reaction.emoji, ["❤", "paid"]);
}

#[test]
fn edits_within_the_same_second_are_ordered_by_update_id() {
    let updates = updates("edits_same_second.json");
    let original = message_of(&updates[0]);
    let revisions: Vec<Revision> = updates[1..]
        .iter()
        .map(|u| match normalize(u).unwrap() {
            InboundEvent::Edit(edit) => edit.message.revision,
            other => panic!("expected an edit, got {other:?}"),
        })
        .collect();
    assert_eq!(original.revision.at_ms, revisions[0].at_ms, "edited in the second it was sent");
    assert!(original.revision < revisions[0] && revisions[0] < revisions[1], "{revisions:?}");
}

#[test]
fn the_bots_membership_is_a_system_event() {
    let blocked = message_of(&fixture!("my_chat_member_blocked.json"));
    assert_eq!(summary_of(&blocked), "Aino Virtanen blocked the bot");
    assert_eq!(blocked.external_message_id, "284619503:member:1718090000:827391801");
    let promoted = message_of(&fixture!("my_chat_member.json"));
    assert_eq!(summary_of(&promoted), "Mira Koskinen made the bot an administrator");
    assert_eq!(promoted.thread_title.as_deref(), Some("Kams Customers Lounge"));
}
