//! Lanes: how the workers share their slots so that no product, and no slow or paced
//! destination, delays the others (docs/SERVING.md, "Fairness and lanes").
//!
//! Every delivery waits in a lane: its product's deliveries to one destination (as the
//! destination's pace counts targets: a webhook URL, an API's origin, a broker). A
//! claim takes lanes in turn, the one served longest ago first, and from each only what
//! it may have now:
//!
//! - **its pace:** a destination with a rate limit (Slack: one a second, bursts of three)
//!   gives out slots on a schedule ([`Pace`], the generic cell rate algorithm). A
//!   delivery without a slot is not claimed: it holds no worker slot and spends no
//!   attempt. Every product sending to one destination shares its pace, and so do
//!   all worker processes (the pace is kept in the store, changed in the claim's
//!   transaction). A `Retry-After` from the destination moves its next slot.
//! - **its cap:** at most [`effective_cap`] attempts in flight, fewer when the
//!   destination answers slowly, so a target that takes ten seconds holds a few slots.
//! - **its order:** a configured service with `order_by` sends deliveries with equal
//!   values one at a time; the later ones are *held* (queued, but not due) until the one
//!   before them is finished one way or the other.
//!
//! This module is the arithmetic both stores share; the stores keep the state.

use std::collections::HashMap;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::clock::{Millis, millis};
use lookout::config::{DEFAULT_CONCURRENCY, Instance};
use lookout::dispatch::destination;
use lookout::payload::Event;
use lookout::settings::Settings;

/// When a lane that may have changed outside a claim is due: at once, whatever clock the
/// next claim goes by (it then looks at the lane's deliveries and sets the time
/// precisely).
pub const AT_ONCE: Millis = 0;

/// The lane a new delivery waits in, and what the store needs to create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// The product's lane to its destination.
    pub key: String,
    /// The destination: every product's lanes to it share its pace.
    pub destination: String,
    /// The destination's pace (none: only a `Retry-After` holds it).
    pub pace: Pace,
    /// The most attempts in flight at once (before slowness is counted).
    pub cap: u32,
}

impl Lane {
    /// The lane of one configured service of `product`. Deliveries to the same
    /// destination share a lane; a service whose destination is not known (unknown to
    /// this build, options that no longer validate) has a lane of its own.
    pub fn of(product: &str, name: &str, instance: Option<&Instance>, settings: &Settings) -> Lane {
        let Some((instance, found)) = instance.and_then(|i| Some((i, destination(i, settings)?)))
        else {
            return Lane::own(product, name);
        };
        let pace = found.pace.map_or(Pace::NONE, |limit| Pace {
            every_ms: millis(limit.every).max(1),
            burst: limit.burst.max(1),
        });
        Lane {
            key: short_hash(&[product, &found.key]),
            destination: found.key,
            pace,
            cap: instance
                .lane
                .concurrency
                .unwrap_or(DEFAULT_CONCURRENCY)
                .max(1),
        }
    }

    /// A lane of its own for one configured service whose destination is not known
    /// (and for deliveries stored before lanes existed).
    pub fn own(product: &str, name: &str) -> Lane {
        let key = format!("instance:{product}/{name}");
        Lane {
            destination: key.clone(),
            key,
            pace: Pace::NONE,
            cap: DEFAULT_CONCURRENCY,
        }
    }
}

/// The order key of a delivery of `instance` (of `product`) for `event`: set when the
/// service has `order_by` and the event has a value there. Deliveries with equal keys
/// are attempted one at a time, in intake order.
pub fn order_key(product: &str, instance: &Instance, event: &Event) -> Option<String> {
    let path = instance.lane.order_by.as_ref()?;
    let value = event.value_at(path)?;
    Some(short_hash(&[product, &instance.name, &value]))
}

/// 24 hex digits of SHA-256 over `parts` (joined by NUL): keys that show nothing of what
/// they were made from (a URL may hold a key).
pub fn short_hash(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\0"));
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A destination's pace: `burst` at once, then one every `every_ms` (the generic cell
/// rate algorithm, whose whole state is one time: [`PaceState::tat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub every_ms: Millis,
    pub burst: u32,
}

impl Pace {
    /// No pace: slots whenever the destination has not asked to wait.
    pub const NONE: Pace = Pace {
        every_ms: 0,
        burst: 1,
    };

    /// How far ahead of now the schedule may run: the burst.
    fn tolerance(&self) -> Millis {
        self.every_ms * Millis::from(self.burst.saturating_sub(1))
    }
}

/// A destination's pace and where its schedule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceState {
    pub pace: Pace,
    /// The theoretical arrival time: the schedule's next slot if none were saved up.
    pub tat: Millis,
}

impl PaceState {
    /// How many of `want` slots the schedule has at `now`.
    pub fn slots(&self, now: Millis, want: u32) -> u32 {
        let mut state = *self;
        let mut slots = 0;
        while slots < want && state.take(now) {
            slots += 1;
        }
        slots
    }

    /// Takes one slot at `now` if there is one.
    pub fn take(&mut self, now: Millis) -> bool {
        if self.tat > now + self.pace.tolerance() {
            return false;
        }
        self.tat = self.tat.max(now) + self.pace.every_ms;
        true
    }

    /// When the next slot comes.
    pub fn next_slot(&self) -> Millis {
        self.tat - self.pace.tolerance()
    }

    /// The destination asked for no request before `until` (`Retry-After`): the next
    /// slot is then, and the burst starts over after it.
    pub fn hold(&mut self, until: Millis) {
        self.tat = self.tat.max(until + self.pace.tolerance());
    }
}

/// Answers slower than this (ms) take slots away from their lane. Below it a lane's
/// answer time does not matter, so the stores keep it only while it, or the latest
/// answer, is above: a fast lane's row is not written after every attempt.
pub const SLOW_MS: Millis = 1_000;

/// How many attempts a lane may have in flight: its cap, shrunk in proportion when its
/// recent answers took longer than a second (3 s: a third of the cap), at least one.
pub fn effective_cap(cap: u32, latency_ms: Millis) -> u32 {
    let slow = SLOW_MS;
    if latency_ms <= slow {
        return cap.max(1);
    }
    let scaled = Millis::from(cap) * slow / latency_ms;
    u32::try_from(scaled)
        .unwrap_or(u32::MAX)
        .clamp(1, cap.max(1))
}

/// What a batch of finished attempts tells one lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneNews {
    pub lane: String,
    /// The mean answer time of the batch's attempts in it (one step of its smoothing).
    pub latency_ms: Option<Millis>,
    /// The latest time its destination asked to be left alone until.
    pub hold_until: Option<Millis>,
}

/// What one finished attempt tells its lane: its answer time and the wait its
/// destination asked for.
pub struct Heard<'a> {
    pub lane: &'a str,
    pub latency_ms: Option<u64>,
    pub hold_until: Option<Millis>,
}

/// The news of each lane from what its attempts heard, in the order lanes first appear.
pub fn news<'a>(finished: impl IntoIterator<Item = Heard<'a>>) -> Vec<LaneNews> {
    let mut news: Vec<(LaneNews, Millis, Millis)> = Vec::new();
    for finish in finished {
        let lane = finish.lane;
        let index = match news.iter().position(|(n, ..)| n.lane == lane) {
            Some(index) => index,
            None => {
                let fresh = LaneNews {
                    lane: lane.to_owned(),
                    latency_ms: None,
                    hold_until: None,
                };
                news.push((fresh, 0, 0));
                news.len() - 1
            }
        };
        let (entry, sum, count) = &mut news[index];
        if let Some(ms) = finish.latency_ms {
            *sum += i64::try_from(ms).unwrap_or(i64::MAX);
            *count += 1;
        }
        entry.hold_until = entry.hold_until.max(finish.hold_until);
    }
    news.into_iter()
        .map(|(mut entry, sum, count)| {
            entry.latency_ms = (count > 0).then(|| sum / count);
            entry
        })
        .collect()
}

/// How many due lanes a claim of `limit` deliveries looks at: enough that lanes which
/// turn out paced or full leave room for others.
pub fn lanes_per_claim(limit: usize) -> i64 {
    i64::try_from(limit.saturating_mul(4).clamp(16, 1_024)).unwrap_or(1_024)
}

/// How a claim shares its room between the lanes it looks at: each gets an equal share
/// first, then what the others left goes to those that still have deliveries, in turn.
pub fn fair_share(room: usize, lanes: usize) -> usize {
    room.div_ceil(lanes.max(1)).max(1)
}

/// A lane as a claim finds it: due, with its destination's schedule and its attempts in
/// flight (leases that have not run out).
#[derive(Debug, Clone)]
pub struct DueLane {
    pub key: String,
    pub destination: String,
    pub pace: Pace,
    /// The destination's [`PaceState::tat`].
    pub tat: Millis,
    pub cap: u32,
    /// Its answers' time, smoothed (each new one counts for a fifth; the stores keep it).
    pub latency_ms: Millis,
    pub in_flight: u32,
    /// When it is due as the claim found it.
    pub due_at: Option<Millis>,
}

/// One claim's turn-taking over the lanes it looks at, oldest served first: what to ask
/// each lane for ([`Claim::ask`]), what it gave ([`Claim::took`]), and afterwards when
/// each lane is due again ([`Claim::settle`]). The stores do the reading and writing.
pub struct Claim {
    now: Millis,
    /// What the claim may still take.
    room: usize,
    share: usize,
    turns: Vec<Turn>,
    paces: HashMap<String, PaceState>,
    /// The turn last handed out by `ask`, and what it was asked for.
    current: Option<(usize, usize)>,
    cursor: usize,
    /// 0: each lane up to its share; 1: what is left, in turn.
    pass: u8,
}

struct Turn {
    key: String,
    destination: String,
    due_at: Option<Millis>,
    /// Attempts it may still start: its effective cap less those in flight.
    room: usize,
    taken: usize,
    /// It gave fewer than asked: nothing more is due in it now.
    exhausted: bool,
}

/// When a lane is next worth looking at, as a claim leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// At this time ([`AT_ONCE`]: it has more due than this claim took).
    At(Millis),
    /// It is at its cap: when the first of its leases runs out (a finished attempt
    /// makes it due at once).
    LeaseEnd,
    /// Nothing more is due in it now: when its next delivery is, or a lease runs out.
    Next,
}

/// A lane after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub key: String,
    pub due: Due,
    /// The claim took from it: it goes to the back of the turn.
    pub served: bool,
}

impl Claim {
    pub fn new(now: Millis, room: usize, lanes: Vec<DueLane>) -> Claim {
        let mut paces = HashMap::new();
        let turns = lanes
            .into_iter()
            .map(|lane| {
                let state = PaceState {
                    pace: lane.pace,
                    tat: lane.tat,
                };
                paces.entry(lane.destination.clone()).or_insert(state);
                let cap = effective_cap(lane.cap, lane.latency_ms) as usize;
                Turn {
                    room: cap.saturating_sub(lane.in_flight as usize),
                    key: lane.key,
                    destination: lane.destination,
                    due_at: lane.due_at,
                    taken: 0,
                    exhausted: false,
                }
            })
            .collect::<Vec<_>>();
        Claim {
            now,
            room,
            share: fair_share(room, turns.len()),
            turns,
            paces,
            current: None,
            cursor: 0,
            pass: 0,
        }
    }

    /// The next lane to take due deliveries from (earliest due first), and at most how
    /// many; `None` when the claim is done.
    pub fn ask(&mut self) -> Option<(String, usize)> {
        while self.room > 0 {
            if self.cursor == self.turns.len() {
                if self.pass == 1 {
                    return None;
                }
                self.pass = 1;
                self.cursor = 0;
                continue;
            }
            let index = self.cursor;
            self.cursor += 1;
            let turn = &self.turns[index];
            let quota = if self.pass == 0 {
                self.share
            } else {
                usize::MAX
            };
            let want = (quota.saturating_sub(turn.taken))
                .min(turn.room - turn.taken)
                .min(self.room);
            if turn.exhausted || want == 0 {
                continue;
            }
            let pace = self.paces[&turn.destination];
            let want = pace.slots(self.now, u32::try_from(want).unwrap_or(u32::MAX)) as usize;
            if want > 0 {
                self.current = Some((index, want));
                return Some((turn.key.clone(), want));
            }
        }
        None
    }

    /// The lane last returned by [`Claim::ask`] gave `got` deliveries.
    pub fn took(&mut self, got: usize) {
        let Some((index, asked)) = self.current.take() else {
            return;
        };
        let turn = &mut self.turns[index];
        turn.taken += got;
        turn.exhausted = got < asked;
        self.room = self.room.saturating_sub(got);
        let pace = self
            .paces
            .get_mut(&turn.destination)
            .expect("each turn's pace");
        for _ in 0..got {
            pace.take(self.now);
        }
    }

    /// Every lane looked at whose row changes, with when it is due again, and the
    /// destinations whose schedule moved (their new [`PaceState::tat`]). A lane due at
    /// once that stays so is left out when it was the only lane looked at: its turn
    /// (`served_at`) matters only beside others.
    pub fn settle(self) -> (Vec<Settled>, Vec<(String, Millis)>) {
        let alone = self.turns.len() == 1;
        let lanes = self
            .turns
            .iter()
            .map(|turn| {
                let pace = self.paces[&turn.destination];
                let due = if turn.exhausted {
                    Due::Next
                } else if turn.taken >= turn.room {
                    Due::LeaseEnd
                } else if pace.slots(self.now, 1) == 0 {
                    Due::At(pace.next_slot())
                } else {
                    // More is due than this claim had room for.
                    Due::At(AT_ONCE)
                };
                Settled {
                    key: turn.key.clone(),
                    due,
                    served: turn.taken > 0,
                }
            })
            .zip(&self.turns)
            .filter(|(settled, turn)| {
                let unchanged = settled.due == Due::At(AT_ONCE) && turn.due_at == Some(AT_ONCE);
                !(unchanged && (alone || !settled.served))
            })
            .map(|(settled, _)| settled)
            .collect();
        let moved = self
            .paces
            .into_iter()
            .filter(|(_, state)| state.pace.every_ms > 0)
            .map(|(destination, state)| (destination, state.tat))
            .collect();
        (lanes, moved)
    }
}

/// Why a queued delivery is not being attempted right now: what the console's delivery
/// page, `GET /v1/deliveries/{id}` and `lookout deliveries show` say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Waiting {
    /// A worker is attempting it (its lease runs until then).
    InFlight { until: Millis },
    /// Held behind an earlier delivery of its order key (`order_by`) until that one is
    /// delivered, skipped, disabled or dead.
    Held { behind: Option<String> },
    /// Its next attempt is due then: a retry, or a wait its destination asked for.
    Scheduled { at: Millis },
    /// Its destination's pace has its next slot then.
    Paced { until: Millis },
    /// Its lane has as many attempts in flight as it may (fewer when its answers are
    /// slow).
    AtCap { in_flight: u32, cap: u32 },
    /// Due: the next worker with room takes it.
    Due,
}

impl Waiting {
    /// In words, times counted from `now`.
    pub fn describe(&self, now: Millis) -> String {
        let after = |at: Millis| {
            let ms = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
            humantime::format_duration(Duration::from_millis(ms)).to_string()
        };
        match self {
            Waiting::InFlight { .. } => "being attempted now".to_owned(),
            Waiting::Held { behind: Some(id) } => format!(
                "held behind {id}, an earlier delivery with the same order value, until that \
                 one is finished"
            ),
            Waiting::Held { behind: None } => {
                "held behind an earlier delivery with the same order value".to_owned()
            }
            Waiting::Scheduled { at } => format!("the next attempt is due in {}", after(*at)),
            Waiting::Paced { until } => {
                format!("paced: its destination's next slot is in {}", after(*until))
            }
            Waiting::AtCap { in_flight, cap } => format!(
                "its lane has {in_flight} attempts in flight, its cap is {cap}: it goes when \
                 one ends"
            ),
            Waiting::Due => "due: the next worker with room takes it".to_owned(),
        }
    }
}

/// What a store knows of a queued delivery, to say why it waits.
#[derive(Debug, Clone)]
pub struct Queued {
    pub next_at: Option<Millis>,
    pub lease_until: Option<Millis>,
    /// For a held one: the queued delivery of its key it waits for.
    pub behind: Option<String>,
    pub lane: Option<DueLane>,
}

impl Queued {
    /// Why it is not being attempted at `now`.
    pub fn waiting(&self, now: Millis) -> Waiting {
        if let Some(until) = self.lease_until.filter(|until| *until > now) {
            return Waiting::InFlight { until };
        }
        let Some(next_at) = self.next_at else {
            let behind = self.behind.clone();
            return Waiting::Held { behind };
        };
        if next_at > now {
            return Waiting::Scheduled { at: next_at };
        }
        let Some(lane) = &self.lane else {
            return Waiting::Due;
        };
        let pace = PaceState {
            pace: lane.pace,
            tat: lane.tat,
        };
        if pace.slots(now, 1) == 0 {
            return Waiting::Paced {
                until: pace.next_slot(),
            };
        }
        let cap = effective_cap(lane.cap, lane.latency_ms);
        if lane.in_flight >= cap {
            let in_flight = lane.in_flight;
            return Waiting::AtCap { in_flight, cap };
        }
        Waiting::Due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack() -> PaceState {
        PaceState {
            pace: Pace {
                every_ms: 1_000,
                burst: 3,
            },
            tat: 0,
        }
    }

    #[test]
    fn a_pace_gives_its_burst_then_one_slot_per_period() {
        let mut pace = slack();
        let now = 10_000;
        assert_eq!(pace.slots(now, 10), 3, "the burst");
        for _ in 0..3 {
            assert!(pace.take(now));
        }
        assert!(!pace.take(now), "no fourth at once");
        assert_eq!(pace.next_slot(), now + 1_000);
        assert!(!pace.take(now + 999));
        assert!(pace.take(now + 1_000));
        assert!(!pace.take(now + 1_500));
        // Idle for long: the burst is back, never more.
        assert_eq!(pace.slots(now + 60_000, 10), 3);
    }

    #[test]
    fn a_wait_asked_for_moves_the_next_slot() {
        let mut pace = slack();
        pace.hold(5_000);
        assert!(!pace.take(4_999));
        assert!(pace.take(5_000));
        assert!(!pace.take(5_000), "no burst right after a wait");
        assert!(pace.take(6_000));

        let mut unpaced = PaceState {
            pace: Pace::NONE,
            tat: 0,
        };
        assert_eq!(unpaced.slots(1, 1_000), 1_000);
        unpaced.hold(30_000);
        assert_eq!(unpaced.slots(29_999, 5), 0);
        assert_eq!(unpaced.slots(30_000, 5), 5);
    }

    #[test]
    fn slow_lanes_get_fewer_slots() {
        assert_eq!(effective_cap(8, 0), 8);
        assert_eq!(effective_cap(8, 1_000), 8);
        assert_eq!(effective_cap(8, 3_000), 2);
        assert_eq!(effective_cap(8, 10_000), 1);
        assert_eq!(effective_cap(1, 60_000), 1);
    }

    #[test]
    fn room_is_shared_between_lanes() {
        assert_eq!(fair_share(32, 1), 32);
        assert_eq!(fair_share(32, 3), 11);
        assert_eq!(fair_share(2, 10), 1);
        assert_eq!(fair_share(0, 0), 1);
    }
}
