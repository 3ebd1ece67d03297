//! Mutual TLS with rustls: the server configuration, reloadable at run time (for new CRLs),
//! and the stream of accepted, handshaken connections that tonic serves.
//!
//! tonic's own `ServerTlsConfig` cannot take CRLs, so the rustls configuration is built here
//! and the listener is wrapped by hand.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::{CryptoProvider, ring as ring_provider},
    server::WebPkiClientVerifier,
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;

/// The files that make up the hub's TLS identity and trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// PEM bundle of the CAs whose client certificates are accepted.
    pub client_ca: PathBuf,
    /// PEM chain of the hub's own certificate.
    pub cert: PathBuf,
    /// PEM private key of the hub's certificate.
    pub key: PathBuf,
    /// PEM certificate revocation lists, one or more per file.
    pub crls: Vec<PathBuf>,
    /// A CRL file read when it exists, e.g. the `crl.pem` of a certificate folder that may be
    /// written later, by `telesub pki revoke`, and picked up on reload.
    pub optional_crl: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no {what}")]
    Empty { what: &'static str, path: PathBuf },
    #[error("the client CA certificate in {path} is not usable")]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the client certificate verifier (check the CA bundle and CRLs)")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("the server certificate or key is not usable")]
    Identity(#[source] rustls::Error),
}

/// The provider: ring, with TLS 1.3 suites first and TLS 1.2 limited to ECDHE with AEAD.
fn provider() -> Arc<CryptoProvider> {
    use ring_provider::cipher_suite::*;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_256_GCM_SHA384,
            TLS13_AES_128_GCM_SHA256,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..ring_provider::default_provider()
    })
}

fn read_all<T: PemObject>(what: &'static str, path: &Path) -> Result<Vec<T>, TlsError> {
    let items = T::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<T>, _>>())
        .map_err(|source| TlsError::Read { what, path: path.to_owned(), source })?;
    if items.is_empty() {
        return Err(TlsError::Empty { what, path: path.to_owned() });
    }
    Ok(items)
}

/// Builds the server configuration from the files: every client must present a certificate
/// that chains to the client CA and is not revoked by the CRLs.
pub fn server_config(paths: &TlsPaths) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for ca in read_all::<CertificateDer<'static>>("CA certificates", &paths.client_ca)? {
        roots.add(ca).map_err(|source| TlsError::BadCa { path: paths.client_ca.clone(), source })?;
    }
    let mut crls: Vec<CertificateRevocationListDer<'static>> = Vec::new();
    for path in paths.crls.iter().chain(paths.optional_crl.iter().filter(|p| p.exists())) {
        crls.extend(read_all("certificate revocation lists", path)?);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .build()
        .map_err(TlsError::Verifier)?;
    let chain = read_all::<CertificateDer<'static>>("certificates", &paths.cert)?;
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|source| TlsError::Read {
        what: "a private key",
        path: paths.key.clone(),
        source,
    })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Identity)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::Identity)?;
    // gRPC clients in other languages insist on ALPN h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The server configuration in force; `reload` swaps in a new one for connections accepted
/// from then on (established connections keep theirs).
#[derive(Debug, Clone)]
pub struct ReloadableTls {
    paths: TlsPaths,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ReloadableTls {
    pub fn new(paths: TlsPaths) -> Result<Self, TlsError> {
        let config = server_config(&paths)?;
        Ok(Self { paths, current: Arc::new(RwLock::new(config)) })
    }

    /// Reads the files again. On error the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.paths)?;
        *self.current.write().expect("tls config lock") = config;
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().expect("tls config lock").clone())
    }
}

/// Accepts TCP connections and completes their TLS handshakes concurrently, yielding only the
/// connections whose client certificate was accepted. Refused handshakes are logged.
pub fn incoming(
    listener: TcpListener,
    tls: ReloadableTls,
    handshake_timeout: Duration,
) -> ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // serve_with_incoming does not apply the builder's TCP settings; set them here.
            let _ = tcp.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp).into_fallible()).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err((err, tcp))) => {
                        log_refused(peer, &err.to_string());
                        close_after_alert(tcp).await;
                    }
                    Err(_) => log_refused(peer, "handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Closes a refused connection so that the client reads the alert saying why. With TLS 1.3
/// a client sends its certificate and then its first request at once; closing a socket with
/// that request unread makes the kernel reset the connection, and the reset discards the
/// alert before the client reads it (seen as "broken pipe" or "connection closed" in about
/// a third of refusals). So: end the sending side after the alert, read what the client
/// still sends until it closes or a second passes, then close.
async fn close_after_alert(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

fn log_refused(peer: SocketAddr, reason: &str) {
    tracing::info!(%peer, reason, "TLS handshake refused");
}
