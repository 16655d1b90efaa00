//! Who is looking at the console: a session kept in the store, made either by signing
//! in with the admin token or by opening a portal link (`lookout portal-link`).
//!
//! The session cookie holds only a random secret (32 bytes); the store keeps an HMAC of
//! it (keyed by the admin token) under a separate id (`ses_…`), so signing out or an
//! admin's `lookout sessions revoke` ends it at once, a copy of the database opens
//! nothing, and changing the admin token ends every session.
//! A portal link is kept too (`lnk_…`, its product and expiry); the URL carries its id
//! and an HMAC of the id with a key derived from the admin token, so neither an id read
//! from `lookout portal-link list` nor a guessed one opens anything, and changing the
//! admin token voids every link. Revoking a link ends the sessions it opened. Every
//! state-changing form carries a CSRF token bound to the session (an HMAC of the
//! cookie): a page of another site can neither read it nor forge it.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Console;
use crate::store::{self, ConsoleSession, Millis, PortalLink, Store, StoreError, now_ms};

pub const SESSION_COOKIE: &str = "lookout_session";
/// The double-submit cookie of the sign-in form (there is no session yet to bind to).
pub const SIGNIN_COOKIE: &str = "lookout_signin";
/// How long a session made by signing in lasts.
pub const ADMIN_SESSION: Duration = Duration::from_secs(12 * 3600);
/// The longest a portal link may last unless `serve` is told otherwise
/// (`--max-link-ttl`): a link sent by e-mail should not be a lasting credential.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a session may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything: every product, the catalogue.
    Admin,
    /// One product's pages, nothing else (a portal link).
    Product(String),
}

impl Scope {
    /// The product column of a kept session or link (`None`: admin).
    fn product(&self) -> Option<String> {
        match self {
            Scope::Admin => None,
            Scope::Product(id) => Some(id.clone()),
        }
    }

    fn of_product(product: Option<&str>) -> Scope {
        product.map_or(Scope::Admin, |id| Scope::Product(id.to_owned()))
    }
}

/// The signing key, derived from the admin token.
#[derive(Clone)]
pub struct Keys {
    key: [u8; 32],
    /// To recognise the admin token at sign-in without keeping it.
    token_digest: [u8; 32],
}

impl Keys {
    pub fn from_admin_token(token: &str) -> Keys {
        Keys {
            key: hmac(token.as_bytes(), b"lookout console key v1"),
            token_digest: hmac(b"lookout console sign-in", token.as_bytes()),
        }
    }

    /// Whether `given` is the admin token (compared as digests, in constant time).
    pub fn is_admin_token(&self, given: &str) -> bool {
        let digest = hmac(b"lookout console sign-in", given.as_bytes());
        digest.ct_eq(&self.token_digest).into()
    }

    /// HMAC of `label` and `parts`, hex.
    fn sign(&self, label: &str, parts: &[&str]) -> String {
        let mut message = label.as_bytes().to_vec();
        for part in parts {
            message.push(b'\n');
            message.extend_from_slice(part.as_bytes());
        }
        hex(&hmac(&self.key, &message))
    }

    /// The signature a link with this id carries (`sig=`).
    fn link_sig(&self, id: &str) -> String {
        self.sign("link v2", &[id])
    }

    /// Whether `sig` is the signature of link `id` (in constant time).
    pub fn is_link_sig(&self, id: &str, sig: &str) -> bool {
        same(&self.link_sig(id), sig)
    }

    /// What the store keeps of a session's secret: an HMAC keyed by the admin token, so
    /// the database opens nothing and changing the token ends every session.
    fn digest(&self, secret: &str) -> String {
        self.sign("session v2", &[secret])
    }

    /// The CSRF token of the session whose cookie is `cookie`.
    fn csrf(&self, cookie: &str) -> String {
        self.sign("csrf", &[cookie])
    }
}

/// Starts a session of `scope` until `until` (opened by `link`, if any): its cookie's
/// value, or `None` when that link is revoked or expired by now.
pub async fn start_session(
    store: &dyn Store,
    keys: &Keys,
    scope: &Scope,
    link: Option<&str>,
    until: Millis,
) -> Result<Option<String>, StoreError> {
    let secret = hex(&rand::random::<[u8; 32]>());
    let session = ConsoleSession {
        id: format!("ses_{}", hex(&rand::random::<[u8; 8]>())),
        product: scope.product(),
        link: link.map(str::to_owned),
        created_at: now_ms(),
        expires_at: until,
    };
    let stored = store.put_session(&session, &keys.digest(&secret)).await?;
    Ok(stored.then_some(secret))
}

/// The session a cookie value stands for, if the store still keeps it.
async fn find_session(
    store: &dyn Store,
    keys: &Keys,
    cookie: &str,
) -> Result<Option<Session>, StoreError> {
    let Some(kept) = store
        .session_by_digest(&keys.digest(cookie), now_ms())
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Session {
        scope: Scope::of_product(kept.product.as_deref()),
        id: kept.id,
        csrf: keys.csrf(cookie),
    }))
}

/// A new portal link to the console at `base` (`http://host:port`) for `scope`, lasting
/// `ttl` (at most `max_ttl`): kept in the store, and its URL, which is shown only here.
pub async fn create_link(
    store: &dyn Store,
    admin_token: &str,
    base: &str,
    scope: &Scope,
    (ttl, max_ttl): (Duration, Duration),
) -> Result<(PortalLink, String), LinkError> {
    check_link_ttl(ttl, max_ttl).map_err(LinkError::TooLong)?;
    let created_at = now_ms();
    let link = PortalLink {
        id: format!("lnk_{}", hex(&rand::random::<[u8; 8]>())),
        product: scope.product(),
        created_at,
        expires_at: created_at + store::millis(ttl),
    };
    store.put_link(&link).await.map_err(LinkError::Store)?;
    let sig = Keys::from_admin_token(admin_token).link_sig(&link.id);
    let url = format!(
        "{}/ui/link?id={}&sig={sig}",
        base.trim_end_matches('/'),
        link.id
    );
    Ok((link, url))
}

/// Why no link was made.
#[derive(Debug)]
pub enum LinkError {
    /// Its TTL is over the cap: what to say.
    TooLong(String),
    Store(StoreError),
}

/// Refuses a link lasting longer than `max`, saying what the cap is and how to change it.
pub fn check_link_ttl(ttl: Duration, max: Duration) -> Result<(), String> {
    if ttl.is_zero() {
        return Err("a link must last longer than 0s".to_owned());
    }
    if ttl > max {
        return Err(format!(
            "a portal link may last at most {} (asked: {}); make a shorter one, or raise the \
             cap with `[server] max_link_ttl` (or --max-link-ttl) for serve and this command",
            humantime::format_duration(max),
            humantime::format_duration(ttl)
        ));
    }
    Ok(())
}

/// The session a link opens: its scope and end, if the link is kept, genuine, not
/// expired and not longer than `max_ttl` (a link made for a longer cap than this
/// server's is refused rather than trusted).
pub async fn check_link(
    store: &dyn Store,
    keys: &Keys,
    (id, sig): (&str, &str),
    max_ttl: Duration,
) -> Result<Option<(Scope, Millis)>, StoreError> {
    if !keys.is_link_sig(id, sig) {
        return Ok(None);
    }
    let Some(link) = store.link(id).await? else {
        return Ok(None);
    };
    let lasts = link.expires_at.saturating_sub(link.created_at);
    if link.expires_at <= now_ms() || lasts > store::millis(max_ttl) {
        return Ok(None);
    }
    Ok(Some((
        Scope::of_product(link.product.as_deref()),
        link.expires_at,
    )))
}

/// A signed-in visitor of the console.
#[derive(Debug, Clone)]
pub struct Session {
    pub scope: Scope,
    /// Its id in the store (`ses_…`), to end it: not the cookie, opens nothing.
    pub id: String,
    /// What every form of this session must send back as `csrf`.
    pub csrf: String,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    pub fn may_see(&self, product: &str) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Product(id) => id == product,
        }
    }

    /// Whether `given` is this session's CSRF token.
    pub fn csrf_matches(&self, given: &str) -> bool {
        self.csrf.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// Not signed in (or the session ended): where to go instead.
pub struct SignInFirst;

impl FromRequestParts<Console> for Session {
    type Rejection = SignInFirst;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Console,
    ) -> Result<Self, Self::Rejection> {
        let value = cookie(&parts.headers, SESSION_COOKIE).ok_or(SignInFirst)?;
        // A store that cannot answer opens nothing: sign in again once it is back.
        match find_session(console.store.as_ref(), &console.keys, value).await {
            Ok(Some(session)) => Ok(session),
            Ok(None) => Err(SignInFirst),
            Err(err) => {
                tracing::warn!("console session lookup failed: {err}");
                Err(SignInFirst)
            }
        }
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` for the console's path: never readable by scripts, never sent along
/// by another site's requests, only over TLS when the console is behind TLS.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, headers: &HeaderMap) -> HeaderValue {
    let secure = if behind_tls(headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&cookie).expect("cookie values are hex and names")
}

/// Whether the visitor came over TLS (terminated by a proxy in front of `serve`).
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A fresh random value, hex (the sign-in form's double-submit token).
pub fn random_token() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// Whether two secrets are equal, in constant time.
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_signatures_belong_to_one_id_and_one_admin_token() {
        let keys = Keys::from_admin_token("a-long-enough-admin-token-0123456789");
        let sig = keys.link_sig("lnk_0123");
        assert!(keys.is_link_sig("lnk_0123", &sig));
        assert!(!keys.is_link_sig("lnk_0124", &sig));
        assert!(!keys.is_link_sig("lnk_0123", ""));
        let other = Keys::from_admin_token("another-admin-token-0123456789abcdef");
        assert!(!other.is_link_sig("lnk_0123", &sig));
    }

    #[test]
    fn a_link_longer_than_the_cap_is_refused_saying_the_cap() {
        let day = Duration::from_secs(86_400);
        assert!(check_link_ttl(day, MAX_LINK_TTL).is_ok());
        assert!(check_link_ttl(MAX_LINK_TTL, MAX_LINK_TTL).is_ok());
        let refused = check_link_ttl(MAX_LINK_TTL + day, MAX_LINK_TTL).unwrap_err();
        assert!(
            refused.contains("at most 7days") && refused.contains("8days"),
            "{refused}"
        );
        assert!(check_link_ttl(Duration::ZERO, MAX_LINK_TTL).is_err());
    }

    #[test]
    fn cookies_are_secure_behind_tls() {
        let mut headers = HeaderMap::new();
        let plain = set_cookie(SESSION_COOKIE, "v", ADMIN_SESSION, &headers);
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly; SameSite=Strict") && !plain.contains("Secure"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let secure = set_cookie(SESSION_COOKIE, "v", ADMIN_SESSION, &headers);
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
    }
}
