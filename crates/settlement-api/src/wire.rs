//! The views as the internal `factorychain.v1.Settlement` API carries them
//! (`proto/factorychain/v1/supply.proto`), both ways: the service encodes its
//! answers with these and the client decodes them, so a field added to a view
//! is added here once.
//!
//! Boundary: what comes off the wire is checked (hash lengths, JSON of
//! entries); a malformed answer is an error, never a panic.

use crate::{BankFile, BlockedView, DesignView, EntryView, ExportView, NetworkView, OrderInput, OrderView, PaymentView, ShipmentView};
use fc_ledger::merkle::Hash;
use fc_ledger::proof::{ConsistencyProof, InclusionProof};
use fc_proto::v1 as pb;

/// An answer that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("settlement answer: {0}")]
pub struct WireError(pub String);

/// `From` both ways between a view and its message whose fields have the
/// same names and types (`nested`: lists of such pairs).
macro_rules! both_ways {
    ($view:ty, $msg:ty, [$($f:ident),* $(,)?] $(, nested [$($n:ident),*])?) => {
        impl From<$view> for $msg {
            fn from(v: $view) -> Self {
                Self { $($f: v.$f,)* $($($n: v.$n.into_iter().map(Into::into).collect(),)*)? }
            }
        }
        impl From<$msg> for $view {
            fn from(v: $msg) -> Self {
                Self { $($f: v.$f,)* $($($n: v.$n.into_iter().map(Into::into).collect(),)*)? }
            }
        }
    };
}

both_ways!(NetworkView, pb::SupplyNetwork, [network, buyer_name, role, size]);
both_ways!(DesignView, pb::Design, [design_id, version, ciphertext_sha256, recipients, published_ms, seq, downloadable]);
both_ways!(
    ShipmentView,
    pb::Shipment,
    [
        shipment_id,
        sent_quantity,
        sent_at_ms,
        received_quantity,
        received_at_ms,
        sampled,
        defects,
        inspection_source,
        decision,
        accepted_quantity,
        rejection_reason
    ]
);
both_ways!(
    OrderView,
    pb::Order,
    [
        network,
        order_id,
        buyer_org,
        supplier_org,
        part,
        design_id,
        design_version,
        quantity,
        unit_price_krw,
        due_date_ms,
        sample_size,
        allowed_defects,
        payment_term_days,
        late_penalty_per_day_krw,
        late_penalty_cap_krw,
        transit_days,
        status,
        received_quantity,
        accepted_quantity,
        penalty_charged_krw
    ],
    nested[shipments]
);
both_ways!(
    PaymentView,
    pb::Payment,
    [instruction_id, order_id, shipment_id, supplier_org, amount_krw, penalty_krw, due_date_ms, status, bank_reference, export_message_id]
);
both_ways!(BlockedView, pb::BlockedPayments, [supplier_org, supplier_name, instruction_ids, amount_krw]);
both_ways!(BankFile, pb::BankFile, [message_id, xml], nested[blocked]);

/// An order to issue in `network`, as the client sends it.
pub fn issue_order(network: &str, o: OrderInput) -> pb::IssueOrderRequest {
    pb::IssueOrderRequest {
        network: network.to_string(),
        order_id: o.order_id,
        supplier_org: o.supplier_org,
        part: o.part,
        design_id: o.design_id,
        design_version: o.design_version,
        quantity: o.quantity,
        unit_price_krw: o.unit_price_krw,
        due_date_ms: o.due_date_ms,
        sample_size: o.sample_size,
        allowed_defects: o.allowed_defects,
        payment_term_days: o.payment_term_days,
        late_penalty_per_day_krw: o.late_penalty_per_day_krw,
        late_penalty_cap_krw: o.late_penalty_cap_krw,
        transit_days: o.transit_days,
        allow_past_due: o.allow_past_due,
    }
}

/// The order a request asks for, as the service reads it (and its network).
pub fn order_input(r: pb::IssueOrderRequest) -> (String, OrderInput) {
    (
        r.network,
        OrderInput {
            order_id: r.order_id,
            supplier_org: r.supplier_org,
            part: r.part,
            design_id: r.design_id,
            design_version: r.design_version,
            quantity: r.quantity,
            unit_price_krw: r.unit_price_krw,
            due_date_ms: r.due_date_ms,
            sample_size: r.sample_size,
            allowed_defects: r.allowed_defects,
            payment_term_days: r.payment_term_days,
            late_penalty_per_day_krw: r.late_penalty_per_day_krw,
            late_penalty_cap_krw: r.late_penalty_cap_krw,
            transit_days: r.transit_days,
            allow_past_due: r.allow_past_due,
        },
    )
}

impl From<ExportView> for pb::PaymentsExport {
    fn from(v: ExportView) -> Self {
        Self {
            message_id: v.message_id,
            instruction_ids: v.instruction_ids,
            amount_krw: v.amount_krw,
            unconfirmed: v.unconfirmed as u64,
            file_sha256: v.file_sha256,
            reissue_of: v.reissue_of,
            exported_ms: v.exported_ms,
            seq: v.seq,
        }
    }
}

impl From<pb::PaymentsExport> for ExportView {
    fn from(v: pb::PaymentsExport) -> Self {
        Self {
            message_id: v.message_id,
            instruction_ids: v.instruction_ids,
            amount_krw: v.amount_krw,
            unconfirmed: usize::try_from(v.unconfirmed).unwrap_or(usize::MAX),
            file_sha256: v.file_sha256,
            reissue_of: v.reissue_of,
            exported_ms: v.exported_ms,
            seq: v.seq,
        }
    }
}

impl From<EntryView> for pb::LedgerEntry {
    fn from(v: EntryView) -> Self {
        Self { index: v.index, entry: serde_json::to_vec(&v.entry).unwrap_or_default() }
    }
}

/// An entry off the wire (its bytes are the entry's JSON).
pub fn entry_view(e: pb::LedgerEntry) -> Result<EntryView, WireError> {
    let entry = serde_json::from_slice(&e.entry).map_err(|err| WireError(format!("entry {}: {err}", e.index)))?;
    Ok(EntryView { index: e.index, entry })
}

fn hash(field: &str, bytes: &[u8]) -> Result<Hash, WireError> {
    bytes.try_into().map_err(|_| WireError(format!("{field}: {} bytes, not 32", bytes.len())))
}

fn hashes(bytes: &[Vec<u8>]) -> Result<Vec<Hash>, WireError> {
    bytes.iter().map(|b| hash("hashes", b)).collect()
}

/// An inclusion proof for the wire.
pub fn inclusion_proof_pb(p: InclusionProof) -> pb::InclusionProof {
    pb::InclusionProof {
        leaf_index: p.leaf_index,
        tree_size: p.tree_size,
        leaf_hash: p.leaf_hash.to_vec(),
        root_hash: p.root_hash.to_vec(),
        hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
    }
}

/// An inclusion proof off the wire.
pub fn inclusion_proof(p: pb::InclusionProof) -> Result<InclusionProof, WireError> {
    Ok(InclusionProof {
        leaf_index: p.leaf_index,
        tree_size: p.tree_size,
        leaf_hash: hash("leaf_hash", &p.leaf_hash)?,
        root_hash: hash("root_hash", &p.root_hash)?,
        hashes: hashes(&p.hashes)?,
    })
}

/// A consistency proof for the wire.
pub fn consistency_proof_pb(p: ConsistencyProof) -> pb::ConsistencyProof {
    pb::ConsistencyProof {
        size1: p.size1,
        size2: p.size2,
        root1: p.root1.to_vec(),
        root2: p.root2.to_vec(),
        hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
    }
}

/// A consistency proof off the wire.
pub fn consistency_proof(p: pb::ConsistencyProof) -> Result<ConsistencyProof, WireError> {
    Ok(ConsistencyProof {
        size1: p.size1,
        size2: p.size2,
        root1: hash("root1", &p.root1)?,
        root2: hash("root2", &p.root2)?,
        hashes: hashes(&p.hashes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_survives_the_wire() {
        let o = OrderView {
            network: "t_1".into(),
            order_id: "PO-1".into(),
            buyer_org: "t_1".into(),
            supplier_org: "t_2".into(),
            part: "bracket".into(),
            design_id: "D".into(),
            design_version: 2,
            quantity: 10,
            unit_price_krw: 5,
            due_date_ms: -1,
            sample_size: 3,
            allowed_defects: 1,
            payment_term_days: 30,
            late_penalty_per_day_krw: 7,
            late_penalty_cap_krw: 70,
            transit_days: Some(0),
            status: "in_delivery".into(),
            received_quantity: 4,
            accepted_quantity: 0,
            penalty_charged_krw: 0,
            shipments: vec![ShipmentView {
                shipment_id: "S1".into(),
                sent_quantity: 4,
                sent_at_ms: 1,
                received_quantity: Some(4),
                received_at_ms: None,
                sampled: Some(3),
                defects: Some(0),
                inspection_source: Some("telemetry".into()),
                decision: None,
                accepted_quantity: None,
                rejection_reason: Some("".into()),
            }],
        };
        let back: OrderView = pb::Order::from(o.clone()).into();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&o).unwrap());
    }

    #[test]
    fn a_malformed_proof_is_an_error() {
        let p = pb::InclusionProof { leaf_hash: vec![0; 31], root_hash: vec![0; 32], ..Default::default() };
        assert!(inclusion_proof(p).unwrap_err().0.contains("leaf_hash: 31 bytes"));
        let p = pb::ConsistencyProof { root1: vec![0; 32], root2: vec![0; 32], hashes: vec![vec![1; 33]], ..Default::default() };
        assert!(consistency_proof(p).is_err());
        assert!(entry_view(pb::LedgerEntry { index: 3, entry: b"{".to_vec() }).unwrap_err().0.contains("entry 3"));
    }
}
