//! The settlement service's gRPC port:
//! - `factorychain.v1.Ledger`: checkpoints, entries and proofs, for members of
//!   a supply network authenticated by an API key of their tenant (asked of
//!   the tenancy owner);
//! - `factorychain.v1.Settlement`: the complete internal API (designs, orders,
//!   shipments, inspections, decisions, payments, bank files, the log) for
//!   services holding a service credential of one of [`CALLERS`], acting for
//!   the organisation in `x-fc-tenant`.

use crate::Settlement;
use fc_core::ServiceError;
use fc_proto::v1 as pb;
use fc_proto::v1::ledger_server::{Ledger, LedgerServer};
use fc_proto::v1::settlement_server::{Settlement as SettlementApi, SettlementServer};
use fc_proto::v1::{
    Checkpoint, CheckpointRequest, ConsistencyProof, ConsistencyProofRequest, EntryRequest, InclusionProof, InclusionProofRequest,
    LedgerEntry, VerifierKey, VerifierKeyRequest,
};
use fc_rpc::service_auth::Verifier;
use fc_settlement_api::{TelemetryInspection, wire};
use futures::StreamExt;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// Services that may call the internal `Settlement` API.
pub const CALLERS: [&str; 1] = ["portal"];

/// Largest part of a design sent in one message of a download.
const DOWNLOAD_CHUNK: usize = 256 << 10;

pub(crate) fn ledger(s: Arc<Settlement>) -> LedgerServer<LedgerSvc> {
    LedgerServer::new(LedgerSvc(s))
}

pub(crate) fn internal(s: Arc<Settlement>, verifier: Verifier) -> SettlementServer<InternalSvc> {
    // A design part is at most 1 MiB (the client's `UPLOAD_CHUNK`); headroom for framing.
    SettlementServer::new(InternalSvc { s, verifier }).max_decoding_message_size(2 << 20).max_encoding_message_size(64 << 20)
}

pub(crate) struct LedgerSvc(Arc<Settlement>);

impl LedgerSvc {
    /// The caller's organisation, from `authorization: Bearer <API key>`.
    async fn org<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let token = fc_rpc::bearer(req.metadata()).ok_or_else(|| Status::unauthenticated("send authorization: Bearer <API key>"))?;
        let key = self.0.tenancy().api_key(token).await?;
        Ok(key.tenant_id)
    }
}

#[tonic::async_trait]
impl Ledger for LedgerSvc {
    async fn get_verifier_key(&self, req: Request<VerifierKeyRequest>) -> Result<Response<VerifierKey>, Status> {
        self.org(&req).await?;
        Ok(Response::new(VerifierKey { vkey: self.0.verifier_key() }))
    }

    async fn get_checkpoint(&self, req: Request<CheckpointRequest>) -> Result<Response<Checkpoint>, Status> {
        let org = self.org(&req).await?;
        Ok(Response::new(checkpoint(&self.0, &req.get_ref().network, &org).await?))
    }

    async fn get_entry(&self, req: Request<EntryRequest>) -> Result<Response<LedgerEntry>, Status> {
        let org = self.org(&req).await?;
        let r = req.get_ref();
        let entry = self.0.entry(&r.network, &org, r.index).await?;
        Ok(Response::new(LedgerEntry { index: r.index, entry }))
    }

    async fn get_inclusion_proof(&self, req: Request<InclusionProofRequest>) -> Result<Response<InclusionProof>, Status> {
        let org = self.org(&req).await?;
        let r = req.get_ref();
        Ok(Response::new(wire::inclusion_proof_pb(self.0.inclusion_proof(&r.network, &org, r.index, r.size).await?)))
    }

    async fn get_consistency_proof(&self, req: Request<ConsistencyProofRequest>) -> Result<Response<ConsistencyProof>, Status> {
        let org = self.org(&req).await?;
        let r = req.get_ref();
        Ok(Response::new(wire::consistency_proof_pb(self.0.consistency_proof(&r.network, &org, r.size1, r.size2).await?)))
    }
}

async fn checkpoint(s: &Settlement, network: &str, org: &str) -> Result<Checkpoint, ServiceError> {
    let note = s.checkpoint(network, org).await?;
    let size = note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    Ok(Checkpoint { note, size })
}

pub(crate) struct InternalSvc {
    s: Arc<Settlement>,
    verifier: Verifier,
}

impl InternalSvc {
    /// The acting organisation, once the caller proved it is an allowed service.
    fn actor(&self, meta: &tonic::metadata::MetadataMap) -> Result<String, Status> {
        self.verifier.check(meta, &CALLERS)?;
        fc_rpc::service_auth::tenant(meta)
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T, U: Into<T>>(v: Result<U, ServiceError>) -> Answer<T> {
    Ok(Response::new(v?.into()))
}

#[tonic::async_trait]
impl SettlementApi for InternalSvc {
    async fn list_networks(&self, req: Request<pb::ListNetworksRequest>) -> Answer<pb::ListNetworksResponse> {
        let org = self.actor(req.metadata())?;
        let networks = self.s.networks(&org).await?;
        Ok(Response::new(pb::ListNetworksResponse { networks: networks.into_iter().map(Into::into).collect() }))
    }

    async fn upload_design(&self, req: Request<Streaming<pb::UploadDesignRequest>>) -> Answer<pb::Design> {
        use pb::upload_design_request::Part;
        let org = self.actor(req.metadata())?;
        let mut stream = req.into_inner();
        let refused = |e: fc_settlement_api::UploadError| -> Status {
            if e.too_large { Status::out_of_range(e.error.message) } else { e.error.into() }
        };
        let header = match stream.message().await? {
            Some(pb::UploadDesignRequest { part: Some(Part::Header(h)) }) => h,
            _ => return Err(Status::invalid_argument("a design upload starts with its header")),
        };
        let mut upload = self
            .s
            .begin_design_upload(&header.network, &org, &header.design_id, &header.recipients, header.content_length)
            .await
            .map_err(refused)?;
        loop {
            match stream.message().await? {
                Some(pb::UploadDesignRequest { part: Some(Part::Data(chunk)) }) => upload.write(&chunk).await.map_err(refused)?,
                Some(pb::UploadDesignRequest { part: Some(Part::End(_)) }) => break,
                Some(_) => return Err(Status::invalid_argument("a design upload has one header, then data, then its end")),
                // The client's source failed or it went away: nothing is published.
                None => return Err(Status::cancelled("the design upload ended before its end marker; nothing was published")),
            }
        }
        if stream.message().await?.is_some() {
            return Err(Status::invalid_argument("nothing may follow a design upload's end marker"));
        }
        ok(self.s.finish_design_upload(upload).await)
    }

    type DownloadDesignStream = Pin<Box<dyn futures::Stream<Item = Result<pb::DesignChunk, Status>> + Send + 'static>>;

    async fn download_design(&self, req: Request<pb::DesignVersionRequest>) -> Answer<Self::DownloadDesignStream> {
        let org = self.actor(req.metadata())?;
        let r = req.into_inner();
        // Checked against its ledger hash before the first byte leaves.
        let bytes = self.s.download_design(&r.network, &org, &r.design_id, r.version).await?;
        let parts: Vec<Result<pb::DesignChunk, Status>> =
            bytes.chunks(DOWNLOAD_CHUNK).map(|c| Ok(pb::DesignChunk { data: c.to_vec() })).collect();
        Ok(Response::new(futures::stream::iter(parts).boxed()))
    }

    async fn list_designs(&self, req: Request<pb::NetworkRequest>) -> Answer<pb::ListDesignsResponse> {
        let org = self.actor(req.metadata())?;
        let designs = self.s.designs(&req.get_ref().network, &org).await?;
        Ok(Response::new(pb::ListDesignsResponse { designs: designs.into_iter().map(Into::into).collect() }))
    }

    async fn change_design_access(&self, req: Request<pb::ChangeDesignAccessRequest>) -> Answer<pb::Design> {
        let org = self.actor(req.metadata())?;
        let r = req.into_inner();
        ok(self.s.change_design_access(&r.network, &org, &r.design_id, r.version, &r.recipients).await)
    }

    async fn issue_order(&self, req: Request<pb::IssueOrderRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let (network, input) = wire::order_input(req.into_inner());
        ok(self.s.issue_order(&network, &org, input).await)
    }

    async fn get_order(&self, req: Request<pb::OrderRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.order(&r.network, &org, &r.order_id).await)
    }

    async fn list_orders(&self, req: Request<pb::NetworkRequest>) -> Answer<pb::ListOrdersResponse> {
        let org = self.actor(req.metadata())?;
        let orders = self.s.orders(&req.get_ref().network, &org).await?;
        Ok(Response::new(pb::ListOrdersResponse { orders: orders.into_iter().map(Into::into).collect() }))
    }

    async fn accept_order(&self, req: Request<pb::OrderRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.accept_order(&r.network, &org, &r.order_id).await)
    }

    async fn send_shipment(&self, req: Request<pb::ShipmentQuantityRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.send_shipment(&r.network, &org, &r.order_id, &r.shipment_id, r.quantity).await)
    }

    async fn receive_shipment(&self, req: Request<pb::ShipmentQuantityRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.receive_shipment(&r.network, &org, &r.order_id, &r.shipment_id, r.quantity).await)
    }

    async fn record_inspection(&self, req: Request<pb::RecordInspectionRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.record_inspection(&r.network, &org, &r.order_id, &r.shipment_id, r.sampled, r.defects).await)
    }

    async fn inspect_from_telemetry(&self, req: Request<pb::InspectFromTelemetryRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.into_inner();
        let t = TelemetryInspection { machine: r.machine, metric: r.metric, from_ms: r.from_ms, to_ms: r.to_ms, min: r.min, max: r.max };
        ok(self.s.inspect_from_telemetry(&r.network, &org, &r.order_id, &r.shipment_id, &t).await)
    }

    async fn accept_delivery(&self, req: Request<pb::ShipmentQuantityRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.accept_delivery(&r.network, &org, &r.order_id, &r.shipment_id, r.quantity).await)
    }

    async fn reject_delivery(&self, req: Request<pb::RejectDeliveryRequest>) -> Answer<pb::Order> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.reject_delivery(&r.network, &org, &r.order_id, &r.shipment_id, &r.reason).await)
    }

    async fn list_payments(&self, req: Request<pb::NetworkRequest>) -> Answer<pb::ListPaymentsResponse> {
        let org = self.actor(req.metadata())?;
        let payments = self.s.payments(&req.get_ref().network, &org).await?;
        Ok(Response::new(pb::ListPaymentsResponse { payments: payments.into_iter().map(Into::into).collect() }))
    }

    async fn confirm_payment(&self, req: Request<pb::ConfirmPaymentRequest>) -> Answer<pb::Payment> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.confirm_payment(&r.network, &org, &r.instruction_id, &r.bank_reference).await)
    }

    async fn list_blocked_payments(&self, req: Request<pb::NetworkRequest>) -> Answer<pb::ListBlockedPaymentsResponse> {
        let org = self.actor(req.metadata())?;
        let blocked = self.s.blocked_payments(&req.get_ref().network, &org).await?;
        Ok(Response::new(pb::ListBlockedPaymentsResponse { blocked: blocked.into_iter().map(Into::into).collect() }))
    }

    async fn export_payments(&self, req: Request<pb::ExportPaymentsRequest>) -> Answer<pb::BankFile> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        match &r.reissue_of {
            Some(m) => ok(self.s.reissue_export(&r.network, &org, m).await),
            None => ok(self.s.export_payments(&r.network, &org).await),
        }
    }

    async fn list_exports(&self, req: Request<pb::NetworkRequest>) -> Answer<pb::ListExportsResponse> {
        let org = self.actor(req.metadata())?;
        let exports = self.s.exports(&req.get_ref().network, &org).await?;
        Ok(Response::new(pb::ListExportsResponse { exports: exports.into_iter().map(Into::into).collect() }))
    }

    async fn get_export_file(&self, req: Request<pb::ExportFileRequest>) -> Answer<pb::BankFile> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        ok(self.s.export_file(&r.network, &org, &r.message_id).await)
    }

    async fn get_log_info(&self, req: Request<pb::NetworkRequest>) -> Answer<pb::LogInfo> {
        self.actor(req.metadata())?;
        let network = &req.get_ref().network;
        let origin = if network.is_empty() { String::new() } else { self.s.origin(network) };
        Ok(Response::new(pb::LogInfo { vkey: self.s.verifier_key(), origin, max_design_bytes: self.s.max_design_bytes() as u64 }))
    }

    async fn get_checkpoint(&self, req: Request<CheckpointRequest>) -> Answer<Checkpoint> {
        let org = self.actor(req.metadata())?;
        Ok(Response::new(checkpoint(&self.s, &req.get_ref().network, &org).await?))
    }

    async fn list_entries(&self, req: Request<pb::ListEntriesRequest>) -> Answer<pb::ListEntriesResponse> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        let entries = self.s.entries(&r.network, &org, r.start, r.end).await?;
        Ok(Response::new(pb::ListEntriesResponse { entries: entries.into_iter().map(Into::into).collect() }))
    }

    async fn get_entry(&self, req: Request<EntryRequest>) -> Answer<LedgerEntry> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        let entry = self.s.entry(&r.network, &org, r.index).await?;
        Ok(Response::new(LedgerEntry { index: r.index, entry }))
    }

    async fn get_inclusion_proof(&self, req: Request<InclusionProofRequest>) -> Answer<InclusionProof> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        Ok(Response::new(wire::inclusion_proof_pb(self.s.inclusion_proof(&r.network, &org, r.index, r.size).await?)))
    }

    async fn get_consistency_proof(&self, req: Request<ConsistencyProofRequest>) -> Answer<ConsistencyProof> {
        let org = self.actor(req.metadata())?;
        let r = req.get_ref();
        Ok(Response::new(wire::consistency_proof_pb(self.s.consistency_proof(&r.network, &org, r.size1, r.size2).await?)))
    }
}
