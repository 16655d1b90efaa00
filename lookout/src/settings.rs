//! Engine settings: the `[engine]` table of the config file.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// How the engine delivers. Every field has a default; durations are written like
/// `"10s"`, `"500ms"` or `"2m"`.
///
/// ```toml
/// [engine]
/// deadline = "10s"          # per service and event, retries included
/// attempts = 3              # 1 = no retries (the durable worker's mode)
/// allow_networks = ["10.1.2.0/24"]   # let the SSRF guard pass these
/// proxy = "http://10.0.0.3:3128"      # send every HTTP request through this proxy
/// ```
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
    /// The longest to wait for the answer's status line and headers, once the request is
    /// sent. Never more than `request_timeout`.
    #[serde(with = "duration_text")]
    pub first_byte_timeout: Duration,
    /// At most this much of a response is read (the rest is dropped unread).
    pub max_response_bytes: usize,
    /// Tries per request, the first included: connection errors, timeouts, 408, 425,
    /// 429 and 5xx (500, 502, 503, 504) are tried again. `1` sends once.
    pub attempts: u32,
    /// All tries of one request must fit in this; unset, in the `deadline`.
    #[serde(
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_budget: Option<Duration>,
    /// The first pause between tries; it doubles each time (with full jitter: a random
    /// pause between zero and that), up to `max_backoff`. A target's `Retry-After` wins.
    #[serde(with = "duration_text")]
    pub backoff: Duration,
    #[serde(with = "duration_text")]
    pub max_backoff: Duration,
    /// Networks the SSRF guard lets through (CIDR, e.g. `"10.1.2.0/24"` or
    /// `"127.0.0.1/32"`). By default every loopback, private, link-local and other
    /// internal address is refused.
    pub allow_networks: Vec<IpNet>,
    /// The guard the other way round: every address that is not loopback is refused,
    /// public ones included, and `allow_networks` is ignored. The test kit's settings
    /// set it, so that no test request can leave the machine.
    pub loopback_only: bool,
    /// Tests only, never read from a config file: every HTTP request goes to this
    /// address instead, over plain HTTP with its path and query kept and its `Host`
    /// header naming the host it was meant for. A service with a fixed public host
    /// (`https://events.pagerduty.com/…`) is then tested against a capture server.
    #[serde(skip)]
    pub redirect_to: Option<SocketAddr>,
    /// Whether requests to services that declare a rate limit (chat webhooks) are paced
    /// to it. Turn it off only for targets you run yourself (and in tests).
    pub rate_limits: bool,
    /// An HTTP proxy every outgoing HTTP request goes through (`http://host:port`).
    /// The SSRF guard still checks each final target: its name is resolved and checked
    /// here before the request is handed to the proxy.
    #[serde(
        deserialize_with = "proxy_url",
        serialize_with = "url_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy: Option<Url>,
}

fn url_text<S: serde::Serializer>(url: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(url.as_str()),
        None => s.serialize_none(),
    }
}

/// `proxy`: an `http://` or `https://` URL of a host and port, without credentials
/// (they would be shown wherever the settings are).
fn proxy_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let text = String::deserialize(d)?;
    // The text is not echoed: a malformed URL may still hold a password.
    let url = Url::parse(&text)
        .map_err(|e| serde::de::Error::custom(format!("proxy: not a URL ({e})")))?;
    let problem = if !matches!(url.scheme(), "http" | "https") {
        Some("must be http:// or https://")
    } else if url.host().is_none() {
        Some("has no host")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("must not carry credentials")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(serde::de::Error::custom(format!(
            "proxy: the URL {problem}"
        ))),
        None => Ok(Some(url)),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadline: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            attempts: 3,
            retry_budget: None,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            allow_networks: Vec::new(),
            loopback_only: false,
            redirect_to: None,
            rate_limits: true,
            proxy: None,
        }
    }
}

impl Settings {
    /// The time all tries of one request must fit in.
    pub fn retry_budget(&self) -> Duration {
        self.retry_budget
            .map_or(self.deadline, |budget| budget.min(self.deadline))
    }

    /// Where a request for `url` really goes: `url` itself, or with [`redirect_to`](Self::redirect_to)
    /// set, that address with `url`'s path and query.
    pub fn destination<'a>(&self, url: &'a Url) -> Cow<'a, Url> {
        let Some(to) = self.redirect_to else {
            return Cow::Borrowed(url);
        };
        let mut moved = Url::parse(&format!("http://{to}/")).expect("a socket address is a host");
        moved.set_path(url.path());
        moved.set_query(url.query());
        Cow::Owned(moved)
    }

    /// These settings with the loopback networks (`127.0.0.0/8`, `::1`) allowed: for
    /// tests and demos that send to a local server.
    pub fn allowing_loopback(mut self) -> Settings {
        for net in ["127.0.0.0/8", "::1/128"] {
            let net: IpNet = net.parse().expect("a valid network");
            if !self.allow_networks.contains(&net) {
                self.allow_networks.push(net);
            }
        }
        self
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

/// [`duration_text`] for an optional duration.
mod optional_duration_text {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration_text::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_engine_table() {
        let settings: Settings = toml::from_str(
            r#"
            attempts = 1
            retry_budget = "4s"
            first_byte_timeout = 2.5
            allow_networks = ["10.1.2.0/24", "::1/128"]
            "#,
        )
        .unwrap();
        assert_eq!(settings.attempts, 1);
        assert_eq!(settings.retry_budget(), Duration::from_secs(4));
        assert_eq!(settings.first_byte_timeout, Duration::from_millis(2500));
        assert_eq!(settings.allow_networks.len(), 2);
        assert_eq!(Settings::default().retry_budget(), Duration::from_secs(10));
    }

    #[test]
    fn the_budget_never_exceeds_the_deadline() {
        let settings = Settings {
            retry_budget: Some(Duration::from_secs(60)),
            ..Settings::default()
        };
        assert_eq!(settings.retry_budget(), settings.deadline);
    }

    #[test]
    fn a_proxy_is_an_http_url_without_credentials() {
        let settings: Settings = toml::from_str(r#"proxy = "http://127.0.0.1:3128""#).unwrap();
        assert_eq!(settings.proxy.unwrap().as_str(), "http://127.0.0.1:3128/");
        for (bad, why) in [
            ("socks5://127.0.0.1:1080", "must be http:// or https://"),
            (
                "http://user:pw@127.0.0.1:3128",
                "must not carry credentials",
            ),
            ("127.0.0.1:3128", "not a URL"),
        ] {
            let text = format!("proxy = \"{bad}\"");
            let err = toml::from_str::<Settings>(&text).unwrap_err();
            // What the config file's errors show (not the line, which would hold it).
            let shown = err.message();
            assert!(
                shown.starts_with("proxy: ") && shown.contains(why),
                "{bad}: {shown}"
            );
            assert!(!shown.contains("pw"), "{shown}");
        }
    }

    #[test]
    fn rejects_bad_networks() {
        assert!(toml::from_str::<Settings>(r#"allow_networks = ["10.0.0.0/33"]"#).is_err());
    }

    #[test]
    fn redirection_keeps_the_path_and_query_only() {
        let url = Url::parse("https://events.pagerduty.com:8443/v2/enqueue?x=1#top").unwrap();
        assert_eq!(Settings::default().destination(&url).as_str(), url.as_str());
        let redirected = Settings {
            redirect_to: Some("127.0.0.1:4000".parse().unwrap()),
            ..Settings::default()
        };
        assert_eq!(
            redirected.destination(&url).as_str(),
            "http://127.0.0.1:4000/v2/enqueue?x=1"
        );
        let v6 = Settings {
            redirect_to: Some("[::1]:4000".parse().unwrap()),
            ..Settings::default()
        };
        assert_eq!(
            v6.destination(&url).as_str(),
            "http://[::1]:4000/v2/enqueue?x=1"
        );
    }

    #[test]
    fn only_tests_can_redirect() {
        assert!(toml::from_str::<Settings>(r#"redirect_to = "127.0.0.1:1""#).is_err());
        let settings: Settings = toml::from_str("loopback_only = true").unwrap();
        assert!(settings.loopback_only);
    }
}
