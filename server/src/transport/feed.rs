//! `telesub.v1.ChangeFeed`: streams an operator's events from its cursor, then follows new
//! ones. A reader catching up has at most [`PREPARING`] pages read and being made ready, and
//! they are handed to the connection through a channel of two messages: a client that reads
//! slowly holds up its own feed, never the hub's memory.

use std::{collections::VecDeque, pin::Pin, time::Duration};

use futures_util::Stream;
use telesub_proto::v1::{self as pb, change_feed_server::ChangeFeed as ChangeFeedService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    CallContext,
    convert::timestamp,
    households::{category_to_pb, removal_reason_to_pb},
};
use crate::domain::{
    DomainError,
    feed::{ChangeFeed, FeedEvent, FeedKind, PAGE, POLL, cursor, parse_cursor},
    household::format_date,
};

/// Messages decided ahead of a client that reads slowly.
const AHEAD: usize = 2;

/// Pages a reader catching up has read and is making ready at once, each on a task of its own:
/// one page's histories are read while the page before it is turned into events. A stream
/// holds at most this many point readers and one more for the read of the next page.
const PREPARING: usize = 2;

/// A page being made ready; its work stops with the stream. (tokio-util's
/// `AbortOnDropHandle` does the same; these five lines spare the hub that dependency.)
struct Preparing(tokio::task::JoinHandle<Result<Vec<FeedEvent>, DomainError>>);

impl Drop for Preparing {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct FeedApi {
    feed: ChangeFeed,
}

impl FeedApi {
    pub fn new(feed: ChangeFeed) -> Self {
        Self { feed }
    }
}

fn kind_to_pb(kind: FeedKind) -> pb::ChangeKind {
    match kind {
        FeedKind::Removed => pb::ChangeKind::Removed,
        FeedKind::CategoryChanged => pb::ChangeKind::CategoryChanged,
        FeedKind::DetailsChanged => pb::ChangeKind::DetailsChanged,
        FeedKind::TransferredAway => pb::ChangeKind::TransferredAway,
    }
}

fn event_to_pb(e: &FeedEvent) -> pb::ChangeEvent {
    let r = &e.row;
    pb::ChangeEvent {
        cursor: cursor(r.seq),
        kind: kind_to_pb(r.kind).into(),
        household_code: r.household_code.clone(),
        enrollment_id: r.enrollment_id.to_string(),
        effective_date: format_date(r.effective_date),
        category: e.category.map_or(pb::Category::Unspecified, category_to_pb).into(),
        previous_category: e.previous_category.map_or(pb::Category::Unspecified, category_to_pb).into(),
        removal_reason: e.removal_reason.map_or(pb::RemovalReason::Unspecified, removal_reason_to_pb).into(),
        support_ends: e.support_ends.map(format_date).unwrap_or_default(),
        batch_id: r.batch_id.clone().unwrap_or_default(),
        recorded_at: Some(timestamp(r.recorded_at)),
    }
}

type FeedStream = Pin<Box<dyn Stream<Item = Result<pb::WatchChangesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ChangeFeedService for FeedApi {
    type WatchChangesStream = FeedStream;

    async fn watch_changes(&self, request: Request<pb::WatchChangesRequest>) -> Result<Response<FeedStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let operator = ctx.caller()?.member.code.as_str().to_owned();
        let r = request.get_ref();
        let after = parse_cursor(&r.cursor).map_err(|e| ctx.fail(e))?;
        let heartbeat = match r.heartbeat_seconds {
            0 => DEFAULT_HEARTBEAT,
            s @ 1..=300 => Duration::from_secs(s as u64),
            s => {
                return Err(ctx.fail(DomainError::invalid(
                    "heartbeat_seconds",
                    format!("{s} is not 1 to 300 seconds (0: {} s)", DEFAULT_HEARTBEAT.as_secs()),
                )));
            }
        };
        let feed = self.feed.clone();
        let (out, rx) = mpsc::channel(AHEAD);
        tokio::spawn(async move {
            let written = feed.written();
            let mut last_sent = tokio::time::Instant::now();
            // The first time the client is caught up it hears so at once: the subscription holds.
            let mut caught_up = false;
            // Pages read and being made ready, in order, each with the wake-up registered before
            // its read began; while pages come full, the next ones are read and made ready
            // while the first is sent.
            let mut pending = VecDeque::new();
            let mut read_after = after;
            let mut full = false;
            loop {
                while pending.is_empty() || (full && pending.len() < PREPARING) {
                    let woken = written.notified();
                    let page = feed.stored(&operator, read_after).await.map(|stored| {
                        full = stored.len() == PAGE as usize;
                        read_after = stored.last().map_or(read_after, |last| last.seq);
                        let feed = feed.clone();
                        Preparing(tokio::spawn(async move { feed.events(stored).await }))
                    });
                    full &= page.is_ok();
                    pending.push_back((woken, page));
                }
                let (woken, page) = pending.pop_front().expect("read above");
                let ready = match page {
                    Ok(mut page) => (&mut page.0).await.unwrap_or_else(|e| {
                        Err(DomainError::Internal(format!("making a page of the feed ready: {e}").into()))
                    }),
                    Err(e) => Err(e),
                };
                let events = match ready {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = out.send(Err(ctx.fail(e))).await;
                        return;
                    }
                };
                if !events.is_empty() {
                    let message = pb::WatchChangesResponse {
                        events: events.iter().map(event_to_pb).collect(),
                        heartbeat_at: None,
                    };
                    if out.send(Ok(message)).await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                    continue;
                }
                let beat_at = if caught_up { last_sent + heartbeat } else { tokio::time::Instant::now() };
                caught_up = true;
                if beat_at > tokio::time::Instant::now() {
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(POLL) => {}
                        () = out.closed() => return,
                    }
                }
                if tokio::time::Instant::now() >= beat_at {
                    let beat = pb::WatchChangesResponse {
                        events: Vec::new(),
                        heartbeat_at: Some(timestamp(feed.clock().now())),
                    };
                    if out.send(Ok(beat)).await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as FeedStream))
    }
}
