//! The console as a browser reaches it, for tests and benchmarks: HTTPS to the hub's own port
//! with a member's client certificate (the folder's), HTTP/1.1 by ALPN, read with hyper's
//! client over one kept-alive connection.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;

use crate::TestApp;

/// A page as a browser gets it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The body as text (a download that is not text: its bytes, as `bytes`).
    pub body: String,
    pub bytes: Bytes,
}

impl Page {
    /// The request id the hub gave the page (its audit record's).
    pub fn request_id(&self) -> String {
        self.headers["x-request-id"].to_str().expect("a request id").to_owned()
    }
}

fn read(path: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// TLS as a browser speaks it to the console: HTTP/1.1 by ALPN, with `org`'s certificate
/// (none when `org` is `None`).
pub fn tls(app: &TestApp, org: Option<&str>) -> tokio_rustls::TlsConnector {
    tls_in(&app.dir(), org)
}

/// [`tls`] with the certificates of the folder `dir`.
pub fn tls_in(dir: &telesub_server::pki::PkiDir, org: Option<&str>) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&read(dir.ca_cert())).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match org {
        Some(org) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(&read(dir.client_cert(org))).unwrap()],
                PrivateKeyDer::from_pem_slice(&read(dir.client_key(org))).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A browser's connection to the console, as `org` (no certificate when `None`).
pub struct Browser {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Browser {
    pub async fn connect(app: &TestApp, org: Option<&str>) -> Result<Self, String> {
        Self::connect_to(app.addr, &app.dir(), org).await
    }

    /// A connection to the hub at `addr` (a `telesub serve` process), with a certificate of
    /// the folder `dir`.
    pub async fn connect_to(
        addr: std::net::SocketAddr,
        dir: &telesub_server::pki::PkiDir,
        org: Option<&str>,
    ) -> Result<Self, String> {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tls_in(dir, org).connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("http: {e}"))?;
        tokio::spawn(connection);
        Ok(Self { sender, host: format!("localhost:{}", addr.port()) })
    }

    /// The console's origin, as a browser sends it with a form.
    pub fn origin(&self) -> String {
        format!("https://{}", self.host)
    }

    async fn send(&mut self, request: http::Request<Full<Bytes>>) -> Result<Page, String> {
        self.sender.ready().await.map_err(|e| format!("connection: {e}"))?;
        let response = self.sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok(Page {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            bytes: body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Page, String> {
        self.get_with(path, &[]).await
    }

    /// A page asked for with more headers, as a browser sends them (its cookie, say).
    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Page, String> {
        let mut request = http::Request::get(path).header("host", &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Full::default()).unwrap()).await
    }

    /// A form with a file, as a browser sends it (`multipart/form-data`), from `origin`.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &[u8]),
        origin: Option<&str>,
    ) -> Result<Page, String> {
        const BOUNDARY: &str = "----telesub-test-boundary";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        let (name, bytes) = file;
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"list.csv\"\r\n\
                 Content-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let mut request = http::Request::post(path)
            .header("host", &self.host)
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        self.send(request.body(Full::new(Bytes::from(body))).unwrap()).await
    }

    /// A form sent as a browser sends it (`application/x-www-form-urlencoded`), from `origin`.
    pub async fn post(&mut self, path: &str, form: &str, origin: Option<&str>) -> Result<Page, String> {
        let mut request = http::Request::post(path)
            .header("host", &self.host)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        self.send(request.body(Full::new(Bytes::from(form.to_owned()))).unwrap()).await
    }
}
