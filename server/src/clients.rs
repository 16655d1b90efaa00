//! Who a request comes from, and how much each client holds at once.
//!
//! The client is the TCP peer's address, unless the peer is one of the configured
//! trusted proxies: then it is the address that proxy forwarded for, read from
//! `Forwarded: for=` (RFC 7239) or, without one, `X-Forwarded-For`. Walking those from
//! the right (the hop nearest to this server), every address that is itself a trusted
//! proxy is passed over; the first one that is not is the client. A peer that is not a
//! trusted proxy may write what it likes there: it is not read.
//!
//! [`PerClient`] counts what each client holds (connections, requests, previews) under a
//! cap. IPv6 clients are counted by their /64, the block one host is usually given.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
pub use ipnet::IpNet;

/// The request extension naming the client (inserted by `listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { networks }
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks.iter().any(|net| net.contains(&address))
    }
}

/// An address or a network: `10.0.0.7`, `10.0.0.0/8`, `::1`, `fd00::/8`.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is neither an IP address nor a network (10.0.0.0/8)"))
}

/// The client of a request that came from `peer`: the peer itself, or, when the peer is
/// a trusted proxy, the address it forwarded for (see the module's docs).
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
    let Some(hops) = hops else {
        return peer;
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            // A hop the proxy could not name: the client is behind it, unknown; the
            // last address known stands for it.
            None => return client,
            Some(address) => {
                client = canonical(*address);
                if !trusted.contains(client) {
                    return client;
                }
            }
        }
    }
    client
}

/// The `for=` of every element of the `Forwarded` headers, in order (`None` for a hop
/// given as `unknown`, obfuscated or unreadable); `None` when no element has one.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut named = false;
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in split_outside_quotes(value, ',') {
            let node = split_outside_quotes(element, ';')
                .into_iter()
                .find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then_some(value)
                });
            named |= node.is_some();
            hops.push(node.and_then(|node| node_address(&unquote(node.trim()))));
        }
    }
    named.then_some(hops)
}

/// The addresses of the `X-Forwarded-For` headers, in order; `None` without one.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(value) => hops.extend(value.split(',').map(|hop| node_address(hop.trim()))),
            Err(_) => hops.push(None),
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// `text` cut at every `separator` that is not inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A quoted string's content (`"[::1]:80"` → `[::1]:80`), or the token as it is.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// The address of a node: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare IPv6 address; `None` for `unknown`, an obfuscated
/// name (`_hidden`) or anything else.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (address, _) = rest.split_once(']')?;
        return address.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    let (address, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// IPv4 addresses written as IPv6 (`::ffff:192.0.2.1`) as the IPv4 addresses they are.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// What a client is counted as: its IPv4 address, or its IPv6 /64.
pub fn client_key(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// How many of something each key holds at once, each key under a cap.
#[derive(Debug)]
pub struct PerClient<K = IpAddr> {
    held: Mutex<HashMap<K, usize>>,
}

impl<K> Default for PerClient<K> {
    fn default() -> Self {
        PerClient {
            held: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> PerClient<K> {
    /// One more for `key`, unless it holds `cap` already; given back when the [`Held`]
    /// is dropped.
    pub fn try_hold(self: &Arc<Self>, key: K, cap: usize) -> Option<Held<K>> {
        let mut held = lock(&self.held);
        let count = held.entry(key.clone()).or_default();
        if *count >= cap {
            if *count == 0 {
                held.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(Held {
            counts: self.clone(),
            key,
        })
    }

    /// How many `key` holds now.
    pub fn holding(&self, key: &K) -> usize {
        lock(&self.held).get(key).copied().unwrap_or(0)
    }

    /// How many keys hold something.
    pub fn clients(&self) -> usize {
        lock(&self.held).len()
    }
}

/// One of what a key holds; dropped, it is given back.
#[derive(Debug)]
pub struct Held<K: Hash + Eq + Clone = IpAddr> {
    counts: Arc<PerClient<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut held = lock(&self.counts.held);
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| parse_network(n).unwrap()).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = trusted(&["10.0.0.1"]);
        let forged = headers(&[
            ("x-forwarded-for", "192.0.2.9"),
            ("forwarded", "for=192.0.2.8"),
        ]);
        assert_eq!(
            client_address(ip("198.51.100.7"), &forged, &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("198.51.100.7"), &forged, &TrustedProxies::default()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8", "::1"]);
        let peer = ip("10.0.0.1");
        let cases = [
            // nginx's $proxy_add_x_forwarded_for: what the client wrote, then the client.
            (
                vec![("x-forwarded-for", "203.0.113.5, 192.0.2.1")],
                "192.0.2.1",
            ),
            // Two proxies of ours: the inner one is passed over.
            (
                vec![("x-forwarded-for", "192.0.2.1, 10.1.2.3")],
                "192.0.2.1",
            ),
            (
                vec![
                    ("x-forwarded-for", "192.0.2.1"),
                    ("x-forwarded-for", "10.1.2.3"),
                ],
                "192.0.2.1",
            ),
            (vec![("x-forwarded-for", "192.0.2.1:5123")], "192.0.2.1"),
            // Forwarded wins over X-Forwarded-For, with quoting, ports and IPv6.
            (
                vec![
                    ("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"),
                    ("x-forwarded-for", "192.0.2.1"),
                ],
                "192.0.2.60",
            ),
            (
                vec![(
                    "forwarded",
                    "for=\"[2001:db8:cafe::17]:4711\", for=10.9.9.9",
                )],
                "2001:db8:cafe::17",
            ),
            (
                vec![("forwarded", "For=\"192.0.2.43:47011\";proto=https")],
                "192.0.2.43",
            ),
            // Forwarded without `for`: X-Forwarded-For is read.
            (
                vec![
                    ("forwarded", "proto=https"),
                    ("x-forwarded-for", "192.0.2.2"),
                ],
                "192.0.2.2",
            ),
            // An unknown or obfuscated hop: the proxy that saw it stands for the client.
            (vec![("forwarded", "for=unknown")], "10.0.0.1"),
            (vec![("forwarded", "for=_hidden, for=10.2.2.2")], "10.2.2.2"),
            (vec![("x-forwarded-for", "nonsense")], "10.0.0.1"),
            // Only trusted addresses: the left-most of them.
            (vec![("x-forwarded-for", "10.3.3.3, 10.2.2.2")], "10.3.3.3"),
            // No header: the proxy itself.
            (vec![], "10.0.0.1"),
            // An IPv4 client written as IPv6.
            (vec![("x-forwarded-for", "::ffff:192.0.2.77")], "192.0.2.77"),
        ];
        for (pairs, client) in cases {
            assert_eq!(
                client_address(peer, &headers(&pairs), &proxies),
                ip(client),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn networks_and_addresses_are_read_and_nonsense_is_refused() {
        assert_eq!(
            parse_network("127.0.0.2").unwrap(),
            "127.0.0.2/32".parse::<IpNet>().unwrap()
        );
        assert!(parse_network("10.0.0.0/8").is_ok() && parse_network("::1").is_ok());
        let refused = parse_network("proxy.example").unwrap_err();
        assert!(refused.contains("proxy.example"), "{refused}");
        let sections = serde_json::json!({"server": {"trusted_proxies": ["10.0.0.0/33"]}});
        let read = crate::server_settings::ServerSettings::from_sections;
        let problem = read(sections.as_object().unwrap()).unwrap_err();
        assert!(problem.starts_with("server.trusted_proxies"), "{problem}");
        let sections = serde_json::json!({"server": {"trusted_proxy": []}});
        assert!(read(sections.as_object().unwrap()).is_err());
    }

    #[test]
    fn each_client_holds_at_most_its_cap_and_gives_back_on_drop() {
        let counts = Arc::new(PerClient::default());
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let first = counts.try_hold(a, 2).unwrap();
        let second = counts.try_hold(a, 2).unwrap();
        assert!(counts.try_hold(a, 2).is_none());
        let other = counts.try_hold(b, 2).unwrap();
        assert_eq!((counts.holding(&a), counts.clients()), (2, 2));
        drop(first);
        assert!(counts.try_hold(a, 2).is_some());
        drop((second, other));
        assert_eq!(
            counts.clients(),
            0,
            "nothing is kept for clients holding nothing"
        );
        assert!(counts.try_hold(a, 0).is_none());
        assert_eq!(counts.clients(), 0);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
