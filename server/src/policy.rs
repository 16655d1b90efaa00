//! How the workers deliver, decided once: the retry schedule, the lease, concurrency,
//! polling and the grace period. Each can be set in the config file's `[worker]` table
//! and overridden by a flag of `lookout serve` / `lookout worker`:
//!
//! ```toml
//! [worker]
//! retry_schedule = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
//! retry_jitter = 0.1
//! lease = "2m"            # default: twice the engine's deadline plus 30s
//! concurrency = 32
//! poll = "1s"
//! grace = "10s"
//! disable_after = { failures = 10, over = "24h" }   # a target failing that long is disabled
//! retention = "30d"       # prune finished events older than this (default: keep all)
//! dead_retention = "90d"  # and dead ones (default: keep until redelivered)
//! ```

use std::str::FromStr;
use std::time::Duration;

use rand::Rng as _;
use serde::Deserialize;

use lookout::config::{Problem, Section};

use crate::store::upkeep::DisableRule;

/// The config file's tables this crate reads (beside the engine's `engine` and
/// `services`), each with its check, so that loading a file anywhere (`lookout
/// validate`, `serve`, the Python package) reports their problems with the rest:
/// `server`'s is [`ServerSettings`](crate::server_settings::ServerSettings).
pub const SECTIONS: &[Section] = &[
    Section {
        name: "worker",
        check: check_worker,
    },
    Section {
        name: "server",
        check: crate::server_settings::check_server,
    },
    Section {
        name: "serve",
        check: crate::server_settings::check_renamed_serve,
    },
];

/// The `[worker]` table as the workers will read it, checked against the file's deadline
/// (when that is unreadable, against none: the lease is then not compared).
fn check_worker(
    table: &serde_json::Value,
    engine: Option<&lookout::Settings>,
) -> Result<(), Problem> {
    let settings: WorkerSettings = serde_path_to_error::deserialize(table)
        .map_err(|e| Problem::in_table("worker", &e.path().to_string(), e.inner()))?;
    match settings.apply(engine.map_or(Duration::ZERO, |e| e.deadline)) {
        Ok(_) => Ok(()),
        Err(err) => Err(Problem::in_table("worker", err.field, err.what)),
    }
}

/// A `[worker]` setting (from the file or a flag) that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    pub field: &'static str,
    /// What is wrong with it, without its name.
    pub what: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

fn setting_error(field: &'static str, what: impl Into<String>) -> SettingError {
    SettingError {
        field,
        what: what.into(),
    }
}

/// When to try again after a failed attempt: one delay per retry, then dead-letter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    pub delays: Vec<Duration>,
    /// Each delay is stretched or shrunk by up to this fraction at random, so that
    /// deliveries that failed together do not all come back at the same instant.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (±10 %): eight attempts over about 28 h.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        RetrySchedule {
            delays: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
            jitter: 0.1,
        }
    }
}

impl FromStr for RetrySchedule {
    type Err = String;

    /// `"5s,5m,30m"`: the delays, comma-separated (default jitter).
    fn from_str(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| humantime::parse_duration(d).map_err(|e| format!("`{d}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule {
            delays,
            ..RetrySchedule::default()
        })
    }
}

impl RetrySchedule {
    /// The wait before the next attempt, after `failures` failed attempts in a row
    /// (counting the one that just failed); `None` when the schedule is used up.
    ///
    /// `hint` is what the target asked for (a `Retry-After` header): a target that says
    /// when to come back is believed when that is later than the schedule.
    pub fn next_delay(&self, failures: u32, hint: Option<Duration>) -> Option<Duration> {
        let base = *self.delays.get(failures.checked_sub(1)? as usize)?;
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            1.0 + rand::rng().random_range(-jitter..=jitter)
        } else {
            1.0
        };
        let delay = base.mul_f64(factor);
        Some(hint.map_or(delay, |asked| delay.max(asked)))
    }
}

/// How the workers run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Deliveries attempted at the same time.
    pub concurrency: usize,
    pub schedule: RetrySchedule,
    /// How long a claim is held before another worker may take the delivery over. Must
    /// exceed the engine's deadline.
    pub lease: Duration,
    /// The longest the workers sleep without looking at the store (new events wake
    /// them at once; this catches deliveries made due by other processes).
    pub poll: Duration,
    /// On shutdown, how long attempts in flight may take to finish.
    pub grace: Duration,
    /// Names this process's claims.
    pub owner: String,
    /// When a target that keeps failing is disabled.
    pub disable_after: DisableRule,
    /// How long finished events are kept (`None`: for ever).
    pub retention: Option<Duration>,
    /// How long events with a dead delivery are kept (`None`: until redelivered).
    pub dead_retention: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 32,
            schedule: RetrySchedule::default(),
            lease: default_lease(lookout::Settings::default().deadline),
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(10),
            owner: format!(
                "pid{}-{}",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ),
            disable_after: DisableRule::default(),
            retention: None,
            dead_retention: None,
        }
    }
}

/// A lease must outlast the longest attempt, else an attempt could outlive its claim
/// and the delivery be sent twice.
pub fn check_lease(lease: Duration, deadline: Duration) -> Result<(), String> {
    lease_too_short(lease, deadline).map_or(Ok(()), |what| Err(format!("lease {what}")))
}

/// Why `lease` cannot be used with `deadline`, if it cannot.
fn lease_too_short(lease: Duration, deadline: Duration) -> Option<String> {
    (lease <= deadline).then(|| {
        format!(
            "{} must be longer than the engine deadline ({}): an attempt could outlive its \
             claim and be sent twice",
            humantime::format_duration(lease),
            humantime::format_duration(deadline)
        )
    })
}

/// A claim outlives any attempt: the deadline bounds one, plus room to record it.
pub fn default_lease(deadline: Duration) -> Duration {
    deadline * 2 + Duration::from_secs(30)
}

/// The config file's `[worker]` table: every field optional (what is missing keeps its
/// default or its flag's value).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    #[serde(default, deserialize_with = "delays")]
    pub retry_schedule: Option<Vec<Duration>>,
    pub retry_jitter: Option<f64>,
    #[serde(default, with = "humantime_serde_opt")]
    pub lease: Option<Duration>,
    pub concurrency: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    pub poll: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub grace: Option<Duration>,
    pub disable_after: Option<DisableAfter>,
    #[serde(default, with = "humantime_serde_opt")]
    pub retention: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub dead_retention: Option<Duration>,
}

/// `disable_after = { failures = 10, over = "24h" }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableAfter {
    pub failures: u32,
    #[serde(with = "humantime_serde")]
    pub over: Duration,
}

impl WorkerSettings {
    /// The `[worker]` table of a config file's other sections (none: all defaults).
    pub fn from_sections(
        sections: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<WorkerSettings, String> {
        match sections.get("worker") {
            None => Ok(WorkerSettings::default()),
            Some(table) => serde_path_to_error::deserialize(table)
                .map_err(|e| format!("worker.{}: {}", e.path(), e.inner())),
        }
    }

    /// The workers' configuration: these settings over the defaults, checked against the
    /// engine's deadline.
    pub fn apply(&self, deadline: Duration) -> Result<WorkerConfig, SettingError> {
        let mut config = WorkerConfig::default();
        if let Some(delays) = &self.retry_schedule {
            config.schedule.delays = delays.clone();
        }
        if let Some(jitter) = self.retry_jitter {
            if !(0.0..=1.0).contains(&jitter) {
                let what = format!("{jitter} is not between 0 and 1");
                return Err(setting_error("retry_jitter", what));
            }
            config.schedule.jitter = jitter;
        }
        config.concurrency = self.concurrency.unwrap_or(config.concurrency).max(1);
        config.poll = self.poll.unwrap_or(config.poll);
        config.grace = self.grace.unwrap_or(config.grace);
        config.lease = self.lease.unwrap_or_else(|| default_lease(deadline));
        if let Some(rule) = self.disable_after {
            if rule.failures == 0 {
                return Err(setting_error(
                    "disable_after.failures",
                    "must be at least 1",
                ));
            }
            config.disable_after = DisableRule {
                failures: rule.failures,
                over: rule.over,
            };
        }
        for (name, kept) in [
            ("retention", self.retention),
            ("dead_retention", self.dead_retention),
        ] {
            if kept.is_some_and(|d| d < Duration::from_secs(3600)) {
                let what = "at least 1h (deliveries are still being retried before that)";
                return Err(setting_error(name, what));
            }
        }
        config.retention = self.retention;
        config.dead_retention = self.dead_retention;
        match lease_too_short(config.lease, deadline) {
            Some(what) => Err(setting_error("lease", what)),
            None => Ok(config),
        }
    }

    /// `other`'s settings where it has them, these elsewhere (flags over the file).
    pub fn overridden_by(self, other: WorkerSettings) -> WorkerSettings {
        WorkerSettings {
            retry_schedule: other.retry_schedule.or(self.retry_schedule),
            retry_jitter: other.retry_jitter.or(self.retry_jitter),
            lease: other.lease.or(self.lease),
            concurrency: other.concurrency.or(self.concurrency),
            poll: other.poll.or(self.poll),
            grace: other.grace.or(self.grace),
            disable_after: other.disable_after.or(self.disable_after),
            retention: other.retention.or(self.retention),
            dead_retention: other.dead_retention.or(self.dead_retention),
        }
    }
}

/// `"5s,5m"` or `["5s", "5m"]`.
fn delays<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Delays {
        Text(String),
        List(Vec<String>),
    }
    let text = match Delays::deserialize(d)? {
        Delays::Text(text) => text,
        Delays::List(list) => list.join(","),
    };
    text.parse::<RetrySchedule>()
        .map(|s| Some(s.delays))
        .map_err(serde::de::Error::custom)
}

/// A human duration (`"24h"`).
mod humantime_serde {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
    }
}

/// Optional human durations (`"90s"`, `"2m"`).
pub(crate) mod humantime_serde_opt {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(table: serde_json::Value) -> Result<WorkerSettings, String> {
        let sections = json!({ "worker": table });
        WorkerSettings::from_sections(sections.as_object().unwrap())
    }

    fn schedule(delays: &str) -> RetrySchedule {
        RetrySchedule {
            jitter: 0.0,
            ..delays.parse().unwrap()
        }
    }

    #[test]
    fn the_schedule_runs_out() {
        let s = schedule("1s,2s");
        assert_eq!(s.next_delay(1, None), Some(Duration::from_secs(1)));
        assert_eq!(s.next_delay(2, None), Some(Duration::from_secs(2)));
        assert_eq!(s.next_delay(3, None), None);
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60)),
            "a later Retry-After wins"
        );
        let jittered = RetrySchedule::default();
        for _ in 0..100 {
            let d = jittered.next_delay(2, None).unwrap();
            assert!(
                d >= Duration::from_secs(270) && d <= Duration::from_secs(330),
                "{d:?}"
            );
        }
        assert_eq!(RetrySchedule::default().delays.len(), 7);
        assert!("5s,soon".parse::<RetrySchedule>().is_err());
    }

    #[test]
    fn the_worker_table_sets_schedule_and_lease() {
        let deadline = Duration::from_secs(10);
        let file = settings(json!({"retry_schedule": ["1s", "2m"], "lease": "90s"})).unwrap();
        let config = file.apply(deadline).unwrap();
        assert_eq!(
            config.schedule.delays,
            [Duration::from_secs(1), Duration::from_secs(120)]
        );
        assert_eq!(config.lease, Duration::from_secs(90));
        let text = settings(json!({"retry_schedule": "3s, 4s"})).unwrap();
        assert_eq!(text.apply(deadline).unwrap().schedule.delays.len(), 2);

        let flags = WorkerSettings {
            lease: Some(Duration::from_secs(60)),
            ..WorkerSettings::default()
        };
        let both = file.clone().overridden_by(flags).apply(deadline).unwrap();
        assert_eq!(
            both.lease,
            Duration::from_secs(60),
            "a flag wins over the file"
        );
        assert_eq!(both.schedule.delays.len(), 2, "the file's schedule stays");
        assert_eq!(
            WorkerSettings::default().apply(deadline).unwrap().lease,
            Duration::from_secs(50),
            "twice the deadline plus 30s"
        );
    }

    #[test]
    fn bad_worker_settings_name_the_setting() {
        let err = settings(json!({"retry_schedule": "5s,soon"})).unwrap_err();
        assert!(err.starts_with("worker.retry_schedule: "), "{err}");
        let err = settings(json!({"lease": "a while"})).unwrap_err();
        assert!(err.starts_with("worker.lease: "), "{err}");
        let err = settings(json!({"leese": "1m"})).unwrap_err();
        assert!(err.contains("leese"), "{err}");
        let short = settings(json!({"lease": "5s"})).unwrap();
        let err = short.apply(Duration::from_secs(10)).unwrap_err();
        assert!(
            err.to_string().starts_with("lease: 5s must be longer"),
            "{err}"
        );
        let err = settings(json!({"retry_jitter": 2.0}))
            .unwrap()
            .apply(Duration::from_secs(10));
        assert!(err.unwrap_err().to_string().starts_with("retry_jitter: "));
    }

    #[test]
    fn health_and_retention_settings_are_checked() {
        let deadline = Duration::from_secs(10);
        let file = settings(json!({
            "disable_after": {"failures": 3, "over": "2h"},
            "retention": "30d",
            "dead_retention": "90d",
        }))
        .unwrap();
        let config = file.apply(deadline).unwrap();
        assert_eq!(config.disable_after.failures, 3);
        assert_eq!(config.disable_after.over, Duration::from_secs(7200));
        assert_eq!(config.retention, Some(Duration::from_secs(30 * 86400)));
        let defaults = WorkerSettings::default().apply(deadline).unwrap();
        assert_eq!(defaults.disable_after, DisableRule::default());
        assert_eq!(defaults.retention, None, "nothing is pruned unless asked");

        let err = settings(json!({"disable_after": {"failures": 3, "over": "soon"}})).unwrap_err();
        assert!(err.starts_with("worker.disable_after.over: "), "{err}");
        let err = settings(json!({"disable_after": {"failure": 3, "over": "1h"}})).unwrap_err();
        assert!(err.starts_with("worker.disable_after"), "{err}");
        let zero = settings(json!({"disable_after": {"failures": 0, "over": "1h"}})).unwrap();
        assert!(
            zero.apply(deadline)
                .unwrap_err()
                .to_string()
                .starts_with("disable_after.failures")
        );
        let short = settings(json!({"retention": "5m"})).unwrap();
        assert!(
            short
                .apply(deadline)
                .unwrap_err()
                .to_string()
                .starts_with("retention: ")
        );
        let err = settings(json!({"dead_retention": "forever"})).unwrap_err();
        assert!(err.starts_with("worker.dead_retention: "), "{err}");
    }
}
