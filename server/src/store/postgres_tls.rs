//! PostgreSQL over TLS, asked for in the URL as libpq reads it: `sslmode=disable` (the
//! default here: a private network), `require` (encrypted; the server's certificate is
//! not checked, as libpq does), or `verify-full` (encrypted, and the certificate must
//! chain to `sslrootcert=PATH`, or to the system's roots without it, and name the host).
//! tokio-postgres reads neither `verify-full` nor `sslrootcert`: they are taken out of
//! the URL here and turned into a rustls configuration.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::{Result, StoreError};

/// What the URL asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Require,
    VerifyFull { root: Option<PathBuf> },
}

fn bad(problem: String) -> StoreError {
    StoreError::Backend(format!("invalid PostgreSQL URL: {problem}"))
}

/// Takes `sslmode` and `sslrootcert` out of `url`: the URL tokio-postgres is given, and
/// the mode.
pub fn split(url: &str) -> Result<(String, SslMode)> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Ok((url.to_owned(), SslMode::Disable)); // Left to tokio-postgres to judge.
    };
    let (mut mode, mut root) = (None, None);
    // The other parameters are kept as written: re-encoding would turn `%20` into `+`,
    // which tokio-postgres does not read as a space.
    let mut kept = Vec::new();
    for pair in parsed.query().unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            let value: String = form_urlencoded::parse(format!("v={value}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect();
            value
        };
        match key {
            "sslmode" => mode = Some(decoded()),
            "sslrootcert" => root = Some(PathBuf::from(decoded())),
            "" => {}
            _ => kept.push(pair),
        }
    }
    let kept = kept.join("&");
    let mode = match (mode.as_deref(), root) {
        (None | Some("disable"), None) => SslMode::Disable,
        (Some("require"), None) => SslMode::Require,
        (Some("verify-full"), root) => SslMode::VerifyFull { root },
        (Some(other), None) => {
            return Err(bad(format!(
                "sslmode={other} is not supported (use disable, require or verify-full)"
            )));
        }
        (_, Some(_)) => {
            return Err(bad(
                "sslrootcert needs sslmode=verify-full (it is what checks the certificate)".into(),
            ));
        }
    };
    parsed.set_query((!kept.is_empty()).then_some(kept.as_str()));
    Ok((parsed.to_string(), mode))
}

/// The rustls connector for `mode` (`None`: plain TCP).
pub fn connector(mode: &SslMode) -> Result<Option<MakeRustlsConnect>> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let config = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        SslMode::VerifyFull { root: Some(path) } => {
            let mut roots = RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                let problem = format!("sslrootcert {}: no certificate in it", path.display());
                return Err(bad(problem));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        SslMode::VerifyFull { root: None } => {
            use rustls_platform_verifier::BuilderVerifierExt as _;
            builder
                .with_platform_verifier()
                .map_err(|e| bad(e.to_string()))?
                .with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// A handshake signature method of [`ServerCertVerifier`]: both TLS versions check it
/// the same way, with the provider's algorithms, only through a different function.
macro_rules! check_signature {
    ($method:ident, $check:path) => {
        fn $method(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            $check(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
    };
}

/// `sslmode=require`: any certificate, as libpq does (encryption against eavesdropping,
/// not against an impostor: that is `verify-full`). Signatures are still checked, so
/// the handshake itself is sound.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    check_signature!(
        verify_tls12_signature,
        rustls::crypto::verify_tls12_signature
    );
    check_signature!(
        verify_tls13_signature,
        rustls::crypto::verify_tls13_signature
    );

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, mode) = split(
            "postgres://lookout@db:5432/x?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=a",
        )
        .unwrap();
        assert_eq!(url, "postgres://lookout@db:5432/x?application_name=a");
        let root = Some(PathBuf::from("/etc/ca.pem"));
        assert_eq!(mode, SslMode::VerifyFull { root });
        let (url, mode) = split("postgres://lookout@db/x?sslmode=require").unwrap();
        assert_eq!(
            (url.as_str(), mode),
            ("postgres://lookout@db/x", SslMode::Require)
        );
        assert_eq!(split("postgres://db/x").unwrap().1, SslMode::Disable);
        for (bad, says) in [
            (
                "postgres://db/x?sslmode=verify-ca",
                "sslmode=verify-ca is not supported",
            ),
            (
                "postgres://db/x?sslmode=require&sslrootcert=/ca",
                "sslrootcert needs",
            ),
        ] {
            let err = split(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let missing = SslMode::VerifyFull {
            root: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let err = connector(&missing).err().unwrap().to_string();
        assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
    }
}
