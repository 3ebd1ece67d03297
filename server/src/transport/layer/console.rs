//! Console pages through the hub layer: the same identification, authorization, admission and
//! audit record as a call, answered as HTML. The record's method is the page asked for
//! (`GET /console/reconciliation?period=2025-03`); its outcome is the gRPC code the page's
//! HTTP status stands for, so that the trail reads the same for a page and for a call.

use std::{sync::Arc, sync::atomic::Ordering};

use axum::http::StatusCode;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use tonic::{Code, body::Body};
use tower::ServiceExt;
use tracing::Instrument;

use super::{CallRecord, HubState, Refusal, new_request_id, set_request_id, truncate};
use crate::{
    console::{self, Detail},
    transport::{
        CallContext,
        admission::{Full, Place, PlaceKind},
    },
};

/// The HTTP status a refusal with `code` is shown with.
fn status_of(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The gRPC code a page's HTTP status stands for in the audit trail.
fn code_of(status: StatusCode) -> Code {
    match status.as_u16() {
        200..=399 => Code::Ok,
        // A form or query the page could not read (axum answers 415 or 422).
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

/// What every console answer carries: the request id and the console's security headers.
fn finish(mut response: Response<Body>, request_id: &str) -> Response<Body> {
    set_request_id(response.headers_mut(), request_id);
    for (name, value) in console::SECURITY_HEADERS {
        response.headers_mut().insert(*name, HeaderValue::from_static(value));
    }
    response
}

/// A page for a request the layer refused, once its record is kept (else the page says the
/// hub could not keep it).
async fn refused(call: CallRecord, refusal: Refusal, request_id: &str) -> Response<Body> {
    let (code, reason) = (refusal.code, refusal.reason);
    let page = if call.complete(code, reason.clone()).await {
        let shown = if code == Code::Internal { "internal error".to_owned() } else { reason };
        console::refusal(status_of(code), &shown)
    } else {
        console::refusal(StatusCode::SERVICE_UNAVAILABLE, UNRECORDED)
    };
    finish(page.map(Body::new), request_id)
}

const UNRECORDED: &str = "the hub could not keep the record of this request, so it was not answered: retry later";

impl HubState {
    pub(super) async fn console_page<S>(
        self: Arc<Self>,
        req: Request<Body>,
        inner: S,
        needs: &'static str,
    ) -> Response<Body>
    where
        S: tower::Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        // Browsers send no request id: each page gets its own.
        let request_id = new_request_id();
        let certificate = self.identify(&req);
        let page = truncate(
            match req.uri().path_and_query() {
                Some(pq) => format!("{} {}", req.method(), pq.as_str()),
                None => format!("{} {}", req.method(), req.uri().path()),
            },
            500,
        );
        let span = tracing::info_span!(
            "console",
            page = %page,
            org = certificate.org_text.as_deref().unwrap_or("-"),
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        );
        if let Some(trace) = super::trace_id(req.headers()) {
            span.record("trace_id", tracing::field::display(trace));
        }
        crate::telemetry::continue_trace(&span, req.headers());
        let mut call = CallRecord::new(self.clone(), self.entry(&request_id, &certificate, page), span.clone());
        async move {
            if !self.database_up.load(Ordering::Relaxed) {
                let reason = "the hub's database does not answer right now; nothing was done: retry later";
                return refused(call, Refusal::new(Code::Unavailable, reason), &request_id).await;
            }
            let caller = match self.authorize(needs, certificate).await {
                Ok(caller) => caller,
                Err(refusal) => return refused(call, refusal, &request_id).await,
            };
            call.role = caller.as_ref().map(|c| c.member.role);
            let holder = caller.as_ref().map(|c| c.member.code.as_str().to_owned()).unwrap_or_default();
            match self.admission.admit(&holder, PlaceKind::Call) {
                Ok(place) => call.place = Some(self.admitted(place, &holder, PlaceKind::Call)),
                Err(full) => {
                    self.full(&full);
                    let code = match full {
                        Full::Hub(_) => Code::Unavailable,
                        Full::Member { .. } => Code::ResourceExhausted,
                    };
                    return refused(call, Refusal::new(code, full.reason(&holder)), &request_id).await;
                }
            }
            // A form is read whole (it is small) so that the record's request digest covers it,
            // as a call's covers its messages.
            let limit = console::body_limit(req.method(), req.uri().path());
            let (parts, body) = req.into_parts();
            let form = match http_body_util::Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    let reason = format!("a form of at most {limit} bytes, sent whole, is expected");
                    return refused(call, Refusal::new(Code::InvalidArgument, reason), &request_id).await;
                }
            };
            call.digest.lock().expect("request digest").update(&form);
            let mut req = Request::from_parts(parts, Body::new(http_body_util::Full::new(form)));
            req.extensions_mut().insert(CallContext {
                request_id: request_id.clone(),
                caller: caller.map(Arc::new),
                attached: call.attached.clone(),
            });
            let response = match tokio::time::timeout(self.request_timeout, inner.oneshot(req)).await {
                Ok(Ok(response)) => response,
                Err(_elapsed) => {
                    let reason = format!("no answer within {} ms", self.request_timeout.as_millis());
                    return refused(call, Refusal::new(Code::DeadlineExceeded, reason), &request_id).await;
                }
            };
            let code = code_of(response.status());
            let detail = response.extensions().get::<Detail>().map(|d| d.0.clone()).unwrap_or_default();
            // A download streams after its record is kept: it holds its place until it ends.
            let place = call.place.take();
            // The page is whole (rendered before it is returned): it leaves once its record is kept.
            if !call.complete(code, detail).await {
                return finish(
                    console::refusal(StatusCode::SERVICE_UNAVAILABLE, UNRECORDED).map(Body::new),
                    &request_id,
                );
            }
            finish(response.map(|inner| Body::new(Holding { inner, place })), &request_id)
        }
        .instrument(span)
        .await
    }
}

pin_project_lite::pin_project! {
    /// A page's body, holding its request's admission place until the last byte has left, so
    /// that a download counts against the member's share of the hub while it streams.
    struct Holding {
        #[pin]
        inner: Body,
        place: Option<Place>,
    }
}

impl http_body::Body for Holding {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            this.place.take();
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
