//! Engine settings: the `[engine]` table of the config file.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// How the engine delivers. Every field has a default; durations are written like
/// `"10s"`, `"500ms"` or `"2m"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The longest one service may take for one event, all its requests included.
    #[serde(with = "duration_text")]
    pub deadline: Duration,
    /// The longest one request may take, from connecting to the last byte of the answer.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    #[serde(with = "duration_text")]
    pub connect_timeout: Duration,
    /// At most this much of a response is read (the rest is dropped unread).
    pub max_response_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadline: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
        }
    }
}

/// Durations as human text (`"10s"`), or a number of seconds.
mod duration_text {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Seconds(f64),
            Human(String),
        }
        match Text::deserialize(d)? {
            Text::Seconds(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
            Text::Seconds(s) => Err(serde::de::Error::custom(format!("{s} is not a duration"))),
            Text::Human(text) => humantime::parse_duration(&text)
                .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e})"))),
        }
    }
}
