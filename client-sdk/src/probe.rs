//! Why a connection failed: a TLS handshake of its own, made to hear the hub's answer.
//!
//! With TLS 1.3 a client has sent its certificate and finished the handshake before the hub
//! checks the certificate; a refusal arrives as an alert after that, while the first call is
//! already on its way. The HTTP/2 layer often sees only the closed connection ("operation
//! was canceled", "broken pipe") and the alert is lost. This probe does the handshake again,
//! sends the HTTP/2 preface and reads until the hub answers: its first frame (accepted) or
//! an alert (refused, and why).

use std::{sync::Arc, time::Duration};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Error;

/// The client preface of HTTP/2 and an empty SETTINGS frame: what the hub waits for before
/// it answers.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// `Ok` when the hub accepts the identity; `CertificateRefused` with the hub's alert when it
/// does not; another error when the hub cannot be reached or spoken to at all.
pub(crate) async fn check_certificate(
    endpoint: &str,
    domain_name: Option<&str>,
    ca: &[u8],
    identity: (&[u8], &[u8]),
    timeout: Duration,
) -> Result<(), Error> {
    let config = |e: &dyn std::fmt::Display| Error::Config(format!("TLS configuration: {e}"));
    let authority = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest).split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host, port.parse::<u16>().unwrap_or(443)),
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.map_err(|e| config(&e))?).map_err(|e| config(&e))?;
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(identity.0).collect::<Result<_, _>>().map_err(|e| config(&e))?;
    let key = PrivateKeyDer::from_pem_slice(identity.1).map_err(|e| config(&e))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| config(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| config(&e))?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(domain_name.unwrap_or(host).to_owned()).map_err(|e| config(&e))?;
    let unreachable = |reason: String| Error::Connect { endpoint: endpoint.to_owned(), reason };
    let probe = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| unreachable(e.to_string()))?;
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| refused_or(e, &unreachable))?;
        stream.write_all(PREFACE).await.map_err(|e| refused_or(e, &unreachable))?;
        let mut first = [0u8; 9];
        match stream.read(&mut first).await {
            Ok(n) if n > 0 => Ok(()),
            Ok(_) => Err(unreachable("the hub closed the connection without a word".into())),
            Err(e) => Err(refused_or(e, &unreachable)),
        }
    };
    tokio::time::timeout(timeout, probe).await.unwrap_or_else(|_| Err(unreachable("no answer in time".into())))
}

/// The hub's alert, when the error is one; else `other`.
fn refused_or(e: std::io::Error, other: &dyn Fn(String) -> Error) -> Error {
    let text = e.to_string();
    match text.split_once("received fatal alert: ") {
        Some((_, alert)) => Error::CertificateRefused { alert: alert.trim().to_owned() },
        None => other(text),
    }
}
