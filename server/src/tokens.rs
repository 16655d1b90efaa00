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

/// The least a token Lookout did not generate must take to guess, as the log10 of the
/// guesses an attacker who knows how people pick tokens needs (zxcvbn's estimate): 16
/// random hex digits take about 10^16; a phrase of common words with a sequence, far
/// fewer.
const MIN_GUESSES_LOG10: f64 = 14.0;

/// Refuses a token too short or too predictable to be a secret (`aaaaaaaaaaaaaaaa`,
/// `0123456789abcdef`, `qwertyuiopasdfgh`, `passwordpassword`), saying why without
/// quoting it.
pub fn check_strength(token: &str) -> Result<(), String> {
    let length = token.chars().count();
    if length < 16 {
        return Err(format!("{length} characters; 16 or more are needed"));
    }
    let estimate = zxcvbn::zxcvbn(token, &[]);
    if estimate.guesses_log10() < MIN_GUESSES_LOG10 {
        return Err(format!(
            "too predictable: it is made of {} (about 10^{:.0} guesses; 10^{MIN_GUESSES_LOG10:.0} \
             or more are needed): use random characters, e.g. `openssl rand -hex 32`",
            patterns_found(&estimate),
            estimate.guesses_log10().floor()
        ));
    }
    Ok(())
}

/// What makes a token easy to guess, in words that do not quote it.
fn patterns_found(estimate: &zxcvbn::Entropy) -> String {
    use zxcvbn::matching::patterns::MatchPattern;
    let mut found: Vec<&str> = Vec::new();
    for part in estimate.sequence() {
        let named = match part.pattern {
            MatchPattern::Dictionary(_) => "dictionary words",
            MatchPattern::Spatial(_) => "keyboard runs",
            MatchPattern::Repeat(_) => "repeats",
            MatchPattern::Sequence(_) => "sequences (like abcd or 6543)",
            MatchPattern::Date(_) => "dates",
            MatchPattern::Regex(_) => "years",
            MatchPattern::BruteForce => continue,
        };
        if !found.contains(&named) {
            found.push(named);
        }
    }
    match found.as_slice() {
        [] => "too few random characters".to_owned(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
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
        assert!(check_strength("trust-test-token-7c1e4a9b3f05d2e8").is_ok());
    }

    #[test]
    fn predictable_tokens_are_refused_saying_why_without_quoting_them() {
        let refused = [
            ("0123456789abcdef", "sequences"),
            ("1234567890123456", "sequences"),
            ("abcdefghijklmnop", "sequences"),
            ("hjkl;'yuiop[]bnm,.", "keyboard runs"),
            ("passwordpassword", "repeats"),
            ("sunshinefootball", "dictionary words"),
        ];
        for (token, why) in refused {
            let problem = check_strength(token).expect_err(token);
            assert!(problem.contains(why), "{token}: {problem}");
            assert!(!problem.contains(token), "{problem}");
        }
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
