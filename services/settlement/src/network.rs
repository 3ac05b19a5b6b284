//! One supply network's state: the settlement fold of its log plus the design
//! versions its `design_*` entries published, and who may read each entry.
//!
//! Invariant: [`Network::apply`] either accepts an entry and changes the state,
//! or refuses it and changes nothing (design checks come before the fold,
//! whose own refusals leave it unchanged).

use fc_ledger::entry::{Entry, Event};
use fc_ledger::settle;
use std::collections::BTreeMap;

/// A published design version.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    pub version: u32,
    pub sha256: String,
    pub recipients: Vec<String>,
    /// The organisations it was encrypted to: access can only narrow to these.
    pub encrypted_to: Vec<String>,
    pub published_ms: i64,
    pub seq: u64,
}

/// Why a design entry is refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    Settle(settle::SettleError),
    Design(String),
}

pub(crate) struct Network {
    pub buyer: String,
    pub fold: settle::Ledger,
    /// Design id -> versions, in version order (version n at index n-1).
    pub designs: BTreeMap<String, Vec<Version>>,
}

impl Network {
    pub fn new(buyer: &str) -> Self {
        Self { buyer: buyer.to_string(), fold: settle::Ledger::new(), designs: BTreeMap::new() }
    }

    /// The version the next publication of `design_id` gets.
    pub fn next_version(&self, design_id: &str) -> u32 {
        self.designs.get(design_id).map_or(1, |v| v.len() as u32 + 1)
    }

    pub fn version(&self, design_id: &str, version: u32) -> Option<&Version> {
        self.designs.get(design_id)?.get((version as usize).checked_sub(1)?)
    }

    /// Applies the next entry of the log.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), Refusal> {
        match &entry.event {
            Event::DesignPublished(d) => {
                if entry.actor_org != self.buyer {
                    return Err(Refusal::Design(format!("only the network's buyer publishes designs, not {}", entry.actor_org)));
                }
                if d.version != self.next_version(&d.design_id) {
                    return Err(Refusal::Design(format!(
                        "design {} version {} out of order (next is {})",
                        d.design_id,
                        d.version,
                        self.next_version(&d.design_id)
                    )));
                }
                if d.recipients.is_empty() {
                    return Err(Refusal::Design("a design needs at least one recipient".into()));
                }
            }
            Event::DesignAccessChanged(d) => {
                if entry.actor_org != self.buyer {
                    return Err(Refusal::Design(format!("only the network's buyer changes design access, not {}", entry.actor_org)));
                }
                let Some(v) = self.version(&d.design_id, d.version) else {
                    return Err(Refusal::Design(format!("design {} has no version {}", d.design_id, d.version)));
                };
                // The file is encrypted to the publication's recipients; nobody else could read it.
                if let Some(other) = d.recipients.iter().find(|r| !v.encrypted_to.contains(r)) {
                    return Err(Refusal::Design(format!(
                        "design {} v{} is not encrypted to {other}: publish a new version for it",
                        d.design_id, d.version
                    )));
                }
            }
            _ => {}
        }
        self.fold.apply(entry).map_err(Refusal::Settle)?;
        match &entry.event {
            Event::DesignPublished(d) => self.designs.entry(d.design_id.clone()).or_default().push(Version {
                version: d.version,
                sha256: hex::encode(d.ciphertext_sha256.0),
                recipients: d.recipients.clone(),
                encrypted_to: d.recipients.clone(),
                published_ms: entry.at_ms,
                seq: entry.seq,
            }),
            Event::DesignAccessChanged(d) => {
                if let Some(v) = self.designs.get_mut(&d.design_id).and_then(|vs| vs.get_mut(d.version as usize - 1)) {
                    v.recipients = d.recipients.clone();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The supplier of an order, if the order exists.
    pub fn supplier_of(&self, order_id: &str) -> Option<&str> {
        self.fold.order(order_id).map(|o| o.terms.supplier_org.as_str())
    }

    /// Whether `org` may read `entry`: the buyer reads everything; a supplier
    /// the events of its own orders; a design's recipients its design events.
    /// Bank-file exports are the buyer's only.
    pub fn may_read(&self, org: &str, entry: &Entry) -> bool {
        if org == self.buyer {
            return true;
        }
        let order = match &entry.event {
            Event::DesignPublished(d) => return d.recipients.iter().any(|r| r == org),
            Event::DesignAccessChanged(d) => return d.recipients.iter().any(|r| r == org),
            Event::OrderIssued(o) => o.order_id.as_str(),
            Event::OrderAccepted(o) => o.order_id.as_str(),
            Event::ShipmentSent(s) | Event::ShipmentReceived(s) => s.order_id.as_str(),
            Event::InspectionRecorded(i) => i.order_id.as_str(),
            Event::DeliveryAccepted(d) => d.order_id.as_str(),
            Event::DeliveryRejected(d) => d.order_id.as_str(),
            Event::PaymentInstructed(p) => p.order_id.as_str(),
            // A bank file names payments of several suppliers: the buyer's alone.
            Event::PaymentsExported(_) => return false,
            Event::PaymentConfirmed(c) => match self.fold.payment(&c.instruction_id) {
                Some(p) => p.instruction.order_id.as_str(),
                None => return false,
            },
        };
        self.supplier_of(order) == Some(org)
    }
}
