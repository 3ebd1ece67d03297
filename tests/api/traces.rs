//! Spans exported to an OpenTelemetry collector (OTLP/gRPC) by a real `telesub serve` built
//! with the `otlp` feature: a call that carries a W3C `traceparent` continues that trace. The
//! collector is the test's own: a gRPC server of the OTLP trace service whose requests are
//! decoded with the OTLP messages' field numbers (only the fields read here).

use std::{
    convert::Infallible,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use telesub_tests::{ServeProcess, raw::RawCodec};
use tokio::sync::mpsc;

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`, as far as read.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Span {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    name: String,
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(string, tag = "1")]
    string_value: String,
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).map(|v| v.string_value.as_str())
}

/// The collector: every export request's bytes go to the test.
#[derive(Clone)]
struct Collector(mpsc::UnboundedSender<Vec<u8>>);

impl tonic::server::NamedService for Collector {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct Export(mpsc::UnboundedSender<Vec<u8>>);

impl tonic::server::UnaryService<Vec<u8>> for Export {
    type Response = Vec<u8>;
    type Future = std::future::Ready<Result<tonic::Response<Vec<u8>>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        let _ = self.0.send(request.into_inner());
        // An empty ExportTraceServiceResponse: everything accepted.
        std::future::ready(Ok(tonic::Response::new(Vec::new())))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Collector {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let sent = self.0.clone();
        Box::pin(async move { Ok(tonic::server::Grpc::new(RawCodec).unary(Export(sent), request).await) })
    }
}

/// A hub binary built with `--features otlp` (`TELESUB_OTLP_BIN`, set by `scripts/test.sh`).
fn otlp_binary() -> Option<PathBuf> {
    std::env::var_os("TELESUB_OTLP_BIN").map(PathBuf::from)
}

fn config_with_endpoint(dir: &Path, endpoint: &str) -> PathBuf {
    let config = dir.join("traces.toml");
    std::fs::write(&config, format!("[traces]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"telesub-test\"\n"))
        .unwrap();
    config
}

/// Run by `scripts/test.sh` with a hub built with the `otlp` feature.
#[tokio::test]
#[ignore = "needs TELESUB_OTLP_BIN, a hub built with --features otlp (scripts/test.sh builds one)"]
async fn a_calls_span_goes_to_the_collector_in_the_trace_its_traceparent_names() {
    let bin = otlp_binary().expect("TELESUB_OTLP_BIN");
    let (sent, mut received) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Collector(sent))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    telesub_server::pki::init(&tls, &["DOICT:ICT".parse().unwrap()]).unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let config = config_with_endpoint(dir.path(), &format!("http://{collector_addr}"));
    let extra = ["--config", config.to_str().unwrap()];
    let mut hub =
        ServeProcess::start_binary(&bin, &tls, &url, &dir.path().join("hub.log"), &extra).await.expect("the hub");
    // A call in a trace begun elsewhere: WhoAmI with the header set.
    let folder = telesub_server::pki::PkiDir::new(&tls);
    let endpoint = format!("https://localhost:{}", hub.addr.port());
    let channel = telesub_tests::raw::channel_at(&endpoint, &folder, "DOICT").await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(Vec::new());
    request
        .metadata_mut()
        .insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
    let path = http::uri::PathAndQuery::from_static("/telesub.v1.Members/WhoAmI");
    grpc.unary(request, path, RawCodec).await.expect("WhoAmI");

    // Spans are sent in batches: wait for the call's.
    let want_trace = hex("4bf92f3577b34da6a3ce929d0e0e4736");
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let bytes = received.recv().await.expect("the collector");
            let request = <ExportRequest as prost::Message>::decode(bytes.as_slice()).expect("an OTLP request");
            for resource in &request.resource_spans {
                let service = resource.resource.as_ref().and_then(|r| attribute(&r.attributes, "service.name"));
                for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                    if span.name == "rpc" && attribute(&span.attributes, "method") == Some("/telesub.v1.Members/WhoAmI")
                    {
                        return (span.clone(), service.map(str::to_owned));
                    }
                }
            }
        }
    })
    .await;
    let (span, service) = found.unwrap_or_else(|_| panic!("no span of the call reached the collector\n{}", hub.log()));
    assert_eq!(span.trace_id, want_trace, "the span continues the caller's trace");
    assert_eq!(span.parent_span_id, hex("00f067aa0ba902b7"), "its parent is the caller's span");
    assert_eq!(service.as_deref(), Some("telesub-test"));
    assert_eq!(attribute(&span.attributes, "org"), Some("DOICT"));
    assert!(attribute(&span.attributes, "request_id").is_some_and(|id| id.len() == 32), "{span:?}");
    hub.terminate().await;
}

/// A hub built without the `otlp` feature refuses a configured endpoint instead of dropping
/// the spans silently.
#[tokio::test]
async fn a_hub_without_otlp_export_refuses_an_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    telesub_server::pki::init(&tls, &["DOICT:ICT".parse().unwrap()]).unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let config = config_with_endpoint(dir.path(), "http://127.0.0.1:4317");
    let extra = ["--config", config.to_str().unwrap()];
    let log = dir.path().join("hub.log");
    match ServeProcess::start(&tls, &url, &log, &extra).await {
        Ok(_) if otlp_binary().is_some_and(|b| b == telesub_tests::hub_binary()) => {} // built with it
        Ok(_) => panic!("a hub without OTLP export started with an endpoint"),
        Err(e) => assert!(e.contains("built without OTLP export"), "{e}"),
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}
