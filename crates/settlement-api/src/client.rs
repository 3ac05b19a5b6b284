//! [`SettlementClient`]: the settlement service's internal gRPC API
//! (`factorychain.v1.Settlement`) for the services that act for an
//! organisation (the portal). Every call names the acting organisation
//! (`x-fc-tenant`) and carries this service's credential; the rules are the
//! settlement service's.
//!
//! Invariant: a design upload is published only when the whole body arrived:
//! the stream ends with an explicit end marker, sent only after the caller's
//! source ended cleanly.

use crate::wire;
use crate::{
    BankFile, BlockedView, DesignView, EntryView, ExportView, NetworkView, OrderInput, OrderView, PaymentView, TelemetryInspection,
};
use fc_core::ServiceError;
use fc_ledger::proof::{ConsistencyProof, InclusionProof};
use fc_proto::v1 as pb;
use fc_proto::v1::settlement_client::SettlementClient as Raw;
use fc_rpc::service_auth::{Credential, TENANT_HEADER};
use futures::{Stream, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Res<T> = Result<T, ServiceError>;

/// Largest part of a design sent in one message.
pub const UPLOAD_CHUNK: usize = 1 << 20;

/// Why a design upload was refused; `too_large` when the file is over the
/// per-file limit (`settlement.max_design_bytes`), which HTTP answers 413.
#[derive(Debug)]
pub struct UploadError {
    /// The file is over the per-file limit.
    pub too_large: bool,
    /// What to tell the caller.
    pub error: ServiceError,
}

impl From<ServiceError> for UploadError {
    fn from(error: ServiceError) -> Self {
        Self { too_large: false, error }
    }
}

/// The verifier key, a network's checkpoint origin and the design size limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogInfo {
    /// `name+hexid+base64key`.
    pub vkey: String,
    /// `<origin_prefix>/<network>` (empty when no network was named).
    pub origin: String,
    /// Largest design file accepted, in bytes.
    pub max_design_bytes: u64,
}

/// A client of the settlement service, with this service's credential.
#[derive(Clone)]
pub struct SettlementClient {
    raw: Raw<InterceptedService<Channel, Credential>>,
    url: String,
}

impl SettlementClient {
    /// A client of the settlement service at `url` (connected on first use, so
    /// the caller starts while settlement is down; calls then answer
    /// "unavailable" naming `url`). `timeout` bounds each call.
    pub fn new(url: &str, credential: Credential, timeout: Duration) -> Res<Self> {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| ServiceError::invalid("settlement url", e))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .connect_lazy();
        // A bank file or a page of entries may be large; a design streams in parts.
        let raw = Raw::with_interceptor(channel, credential).max_decoding_message_size(64 << 20);
        Ok(Self { raw, url: url.to_string() })
    }

    /// The service's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn request<T>(&self, org: &str, msg: T) -> Res<tonic::Request<T>> {
        let mut r = tonic::Request::new(msg);
        let value = org.parse().map_err(|_| ServiceError::invalid("organisation", "not a valid id"))?;
        r.metadata_mut().insert(TENANT_HEADER, value);
        Ok(r)
    }

    fn error(&self, s: tonic::Status) -> ServiceError {
        ServiceError::from_status(&s, &format!("settlement service at {}", self.url))
    }

    fn wire(&self, e: wire::WireError) -> ServiceError {
        ServiceError::internal(format!("settlement service at {}: {e}", self.url))
    }

    /// The networks `org` belongs to: its own (as buyer) and those of its buyers.
    pub async fn networks(&self, org: &str) -> Res<Vec<NetworkView>> {
        let r = self.raw.clone().list_networks(self.request(org, pb::ListNetworksRequest {})?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().networks.into_iter().map(Into::into).collect())
    }

    /// Publishes a new version of a design: `body` is the age ciphertext as it
    /// arrives (never held whole here); an error from it abandons the upload.
    pub async fn upload_design<S, E>(
        &self,
        network: &str,
        org: &str,
        design_id: &str,
        recipients: &[String],
        content_length: Option<u64>,
        body: S,
    ) -> Result<DesignView, UploadError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let header = pb::DesignUploadHeader {
            network: network.to_string(),
            design_id: design_id.to_string(),
            recipients: recipients.to_vec(),
            content_length,
        };
        let failed: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let body_failed = failed.clone();
        let clean = Arc::new(AtomicBool::new(true));
        let (clean_body, clean_end) = (clean.clone(), clean.clone());
        let part = |p: pb::upload_design_request::Part| pb::UploadDesignRequest { part: Some(p) };
        let data = body
            .take_while(move |r| {
                let ok = r.is_ok();
                if let Err(e) = r {
                    clean_body.store(false, Ordering::SeqCst);
                    *body_failed.lock().expect("upload error") = Some(e.to_string());
                }
                futures::future::ready(ok)
            })
            .flat_map(move |r| {
                let chunk = r.unwrap_or_default();
                let parts: Vec<_> = chunk.chunks(UPLOAD_CHUNK).map(|c| part(pb::upload_design_request::Part::Data(c.to_vec()))).collect();
                futures::stream::iter(parts)
            });
        let end = futures::stream::once(async move {
            clean_end.load(Ordering::SeqCst).then(|| part(pb::upload_design_request::Part::End(pb::DesignUploadEnd {})))
        })
        .filter_map(futures::future::ready);
        let outgoing =
            futures::stream::once(futures::future::ready(part(pb::upload_design_request::Part::Header(header)))).chain(data).chain(end);
        let result = self.raw.clone().upload_design(self.request(org, outgoing)?).await;
        if let Some(e) = failed.lock().expect("upload error").take() {
            return Err(ServiceError::invalid("body", e).into());
        }
        match result {
            Ok(d) => Ok(d.into_inner().into()),
            Err(s) if s.code() == tonic::Code::OutOfRange => Err(UploadError { too_large: true, error: self.error(s) }),
            Err(s) => Err(self.error(s).into()),
        }
    }

    /// Publishes a design from bytes in memory (tests and small files).
    pub async fn publish_design(
        &self,
        network: &str,
        org: &str,
        design_id: &str,
        recipients: &[String],
        ciphertext: &[u8],
    ) -> Res<DesignView> {
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::copy_from_slice(ciphertext))]);
        self.upload_design(network, org, design_id, recipients, Some(ciphertext.len() as u64), body).await.map_err(|e| e.error)
    }

    /// A design version's ciphertext as it streams from the service (to its
    /// recipients only; anyone else: not found, before the first part).
    pub async fn download_design(
        &self,
        network: &str,
        org: &str,
        design_id: &str,
        version: u32,
    ) -> Res<impl Stream<Item = Res<Vec<u8>>> + Send + 'static> {
        let req = pb::DesignVersionRequest { network: network.to_string(), design_id: design_id.to_string(), version };
        let stream = self.raw.clone().download_design(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner();
        let me = self.clone();
        Ok(stream.map(move |r| r.map(|c| c.data).map_err(|s| me.error(s))))
    }

    /// A design version's whole ciphertext (tests and small files).
    pub async fn download_design_bytes(&self, network: &str, org: &str, design_id: &str, version: u32) -> Res<Vec<u8>> {
        let mut stream = std::pin::pin!(self.download_design(network, org, design_id, version).await?);
        let mut out = Vec::new();
        while let Some(part) = stream.next().await {
            out.extend_from_slice(&part?);
        }
        Ok(out)
    }

    /// The design versions `org` may see.
    pub async fn designs(&self, network: &str, org: &str) -> Res<Vec<DesignView>> {
        let r = self.raw.clone().list_designs(self.request(org, net(network))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().designs.into_iter().map(Into::into).collect())
    }

    /// Replaces who may download a design version.
    pub async fn change_design_access(
        &self,
        network: &str,
        org: &str,
        design_id: &str,
        version: u32,
        recipients: &[String],
    ) -> Res<DesignView> {
        let req = pb::ChangeDesignAccessRequest {
            network: network.into(),
            design_id: design_id.into(),
            version,
            recipients: recipients.to_vec(),
        };
        Ok(self.raw.clone().change_design_access(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The buyer issues a purchase order.
    pub async fn issue_order(&self, network: &str, org: &str, o: OrderInput) -> Res<OrderView> {
        let req = self.request(org, wire::issue_order(network, o))?;
        Ok(self.raw.clone().issue_order(req).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// One order the caller is party to.
    pub async fn order(&self, network: &str, org: &str, order_id: &str) -> Res<OrderView> {
        let req = self.request(org, order(network, order_id))?;
        Ok(self.raw.clone().get_order(req).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The orders the caller is party to.
    pub async fn orders(&self, network: &str, org: &str) -> Res<Vec<OrderView>> {
        let r = self.raw.clone().list_orders(self.request(org, net(network))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().orders.into_iter().map(Into::into).collect())
    }

    /// The supplier accepts an order.
    pub async fn accept_order(&self, network: &str, org: &str, order_id: &str) -> Res<OrderView> {
        let req = self.request(org, order(network, order_id))?;
        Ok(self.raw.clone().accept_order(req).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The supplier sends a shipment.
    pub async fn send_shipment(&self, network: &str, org: &str, order_id: &str, shipment_id: &str, quantity: u64) -> Res<OrderView> {
        let req = self.request(org, shipment(network, order_id, shipment_id, quantity))?;
        Ok(self.raw.clone().send_shipment(req).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The buyer records a receipt.
    pub async fn receive_shipment(&self, network: &str, org: &str, order_id: &str, shipment_id: &str, quantity: u64) -> Res<OrderView> {
        let req = self.request(org, shipment(network, order_id, shipment_id, quantity))?;
        Ok(self.raw.clone().receive_shipment(req).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The buyer records an inspection it counted.
    pub async fn record_inspection(
        &self,
        network: &str,
        org: &str,
        order_id: &str,
        shipment_id: &str,
        sampled: u32,
        defects: u32,
    ) -> Res<OrderView> {
        let req = pb::RecordInspectionRequest {
            network: network.into(),
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            sampled,
            defects,
        };
        Ok(self.raw.clone().record_inspection(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The buyer records an inspection from its inspection station's readings.
    pub async fn inspect_from_telemetry(
        &self,
        network: &str,
        org: &str,
        order_id: &str,
        shipment_id: &str,
        t: &TelemetryInspection,
    ) -> Res<OrderView> {
        let req = pb::InspectFromTelemetryRequest {
            network: network.into(),
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            machine: t.machine.clone(),
            metric: t.metric.clone(),
            from_ms: t.from_ms,
            to_ms: t.to_ms,
            min: t.min,
            max: t.max,
        };
        Ok(self.raw.clone().inspect_from_telemetry(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The buyer accepts a delivery.
    pub async fn accept_delivery(&self, network: &str, org: &str, order_id: &str, shipment_id: &str, quantity: u64) -> Res<OrderView> {
        let req = self.request(org, shipment(network, order_id, shipment_id, quantity))?;
        Ok(self.raw.clone().accept_delivery(req).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The buyer rejects a delivery.
    pub async fn reject_delivery(&self, network: &str, org: &str, order_id: &str, shipment_id: &str, reason: &str) -> Res<OrderView> {
        let req = pb::RejectDeliveryRequest {
            network: network.into(),
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            reason: reason.into(),
        };
        Ok(self.raw.clone().reject_delivery(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// Payments the caller may see.
    pub async fn payments(&self, network: &str, org: &str) -> Res<Vec<PaymentView>> {
        let r = self.raw.clone().list_payments(self.request(org, net(network))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().payments.into_iter().map(Into::into).collect())
    }

    /// The buyer confirms its bank paid an instruction.
    pub async fn confirm_payment(&self, network: &str, org: &str, instruction_id: &str, bank_reference: &str) -> Res<PaymentView> {
        let req = pb::ConfirmPaymentRequest {
            network: network.into(),
            instruction_id: instruction_id.into(),
            bank_reference: bank_reference.into(),
        };
        Ok(self.raw.clone().confirm_payment(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// Payments held back until their supplier enters a bank account.
    pub async fn blocked_payments(&self, network: &str, org: &str) -> Res<Vec<BlockedView>> {
        let r = self.raw.clone().list_blocked_payments(self.request(org, net(network))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().blocked.into_iter().map(Into::into).collect())
    }

    /// A new bank file of the payments waiting for one.
    pub async fn export_payments(&self, network: &str, org: &str) -> Res<BankFile> {
        self.export(network, org, None).await
    }

    /// A bank file paying again what an export paid and is still open.
    pub async fn reissue_export(&self, network: &str, org: &str, message_id: &str) -> Res<BankFile> {
        self.export(network, org, Some(message_id)).await
    }

    async fn export(&self, network: &str, org: &str, reissue_of: Option<&str>) -> Res<BankFile> {
        let req = pb::ExportPaymentsRequest { network: network.into(), reissue_of: reissue_of.map(str::to_string) };
        Ok(self.raw.clone().export_payments(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The buyer's exports, oldest first.
    pub async fn exports(&self, network: &str, org: &str) -> Res<Vec<ExportView>> {
        let r = self.raw.clone().list_exports(self.request(org, net(network))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().exports.into_iter().map(Into::into).collect())
    }

    /// An exported bank file, again.
    pub async fn export_file(&self, network: &str, org: &str, message_id: &str) -> Res<BankFile> {
        let req = pb::ExportFileRequest { network: network.into(), message_id: message_id.into() };
        Ok(self.raw.clone().get_export_file(self.request(org, req)?).await.map_err(|s| self.error(s))?.into_inner().into())
    }

    /// The verifier key, `network`'s checkpoint origin (when named) and the design size limit.
    pub async fn log_info(&self, org: &str, network: Option<&str>) -> Res<LogInfo> {
        let req = self.request(org, net(network.unwrap_or_default()))?;
        let r = self.raw.clone().get_log_info(req).await.map_err(|s| self.error(s))?.into_inner();
        Ok(LogInfo { vkey: r.vkey, origin: r.origin, max_design_bytes: r.max_design_bytes })
    }

    /// The latest signed checkpoint of a network's log (a C2SP signed note).
    pub async fn checkpoint(&self, network: &str, org: &str) -> Res<String> {
        let req = self.request(org, pb::CheckpointRequest { network: network.into() })?;
        Ok(self.raw.clone().get_checkpoint(req).await.map_err(|s| self.error(s))?.into_inner().note)
    }

    /// One entry's canonical bytes, to the organisations it concerns.
    pub async fn entry(&self, network: &str, org: &str, index: u64) -> Res<Vec<u8>> {
        let req = self.request(org, pb::EntryRequest { network: network.into(), index })?;
        Ok(self.raw.clone().get_entry(req).await.map_err(|s| self.error(s))?.into_inner().entry)
    }

    /// The entries of `[start, end)` the caller may read.
    pub async fn entries(&self, network: &str, org: &str, start: u64, end: u64) -> Res<Vec<EntryView>> {
        let req = self.request(org, pb::ListEntriesRequest { network: network.into(), start, end })?;
        let r = self.raw.clone().list_entries(req).await.map_err(|s| self.error(s))?.into_inner();
        r.entries.into_iter().map(|e| wire::entry_view(e).map_err(|e| self.wire(e))).collect()
    }

    /// An inclusion proof (to every member).
    pub async fn inclusion_proof(&self, network: &str, org: &str, index: u64, size: u64) -> Res<InclusionProof> {
        let req = self.request(org, pb::InclusionProofRequest { network: network.into(), index, size })?;
        let r = self.raw.clone().get_inclusion_proof(req).await.map_err(|s| self.error(s))?.into_inner();
        wire::inclusion_proof(r).map_err(|e| self.wire(e))
    }

    /// A consistency proof (to every member).
    pub async fn consistency_proof(&self, network: &str, org: &str, size1: u64, size2: u64) -> Res<ConsistencyProof> {
        let req = self.request(org, pb::ConsistencyProofRequest { network: network.into(), size1, size2 })?;
        let r = self.raw.clone().get_consistency_proof(req).await.map_err(|s| self.error(s))?.into_inner();
        wire::consistency_proof(r).map_err(|e| self.wire(e))
    }
}

fn net(network: &str) -> pb::NetworkRequest {
    pb::NetworkRequest { network: network.to_string() }
}

fn order(network: &str, order_id: &str) -> pb::OrderRequest {
    pb::OrderRequest { network: network.to_string(), order_id: order_id.to_string() }
}

fn shipment(network: &str, order_id: &str, shipment_id: &str, quantity: u64) -> pb::ShipmentQuantityRequest {
    pb::ShipmentQuantityRequest { network: network.into(), order_id: order_id.into(), shipment_id: shipment_id.into(), quantity }
}
