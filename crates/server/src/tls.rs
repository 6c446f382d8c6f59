//! TLS on TCP listeners, as dockerd's `--tls` and `--tlsverify`: the server's
//! certificate and key, and with verification a CA whose signature every
//! client's certificate must carry (the API has no other authentication).
//! rustls with ring, the stack the registry client already uses.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files of `--tlscert`, `--tlskey` and, with `--tlsverify`, `--tlscacert`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate this CA signed.
    pub verify_with: Option<PathBuf>,
}

/// Accepts TLS connections with one configuration (cheap to clone).
#[derive(Clone)]
pub struct TlsAcceptor(pub(crate) tokio_rustls::TlsAcceptor);

fn read_certs(p: &PathBuf, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(p)
        .map_err(|e| format!("could not read {what} {}: {e}", p.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("could not read {what} {}: {e}", p.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {what} {}", p.display()));
    }
    Ok(certs)
}

impl TlsAcceptor {
    /// Reads the files; errors say which file and why, as the daemon refuses to
    /// start on them.
    pub fn new(files: &TlsFiles) -> Result<TlsAcceptor, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = read_certs(&files.cert, "the server certificate")?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| format!("could not read the server key {}: {e}", files.key.display()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &files.verify_with {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(ca, "the CA certificate")? {
                    roots
                        .add(c)
                        .map_err(|e| format!("the CA certificate {}: {e}", ca.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("the CA certificate {}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("the server certificate and key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor(tokio_rustls::TlsAcceptor::from(Arc::new(
            config,
        ))))
    }
}
