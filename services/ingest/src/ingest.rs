//! `factorychain.v1.Ingest`: the device-facing stream and unary push.

use crate::validate::{ValidBatch, validate};
use crate::{AppState, auth};
use fc_bus::PendingAck;
use fc_core::{ErrorCode, ServiceError};
use fc_proto::v1::{Ack, AckStatus, PushResponse, ReadingBatch, TelemetryMessage};
use fc_tenancy_api::{ChangeKind, Device as DeviceIdentity};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use prost::Message;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The Ingest service.
pub struct IngestService {
    state: Arc<AppState>,
}

impl IngestService {
    /// A service over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// A validated batch, encoded as one bus message per machine.
struct Prepared {
    tenant: String,
    readings: u32,
    /// `(subject, Nats-Msg-Id, payload)`.
    parts: Vec<(String, String, bytes::Bytes)>,
}

/// Validate, check against the plan and encode one batch (no bus I/O; the first
/// batch of a tenant loads its series list from the store).
async fn prepare(state: &AppState, who: &DeviceIdentity, batch: ReadingBatch) -> Result<Prepared, ServiceError> {
    let limit = state.config.limits.max_message_bytes;
    let size = batch.encoded_len();
    if size > limit {
        return Err(ServiceError::invalid("batch", format!("encoded size {size} bytes exceeds the limit of {limit} bytes")));
    }
    let now = fc_core::time::now_ms();
    let seq = batch.device_seq;
    let ValidBatch { readings, machines } = validate(batch, now, &state.config.limits)?;
    let plan = state.quotas.admit(who, readings as u32)?;
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for (machine, series) in &machines {
        for s in series {
            keys.push((machine, &s.metric));
        }
    }
    state.series.admit(&state.store, &who.tenant_id, plan.name, plan.max_series, keys.into_iter()).await?;
    let parts: Vec<(String, String, bytes::Bytes)> = machines
        .into_iter()
        .map(|(machine, series)| {
            let msg = TelemetryMessage {
                tenant_id: who.tenant_id.to_string(),
                device_id: who.device_id.to_string(),
                device_seq: seq,
                received_ms: now,
                series,
            };
            let msg_id = format!("{}/{}/{}/{}", who.tenant_id, who.device_id, seq, machine);
            (fc_bus::telemetry_subject(&who.tenant_id, &machine), msg_id, msg.encode_to_vec().into())
        })
        .collect();
    let bytes = parts.iter().map(|p| p.2.len() as u64).sum();
    state.admission.check(&who.tenant_id, bytes)?;
    Ok(Prepared { tenant: who.tenant_id.to_string(), readings: readings as u32, parts })
}

/// Publish every part, then wait for every PubAck: `Ok(true)` when all parts were duplicates.
///
/// Callers poll this together with their earlier batches (never block on a
/// publish permit while holding un-polled PubAck futures: that deadlocks the
/// client's in-flight limit under load).
async fn publish(state: &AppState, prepared: Prepared) -> Result<(u32, bool), ServiceError> {
    let mut acks: Vec<(PendingAck, u64)> = Vec::with_capacity(prepared.parts.len());
    for (subject, msg_id, payload) in prepared.parts {
        let len = payload.len() as u64;
        acks.push((state.bus.publish(subject, &msg_id, payload).await?, len));
    }
    let mut all_dup = true;
    for (a, len) in acks {
        let duplicate = a.wait().await?;
        if !duplicate {
            state.admission.published(&prepared.tenant, len);
        }
        all_dup &= duplicate;
    }
    Ok((prepared.readings, all_dup))
}

fn ack_for(device_seq: u64, outcome: Result<(u32, bool), ServiceError>) -> Ack {
    let (status, accepted, message) = match outcome {
        Ok((n, false)) => (AckStatus::Ok, n, String::new()),
        Ok((n, true)) => (AckStatus::Duplicate, n, String::new()),
        Err(e) => {
            let s = match e.code {
                ErrorCode::InvalidArgument => AckStatus::InvalidArgument,
                ErrorCode::ResourceExhausted => AckStatus::ResourceExhausted,
                ErrorCode::Internal => {
                    tracing::error!(error = %e.message, "batch failed");
                    return Ack { device_seq, accepted: 0, status: AckStatus::Unavailable as i32, message: "internal error; retry".into() };
                }
                _ => AckStatus::Unavailable,
            };
            (s, 0, e.message)
        }
    };
    let label = match status {
        AckStatus::Ok => "ok",
        AckStatus::Duplicate => "duplicate",
        AckStatus::InvalidArgument => "invalid_argument",
        AckStatus::ResourceExhausted => "resource_exhausted",
        _ => "unavailable",
    };
    metrics::counter!("ingest_batches_total", "status" => label).increment(1);
    if matches!(status, AckStatus::Ok) {
        metrics::counter!("ingest_readings_total").increment(u64::from(accepted));
    }
    Ack { device_seq, accepted, status: status as i32, message }
}

type AckStream = Pin<Box<dyn futures::Stream<Item = Result<Ack, Status>> + Send>>;

/// The span of one batch (with traces on): its bus message carries it to the store writer.
fn batch_span(device_seq: u64) -> tracing::Span {
    if fc_rpc::trace::enabled() { tracing::info_span!("ingest_batch", device_seq) } else { tracing::Span::none() }
}

#[tonic::async_trait]
impl fc_proto::v1::ingest_server::Ingest for IngestService {
    type StreamStream = AckStream;

    async fn stream(&self, request: Request<Streaming<ReadingBatch>>) -> Result<Response<Self::StreamStream>, Status> {
        let mut changes = self.state.tenancy.changes();
        let who = auth::device(&self.state, request.metadata()).await?;
        let token = auth::bearer(request.metadata()).unwrap_or_default().to_string();
        let span = tracing::info_span!("ingest_stream", tenant_id = %who.tenant_id, device_id = %who.device_id);
        let mut inbound = request.into_inner();
        let state = self.state.clone();
        let max_inflight = state.config.stream_inflight_batches;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Ack, Status>>(max_inflight * 2);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut inflight = FuturesOrdered::new();
                let mut reading = true;
                // A transport error (say an oversized message) ends the stream after the acks still owed.
                let mut final_error: Option<Status> = None;
                let shutdown = state.shutdown.clone();
                loop {
                    tokio::select! {
                        biased;
                        Some(ack) = inflight.next(), if !inflight.is_empty() => {
                            if tx.send(Ok(ack)).await.is_err() {
                                return; // the device went away; unacked batches will be re-sent
                            }
                        }
                        _ = shutdown.wait(), if reading => {
                            // Stop taking batches; answer those in flight, then end the stream.
                            reading = false;
                        }
                        change = changes.recv(), if reading => {
                            // A revocation ends the stream at once, even one that sends nothing.
                            let concerns_me = match change {
                                Ok(c) => c.kind() == ChangeKind::DeviceRevoked && *c.device_id == *who.device_id,
                                // Notices were missed: ask again (a cache miss if this device was among them).
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                            };
                            if concerns_me && state.tenancy.device(&token).await.is_err() {
                                reading = false;
                                final_error = Some(Status::unauthenticated("the device credential was revoked"));
                            }
                        }
                        msg = inbound.message(), if reading && inflight.len() < max_inflight => {
                            match msg {
                                Ok(Some(batch)) => {
                                    // Revocation takes effect on open streams too (a cache hit, not a remote call).
                                    if state.tenancy.device(&token).await.is_err() {
                                        reading = false;
                                        final_error = Some(Status::unauthenticated("the device credential was revoked"));
                                        continue;
                                    }
                                    let started = std::time::Instant::now();
                                    let seq = batch.device_seq;
                                    let span = batch_span(seq);
                                    match tracing::Instrument::instrument(prepare(&state, &who, batch), span.clone()).await {
                                        Ok(prepared) => {
                                            let state = state.clone();
                                            inflight.push_back(futures::future::Either::Left(tracing::Instrument::instrument(async move {
                                                let ack = ack_for(seq, publish(&state, prepared).await);
                                                metrics::histogram!("ingest_ack_seconds").record(started.elapsed().as_secs_f64());
                                                ack
                                            }, span)))
                                        }
                                        Err(e) => inflight.push_back(futures::future::Either::Right(futures::future::ready(ack_for(seq, Err(e))))),
                                    }
                                }
                                Ok(None) => reading = false,
                                Err(status) => {
                                    reading = false;
                                    final_error = Some(decode_status(status, state.config.limits.max_message_bytes));
                                }
                            }
                        }
                        else => break,
                    }
                    if !reading && inflight.is_empty() {
                        break;
                    }
                }
                if let Some(status) = final_error {
                    let _ = tx.send(Err(status)).await;
                }
            },
            span,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn push(&self, request: Request<ReadingBatch>) -> Result<Response<PushResponse>, Status> {
        let who = auth::device(&self.state, request.metadata()).await?;
        let started = std::time::Instant::now();
        let batch = request.into_inner();
        let seq = batch.device_seq;
        let outcome = tracing::Instrument::instrument(
            async {
                match prepare(&self.state, &who, batch).await {
                    Ok(prepared) => publish(&self.state, prepared).await,
                    Err(e) => Err(e),
                }
            },
            batch_span(seq),
        )
        .await;
        // The same accounting as a streamed batch (metrics), then the unary answer.
        ack_for(seq, outcome.clone());
        metrics::histogram!("ingest_ack_seconds").record(started.elapsed().as_secs_f64());
        let (accepted, duplicate) = outcome?;
        Ok(Response::new(PushResponse { accepted, duplicate }))
    }
}

/// A decoding failure of the stream (usually a message over the size limit) as a clear status.
fn decode_status(status: Status, limit: usize) -> Status {
    match status.code() {
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => {
            Status::invalid_argument(format!("batch: message exceeds the limit of {limit} bytes ({})", status.message()))
        }
        _ => status,
    }
}
