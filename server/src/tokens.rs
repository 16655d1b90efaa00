//! Bearer tokens with a scope: who may do what on `lookout serve`'s API.
//!
//! - **admin**: every route (products, tokens, events of every product).
//! - **ingest**: only `POST` of events, and only for the products it names.
//!
//! A token is shown once, when created; the store keeps its SHA-256 only, so a copy of
//! the database gives no one a working token. `LOOKOUT_TOKEN` (or `--token-file`) stays
//! as the bootstrap admin token, never stored.

use std::str::FromStr;

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Millis, millis, now_ms};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Admin,
    Ingest,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Ingest => "ingest",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Scope::Admin),
            "ingest" => Ok(Scope::Ingest),
            other => Err(format!("unknown scope `{other}` (admin or ingest)")),
        }
    }
}

/// A stored token, as listed: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub id: String,
    pub scope: Scope,
    /// For `ingest`: the products it may post events for.
    pub products: Vec<String>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
}

impl Token {
    /// The bootstrap token (`LOOKOUT_TOKEN`): admin, never stored, never expiring.
    pub fn bootstrap() -> Token {
        Token {
            id: "bootstrap".to_owned(),
            scope: Scope::Admin,
            products: Vec::new(),
            created_at: 0,
            expires_at: None,
        }
    }

    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether this token may post events for `product`.
    pub fn may_post_to(&self, product: &str) -> bool {
        self.scope == Scope::Admin || self.products.iter().any(|p| p == product)
    }
}

/// A token to store: its row and the digest of its secret.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: Token,
    pub digest: String,
}

/// A new token: the secret (to show once) and what to store.
pub fn generate(
    scope: Scope,
    products: Vec<String>,
    now: Millis,
    expires_at: Option<Millis>,
) -> (String, NewToken) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("lk_{}", hex(&bytes));
    let token = Token {
        id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
        scope,
        products,
        created_at: now,
        expires_at,
    };
    let digest = digest(&secret);
    (secret, NewToken { token, digest })
}

/// A new token as asked for (`lookout tokens create`, `POST /v1/tokens`): the secret
/// to show once, and what to store; or why not.
pub fn create(
    scope: Scope,
    products: Vec<String>,
    expires_in: Option<std::time::Duration>,
) -> Result<(String, NewToken), String> {
    for product in &products {
        lookout::config::check_name(product).map_err(|problem| format!("product: {problem}"))?;
    }
    match scope {
        Scope::Ingest if products.is_empty() => {
            return Err("an ingest token needs at least one product".into());
        }
        Scope::Admin if !products.is_empty() => {
            return Err("an admin token covers every product: name none".into());
        }
        _ => {}
    }
    let now = now_ms();
    let expires_at = expires_in.map(|d| now.saturating_add(millis(d)));
    Ok(generate(scope, products, now, expires_at))
}

/// The SHA-256 of a token, in hex: what the store keeps and looks tokens up by.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The least a token Lookout did not generate must carry, in bits, estimated from the
/// spread of its characters: 16 random hex digits carry about 55.
const MIN_BITS: f64 = 48.0;

/// Refuses a token too short or too repetitive to be a secret (`aaaaaaaaaaaaaaaa`).
pub fn check_strength(token: &str) -> Result<(), String> {
    let length = token.chars().count();
    if length < 16 {
        return Err(format!("{length} characters; 16 or more are needed"));
    }
    let bits = estimated_bits(token);
    if bits < MIN_BITS {
        return Err(format!(
            "too predictable (about {bits:.0} bits; {MIN_BITS:.0} or more are needed): \
             use random characters, e.g. `openssl rand -hex 32`"
        ));
    }
    Ok(())
}

/// Shannon entropy of the token's characters times its length.
fn estimated_bits(token: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in token.chars() {
        *counts.entry(c).or_insert(0u32) += 1;
    }
    let length = token.chars().count() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&n| {
            let p = f64::from(n) / length;
            -p * p.log2()
        })
        .sum();
    per_char * length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_tokens_are_refused() {
        assert!(check_strength(&"a".repeat(16)).is_err());
        assert!(check_strength(&"ab".repeat(20)).is_err());
        assert!(check_strength("short1234").is_err());
        assert!(check_strength("9f86d081884c7d65").is_ok());
        assert!(check_strength("test-token-0123456789abcdef").is_ok());
    }

    #[test]
    fn generated_tokens_are_strong_and_stored_as_digests() {
        let (secret, new) = generate(Scope::Ingest, vec!["p1".into()], 0, None);
        assert!(check_strength(&secret).is_ok());
        assert_eq!(new.digest, digest(&secret));
        assert!(!new.digest.contains(&secret));
        assert!(new.token.may_post_to("p1"));
        assert!(!new.token.may_post_to("p2"));
    }
}
