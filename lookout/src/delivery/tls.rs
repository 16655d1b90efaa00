//! TLS failures, for HTTP and SMTP alike: found in an error's chain of causes, and said
//! as a sentence an operator can act on.
//!
//! A TLS failure is final: a certificate refused now is refused on the next try too,
//! and a server that does not speak TLS on a port will not start to. rustls prints some
//! of its errors as Rust values (`invalid peer certificate: UnknownIssuer`,
//! `Other(OtherError(CaUsedAsEndEntity))`), so the words are made here, once.

use std::error::Error;

use rustls::{CertificateError, Error as TlsError};

/// The TLS error somewhere in `err`'s chain of causes, if the failure was one.
pub(crate) fn failure_in<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a TlsError> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(tls) = tls_error_itself(current) {
            return Some(tls);
        }
        cause = current.source();
    }
    None
}

/// `err` as rustls' error, looking inside io::Errors: an io::Error's `source()` skips
/// the error it wraps (it returns that error's own source), and the TLS streams wrap
/// rustls' error in one, sometimes in two.
fn tls_error_itself<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a TlsError> {
    let mut current = err;
    for _ in 0..8 {
        if let Some(tls) = current.downcast_ref::<TlsError>() {
            return Some(tls);
        }
        let inner = current.downcast_ref::<std::io::Error>()?.get_ref()?;
        current = inner;
    }
    None
}

/// The failure as a reason: "TLS failed: …", in words.
pub(crate) fn describe(err: &TlsError) -> String {
    let why = match err {
        TlsError::InvalidCertificate(certificate) => refused_certificate(certificate),
        // What came back was not TLS at all: typically a plain-text port.
        TlsError::InvalidMessage(_)
        | TlsError::InappropriateMessage { .. }
        | TlsError::InappropriateHandshakeMessage { .. } => {
            "the server did not answer in TLS (is this a plain-text port?)".to_owned()
        }
        TlsError::AlertReceived(alert) => {
            format!(
                "the server refused the handshake ({})",
                words(&format!("{alert:?}"))
            )
        }
        TlsError::PeerIncompatible(why) => {
            format!(
                "the server's TLS is incompatible ({})",
                words(&format!("{why:?}"))
            )
        }
        TlsError::PeerMisbehaved(why) => {
            format!(
                "the server broke the TLS protocol ({})",
                words(&format!("{why:?}"))
            )
        }
        TlsError::NoCertificatesPresented => "the server sent no certificate".to_owned(),
        other => other.to_string(),
    };
    format!("TLS failed: {why}")
}

fn refused_certificate(err: &CertificateError) -> String {
    use CertificateError as Cert;
    let sentence = match err {
        Cert::UnknownIssuer => {
            "the server's certificate is not signed by an authority this machine trusts \
             (self-signed, or from a private CA)"
        }
        Cert::Expired | Cert::ExpiredContext { .. } => "the server's certificate has expired",
        Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (is this machine's clock right?)"
        }
        Cert::NotValidForName => "the server's certificate is for another host name",
        // Its own text names the host and what the certificate is valid for.
        Cert::NotValidForNameContext { .. } => {
            return format!("the server's certificate is for another host name ({err})");
        }
        Cert::Revoked => "the server's certificate has been revoked",
        Cert::BadSignature => "the server's certificate has a bad signature",
        // The verifier's own error, e.g. webpki's `CaUsedAsEndEntity`: its text is a
        // Rust name.
        Cert::Other(other) => return other_certificate_problem(&other.0.to_string()),
        _ => return refused_as(&format!("{err:?}")),
    };
    sentence.to_owned()
}

fn other_certificate_problem(name: &str) -> String {
    match name {
        "CaUsedAsEndEntity" => "the server's certificate is a CA certificate, not a server's \
                                (a self-signed certificate made as a CA?)"
            .to_owned(),
        _ => refused_as(name),
    }
}

fn refused_as(rust_name: &str) -> String {
    // `…Context` variants are the same failure with details attached.
    let name = rust_name.split(' ').next().unwrap_or(rust_name);
    let name = name.strip_suffix("Context").unwrap_or(name);
    format!("the server's certificate was refused ({})", words(name))
}

/// The first Rust name in `debug` (`UnknownIssuer`, `HandshakeFailure { .. }`) as
/// lower-case words: "unknown issuer", "handshake failure".
fn words(debug: &str) -> String {
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|part| !part.is_empty())
        .unwrap_or(debug);
    let mut text = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() && !text.is_empty() {
            text.push(' ');
        }
        text.push(c.to_ascii_lowercase());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn certificate_failures_read_as_sentences() {
        let unknown = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            describe(&unknown),
            "TLS failed: the server's certificate is not signed by an authority this \
             machine trusts (self-signed, or from a private CA)"
        );
        let named = std::io::Error::other("CaUsedAsEndEntity");
        let ca = TlsError::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(named),
        )));
        assert_eq!(
            describe(&ca),
            "TLS failed: the server's certificate is a CA certificate, not a server's \
             (a self-signed certificate made as a CA?)"
        );
        let odd = TlsError::InvalidCertificate(CertificateError::UnhandledCriticalExtension);
        assert_eq!(
            describe(&odd),
            "TLS failed: the server's certificate was refused (unhandled critical extension)"
        );
    }

    #[test]
    fn found_inside_an_io_error() {
        let tls = TlsError::InvalidCertificate(CertificateError::Revoked);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let found = failure_in(&io).expect("found");
        assert!(matches!(
            found,
            TlsError::InvalidCertificate(CertificateError::Revoked)
        ));
        assert!(failure_in(&std::io::Error::other("reset")).is_none());
    }
}
