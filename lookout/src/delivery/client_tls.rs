//! Client certificates (mutual TLS) for HTTP services, declared as options.
//!
//! A service offers them by listing [`CERTIFICATE_OPTION`], [`KEY_OPTION`] and
//! [`CA_OPTION`] among its options, and does nothing else: the options are checked
//! when they are validated (`lookout validate`, `PUT /v1/products/{id}`: each PEM
//! parses, the key is one rustls can sign with and matches the certificate), and the
//! transport sends that service's requests through a client of its own holding the
//! identity ([`Identity::of`]), built once per identity and kept.
//!
//! The key is a secret option: redacted like any (each line too, see
//! [`Redactor::add`](crate::redact::Redactor::add)); no message here quotes a value.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys, RootCertStore};
use sha2::{Digest, Sha256};

use crate::options::{OptionSpec, Options};

/// The option names, as users write them.
pub const CERTIFICATE: &str = "client_certificate";
pub const KEY: &str = "client_key";
pub const CA: &str = "ca_certificate";

/// The client certificate, PEM (its chain may follow it). Public: a certificate is
/// shown to every server it is presented to.
pub const CERTIFICATE_OPTION: OptionSpec = OptionSpec::string(
    CERTIFICATE,
    "Client certificate to present (PEM, `-----BEGIN CERTIFICATE-----`; intermediates may \
     follow); needs `client_key`.",
)
.public()
.optional()
.checked(check_certificate)
.checked_with(KEY, certificate_has_its_key);

/// The client certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
pub const KEY_OPTION: OptionSpec = OptionSpec::string(
    KEY,
    "Private key of `client_certificate` (PEM: PKCS#8, RSA or EC).",
)
.secret()
.optional()
.checked(check_key)
.checked_with(CERTIFICATE, key_matches_certificate);

/// A private certificate authority to trust instead of the machine's own.
pub const CA_OPTION: OptionSpec = OptionSpec::string(
    CA,
    "Private CA that signed the server's certificate (PEM); when set, only it is trusted.",
)
.public()
.optional()
.checked(check_certificate);

/// What a service's TLS client needs beyond the defaults: a client identity, a private
/// CA, or both.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The certificate then the key, PEM, as reqwest reads an identity.
    certificate_and_key: Option<String>,
    ca: Option<String>,
}

impl Identity {
    /// The identity the options declare, if they declare one (options validated: the
    /// certificate and key are both set or both unset).
    pub fn of(options: &Options) -> Option<Identity> {
        let certificate_and_key = match (options.str(CERTIFICATE), options.str(KEY)) {
            (Some(certificate), Some(key)) => Some(format!("{certificate}\n{key}\n")),
            _ => None,
        };
        let ca = options.str(CA).map(str::to_owned);
        (certificate_and_key.is_some() || ca.is_some()).then_some(Identity {
            certificate_and_key,
            ca,
        })
    }

    /// A digest that tells identities apart (the transport keeps one client per digest)
    /// without keeping a copy of the key as a map key.
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [&self.certificate_and_key, &self.ca] {
            let part = part.as_deref().unwrap_or_default();
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }

    /// `builder` presenting this identity and trusting this CA. The errors name the
    /// option, never its value.
    pub(crate) fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        if let Some(pem) = &self.certificate_and_key {
            let identity = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|_| format!("{CERTIFICATE} and {KEY}: not a usable identity"))?;
            builder = builder.identity(identity);
        }
        if let Some(pem) = &self.ca {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|_| format!("{CA}: not a usable certificate"))?;
            builder = builder.tls_certs_only(roots);
        }
        Ok(builder)
    }
}

/// The certificates in `pem`, or why there are none usable.
fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM ({})", pem_problem(&e)))?;
    if certificates.is_empty() {
        return Err(
            "expected a PEM certificate (`-----BEGIN CERTIFICATE-----`), found none".into(),
        );
    }
    // Parsing each as a trust anchor reads its subject and public key: a certificate
    // whose base64 is intact but whose contents are not X.509 stops here.
    let mut store = RootCertStore::empty();
    for certificate in &certificates {
        store
            .add(certificate.clone())
            .map_err(|e| format!("not a valid X.509 certificate ({})", words(&e)))?;
    }
    Ok(certificates)
}

/// A client certificate (its chain may follow) or a CA's: the same check.
fn check_certificate(pem: &str) -> Result<(), String> {
    certificates(pem).map(drop)
}

/// The private key in `pem`, or why there is none usable.
fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    // Said without the parser's own words: they may quote what it could not read.
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        "expected a PEM private key (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
         `EC PRIVATE KEY`), found none"
            .to_owned()
    })?;
    aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|_| {
            "not a private key this engine can sign with (corrupt, or an unsupported algorithm)"
                .to_owned()
        })?;
    Ok(key)
}

fn check_key(pem: &str) -> Result<(), String> {
    private_key(pem).map(drop)
}

fn certificate_has_its_key(_certificate: &str, key: Option<&str>) -> Result<(), String> {
    match key {
        Some(_) => Ok(()),
        None => Err(format!(
            "set `{KEY}` too: a certificate is presented with its key"
        )),
    }
}

/// A key belongs to the first certificate of the chain: the one the server checks.
fn key_matches_certificate(key: &str, certificate: Option<&str>) -> Result<(), String> {
    let Some(certificate) = certificate else {
        return Err(format!(
            "set `{CERTIFICATE}` too: a key is presented with its certificate"
        ));
    };
    let (Ok(chain), Ok(key)) = (certificates(certificate), private_key(key)) else {
        return Ok(()); // Their own checks said why.
    };
    let provider = aws_lc_rs::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| "not a private key this engine can sign with".to_owned())?;
    match CertifiedKey::new(chain, signing_key).keys_match() {
        Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(format!(
            "does not match `{CERTIFICATE}` (the certificate was issued for another key)"
        )),
        Err(other) => Err(format!(
            "cannot be checked against `{CERTIFICATE}` ({})",
            words(&other)
        )),
    }
}

/// A PEM parsing error in words that never quote the input.
fn pem_problem(err: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as Pem;
    match err {
        Pem::MissingSectionEnd { .. } => "a section has no `-----END …-----` line",
        Pem::IllegalSectionStart { .. } => "a `-----BEGIN …-----` line is malformed",
        Pem::Base64Decode(_) => "the base64 between the lines is corrupt",
        _ => "unreadable",
    }
}

/// A rustls or webpki error, said without quoting anything it was given.
fn words(err: &dyn std::fmt::Debug) -> String {
    let debug = format!("{err:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '(' || *c == ')')
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if name.is_empty() {
        "unreadable".to_owned()
    } else {
        name
    }
}

/// The clients of one transport that present an identity, one per [`Identity`]: built
/// the first time a service sends with it, then kept (a client holds its connection
/// pool). Bounded: identities come from configuration, but a config changed many times
/// over a long run must not grow it without end.
#[derive(Default)]
pub(crate) struct Clients {
    built: std::sync::Mutex<Vec<([u8; 32], reqwest::Client)>>,
}

/// How many identities' clients are kept at once (the oldest is dropped first).
const KEPT: usize = 64;

impl Clients {
    /// The client for `identity`, built by `build` if there is none yet.
    pub(crate) fn get_or_build(
        &self,
        identity: &Identity,
        build: impl FnOnce(&Identity) -> Result<reqwest::Client, String>,
    ) -> Result<reqwest::Client, String> {
        let digest = identity.digest();
        let mut built = self.built.lock().expect("client cache");
        if let Some((_, client)) = built.iter().find(|(d, _)| *d == digest) {
            return Ok(client.clone());
        }
        let client = build(identity)?;
        if built.len() >= KEPT {
            built.remove(0);
        }
        built.push((digest, client.clone()));
        Ok(client)
    }
}

/// Shared by a transport and its clones.
pub(crate) type SharedClients = Arc<Clients>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_never_quote_the_input() {
        let secretish =
            "-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRET!!\n-----END PRIVATE KEY-----\n";
        let why = check_key(secretish).unwrap_err();
        assert!(!why.contains("TOPSECRET"), "{why}");
        let why = check_certificate("no pem here").unwrap_err();
        assert!(why.contains("found none"), "{why}");
        let why =
            check_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err();
        assert!(why.starts_with("not a valid X.509 certificate"), "{why}");
    }

    #[test]
    fn a_key_needs_its_certificate_and_the_other_way_round() {
        assert!(
            key_matches_certificate("k", None)
                .unwrap_err()
                .contains("client_certificate")
        );
        assert!(
            certificate_has_its_key("c", None)
                .unwrap_err()
                .contains("client_key")
        );
    }
}
