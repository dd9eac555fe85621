//! Tests of the Messenger normaliser, on the fixtures in tests/fixtures/messenger.

use super::*;
use crate::domain::Revision;
use crate::domain::inbound::{IncomingMessage, MessageKind, Receipt, ReceiptStatus, order_key};
use serde_json::json;

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!("../../../tests/fixtures/messenger/", $name)))
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
    assert_eq!((item.page_id.as_str(), item.thread_id.as_str(), item.provider_event_id.as_str()), (PAGE, PSID, mid));
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
    let kind = MessageKind::Postback { payload: Some("HUMAN_HANDOFF".into()), title: Some("Talk to a person".into()) };
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
    let raw = json!({
        "sender": { "id": PSID }, "recipient": { "id": PAGE }, "timestamp": 1_718_021_050_011_i64,
        "game_play": { "game_id": "parcel-dash", "player_id": "p1", "payload": "{\"score\":3}" }
    });
    let body = page_body(raw.clone());
    let item = only_item(&body);
    assert!(is_hex_id(&item.provider_event_id, "other:"));
    let reason = "unsupported messaging event game_play".to_owned();
    assert_eq!(normalize(&item.payload).unwrap(), InboundEvent::Ignored { reason });

    let mut reversed = Map::new();
    for (k, v) in raw.as_object().unwrap().iter().rev() {
        reversed.insert(k.clone(), v.clone());
    }
    let reordered = page_body(Value::Object(reversed));
    assert_eq!(only_item(&reordered).provider_event_id, item.provider_event_id);
    let reaction = only_item(&fixture!("reaction.json"));
    assert!(is_hex_id(&reaction.provider_event_id, "reaction:"), "{}", reaction.provider_event_id);
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
const SIGNED_BODY: &[u8] = include_bytes!("../../../tests/fixtures/messenger/signed_body.json");

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

#[test]
fn the_page_is_subscribed_to_exactly_the_fields_the_normaliser_handles() {
    assert_eq!(
        subscribed_fields(),
        "messages,message_echoes,message_deliveries,message_reads,messaging_postbacks,messaging_referrals,\
         message_edits,message_reactions"
    );
    for event in EVENTS {
        let mut item = json!({ "sender": { "id": PSID }, "recipient": { "id": PAGE }, "timestamp": 1 });
        item[event.key] = json!({ "mid": "m_1", "watermark": 1, "num_edit": 1, "is_echo": event.echo });
        if event.echo {
            item["sender"] = json!({ "id": PAGE });
            item["recipient"] = json!({ "id": PSID });
        }
        let handled = normalize(&item).unwrap();
        assert!(!matches!(handled, InboundEvent::Ignored { .. }), "{} is subscribed but not handled", event.field);
    }
}

#[test]
fn edits_are_new_versions_ordered_by_their_count() {
    let InboundEvent::Edit(edit) = normalize(&only_item(&fixture!("message_edit.json")).payload).unwrap() else {
        panic!("an edit")
    };
    assert_eq!(
        edit.message.external_message_id,
        message_of(normalize(&only_item(&fixture!("edit_original.json")).payload).unwrap()).external_message_id
    );
    assert_eq!(edit.message.text.as_deref(), Some("Deliver to Mannerheimintie 10"));
    assert_eq!(edit.message.revision, Revision { at_ms: 1_718_100_060_300, seq: 1 });
    assert!(!edit.replaces_attachments, "Messenger edits carry only the text");
    let items = split(&fixture!("message_edits_same_time.json")).unwrap().items;
    let revisions: Vec<Revision> = items
        .iter()
        .map(|i| match normalize(&i.payload).unwrap() {
            InboundEvent::Edit(edit) => edit.message.revision,
            other => panic!("an edit, got {other:?}"),
        })
        .collect();
    assert_eq!(revisions[0].at_ms, revisions[1].at_ms, "the same millisecond");
    assert!(revisions[0] > revisions[1], "the third edit is later than the second, whatever the order: {revisions:?}");
    assert_ne!(items[0].provider_event_id, items[1].provider_event_id);
    assert!(is_hex_id(&items[0].provider_event_id, "message_edit:"));
}

#[test]
fn a_reaction_is_the_persons_whole_set() {
    let reacted = match normalize(&only_item(&fixture!("reaction.json")).payload).unwrap() {
        InboundEvent::Reaction(r) => r,
        other => panic!("a reaction, got {other:?}"),
    };
    assert_eq!(reacted.target, "m_Ec1Ho2Me3Ta4Da5Ta6Se7Nt8By9Ka0Ms1Hu2Bx3Yz4Ab5Cd6Ef7Gh8Ij9Kl0Mn1Op2Qr3St4Uv5Wx6Yz7A");
    assert_eq!(
        (reacted.reaction.by.id.as_deref(), reacted.reaction.emoji.as_slice()),
        (Some(PSID), &["\u{2764}".to_owned()][..])
    );
    let InboundEvent::Reaction(taken_back) = normalize(&only_item(&fixture!("reaction_unreact.json")).payload).unwrap()
    else {
        panic!("a reaction")
    };
    assert!(taken_back.reaction.emoji.is_empty(), "unreact names no emoji: the set is empty");
    assert!(taken_back.reaction.revision > reacted.reaction.revision);
}

#[test]
fn referrals_are_system_events_in_the_persons_conversation() {
    let summary_of = |name: &Value| {
        let item = only_item(name);
        let message = message_of(normalize(&item.payload).unwrap());
        assert_eq!(message.external_message_id, item.provider_event_id, "keyed like its event");
        (item.thread_id, crate::domain::summary(None, &message.kind, &message.sender, &[]))
    };
    assert_eq!(
        summary_of(&fixture!("referral_ad.json")),
        (PSID.to_owned(), "Came from the ad “Summer sale: 20% off” (ref summer-sale)".to_owned())
    );
    assert_eq!(
        summary_of(&fixture!("referral_shortlink.json")),
        (PSID.to_owned(), "Came from a link (ref track-5531)".to_owned())
    );
    let (thread, summary) = summary_of(&fixture!("referral_user_ref.json"));
    assert_eq!(thread, "user_ref:cp_5f1d3a9e-7b42-4c0e-9a61-2b8e4d7c1f30", "a Chat Plugin visitor's own thread");
    assert_eq!(summary, "Came from the chat plugin on https://shop.kams.example/orders/5531 (ref order-5531)");
}
