//! Send pacing: the sender asks [`Pacer::reserve`] before each provider call and waits what it
//! says, so sends stay under the providers' documented rates instead of collecting 429s. Once the
//! provider has answered, the sender [`Pacer::settle`]s the send at that instant: the provider
//! counted it at its arrival, which lies somewhere between the slot and the answer, so counting
//! it at the answer keeps every later send a full period after the provider's count, however
//! late the request left or arrived. A 429 that gets through anyway is still handled by the
//! sender (`RetryAfter`).

use crate::domain::ChannelId;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often `reserve` looks for meters to drop.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How long a meter stays after it is back at rest. Dropping it loses nothing (a rested meter
/// equals a fresh one); the grace only covers callers whose `now` lags slightly behind another's.
const EVICT_AFTER_REST: Duration = Duration::from_secs(60);

/// The send being paced: which bot or page, which chat or thread on it, and the limits that
/// apply. Built by the channel's provider (`Provider::pace_key`), which knows its rates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaceKey {
    /// The bot or page: its own rate covers all of its chats.
    pub channel: ChannelId,
    /// Telegram chat id or Messenger PSID: each chat or thread has its own rate too.
    pub chat: String,
    /// The limit on all sends of the bot or page.
    pub per_channel: Limit,
    /// The limit on sends to this one chat or thread.
    pub per_chat: Limit,
    /// A further limit when the chat is a group (Telegram groups, supergroups, channels).
    pub per_group: Option<Limit>,
}

/// One limit on a stream of sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A token bucket (GCRA): up to `burst` sends back to back, then one every `every`. Suits
    /// "short bursts, then about one per second".
    Bucket {
        /// Steady spacing between sends.
        every: Duration,
        /// Sends allowed back to back from rest (at least 1).
        burst: u32,
    },
    /// At most `count` sends in any rolling `period` (a log of the last `count` send times).
    /// Suits "N per second/minute", which a bucket with a burst would exceed up to twice over
    /// inside one rolling period.
    Window {
        /// Sends allowed per period (at least 1).
        count: u32,
        /// The rolling period.
        period: Duration,
    },
}

/// The rates the pacer keeps. Defaults follow the providers' published limits (Telegram's Bot FAQ
/// "My bot is hitting limits", Meta's Messenger Platform "Rate limiting" page), kept a little under
/// them where the provider states a hard number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacingLimits {
    /// All sends of one bot: Telegram's "about 30 messages per second" for bulk sends.
    pub telegram_bot: Limit,
    /// One Telegram chat: "avoid more than one message per second", short bursts allowed.
    pub telegram_chat: Limit,
    /// One Telegram group (on top of `telegram_chat`): at most 20 messages per minute.
    pub telegram_group: Limit,
    /// All sends of one page: 250/s, under the 300 calls/s Meta documents for text.
    pub messenger_page: Limit,
    /// One Messenger thread: Meta throttles "too many messages to one thread" without a number.
    pub messenger_thread: Limit,
}

/// Slack added to Telegram's periods. Since sends are counted at their answer
/// ([`Pacer::settle`]), the delay between a slot and the request's arrival needs no slack: it
/// took 100 ms before, and still let through 8 refusals in 120,000 sends at 100 bots (a window's
/// first send arriving that much after its slot while its 31st went out on time;
/// docs/benchmarks.md). What is left covers Telegram's own reckoning of "a second".
pub const TELEGRAM_SLACK: Duration = Duration::from_millis(10);

impl Default for PacingLimits {
    fn default() -> Self {
        let second = Duration::from_secs(1);
        Self {
            telegram_bot: Limit::Window { count: 30, period: second + TELEGRAM_SLACK },
            telegram_chat: Limit::Bucket { every: second + TELEGRAM_SLACK, burst: 3 },
            telegram_group: Limit::Window { count: 20, period: Duration::from_secs(60) + TELEGRAM_SLACK },
            messenger_page: Limit::Window { count: 250, period: second },
            messenger_thread: Limit::Bucket { every: second, burst: 3 },
        }
    }
}

/// Hands out send slots under the limits each [`PaceKey`] carries. Shared by all sender tasks;
/// the lock is held only for the arithmetic, never across an await.
#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    meters: HashMap<Scope, Meter>,
    next_sweep: Option<Instant>,
}

/// What a meter counts: a whole bot or page, one chat, or one group's per-minute cap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Channel(ChannelId),
    Chat(ChannelId, String),
    Group(ChannelId, String),
}

impl Pacer {
    /// A pacer with every meter at rest.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait from `now` before sending to `key` (zero if it may go now). The slot is
    /// taken: a second caller for the same bot or chat gets a later one, so concurrent senders
    /// spread out instead of all waking at once. A reserved slot that goes unused only delays
    /// later sends a little; it is never given back.
    pub fn reserve(&self, key: PaceKey, now: Instant) -> Duration {
        let scopes = self.scopes(key);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.sweep(now);
        let at = scopes
            .iter()
            .filter_map(|(scope, _)| state.meters.get(scope).map(|meter| meter.earliest(now)))
            .fold(now, Instant::max);
        for (scope, limit) in scopes {
            state.meters.entry(scope).or_insert_with(|| Meter::new(limit, now)).take(at);
        }
        at - now
    }

    /// Counts the send reserved for `slot` (the instant [`Pacer::reserve`] gave: `now` plus the
    /// wait) as made at `answered`, when the provider's answer came back, the latest it can have
    /// counted it. Later sends to `key` then keep their distance from that instant. A send that
    /// already dropped out of its meters' memory changes nothing.
    pub fn settle(&self, key: PaceKey, slot: Instant, answered: Instant) {
        if answered <= slot {
            return;
        }
        let scopes = self.scopes(key);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (scope, _) in scopes {
            if let Some(meter) = state.meters.get_mut(&scope) {
                meter.settle(slot, answered);
            }
        }
    }

    /// How long from `now` until a send to `key` would fit, without taking the slot: a sender waits
    /// this long before claiming an item, then [`Pacer::reserve`]s just before the provider call
    /// (anything in between, such as a commit, would otherwise shift sends off their slots).
    pub fn free_in(&self, key: PaceKey, now: Instant) -> Duration {
        let scopes = self.scopes(key);
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let at = scopes
            .iter()
            .filter_map(|(scope, _)| state.meters.get(scope).map(|meter| meter.earliest(now)))
            .fold(now, Instant::max);
        at - now
    }

    /// The meters a send to `key` counts against, with their limits.
    fn scopes(&self, key: PaceKey) -> Vec<(Scope, Limit)> {
        let PaceKey { channel, chat, per_channel, per_chat, per_group } = key;
        let mut scopes = vec![(Scope::Channel(channel.clone()), per_channel)];
        if let Some(per_group) = per_group {
            scopes.push((Scope::Group(channel.clone(), chat.clone()), per_group));
        }
        scopes.push((Scope::Chat(channel, chat), per_chat));
        scopes
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).meters.len()
    }
}

impl State {
    /// Drops meters that have been at rest for a while, at most once per [`SWEEP_EVERY`], so
    /// memory follows the chats active in the last minutes, not every chat ever seen.
    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        self.meters.retain(|_, meter| meter.rests_from() + EVICT_AFTER_REST > now);
        self.next_sweep = Some(now + SWEEP_EVERY);
    }
}

/// The state of one [`Limit`] for one scope.
#[derive(Debug)]
enum Meter {
    /// GCRA: `tat` is the theoretical arrival time of the next send at the steady rate.
    Bucket { every: Duration, tolerance: Duration, tat: Instant },
    /// The latest `count` send times (reserved, or settled at their answer; in no order), and the
    /// latest one.
    Window { count: usize, period: Duration, sends: Vec<Instant>, latest: Instant },
}

impl Meter {
    /// A meter at rest.
    fn new(limit: Limit, now: Instant) -> Self {
        match limit {
            Limit::Bucket { every, burst } => Meter::Bucket { every, tolerance: every * (burst.max(1) - 1), tat: now },
            Limit::Window { count, period } => {
                Meter::Window { count: count.max(1) as usize, period, sends: Vec::new(), latest: now }
            }
        }
    }

    /// The earliest instant, not before `now`, at which one more send fits. Any later instant fits too.
    fn earliest(&self, now: Instant) -> Instant {
        match self {
            Meter::Bucket { tolerance, tat, .. } => tat.checked_sub(*tolerance).map_or(now, |at| at.max(now)),
            // Once `count` sends are logged, a new one must come a full period after the oldest of
            // them; the others (even ones reserved further ahead) then share any window with it.
            Meter::Window { count, period, sends, .. } => match sends.iter().min() {
                Some(oldest) if sends.len() >= *count => (*oldest + *period).max(now),
                _ => now,
            },
        }
    }

    /// Records a send at `at` (which [`Meter::earliest`] allowed).
    fn take(&mut self, at: Instant) {
        match self {
            Meter::Bucket { every, tat, .. } => *tat = (*tat).max(at) + *every,
            Meter::Window { count, sends, latest, .. } => {
                sends.push(at);
                if sends.len() > *count
                    && let Some(oldest) = sends.iter().enumerate().min_by_key(|(_, t)| **t).map(|(i, _)| i)
                {
                    sends.swap_remove(oldest);
                }
                *latest = (*latest).max(at);
            }
        }
    }

    /// Moves the send taken at `slot` to `answered` (later). A bucket's next send then keeps its
    /// spacing from `answered`, as the provider's bucket counting the arrival would at most.
    fn settle(&mut self, slot: Instant, answered: Instant) {
        match self {
            Meter::Bucket { every, tat, .. } => *tat = (*tat).max(answered + *every),
            Meter::Window { sends, latest, .. } => {
                if let Some(send) = sends.iter_mut().find(|t| **t == slot) {
                    *send = answered;
                    *latest = (*latest).max(answered);
                }
            }
        }
    }

    /// From this instant on the meter behaves like a fresh one.
    fn rests_from(&self) -> Instant {
        match self {
            Meter::Bucket { tat, .. } => *tat,
            Meter::Window { period, latest, .. } => *latest + *period,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot(n: u32) -> ChannelId {
        ChannelId::parse(&format!("chn_bot{n}")).unwrap()
    }

    fn pacer() -> Pacer {
        Pacer::new()
    }

    /// The key of a Telegram send under the default limits.
    fn telegram(bot: ChannelId, chat: &str) -> PaceKey {
        crate::providers::telegram::pace_key(&PacingLimits::default(), &bot, chat)
    }

    /// The key of a Messenger send under the default limits.
    fn messenger(page: ChannelId, psid: &str) -> PaceKey {
        crate::providers::messenger::pace_key(&PacingLimits::default(), &page, psid)
    }

    /// The most send times falling in any half-open window `[t, t + width)`.
    fn busiest_window(times: &[Instant], width: Duration) -> usize {
        let mut sorted = times.to_vec();
        sorted.sort();
        (0..sorted.len()).map(|i| sorted[i..].iter().take_while(|t| **t < sorted[i] + width).count()).max().unwrap_or(0)
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_bot_sends_at_most_30_per_rolling_second_across_chats() {
        let pacer = pacer();
        let t0 = Instant::now();
        let sends: Vec<Instant> = (0..100)
            .map(|i| {
                let now = t0 + Duration::from_millis(10 * i);
                now + pacer.reserve(telegram(bot(1), &(1000 + i).to_string()), now)
            })
            .collect();
        assert_eq!(busiest_window(&sends, secs(1.0)), 30);
        assert!(sends[..30].iter().enumerate().all(|(i, at)| *at == t0 + Duration::from_millis(10 * i as u64)));
        let last = sends.iter().max().unwrap();
        assert!(*last < t0 + secs(4.0), "100 sends take about 3.3 s, not longer: {:?}", *last - t0);
    }

    #[test]
    fn one_chat_gets_three_at_once_then_one_per_second() {
        let pacer = pacer();
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..8).map(|_| pacer.reserve(telegram(bot(1), "42"), t0)).collect();
        let step = secs(1.0) + TELEGRAM_SLACK;
        let expected: Vec<Duration> = [0, 0, 0, 1, 2, 3, 4, 5].map(|n| step * n).to_vec();
        assert_eq!(delays, expected);
    }

    #[test]
    fn a_rested_chat_bursts_again() {
        let pacer = pacer();
        let t0 = Instant::now();
        for _ in 0..5 {
            pacer.reserve(telegram(bot(1), "42"), t0);
        }
        let later = t0 + secs(30.0);
        let delays: Vec<Duration> = (0..4).map(|_| pacer.reserve(telegram(bot(1), "42"), later)).collect();
        assert_eq!(delays, [Duration::ZERO, Duration::ZERO, Duration::ZERO, secs(1.0) + TELEGRAM_SLACK].to_vec());
    }

    #[test]
    fn a_group_gets_at_most_20_per_rolling_minute() {
        let pacer = pacer();
        let t0 = Instant::now();
        let sends: Vec<Instant> = (0..70)
            .map(|i| {
                let now = t0 + secs(0.5 * f64::from(i));
                now + pacer.reserve(telegram(bot(1), "-100123456"), now)
            })
            .collect();
        assert_eq!(busiest_window(&sends, secs(60.0)), 20);
        assert!(busiest_window(&sends, secs(1.0)) <= 3, "the chat's own limit still applies");
        assert!(*sends.iter().max().unwrap() < t0 + secs(200.0), "70 sends take about three minutes");
    }

    #[test]
    fn a_bots_sends_are_counted_from_their_answers() {
        // The bot's first 30 sends reach the provider late (answered 80 ms after their slots, one
        // of them 400 ms): the provider may have counted them as late as that, so the next 30
        // keep a full period from the answers. Counted from the slots they would go at 1.01 s,
        // 59 sends inside one second as the provider saw them.
        let pacer = pacer();
        let t0 = Instant::now();
        let key = |i: u32| telegram(bot(1), &(1000 + i).to_string());
        let mut counted = Vec::new();
        for i in 0..30 {
            let slot = t0 + pacer.reserve(key(i), t0);
            let answered = slot + Duration::from_millis(if i == 0 { 400 } else { 80 });
            pacer.settle(key(i), slot, answered);
            counted.push(answered);
        }
        let now = t0 + secs(1.0);
        let next: Vec<Instant> = (30..60).map(|i| now + pacer.reserve(key(i), now)).collect();
        counted.extend(&next);
        assert_eq!(busiest_window(&counted, secs(1.0)), 30);
        assert_eq!(*next.iter().max().unwrap(), t0 + secs(0.4) + secs(1.0) + TELEGRAM_SLACK, "the slow one is last");
    }

    #[test]
    fn a_chats_next_send_keeps_its_spacing_from_a_late_answer() {
        // A provider's bucket counting the arrival lets the next send through at the arrival plus
        // one spacing, less the burst's tolerance; the arrival is at the answer at the latest.
        let pacer = pacer();
        let t0 = Instant::now();
        let every = secs(1.0) + TELEGRAM_SLACK;
        let slot = t0 + pacer.reserve(telegram(bot(1), "42"), t0);
        let answered = t0 + secs(5.0);
        pacer.settle(telegram(bot(1), "42"), slot, answered);
        let now = t0 + secs(3.0);
        let next = now + pacer.reserve(telegram(bot(1), "42"), now);
        assert_eq!(next, answered + every - every * 2, "the bucket refills from the answer");
        let early = t0 + secs(1.0);
        assert!(pacer.reserve(telegram(bot(2), "42"), early).is_zero(), "other bots are not affected");
    }

    #[test]
    fn bots_do_not_delay_each_other() {
        let pacer = pacer();
        let t0 = Instant::now();
        for i in 0..100 {
            pacer.reserve(telegram(bot(1), &i.to_string()), t0);
        }
        assert_eq!(pacer.reserve(telegram(bot(2), "1"), t0), Duration::ZERO);
        assert_eq!(pacer.reserve(messenger(bot(3), "1"), t0), Duration::ZERO);
    }

    #[test]
    fn a_page_sends_at_most_250_per_rolling_second_and_threads_burst_3() {
        let pacer = pacer();
        let t0 = Instant::now();
        let sends: Vec<Instant> =
            (0..600).map(|i| t0 + pacer.reserve(messenger(bot(1), &format!("psid{i}")), t0)).collect();
        assert_eq!(busiest_window(&sends, secs(1.0)), 250);
        assert_eq!(*sends.iter().max().unwrap(), t0 + secs(2.0));

        let thread: Vec<Duration> = (0..5).map(|_| pacer.reserve(messenger(bot(2), "psid"), t0)).collect();
        assert_eq!(thread, [0.0, 0.0, 0.0, 1.0, 2.0].map(secs).to_vec());
    }

    #[test]
    fn the_group_limit_follows_telegram_chat_ids() {
        assert!(telegram(bot(1), "-100123").per_group.is_some());
        assert!(telegram(bot(1), "@news").per_group.is_some());
        assert!(telegram(bot(1), "123").per_group.is_none());
        assert!(messenger(bot(1), "-1").per_group.is_none());
    }

    #[test]
    fn meters_at_rest_are_dropped() {
        let pacer = pacer();
        let t0 = Instant::now();
        for i in 0..1000 {
            pacer.reserve(telegram(bot(i % 7), &i.to_string()), t0);
        }
        assert_eq!(pacer.tracked(), 1000 + 7);
        let later = t0 + Duration::from_secs(600);
        assert_eq!(pacer.reserve(telegram(bot(1), "1"), later), Duration::ZERO, "rested as new");
        assert_eq!(pacer.tracked(), 2, "only the bot and chat just used remain");
    }

    #[test]
    fn mixed_traffic_keeps_every_limit_at_once() {
        // 60 chats (every fifth a group) offered ~130 sends/s: chats, groups and the bot all
        // bind, and reservations come out of step (a busy chat's slots lie seconds ahead while
        // other chats take earlier ones). Every limit must hold on the actual send times.
        let pacer = pacer();
        let t0 = Instant::now();
        let chats: Vec<String> =
            (0..60).map(|i| if i % 5 == 0 { format!("-{}", 100 + i) } else { (1 + i).to_string() }).collect();
        let mut seed = 7u64;
        let mut now = t0;
        let mut sends: Vec<(&str, Instant)> = Vec::new();
        for _ in 0..3000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            now += Duration::from_millis(seed >> 60);
            let chat = chats[(seed >> 33) as usize % chats.len()].as_str();
            sends.push((chat, now + pacer.reserve(telegram(bot(1), chat), now)));
        }
        let all: Vec<Instant> = sends.iter().map(|(_, at)| *at).collect();
        assert_eq!(busiest_window(&all, secs(1.0)), 30, "the bot limit binds and holds");
        for chat in &chats {
            let times: Vec<Instant> = sends.iter().filter(|(c, _)| c == chat).map(|(_, at)| *at).collect();
            assert!(busiest_window(&times, secs(1.0)) <= 3, "chat {chat}");
            assert!(busiest_window(&times, secs(10.0)) <= 12, "chat {chat} keeps about 1/s");
            if chat.starts_with('-') {
                assert_eq!(busiest_window(&times, secs(60.0)), 20, "group {chat}");
            }
        }
    }

    #[test]
    fn configured_limits_are_used() {
        let limits =
            PacingLimits { telegram_chat: Limit::Bucket { every: secs(2.0), burst: 1 }, ..PacingLimits::default() };
        let pacer = pacer();
        let t0 = Instant::now();
        let key = crate::providers::telegram::pace_key(&limits, &bot(1), "7");
        let delays: Vec<Duration> = (0..3).map(|_| pacer.reserve(key.clone(), t0)).collect();
        assert_eq!(delays, [0.0, 2.0, 4.0].map(secs).to_vec());
    }
}
