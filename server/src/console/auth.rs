//! Who is looking at the console: a session cookie signed by the server, made either by
//! signing in with the admin token or by opening a signed link (`lookout portal-link`).
//!
//! Nothing is kept server-side: the cookie says its scope and when it ends, and is
//! signed with a key derived from the admin token (HMAC-SHA256, one label per use). So
//! sessions and links survive a restart, `lookout portal-link` needs nothing but the
//! token `serve` runs with, and changing that token ends every session and link at once.
//! Every state-changing form carries a CSRF token bound to the session (an HMAC of the
//! cookie): a page of another site can neither read it nor forge it.

use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::store::{Millis, now_ms};

pub const SESSION_COOKIE: &str = "lookout_session";
/// The double-submit cookie of the sign-in form (there is no session yet to bind to).
pub const SIGNIN_COOKIE: &str = "lookout_signin";
/// How long a session made by signing in lasts.
pub const ADMIN_SESSION: Duration = Duration::from_secs(12 * 3600);

/// What a session may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything: every product, the catalogue.
    Admin,
    /// One product's pages, nothing else (a portal link).
    Product(String),
}

impl Scope {
    fn encode(&self) -> String {
        match self {
            Scope::Admin => "admin".to_owned(),
            Scope::Product(id) => format!("product:{id}"),
        }
    }

    fn decode(text: &str) -> Option<Scope> {
        match text {
            "admin" => Some(Scope::Admin),
            _ => text
                .strip_prefix("product:")
                .filter(|id| lookout::config::check_name(id).is_ok())
                .map(|id| Scope::Product(id.to_owned())),
        }
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

    /// The query of a signed link (`scope=…&expires=…&sig=…`) for `/ui/link`.
    pub fn link_query(&self, scope: &Scope, expires: Millis) -> String {
        let (scope, expires) = (scope.encode(), expires.to_string());
        let sig = self.sign("link", &[&scope, &expires]);
        format!("scope={scope}&expires={expires}&sig={sig}")
    }

    /// The scope and end of a signed link, if it is genuine and not yet expired.
    pub fn check_link(&self, scope: &str, expires: Millis, sig: &str) -> Option<(Scope, Millis)> {
        let expected = self.sign("link", &[scope, &expires.to_string()]);
        let genuine: bool = expected.as_bytes().ct_eq(sig.as_bytes()).into();
        (genuine && expires > now_ms()).then_some(())?;
        Some((Scope::decode(scope)?, expires))
    }

    /// A new session's cookie value.
    pub fn session(&self, scope: &Scope, expires: Millis) -> String {
        let nonce = hex(&rand::random::<[u8; 16]>());
        let (scope, expires) = (scope.encode(), expires.to_string());
        let sig = self.sign("session", &[&scope, &expires, &nonce]);
        format!("{scope}~{expires}~{nonce}~{sig}")
    }

    /// The session a cookie value stands for, if genuine and not expired.
    fn check_session(&self, value: &str) -> Option<Session> {
        let mut parts = value.rsplitn(4, '~');
        let (sig, nonce, expires, scope) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let expected = self.sign("session", &[scope, expires, nonce]);
        let genuine: bool = expected.as_bytes().ct_eq(sig.as_bytes()).into();
        let expires: Millis = expires.parse().ok()?;
        if !genuine || expires <= now_ms() {
            return None;
        }
        Some(Session {
            scope: Scope::decode(scope)?,
            csrf: self.sign("csrf", &[value]),
        })
    }
}

/// A signed-in visitor of the console.
#[derive(Debug, Clone)]
pub struct Session {
    pub scope: Scope,
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

impl<S> FromRequestParts<S> for Session
where
    Keys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Keys::from_ref(state);
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|value| keys.check_session(value))
            .ok_or(SignInFirst)
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

/// A signed link to the console at `base` (`http://host:port`), opening a session of
/// `scope` that ends after `ttl`: what `lookout portal-link` prints.
pub fn signed_link(base: &str, admin_token: &str, scope: &Scope, ttl: Duration) -> String {
    let expires = now_ms() + crate::store::millis(ttl);
    let query = Keys::from_admin_token(admin_token).link_query(scope, expires);
    format!("{}/ui/link?{query}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_sessions_are_signed_scoped_and_expire() {
        let keys = Keys::from_admin_token("a-long-enough-admin-token-0123456789");
        let later = now_ms() + 60_000;
        let query = keys.link_query(&Scope::Product("acme".into()), later);
        let sig = query.rsplit("sig=").next().unwrap();
        assert_eq!(
            keys.check_link("product:acme", later, sig),
            Some((Scope::Product("acme".into()), later))
        );
        assert_eq!(keys.check_link("product:other", later, sig), None);
        assert_eq!(keys.check_link("admin", later, sig), None);
        assert_eq!(keys.check_link("product:acme", later + 1, sig), None);
        let other = Keys::from_admin_token("another-admin-token-0123456789abcdef");
        assert_eq!(other.check_link("product:acme", later, sig), None);

        let cookie = keys.session(&Scope::Admin, later);
        let session = keys.check_session(&cookie).expect("valid");
        assert!(session.is_admin());
        assert!(session.csrf_matches(&keys.check_session(&cookie).unwrap().csrf));
        let forged = cookie.replacen("admin", "product:acme", 1);
        assert!(keys.check_session(&forged).is_none());
        let expired = keys.session(&Scope::Admin, now_ms() - 1);
        assert!(keys.check_session(&expired).is_none());
        assert!(other.check_session(&cookie).is_none());
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
