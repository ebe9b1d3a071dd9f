//! TLS for the PostgreSQL store, with libpq's URL parameters (PostgreSQL documentation, "SSL
//! Support" of libpq): `sslmode` and `sslrootcert`, through rustls.
//!
//! - `disable`: plain TCP.
//! - `allow`, `prefer` (the default, as in libpq): TLS when the server offers it, else plain;
//!   the certificate is not checked (protects against passive eavesdropping only).
//! - `require`: TLS or no connection; the certificate is not checked.
//! - `verify-ca`: TLS, and the server's certificate must chain to a CA in `sslrootcert`.
//! - `verify-full`: `verify-ca`, and the certificate must name the host of the URL.
//!
//! `sslrootcert` is a PEM file of CA certificates; libpq's default `~/.postgresql/root.crt`
//! is used when it is absent. Both parameters are taken out of the URL before the rest goes
//! to the client library.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore};
use rustls::{SignatureScheme, SupportedProtocolVersion};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when offered (`allow`, `prefer`), unchecked.
    Prefer,
    /// TLS, unchecked.
    Require,
    /// TLS, the chain checked against `sslrootcert`.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// The TLS settings of a URL.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct TlsRequest {
    /// The mode.
    pub mode: SslMode,
    /// The CA file (`sslrootcert`), when the URL names one.
    pub root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` off a URL's query: the URL for the client library and
/// the TLS settings. `Err` names an unknown `sslmode` value.
pub(super) fn split_tls_params(url: &str) -> Result<(String, TlsRequest), String> {
    let mut req = TlsRequest {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), req));
    };
    let mut rest = Vec::new();
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("sslmode", v)) => {
                req.mode = match v {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    _ => {
                        return Err(format!(
                            "sslmode={v}: expected disable, allow, prefer, require, verify-ca or \
                             verify-full"
                        ))
                    }
                }
            }
            Some(("sslrootcert", v)) => {
                req.root_cert = Some(PathBuf::from(super::secrets::percent_decode(v)))
            }
            _ if kv.is_empty() => {}
            _ => rest.push(kv),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, req))
}

/// The CA file a verifying mode reads: `sslrootcert`, else `~/.postgresql/root.crt`.
fn root_cert_file(req: &TlsRequest) -> Result<PathBuf, String> {
    if let Some(f) = &req.root_cert {
        return Ok(f.clone());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.map(|h| h.join(".postgresql/root.crt")) {
        Some(f) if f.is_file() => Ok(f),
        _ => Err(
            "a verifying sslmode needs the CA certificate: add sslrootcert=FILE (a PEM \
                  file) to the URL (libpq's default ~/.postgresql/root.crt does not exist)"
                .into(),
        ),
    }
}

/// The CA certificates of a PEM file.
fn load_roots(file: &Path) -> Result<RootCertStore, String> {
    let at = |m: String| format!("sslrootcert={}: {m}", file.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(file).map_err(|e| at(e.to_string()))? {
        let cert = cert.map_err(|e| at(format!("not a PEM certificate file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| at(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(at("holds no certificate".into()));
    }
    Ok(roots)
}

/// The rustls configuration of a TLS mode (`None` for `disable`), and the CA file it checks
/// against (for messages).
pub(super) fn client_config(
    req: &TlsRequest,
) -> Result<Option<(ClientConfig, Option<PathBuf>)>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&SupportedProtocolVersion] = rustls::DEFAULT_VERSIONS;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let lenient = |chain| {
        Arc::new(Lenient {
            chain,
            provider: provider.clone(),
        })
    };
    let (verifier, file): (Arc<dyn ServerCertVerifier>, _) = match req.mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => (lenient(None), None),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let file = root_cert_file(req)?;
            let roots = Arc::new(load_roots(&file)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert={}: {e}", file.display()))?;
            let v: Arc<dyn ServerCertVerifier> = if req.mode == SslMode::VerifyCa {
                lenient(Some(webpki))
            } else {
                webpki
            };
            (v, Some(file))
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some((config, file)))
}

/// A TLS failure in an error's chain of causes, said for a user: which check failed and what
/// to change. `None` when the chain holds no TLS error.
pub(super) fn explain(
    e: &(dyn std::error::Error + 'static),
    host: &str,
    ca: Option<&Path>,
) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("server does not support TLS") {
            return Some(
                "the server does not offer TLS, and the URL's sslmode requires it (enable `ssl` \
                 on the server, or use sslmode=prefer or disable on a trusted network)"
                    .into(),
            );
        }
        let tls = err.downcast_ref::<Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Error>())
        });
        if let Some(tls) = tls {
            let ca = ca.map_or("the CA file".into(), |f| f.display().to_string());
            return Some(match tls {
                Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature,
                ) => format!(
                    "TLS: the server's certificate is not signed by a CA in sslrootcert={ca} \
                     (wrong CA file, or the server uses another certificate)"
                ),
                Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => format!(
                    "TLS: the server's certificate is not valid for the host `{host}` \
                     (connect with a host name the certificate lists, or use sslmode=verify-ca \
                     to check the CA only)"
                ),
                Error::InvalidCertificate(c) => {
                    format!("TLS: the server's certificate was refused: {c:?}")
                }
                other => format!("TLS handshake failed: {other}"),
            });
        }
        cur = err.source();
    }
    None
}

/// A handshake signature's check.
type Signed = Result<HandshakeSignatureValid, Error>;
/// A certificate.
type Cert<'a> = CertificateDer<'a>;
/// A handshake signature.
type Dss = DigitallySignedStruct;

/// The certificate check of the modes below `verify-full`: none (`prefer`, `require`), or the
/// chain only (`verify-ca`: a certificate for another name passes when its chain does). The
/// handshake signatures are always checked.
#[derive(Debug)]
struct Lenient {
    /// The chain verifier of `verify-ca`; `None`: no certificate check.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(&self, msg: &[u8], cert: &Cert<'_>, dss: &Dss) -> Signed {
        verify_tls12_signature(
            msg,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(&self, msg: &[u8], cert: &Cert<'_>, dss: &Dss) -> Signed {
        verify_tls13_signature(
            msg,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_split_off_the_url() {
        let (url, req) = split_tls_params(
            "postgres://u:p@h:5432/db?connect_timeout=5&sslmode=verify-full&sslrootcert=/a%20b/ca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u:p@h:5432/db?connect_timeout=5");
        assert_eq!(req.mode, SslMode::VerifyFull);
        assert_eq!(req.root_cert, Some(PathBuf::from("/a b/ca.pem")));
        let (url, req) = split_tls_params("postgres://h/db").unwrap();
        assert_eq!(
            (url.as_str(), req.mode),
            ("postgres://h/db", SslMode::Prefer)
        );
        let e = split_tls_params("postgres://h/db?sslmode=secure").unwrap_err();
        assert!(e.contains("sslmode=secure"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let req = |f: &Path| TlsRequest {
            mode: SslMode::VerifyFull,
            root_cert: Some(f.to_path_buf()),
        };
        let e = client_config(&req(&dir.path().join("none.pem"))).unwrap_err();
        assert!(
            e.starts_with("sslrootcert=") && e.contains("none.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(&req(&empty)).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        // The unchecked modes need no file; `disable` needs no TLS at all.
        let plain = |mode| TlsRequest {
            mode,
            root_cert: None,
        };
        assert!(client_config(&plain(SslMode::Require)).unwrap().is_some());
        assert!(client_config(&plain(SslMode::Disable)).unwrap().is_none());
    }
}
