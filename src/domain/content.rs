//! What a message is beyond its text: typed system events (members joining, pins, topics,
//! migrations, referrals, …), reactions and the revisions that order updates, and the one-line
//! summary an inbox shows for any message (its text, what happened, or what it holds: "Photo",
//! "Invoice: Express shipping (14.90 EUR)", "Unsupported content: …"), so none is ever a blank
//! bubble. Attachment kinds are the providers' own words (`photo`, `dice`, `successful_payment`,
//! …); [`attachment_summary`] knows each.

use super::inbound::{Attachment, MessageKind, Sender};
use serde::{Deserialize, Serialize};

/// Something that happened in a conversation rather than something said in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum SystemEvent {
    /// People joined (or were added to) the group.
    MembersJoined {
        /// Who joined.
        members: Vec<Sender>,
    },
    /// Someone left (or was removed from) the group.
    MemberLeft {
        /// Who left.
        member: Sender,
    },
    /// The group or channel got a new title.
    TitleChanged {
        /// The new title.
        title: String,
    },
    /// The group's photo changed.
    PhotoChanged,
    /// The group's photo was removed.
    PhotoRemoved,
    /// A message was pinned.
    MessagePinned {
        /// External id of the pinned message (when the provider says which).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Its text, when the provider includes it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The group, supergroup or channel was created.
    ChatCreated,
    /// Messages now disappear after this many seconds (0: never).
    AutoDeleteTimerChanged {
        /// The new timer.
        seconds: i64,
    },
    /// A video chat was scheduled.
    VideoChatScheduled {
        /// When it starts (Unix milliseconds).
        start_at_ms: i64,
    },
    /// A video chat started.
    VideoChatStarted,
    /// A video chat ended.
    VideoChatEnded {
        /// How long it lasted.
        duration_secs: i64,
    },
    /// People were invited to a video chat.
    VideoChatInvited {
        /// Who.
        members: Vec<Sender>,
    },
    /// A forum topic was created (the first event of its conversation).
    TopicCreated {
        /// The topic's name.
        name: String,
    },
    /// A forum topic was renamed (or its icon changed).
    TopicEdited {
        /// The new name, if it changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A forum topic was closed.
    TopicClosed,
    /// A forum topic was reopened.
    TopicReopened,
    /// The forum's General topic was hidden.
    GeneralTopicHidden,
    /// The forum's General topic was shown again.
    GeneralTopicUnhidden,
    /// The group became a supergroup: the conversation continues under this chat id.
    MigratedTo {
        /// The supergroup's chat id.
        chat_id: String,
    },
    /// This supergroup was a group before: the conversation continues from that chat id.
    MigratedFrom {
        /// The old group's chat id.
        chat_id: String,
    },
    /// The bot's own membership changed (Telegram `my_chat_member`): added, promoted, removed,
    /// or, in a private chat, blocked and unblocked by the person.
    BotMembership {
        /// Status before (`member`, `administrator`, `left`, `kicked`, …).
        old_status: String,
        /// Status now.
        new_status: String,
        /// Whether the chat is a private chat (then `kicked` means the person blocked the bot).
        private: bool,
    },
    /// The person came to the conversation from a link, an ad or a website plugin (Messenger
    /// referral, or a postback's referral).
    Referral {
        /// `ADS`, `SHORTLINK`, `CUSTOMER_CHAT_PLUGIN`, … as the provider says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// The `ref` parameter of the link or ad.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The ad's title, for ad referrals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ad_title: Option<String>,
        /// The web page the plugin was opened on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_url: Option<String>,
    },
    /// A service message kamshub names but does not model (boosts, write access granted, chat
    /// background, proximity alerts, giveaway results, checklist changes, …).
    Other {
        /// The provider's field name (`boost_added`, …).
        field: String,
        /// The provider's fields for it.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        details: serde_json::Value,
    },
}

/// One reactor's reactions to a message, as of one update: the later update wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    /// Who reacted (a person, or a chat reacting anonymously).
    pub by: Sender,
    /// Their reactions now: emoji, `custom_emoji:{id}`, `paid`; empty once they took them back.
    #[serde(default)]
    pub emoji: Vec<String>,
    /// Where this update stands among the reactor's updates of this message.
    pub revision: Revision,
}

/// Orders the updates of one thing (a message's versions, one person's reactions to a message):
/// the later update wins. Compared by time, then by `seq`, which breaks ties within the provider's
/// time resolution: Telegram's `update_id` (it orders a bot's updates), Messenger's edit count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// Provider time of the update (Unix milliseconds): the edit time of an edit.
    pub at_ms: i64,
    /// Tie-breaker within the same time.
    #[serde(default)]
    pub seq: i64,
}

/// The line an inbox shows for a message: its text; for a system event what happened ("Aino
/// joined"); for a message without text what it holds ("Photo", "Invoice: Express shipping
/// (14.90 EUR)"). Never empty.
pub fn summary(text: Option<&str>, kind: &MessageKind, sender: &Sender, attachments: &[Attachment]) -> String {
    if let MessageKind::System { event } = kind {
        return event.summary(sender);
    }
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        return text.to_owned();
    }
    match kind {
        MessageKind::CallbackQuery { data: None } => return "Pressed a button".to_owned(),
        MessageKind::Postback { title: None, .. } => return "Pressed a button".to_owned(),
        _ => {}
    }
    if attachments.is_empty() {
        return "Empty message".to_owned();
    }
    attachments.iter().map(attachment_summary).collect::<Vec<_>>().join(", ")
}

impl SystemEvent {
    /// What happened, in a sentence naming who did it where that is known.
    pub fn summary(&self, actor: &Sender) -> String {
        let who = display(actor);
        match self {
            SystemEvent::MembersJoined { members } => {
                let names = names(members);
                if members.len() == 1 && members[0].id.is_some() && members[0].id == actor.id {
                    format!("{names} joined")
                } else {
                    format!("{who} added {names}")
                }
            }
            SystemEvent::MemberLeft { member } if member.id.is_some() && member.id == actor.id => {
                format!("{} left", display(member))
            }
            SystemEvent::MemberLeft { member } => format!("{who} removed {}", display(member)),
            SystemEvent::TitleChanged { title } => format!("{who} changed the title to “{title}”"),
            SystemEvent::PhotoChanged => format!("{who} changed the photo"),
            SystemEvent::PhotoRemoved => format!("{who} removed the photo"),
            SystemEvent::MessagePinned { text: Some(text), .. } => format!("{who} pinned “{}”", shorten(text, 60)),
            SystemEvent::MessagePinned { .. } => format!("{who} pinned a message"),
            SystemEvent::ChatCreated => format!("{who} created the group"),
            SystemEvent::AutoDeleteTimerChanged { seconds: 0 } => format!("{who} turned off auto-delete"),
            SystemEvent::AutoDeleteTimerChanged { seconds } => {
                format!("{who} set messages to auto-delete after {}", duration(*seconds))
            }
            SystemEvent::VideoChatScheduled { start_at_ms } => {
                format!("Video chat scheduled for {}", utc(*start_at_ms))
            }
            SystemEvent::VideoChatStarted => "Video chat started".to_owned(),
            SystemEvent::VideoChatEnded { duration_secs } => format!("Video chat ended ({})", duration(*duration_secs)),
            SystemEvent::VideoChatInvited { members } => format!("{who} invited {} to the video chat", names(members)),
            SystemEvent::TopicCreated { name } => format!("{who} created the topic “{name}”"),
            SystemEvent::TopicEdited { name: Some(name) } => format!("{who} renamed the topic to “{name}”"),
            SystemEvent::TopicEdited { name: None } => format!("{who} changed the topic's icon"),
            SystemEvent::TopicClosed => format!("{who} closed the topic"),
            SystemEvent::TopicReopened => format!("{who} reopened the topic"),
            SystemEvent::GeneralTopicHidden => format!("{who} hid the General topic"),
            SystemEvent::GeneralTopicUnhidden => format!("{who} showed the General topic"),
            SystemEvent::MigratedTo { chat_id } => format!("The group became a supergroup (chat {chat_id})"),
            SystemEvent::MigratedFrom { chat_id } => format!("Supergroup continued from the group (chat {chat_id})"),
            SystemEvent::BotMembership { new_status, private: true, .. } if new_status == "kicked" => {
                format!("{who} blocked the bot")
            }
            SystemEvent::BotMembership { old_status, private: true, .. } if old_status == "kicked" => {
                format!("{who} unblocked the bot")
            }
            SystemEvent::BotMembership { new_status, .. } => match new_status.as_str() {
                "member" => format!("{who} added the bot"),
                "administrator" => format!("{who} made the bot an administrator"),
                "left" | "kicked" => format!("{who} removed the bot"),
                "restricted" => format!("{who} restricted the bot"),
                other => format!("The bot's status changed to {other}"),
            },
            SystemEvent::Referral { source, reference, ad_title, page_url } => {
                let from = match (source.as_deref(), ad_title, page_url) {
                    (_, Some(title), _) => format!("the ad “{title}”"),
                    (Some("ADS"), None, _) => "an ad".to_owned(),
                    (_, None, Some(url)) => format!("the chat plugin on {url}"),
                    (Some("CUSTOMER_CHAT_PLUGIN"), None, None) => "the website chat plugin".to_owned(),
                    _ => "a link".to_owned(),
                };
                // Messenger names no one: the conversation is the person's own.
                match reference {
                    Some(r) => format!("Came from {from} (ref {r})"),
                    None => format!("Came from {from}"),
                }
            }
            SystemEvent::Other { field, details } => other_summary(&who, field, details),
        }
    }
}

/// Summaries of the service messages kamshub names without modelling them.
fn other_summary(who: &str, field: &str, details: &serde_json::Value) -> String {
    let num = |key: &str| details.get(key).and_then(serde_json::Value::as_i64);
    match field {
        "boost_added" => format!("{who} boosted the group {} times", num("boost_count").unwrap_or(1)),
        "write_access_allowed" => format!("{who} allowed the bot to write"),
        "chat_background_set" => format!("{who} changed the chat background"),
        "proximity_alert_triggered" => match num("distance") {
            Some(m) => format!("Proximity alert: {m} m"),
            None => "Proximity alert".to_owned(),
        },
        "giveaway_created" => "Giveaway started".to_owned(),
        "giveaway_winners" => "Giveaway winners announced".to_owned(),
        "giveaway_completed" => "Giveaway completed".to_owned(),
        "checklist_tasks_done" => format!("{who} updated the checklist"),
        "checklist_tasks_added" => format!("{who} added tasks to the checklist"),
        other => format!("Service message: {}", other.replace('_', " ")),
    }
}

/// A one-line description of a part.
pub fn attachment_summary(a: &Attachment) -> String {
    let d = &a.details;
    let s = |key: &str| d.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
    let n = |key: &str| d.get(key).and_then(serde_json::Value::as_i64);
    let name_or = |label: &str| match &a.file_name {
        Some(name) => format!("{label}: {name}"),
        None => label.to_owned(),
    };
    match a.kind.as_str() {
        "photo" | "image" => "Photo".to_owned(),
        "document" | "file" => name_or("File"),
        "voice" => "Voice message".to_owned(),
        "audio" => match s("title") {
            Some(title) => format!("Audio: {title}"),
            None => name_or("Audio"),
        },
        "video" | "reel" | "ig_reel" => "Video".to_owned(),
        "video_note" => "Video message".to_owned(),
        "animation" => "GIF".to_owned(),
        "sticker" => match s("emoji") {
            Some(emoji) => format!("Sticker {emoji}"),
            None => "Sticker".to_owned(),
        },
        "location" => "Location".to_owned(),
        "venue" => s("title").map_or_else(|| "Place".to_owned(), |t| format!("Place: {t}")),
        "contact" => {
            let name = [s("first_name"), s("last_name")].into_iter().flatten().collect::<Vec<_>>().join(" ");
            if name.is_empty() { "Contact".to_owned() } else { format!("Contact: {name}") }
        }
        "poll" => s("question").map_or_else(|| "Poll".to_owned(), |q| format!("Poll: {q}")),
        "dice" => match (s("emoji"), n("value")) {
            (Some(emoji), Some(value)) => format!("{emoji} rolled {value}"),
            _ => "Dice".to_owned(),
        },
        "game" => s("title").map_or_else(|| "Game".to_owned(), |t| format!("Game: {t}")),
        "invoice" => format!("Invoice: {}{}", s("title").unwrap_or_default(), amount(d)),
        "successful_payment" => format!("Payment received{}", amount(d)),
        "refunded_payment" => format!("Payment refunded{}", amount(d)),
        "story" => s("title").map_or_else(|| "Story".to_owned(), |t| format!("Story from {t}")),
        "web_app_data" => {
            s("button_text").map_or_else(|| "Web app data".to_owned(), |b| format!("Web app data from “{b}”"))
        }
        "users_shared" => {
            let count = d.get("users").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
            if count == 1 { "Shared a user".to_owned() } else { format!("Shared {count} users") }
        }
        "chat_shared" => s("title").map_or_else(|| "Shared a chat".to_owned(), |t| format!("Shared the chat {t}")),
        "checklist" => {
            let tasks = d.get("tasks").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
            let done =
                tasks.iter().filter(|t| t.get("done").and_then(serde_json::Value::as_bool) == Some(true)).count();
            format!("Checklist: {} ({done}/{} done)", s("title").unwrap_or_default(), tasks.len())
        }
        "giveaway" => match n("winner_count") {
            Some(count) => format!("Giveaway: {count} winners"),
            None => "Giveaway".to_owned(),
        },
        "paid_media" => match n("star_count") {
            Some(stars) => format!("Paid media ({stars} stars)"),
            None => "Paid media".to_owned(),
        },
        "gift" | "unique_gift" => match n("star_count") {
            Some(stars) => format!("Gift ({stars} stars)"),
            None => "Gift".to_owned(),
        },
        "passport_data" => "Telegram Passport data".to_owned(),
        "connected_website" => {
            s("domain").map_or_else(|| "Logged in on a website".to_owned(), |w| format!("Logged in on {w}"))
        }
        "fallback" => s("title").or_else(|| a.url.clone()).map_or_else(|| "Link".to_owned(), |t| format!("Link: {t}")),
        "template" => "Template message".to_owned(),
        other => format!("Unsupported content: {}", other.replace('_', " ")),
    }
}

/// ` (14.90 EUR)` from `total_amount` in the currency's smallest unit and `currency`.
fn amount(d: &serde_json::Value) -> String {
    let (Some(total), Some(currency)) = (
        d.get("total_amount").and_then(serde_json::Value::as_i64),
        d.get("currency").and_then(serde_json::Value::as_str),
    ) else {
        return String::new();
    };
    // Telegram Stars (XTR) have no fractional unit; currencies here are assumed to have two.
    if currency == "XTR" {
        format!(" ({total} stars)")
    } else {
        format!(" ({}.{:02} {currency})", total / 100, (total % 100).abs())
    }
}

fn display(sender: &Sender) -> String {
    sender
        .name
        .clone()
        .or_else(|| sender.username.as_ref().map(|u| format!("@{u}")))
        .unwrap_or_else(|| "Someone".to_owned())
}

fn names(people: &[Sender]) -> String {
    let names: Vec<String> = people.iter().map(display).collect();
    match names.as_slice() {
        [] => "nobody".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn shorten(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

fn duration(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 && s >= 86_400 => plural(s / 86_400, "day"),
        s if s % 3_600 == 0 && s >= 3_600 => plural(s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

fn utc(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "an unknown time".to_owned())
}
