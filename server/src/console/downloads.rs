//! A list's lines as a file to download: CSV, or an XLSX workbook with a summary sheet, as the
//! RPC `ExportReconciliation` writes them, a piece at a time (a list of a million lines is
//! never held whole). Who may have which list is the reconciliation service's rule.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, Query, State},
    response::Response,
};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    Console,
    pages::{Visitor, attachment, failure_in},
};
use crate::{
    domain::DomainError,
    export::{self, ExportFailure, Format},
};

/// Pieces written ahead of the browser's reading.
const AHEAD: usize = 4;

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    format: String,
    #[serde(default)]
    lines: String,
}

pub(super) async fn download(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path((operator, update_id)): Path<(String, String)>,
    Query(asked): Query<Asked>,
) -> Response {
    let Visitor { call, caller, .. } = &visitor;
    let format = match asked.format.as_str() {
        "csv" => Format::Csv,
        "xlsx" => Format::Xlsx,
        other => {
            return failure_in(visitor.lang, DomainError::invalid("format", format!("{other:?}: choose csv or xlsx")));
        }
    };
    let confirmed_only = match asked.lines.as_str() {
        "" | "all" => false,
        "confirmed" => true,
        other => {
            return failure_in(
                visitor.lang,
                DomainError::invalid("lines", format!("{other:?}: choose all or confirmed")),
            );
        }
    };
    let (summary, lines) = match console.reconciliation.export(caller, &operator, &update_id, confirmed_only).await {
        Ok(found) => found,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let name = export::file_name(&summary, format);
    let request_id = call.request_id.clone();
    let pieces = ReceiverStream::new(export::pieces(format, summary, lines, AHEAD, true)).map(move |piece| {
        piece.map(bytes::Bytes::from).map_err(|e| {
            // The browser's download fails; the log says why.
            match &e {
                ExportFailure::Read(why) => {
                    tracing::warn!(%request_id, error = %crate::ErrorChain(why), "a download stopped")
                }
                ExportFailure::Write(why) => {
                    tracing::error!(%request_id, error = %crate::ErrorChain(why), "a download stopped")
                }
            }
            std::io::Error::other(e)
        })
    });
    attachment(&name, format.content_type(), Body::from_stream(pieces))
}
