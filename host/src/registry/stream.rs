//! Moving bytes between HTTP bodies and storage without holding a whole blob:
//! request bodies are written in large pieces, stored content is served and
//! hashed in large pieces.

use axum::body::Body;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::storage::{FileReader, FileWriter};
use crate::store::{Digest, Hasher};

use super::error::{ErrorCode, RegistryError, Result};

/// Bytes gathered from a request body before one write to storage: large, as
/// the storage contract asks, and bounded, so memory per upload is too.
const WRITE_PIECE: usize = 4 << 20;
/// Bytes asked of a reader at a time when serving.
const READ_PIECE: u32 = 1 << 20;
/// Pieces gathered ahead of storage: the body is received and hashed while
/// the previous piece is being written, instead of the two taking turns.
const RECEIVE_AHEAD: usize = 1;

/// Writes all of `body` to `writer`. With a `hasher`, returns the digest of
/// the body. A task of its own receives (and hashes) the body up to
/// [`RECEIVE_AHEAD`] pieces ahead of the writes; it ends when they fail.
/// Written pieces go back to it to be filled again, so an upload allocates
/// its few pieces once.
pub async fn body_to_writer(body: Body, writer: &mut dyn FileWriter, hasher: Option<Hasher>) -> Result<Option<Digest>> {
    let (full, mut to_write) = mpsc::channel(RECEIVE_AHEAD);
    let (written, empty) = mpsc::channel(RECEIVE_AHEAD + 1);
    let receiving = tokio::spawn(receive_pieces(body, hasher, full, empty));
    while let Some(piece) = to_write.recv().await {
        let mut piece = piece?;
        writer.write(&piece).await?;
        piece.clear();
        let _ = written.try_send(piece);
    }
    receiving
        .await
        .map_err(|err| RegistryError::new(ErrorCode::Unknown, format!("receiving the request body: {err}")))
}

/// Sends `body` as pieces of [`WRITE_PIECE`] bytes (the last may be
/// shorter), filling `empty` pieces when there are any and hashing on the
/// way; returns the digest once all were sent.
async fn receive_pieces(
    body: Body,
    mut hasher: Option<Hasher>,
    full: mpsc::Sender<Result<Vec<u8>>>,
    mut empty: mpsc::Receiver<Vec<u8>>,
) -> Option<Digest> {
    let mut stream = body.into_data_stream();
    // Allocated at its working size instead of grown by doubling.
    let mut next_piece = move || {
        empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(WRITE_PIECE + (64 << 10)))
    };
    let mut pending = next_piece();
    while let Some(frame) = stream.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                let err = RegistryError::new(ErrorCode::BlobUploadInvalid, format!("reading the request body: {err}"));
                let _ = full.send(Err(err)).await;
                return None;
            }
        };
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&frame);
        }
        pending.extend_from_slice(&frame);
        if pending.len() >= WRITE_PIECE
            && full
                .send(Ok(std::mem::replace(&mut pending, next_piece())))
                .await
                .is_err()
        {
            return None; // the writes failed
        }
    }
    if !pending.is_empty() && full.send(Ok(pending)).await.is_err() {
        return None;
    }
    hasher.map(Hasher::finish)
}

/// All of `body` if it is at most `limit` bytes, else `None`. A longer body
/// is read (and dropped) to its end as long as it stays within
/// `drain_limit`, so the client gets to read the refusal.
pub async fn body_up_to(body: Body, limit: usize, drain_limit: usize) -> Result<Option<Vec<u8>>> {
    let mut stream = body.into_data_stream();
    let mut content = Vec::new();
    let mut seen = 0;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|err| {
            RegistryError::new(ErrorCode::ManifestInvalid, format!("reading the request body: {err}"))
        })?;
        seen += frame.len();
        if seen > drain_limit {
            return Ok(None);
        }
        if seen <= limit {
            content.extend_from_slice(&frame);
        }
    }
    Ok((seen <= limit).then_some(content))
}

/// Pieces read ahead of the client: storage is read while the previous
/// piece is still being sent, instead of the two taking turns.
const READ_AHEAD: usize = 2;

/// A response body streaming `length` bytes from `reader`, read by a task of
/// its own up to [`READ_AHEAD`] pieces ahead; the task ends when the body is
/// dropped (the client went away). A storage failure midway ends the
/// response early (the client sees a short body), since the status is long
/// sent by then.
pub fn reader_body(mut reader: Box<dyn FileReader>, length: u64) -> Body {
    let (pieces, received) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD);
    tokio::spawn(async move {
        let mut left = length;
        while left > 0 {
            let ask = left.min(READ_PIECE as u64) as u32;
            let piece = match reader.read(ask).await {
                Ok(data) if data.is_empty() => {
                    tracing::warn!(missing = left, "stored content ended before its size");
                    left = 0;
                    Err(std::io::Error::other("stored content ended early"))
                }
                Ok(data) => {
                    left = left.saturating_sub(data.len() as u64);
                    Ok(data)
                }
                Err(err) => {
                    tracing::error!("reading stored content: {err}");
                    left = 0;
                    Err(std::io::Error::other(err.to_string()))
                }
            };
            if pieces.send(piece).await.is_err() {
                return; // the response was dropped
            }
        }
    });
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|piece| (piece, received))
    });
    Body::from_stream(stream)
}
