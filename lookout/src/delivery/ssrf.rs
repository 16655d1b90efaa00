//! The SSRF guard: deliveries go to the public internet only.
//!
//! Targets come from configuration that users type, so an engine running inside a
//! network must not become a way into it (cloud metadata at `169.254.169.254`, an admin
//! panel on `10.0.0.5`, a database on `localhost`). Every address a request could
//! connect to is checked:
//!
//! - **Names** are resolved by [`GuardedResolver`], the HTTP client's only resolver. It
//!   drops blocked addresses and hands the client the checked ones; the client connects
//!   to those and never looks the name up again, so a second DNS answer (rebinding)
//!   cannot swap in an internal address.
//! - **IP literals** (`http://10.0.0.1/`, and the odd spellings `http://2130706433/`,
//!   `http://0x7f.1/`, `http://0/` that URL parsing turns into them) never reach a
//!   resolver: [`Guard::check_url`] checks them before anything is sent.
//! - Redirects are never followed and proxies never come from the environment (see
//!   [`Transport`](crate::Transport)), the two other ways around a resolver-only guard.
//!
//! `allow_networks` in the `[engine]` settings lets chosen networks through;
//! `loopback_only` turns the guard around for tests: only loopback passes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;
use url::{Host, Url};

use crate::delivery::retry::Retry;
use crate::settings::Settings;

/// A target the guard refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The host as written in the URL, when it is a name (it resolved to `addr`).
    pub host: Option<String>,
    pub addr: IpAddr,
    /// What kind of address it is: `"a private address"`, `"a loopback address"`, …
    pub why: String,
    /// How to let it through, if that is wanted.
    pub hint: &'static str,
}

const ALLOW_HINT: &str = "allow it with `allow_networks` in [engine]";
const LOOPBACK_ONLY_HINT: &str = "`loopback_only` is set: only loopback addresses pass";

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(
                f,
                "blocked: {host} resolves to {}, {} ({})",
                self.addr, self.why, self.hint
            ),
            None => write!(f, "blocked: {} is {} ({})", self.addr, self.why, self.hint),
        }
    }
}

impl std::error::Error for Blocked {}

/// Decides which addresses may be connected to.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Arc<[IpNet]>,
    /// Everything but loopback is refused, public addresses included.
    loopback_only: bool,
}

impl Guard {
    /// A guard letting `allow` through, and every public address.
    pub fn new(allow: &[IpNet]) -> Guard {
        Guard {
            allow: allow.iter().map(IpNet::trunc).collect(),
            loopback_only: false,
        }
    }

    /// A guard letting loopback addresses through and nothing else. Tests run with it:
    /// a test given a wrong URL fails instead of reaching the internet.
    pub fn loopback_only() -> Guard {
        Guard {
            allow: Arc::new([]),
            loopback_only: true,
        }
    }

    /// The guard `settings` ask for.
    pub fn for_settings(settings: &Settings) -> Guard {
        if settings.loopback_only {
            Guard::loopback_only()
        } else {
            Guard::new(&settings.allow_networks)
        }
    }

    /// Why `addr` may not be connected to, if it may not.
    pub fn check(&self, addr: IpAddr) -> Result<(), Blocked> {
        if self.loopback_only {
            return check_loopback(addr);
        }
        if self.allows(addr) {
            return Ok(());
        }
        match blocked_because(addr) {
            Some(why) => Err(Blocked {
                host: None,
                addr,
                why,
                hint: ALLOW_HINT,
            }),
            None => Ok(()),
        }
    }

    /// Checks a URL whose host is an IP address (names are checked when resolved).
    pub fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        match url.host() {
            Some(Host::Ipv4(v4)) => self.check(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => self.check(IpAddr::V6(v6)),
            Some(Host::Domain(_)) | None => Ok(()),
        }
    }

    /// [`check_url`](Self::check_url), taking `localhost` for the loopback address it
    /// names.
    pub fn check_literal(&self, url: &Url) -> Result<(), Blocked> {
        match url.host() {
            Some(Host::Domain(name)) if is_localhost(name) => {
                self.check(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            _ => self.check_url(url),
        }
    }

    /// The check of [`check_literal`](Self::check_literal) for a host that is not in an
    /// HTTP URL (an SMTP server, a broker's host): an IP address in any spelling a
    /// resolver takes (`127.1`, `0x7f.0.0.1`, `[::1]`) or `localhost` is refused when the
    /// guard refuses it; other names pass (they are resolved and checked when sending).
    pub fn check_host_literal(&self, host: &str) -> Result<(), Blocked> {
        match url::Host::parse(host) {
            Ok(url::Host::Ipv4(v4)) => self.check(IpAddr::V4(v4)),
            Ok(url::Host::Ipv6(v6)) => self.check(IpAddr::V6(v6)),
            Ok(url::Host::Domain(name)) if is_localhost(&name) => {
                self.check(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            _ => Ok(()),
        }
    }

    /// Keeps the addresses that may be connected to; when none may, says why (for the
    /// first one).
    pub fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Blocked> {
        let mut first_blocked = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|addr| match self.check(addr.ip()) {
                Ok(()) => true,
                Err(blocked) => {
                    first_blocked.get_or_insert(blocked);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), first_blocked) {
            (true, Some(blocked)) => Err(Blocked {
                host: Some(host.to_owned()),
                ..blocked
            }),
            _ => Ok(allowed),
        }
    }

    /// The address to connect to for a host that is not reached over HTTP (an SMTP
    /// server, a message broker), checked as HTTP targets are: the host itself when it
    /// is an IP address, else the first address its name resolves to that the guard
    /// allows. The caller connects to exactly this address, so a second lookup
    /// (rebinding) cannot swap in an internal one. A failed lookup may succeed later; a
    /// refusal is final.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<IpAddr, (String, Retry)> {
        let blocked = |blocked: Blocked| (blocked.to_string(), Retry::No);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check(ip).map(|()| ip).map_err(blocked);
        }
        if self.loopback_only && !is_localhost(host) {
            // Not even a DNS query leaves the machine.
            let refused = format!("blocked: {host} is not looked up ({LOOPBACK_ONLY_HINT})");
            return Err((refused, Retry::No));
        }
        let unresolved = |why: String| {
            let reason = format!("cannot resolve {host}: {why}");
            (reason, Retry::Yes { after: None })
        };
        let found = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| unresolved(e.to_string()))?;
        let allowed = self.filter(host, found).map_err(blocked)?;
        allowed
            .first()
            .map(SocketAddr::ip)
            .ok_or_else(|| unresolved("no address".to_owned()))
    }

    fn allows(&self, addr: IpAddr) -> bool {
        let embedded = embedded_v4(addr).map(IpAddr::V4);
        self.allow
            .iter()
            .any(|net| net.contains(&addr) || embedded.is_some_and(|v4| net.contains(&v4)))
    }
}

fn check_loopback(addr: IpAddr) -> Result<(), Blocked> {
    let v4 = embedded_v4(addr).map(IpAddr::V4);
    if addr.is_loopback() || v4.is_some_and(|v4| v4.is_loopback()) {
        return Ok(());
    }
    Err(Blocked {
        host: None,
        addr,
        why: blocked_because(addr).unwrap_or_else(|| "a public address".to_owned()),
        hint: LOOPBACK_ONLY_HINT,
    })
}

/// Why an address is not a public internet address, or `None` when it is.
pub fn blocked_because(addr: IpAddr) -> Option<String> {
    match addr {
        IpAddr::V4(v4) => v4_kind(v4).map(|kind| format!("{} address", article(kind))),
        IpAddr::V6(v6) => v6_blocked_because(v6),
    }
}

fn article(kind: &str) -> String {
    let vowel = kind.starts_with(['a', 'e', 'i', 'o', 'u', 'I']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

/// IPv4 special-purpose ranges (IANA registry) that are not the public internet.
const V4_RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "unspecified (\"this network\")"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
];

/// IPv6 ranges that are not the public internet (those embedding IPv4 are handled
/// apart, by the IPv4 address inside).
const V6_RANGES: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignment"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
    ("64:ff9b:1::/48", "local-use NAT64"),
];

/// The ranges above, parsed once.
static RANGES: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    V4_RANGES
        .iter()
        .chain(V6_RANGES)
        .map(|(net, kind)| (net.parse().expect("a valid range"), *kind))
        .collect()
});

fn v4_kind(v4: Ipv4Addr) -> Option<&'static str> {
    find_range(IpAddr::V4(v4))
}

fn find_range(addr: IpAddr) -> Option<&'static str> {
    RANGES
        .iter()
        .find_map(|(net, kind)| net.contains(&addr).then_some(*kind))
}

fn v6_blocked_because(v6: Ipv6Addr) -> Option<String> {
    if let Some(kind) = find_range(IpAddr::V6(v6)) {
        return Some(format!("{} address", article(kind)));
    }
    let (form, v4) = embedding(v6)?;
    match v4_kind(v4) {
        Some(kind) => Some(format!(
            "{} of {v4}, {} address",
            article(form),
            article(kind)
        )),
        // A deprecated form with nothing legitimate behind it.
        None if form == "IPv4-compatible address" => Some(format!("{} address", article(form))),
        None => None,
    }
}

/// The IPv4 address an IPv6 address stands for, and the name of that form.
fn embedding(v6: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let s = v6.segments();
    let o = v6.octets();
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(("IPv4-mapped address", last32)),
        [0, 0, 0, 0, 0, 0, _, _] => Some(("IPv4-compatible address", last32)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(("NAT64 address", last32)),
        [0x2002, _, _, ..] => Some(("6to4 address", Ipv4Addr::new(o[2], o[3], o[4], o[5]))),
        _ => None,
    }
}

fn embedded_v4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => embedding(v6).map(|(_, v4)| v4),
    }
}

/// The HTTP client's resolver: looks a name up once and keeps only the addresses the
/// guard allows. The client connects to exactly these.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Guard,
}

impl GuardedResolver {
    pub fn new(guard: Guard) -> Self {
        GuardedResolver { guard }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if guard.loopback_only && !is_localhost(&host) {
                // Not even a DNS query leaves the machine.
                let refused = format!("blocked: {host} is not looked up ({LOOPBACK_ONLY_HINT})");
                return Err(std::io::Error::other(refused).into());
            }
            // Port 0: the client puts in the URL's port.
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = guard.filter(&host, found)?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// `localhost` and its subdomains, which resolve to loopback without asking anyone.
fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> Option<String> {
        let url = Url::parse(text).unwrap();
        Guard::default()
            .check_url(&url)
            .err()
            .map(|b| b.to_string())
    }

    #[test]
    fn literal_spellings_of_loopback_are_caught() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://017700000001/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::127.0.0.1]/",
        ] {
            let why = blocked(url).unwrap_or_else(|| panic!("{url} passed"));
            assert!(why.contains("loopback"), "{url}: {why}");
        }
    }

    #[test]
    fn hosts_outside_urls_are_caught_in_every_spelling() {
        let guard = Guard::default();
        for host in [
            "127.0.0.1",
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "[::1]",
            "localhost",
        ] {
            assert!(guard.check_host_literal(host).is_err(), "{host} passed");
        }
        assert!(guard.check_host_literal("smtp.example.com").is_ok());
        assert!(Guard::loopback_only().check_host_literal("127.1").is_ok());
    }

    #[test]
    fn unspecified_addresses_are_caught() {
        assert!(
            blocked("http://0/")
                .unwrap()
                .contains("0.0.0.0 is an unspecified")
        );
        assert!(blocked("http://0.0.0.0:8080/").is_some());
        assert!(blocked("http://[::]/").unwrap().contains("unspecified"));
    }

    #[test]
    fn internal_ranges_are_caught() {
        let cases = [
            ("10.0.0.1", "blocked: 10.0.0.1 is a private address"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("240.0.0.1", "reserved"),
            ("[fd00::1]", "unique local"),
            ("[fe80::1]", "link-local"),
            ("[ff02::1]", "multicast"),
            ("[2001:db8::1]", "documentation"),
            (
                "[::ffff:10.1.2.3]",
                "IPv4-mapped address of 10.1.2.3, a private",
            ),
            ("[::ffff:169.254.169.254]", "link-local"),
            ("[64:ff9b::a00:1]", "NAT64 address of 10.0.0.1"),
            ("[2002:7f00:1::]", "6to4 address of 127.0.0.1"),
        ];
        for (host, want) in cases {
            let why =
                blocked(&format!("http://{host}/")).unwrap_or_else(|| panic!("{host} passed"));
            assert!(why.contains(want), "{host}: {why}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for url in [
            "http://93.184.215.14/",
            "http://1.1.1.1/",
            "http://[2606:4700:4700::1111]/",
            "http://[::ffff:1.1.1.1]/",
            "http://[64:ff9b::1.1.1.1]/",
            "https://hooks.example.com/x",
        ] {
            assert_eq!(blocked(url), None, "{url}");
        }
    }

    #[test]
    fn the_allow_list_opens_chosen_networks_only() {
        let guard = Guard::new(&[
            "127.0.0.0/8".parse().unwrap(),
            "10.1.2.0/24".parse().unwrap(),
        ]);
        let ok = |ip: &str| guard.check(ip.parse().unwrap()).is_ok();
        assert!(ok("127.0.0.1"));
        assert!(ok("::ffff:127.0.0.1"));
        assert!(ok("10.1.2.200"));
        assert!(!ok("10.1.3.1"));
        assert!(!ok("::1"));
        assert!(!ok("169.254.169.254"));
    }

    #[test]
    fn filtering_keeps_the_allowed_and_explains_the_rest() {
        let guard = Guard::default();
        let public: SocketAddr = "1.1.1.1:0".parse().unwrap();
        let private: SocketAddr = "10.0.0.1:0".parse().unwrap();
        assert_eq!(
            guard.filter("mixed.test", [private, public]).unwrap(),
            [public]
        );
        let err = guard.filter("inside.test", [private]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "blocked: inside.test resolves to 10.0.0.1, a private address \
             (allow it with `allow_networks` in [engine])"
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        use reqwest::dns::Resolve as _;
        let resolver = GuardedResolver::new(Guard::default());
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        assert!(err.to_string().contains("loopback"), "{err}");
        let allowed = GuardedResolver::new(Guard::new(&["127.0.0.0/8".parse().unwrap()]));
        let addrs: Vec<_> = allowed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.ip().is_ipv4()),
            "{addrs:?}"
        );
    }

    #[test]
    fn loopback_only_refuses_public_and_internal_addresses_alike() {
        let guard = Guard::loopback_only();
        for ok in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(guard.check(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        let refused = |url: &str| guard.check_url(&Url::parse(url).unwrap()).unwrap_err();
        assert_eq!(
            refused("https://192.0.2.1/hook").to_string(),
            "blocked: 192.0.2.1 is a documentation address \
             (`loopback_only` is set: only loopback addresses pass)"
        );
        assert!(
            refused("http://1.1.1.1/")
                .to_string()
                .contains("1.1.1.1 is a public address")
        );
        assert!(
            refused("http://[2606:4700:4700::1111]/")
                .why
                .contains("public")
        );
        assert!(refused("http://10.0.0.1/").why.contains("private"));
    }

    #[tokio::test]
    async fn loopback_only_looks_up_localhost_alone() {
        use reqwest::dns::Resolve as _;
        let resolver = GuardedResolver::new(Guard::loopback_only());
        let addrs: Vec<_> = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        let err = match resolver
            .resolve("hooks.example.invalid".parse().unwrap())
            .await
        {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err.to_string(),
        };
        assert!(
            err.starts_with("blocked: hooks.example.invalid is not looked up"),
            "{err}"
        );
    }
}
