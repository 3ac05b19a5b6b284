//! `factorychain.v1.Ledger`: checkpoints, entries and proofs over gRPC, for
//! members of a supply network authenticated by an API key of their tenant.

use crate::Settlement;
use fc_core::ServiceError;
use fc_proto::v1::ledger_server::{Ledger, LedgerServer};
use fc_proto::v1::{
    Checkpoint, CheckpointRequest, ConsistencyProof, ConsistencyProofRequest, EntryRequest, InclusionProof, InclusionProofRequest,
    LedgerEntry, VerifierKey, VerifierKeyRequest,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub(crate) fn service(s: Arc<Settlement>) -> LedgerServer<LedgerSvc> {
    LedgerServer::new(LedgerSvc(s))
}

pub(crate) struct LedgerSvc(Arc<Settlement>);

impl LedgerSvc {
    /// The caller's organisation, from `authorization: Bearer <API key>`.
    fn org<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("send authorization: Bearer <API key>"))?;
        let key = self.0.registry().authenticate_api_key(token.trim()).map_err(ServiceError::from)?;
        Ok(key.tenant_id)
    }
}

#[tonic::async_trait]
impl Ledger for LedgerSvc {
    async fn get_verifier_key(&self, req: Request<VerifierKeyRequest>) -> Result<Response<VerifierKey>, Status> {
        self.org(&req)?;
        Ok(Response::new(VerifierKey { vkey: self.0.verifier_key() }))
    }

    async fn get_checkpoint(&self, req: Request<CheckpointRequest>) -> Result<Response<Checkpoint>, Status> {
        let org = self.org(&req)?;
        let network = &req.get_ref().network;
        let note = self.0.checkpoint(network, &org).await?;
        let size = note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
        Ok(Response::new(Checkpoint { note, size }))
    }

    async fn get_entry(&self, req: Request<EntryRequest>) -> Result<Response<LedgerEntry>, Status> {
        let org = self.org(&req)?;
        let r = req.get_ref();
        let entry = self.0.entry(&r.network, &org, r.index).await?;
        Ok(Response::new(LedgerEntry { index: r.index, entry }))
    }

    async fn get_inclusion_proof(&self, req: Request<InclusionProofRequest>) -> Result<Response<InclusionProof>, Status> {
        let org = self.org(&req)?;
        let r = req.get_ref();
        let p = self.0.inclusion_proof(&r.network, &org, r.index, r.size)?;
        Ok(Response::new(InclusionProof {
            leaf_index: p.leaf_index,
            tree_size: p.tree_size,
            leaf_hash: p.leaf_hash.to_vec(),
            root_hash: p.root_hash.to_vec(),
            hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(&self, req: Request<ConsistencyProofRequest>) -> Result<Response<ConsistencyProof>, Status> {
        let org = self.org(&req)?;
        let r = req.get_ref();
        let p = self.0.consistency_proof(&r.network, &org, r.size1, r.size2)?;
        Ok(Response::new(ConsistencyProof {
            size1: p.size1,
            size2: p.size2,
            root1: p.root1.to_vec(),
            root2: p.root2.to_vec(),
            hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }
}
