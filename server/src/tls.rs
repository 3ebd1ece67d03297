//! Mutual TLS with rustls: the server configuration, reloadable at run time (for new CRLs),
//! and the stream of accepted, handshaken connections that tonic serves.
//!
//! tonic's own `ServerTlsConfig` cannot take CRLs, so the rustls configuration is built here
//! and the listener is wrapped by hand. Every connection is kept in a registry with its client
//! certificate: when the CRLs are read again (SIGHUP), and every minute for certificates that
//! expire, each open connection's certificate is checked as at the handshake, and the
//! connections it no longer passes are closed.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::{CryptoProvider, ring as ring_provider},
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
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
    Ok(configure(paths)?.0)
}

/// The configuration, and its client certificate verifier (to check open connections again).
fn configure(paths: &TlsPaths) -> Result<InForce, TlsError> {
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
    let checker = verifier.clone();
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
    // gRPC clients in other languages insist on ALPN h2; browsers may also speak HTTP/1.1 to
    // the console.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), checker))
}

/// The server configuration in force; `reload` swaps in a new one, and closes the open
/// connections whose certificate it no longer accepts.
#[derive(Clone)]
pub struct ReloadableTls {
    paths: TlsPaths,
    current: Arc<RwLock<InForce>>,
    connections: Arc<Connections>,
}

/// A server configuration and the client verifier inside it (kept apart to recheck
/// connections already open).
type InForce = (Arc<ServerConfig>, Arc<dyn ClientCertVerifier>);

/// An open connection: its peer, its client's certificate chain, and what closes it.
type OpenConnection = (SocketAddr, Vec<CertificateDer<'static>>, Arc<CloseSignal>);

impl std::fmt::Debug for ReloadableTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableTls").field("paths", &self.paths).finish_non_exhaustive()
    }
}

impl ReloadableTls {
    pub fn new(paths: TlsPaths) -> Result<Self, TlsError> {
        let current = configure(&paths)?;
        Ok(Self { paths, current: Arc::new(RwLock::new(current)), connections: Arc::default() })
    }

    /// Reads the files again, then closes the open connections whose certificate the new
    /// configuration refuses (revoked, or no longer from a trusted CA). On error the
    /// configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let current = configure(&self.paths)?;
        let verifier = current.1.clone();
        *self.current.write().expect("tls config lock") = current;
        self.recheck_with(&*verifier);
        Ok(())
    }

    /// Checks every open connection's certificate as at its handshake, now (a certificate may
    /// have expired since); closes those that fail. The number closed.
    pub fn recheck(&self) -> usize {
        let verifier = self.current.read().expect("tls config lock").1.clone();
        self.recheck_with(&*verifier)
    }

    fn recheck_with(&self, verifier: &dyn ClientCertVerifier) -> usize {
        let now = rustls_pki_types::UnixTime::now();
        let mut closed = 0;
        for (peer, chain, close) in self.connections.all() {
            let Some((end, intermediates)) = chain.split_first() else { continue };
            if let Err(e) = verifier.verify_client_cert(end, intermediates, now) {
                tracing::info!(%peer, reason = %e, "closed a connection whose client certificate is no longer accepted");
                close.close();
                closed += 1;
            }
        }
        closed
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.live.lock().expect("connections").len()
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().expect("tls config lock").0.clone())
    }
}

/// The open connections, each with its client's certificate chain and what closes it.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    live: Mutex<HashMap<u64, OpenConnection>>,
}

impl Connections {
    fn add(&self, peer: SocketAddr, chain: Vec<CertificateDer<'static>>) -> (u64, Arc<CloseSignal>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(CloseSignal::default());
        self.live.lock().expect("connections").insert(id, (peer, chain, close.clone()));
        (id, close)
    }

    fn all(&self) -> Vec<(SocketAddr, Vec<CertificateDer<'static>>, Arc<CloseSignal>)> {
        self.live.lock().expect("connections").values().cloned().collect()
    }
}

/// Closes one connection from outside its task: its next read ends it.
#[derive(Default)]
struct CloseSignal {
    state: Mutex<(bool, Option<Waker>)>,
}

impl CloseSignal {
    fn close(&self) {
        let mut state = self.state.lock().expect("close signal");
        state.0 = true;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }

    /// Whether the connection is closed; else remembers who to wake when it is.
    fn closed(&self, cx: &Context<'_>) -> bool {
        let mut state = self.state.lock().expect("close signal");
        if !state.0 {
            state.1 = Some(cx.waker().clone());
        }
        state.0
    }
}

/// A connection tonic serves: the TLS stream, the first bytes already read from it (the HTTP/2
/// preface, or the start of an HTTP/1.1 request line; given back first), and its place in the
/// registry.
pub struct HubStream {
    inner: TlsStream<TcpStream>,
    preface: Vec<u8>,
    given: usize,
    close: Arc<CloseSignal>,
    registry: Arc<Connections>,
    id: u64,
}

impl Drop for HubStream {
    fn drop(&mut self) {
        self.registry.live.lock().expect("connections").remove(&self.id);
    }
}

impl tonic::transport::server::Connected for HubStream {
    type ConnectInfo = <TlsStream<TcpStream> as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for HubStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.close.closed(cx) {
            return Poll::Ready(Ok(())); // the end of the stream: the server closes the connection
        }
        if self.given < self.preface.len() {
            let n = (self.preface.len() - self.given).min(buf.remaining());
            let from = self.given;
            buf.put_slice(&self.preface[from..from + n]);
            self.given += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for HubStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.close.closed(cx) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What an HTTP/2 client sends first (RFC 9113, 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much of an HTTP/1.1 request line is read before a connection is served: the first
/// letters of its method (`GET `, `POST`, `HEAD`).
const REQUEST_LINE_START: usize = 4;

/// Accepts TCP connections and completes their TLS handshakes concurrently, yielding only the
/// connections whose client certificate was accepted. Refused handshakes are logged.
pub fn incoming(
    listener: TcpListener,
    tls: ReloadableTls,
    handshake_timeout: Duration,
) -> ReceiverStream<Result<HubStream, io::Error>> {
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
            let registry = tls.connections.clone();
            tokio::spawn(async move {
                // The handshake and the client's first words, both within the handshake
                // timeout: a client that connects and says nothing is not kept. A gRPC client
                // begins with HTTP/2's preface; a browser that chose HTTP/1.1 for the console
                // by ALPN, with a request line.
                let started = tokio::time::Instant::now();
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp).into_fallible()).await {
                    Ok(Ok(mut stream)) => {
                        use tokio::io::AsyncReadExt;
                        let http1 = stream.get_ref().1.alpn_protocol() == Some(b"http/1.1");
                        let mut preface = vec![0u8; if http1 { REQUEST_LINE_START } else { PREFACE.len() }];
                        let left = handshake_timeout.saturating_sub(started.elapsed());
                        match tokio::time::timeout(left, stream.read_exact(&mut preface)).await {
                            Ok(Ok(_)) if !http1 && preface == PREFACE => {}
                            Ok(Ok(_)) if http1 && preface.iter().all(|b| b.is_ascii_uppercase() || *b == b' ') => {}
                            Ok(Ok(_)) if http1 => return log_refused(peer, "not an HTTP/1.1 client (no request line)"),
                            Ok(Ok(_)) => return log_refused(peer, "not an HTTP/2 client (no preface)"),
                            Ok(Err(e)) => return log_refused(peer, &format!("closed before its first request: {e}")),
                            Err(_) => return log_refused(peer, "no request within the handshake timeout"),
                        }
                        let chain: Vec<CertificateDer<'static>> = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
                            .unwrap_or_default();
                        let (id, close) = registry.add(peer, chain);
                        let stream = HubStream { inner: stream, preface, given: 0, close, registry, id };
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
