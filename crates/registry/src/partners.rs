//! Supplier partnerships: a buyer tenant asks a supplier tenant (by its
//! organisation id) to join its supply network; the supplier's owner accepts.
//! Settlement (orders, designs, the buyer's ledger) is open only between
//! accepted partners.
//!
//! Invariants:
//! - a buyer has at most its plan's `max_partners` partnerships (pending ones count);
//! - a tenant is never its own partner; either side can end a partnership;
//! - each side sees only its own partnerships.

use crate::kv::Table;
use crate::{Registry, RegistryError};
use serde::{Deserialize, Serialize};

/// A buyer–supplier partnership.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Partnership {
    /// The buyer tenant (owner of the supply network and its ledger).
    pub buyer_id: String,
    /// The buyer's display name.
    pub buyer_name: String,
    /// The supplier tenant.
    pub supplier_id: String,
    /// The supplier's display name.
    pub supplier_name: String,
    /// When the buyer asked, Unix ms.
    pub requested_ms: i64,
    /// When the supplier accepted; `None` while pending.
    pub accepted_ms: Option<i64>,
}

impl Partnership {
    /// Whether the supplier accepted.
    pub fn is_active(&self) -> bool {
        self.accepted_ms.is_some()
    }
}

impl Registry {
    /// The buyer asks `supplier_id` to become a partner (pending until the supplier accepts).
    pub fn request_partner(&self, buyer_id: &str, supplier_id: &str) -> Result<Partnership, RegistryError> {
        let buyer = self.get_tenant(buyer_id)?;
        if buyer_id == supplier_id {
            return Err(RegistryError::Invalid("supplier_id: an organisation cannot be its own partner".into()));
        }
        let supplier = self.get_tenant(supplier_id).map_err(|_| RegistryError::NotFound("organisation".into()))?;
        let existing = self.suppliers(buyer_id)?;
        if existing.iter().any(|p| p.supplier_id == supplier_id) {
            return Err(RegistryError::AlreadyExists("this partnership".into()));
        }
        let plan = buyer.plan();
        if existing.len() as u32 >= plan.max_partners {
            return Err(RegistryError::QuotaExceeded(format!(
                "the {} plan allows {} partners; end one or change plan",
                plan.name, plan.max_partners
            )));
        }
        let p = Partnership {
            buyer_id: buyer.id,
            buyer_name: buyer.name,
            supplier_id: supplier.id,
            supplier_name: supplier.name,
            requested_ms: fc_core::time::now_ms(),
            accepted_ms: None,
        };
        self.put_partnership(&p)?;
        Ok(p)
    }

    /// The supplier accepts a buyer's request.
    pub fn accept_partner(&self, supplier_id: &str, buyer_id: &str) -> Result<Partnership, RegistryError> {
        let mut p = self.partnership(buyer_id, supplier_id)?.ok_or_else(|| RegistryError::NotFound("partnership".into()))?;
        p.accepted_ms.get_or_insert(fc_core::time::now_ms());
        self.put_partnership(&p)?;
        Ok(p)
    }

    /// End a partnership from either side (`tenant_id` is the caller, `other_id` the partner).
    pub fn end_partnership(&self, tenant_id: &str, other_id: &str) -> Result<(), RegistryError> {
        let p = match self.partnership(tenant_id, other_id)? {
            Some(p) => p,
            None => self.partnership(other_id, tenant_id)?.ok_or_else(|| RegistryError::NotFound("partnership".into()))?,
        };
        self.kv.remove(Table::Partners, &p.buyer_id, &pair_key(&p.buyer_id, &p.supplier_id))?;
        self.kv.remove(Table::PartnerOf, &p.supplier_id, &pair_key(&p.buyer_id, &p.supplier_id))
    }

    /// The buyer's supplier partnerships (pending and active).
    pub fn suppliers(&self, buyer_id: &str) -> Result<Vec<Partnership>, RegistryError> {
        self.scan(Table::Partners, buyer_id)
    }

    /// The buyers whose supply network the tenant belongs to or is asked to join.
    pub fn buyers(&self, supplier_id: &str) -> Result<Vec<Partnership>, RegistryError> {
        self.scan(Table::PartnerOf, supplier_id)
    }

    /// The partnership of `buyer_id` with `supplier_id`, if any.
    pub fn partnership(&self, buyer_id: &str, supplier_id: &str) -> Result<Option<Partnership>, RegistryError> {
        self.get_json(Table::Partners, &pair_key(buyer_id, supplier_id))
    }

    /// Whether `tenant_id` is the buyer or an accepted supplier of `buyer_id`'s network.
    pub fn is_network_member(&self, buyer_id: &str, tenant_id: &str) -> Result<bool, RegistryError> {
        Ok(buyer_id == tenant_id || self.partnership(buyer_id, tenant_id)?.is_some_and(|p| p.is_active()))
    }

    fn put_partnership(&self, p: &Partnership) -> Result<(), RegistryError> {
        let key = pair_key(&p.buyer_id, &p.supplier_id);
        self.put_json(Table::Partners, &p.buyer_id, &key, p, None)?;
        self.put_json(Table::PartnerOf, &p.supplier_id, &key, p, None)
    }
}

/// Row key of a partnership: unique per (buyer, supplier) pair.
fn pair_key(buyer_id: &str, supplier_id: &str) -> String {
    format!("{buyer_id}/{supplier_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partnerships_respect_the_plan_and_both_sides_see_them() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path().join("r.redb")).unwrap();
        let buyer = r.create_tenant("Hanbit Motors", "starter").unwrap();
        let suppliers: Vec<_> = (0..4).map(|i| r.create_tenant(&format!("Supplier {i}"), "starter").unwrap()).collect();
        assert!(matches!(r.request_partner(&buyer.id, &buyer.id), Err(RegistryError::Invalid(_))));
        assert!(matches!(r.request_partner(&buyer.id, "t_0000000000000000"), Err(RegistryError::NotFound(_))));
        for s in &suppliers[..3] {
            let p = r.request_partner(&buyer.id, &s.id).unwrap();
            assert!(!p.is_active());
        }
        assert!(matches!(r.request_partner(&buyer.id, &suppliers[0].id), Err(RegistryError::AlreadyExists(_))));
        match r.request_partner(&buyer.id, &suppliers[3].id) {
            Err(RegistryError::QuotaExceeded(m)) => assert!(m.contains("3 partners"), "{m}"),
            other => panic!("the 4th partner of a starter plan: {other:?}"),
        }
        assert!(!r.is_network_member(&buyer.id, &suppliers[0].id).unwrap(), "pending is not a member");
        assert!(matches!(r.accept_partner(&suppliers[3].id, &buyer.id), Err(RegistryError::NotFound(_))), "nobody asked supplier 3");
        r.accept_partner(&suppliers[0].id, &buyer.id).unwrap();
        assert!(r.is_network_member(&buyer.id, &suppliers[0].id).unwrap());
        assert!(r.is_network_member(&buyer.id, &buyer.id).unwrap());
        assert!(!r.is_network_member(&suppliers[0].id, &buyer.id).unwrap(), "membership is of the buyer's network only");
        assert_eq!(r.buyers(&suppliers[0].id).unwrap().len(), 1);
        assert!(r.buyers(&suppliers[3].id).unwrap().is_empty());
        // either side ends it; the slot frees up
        r.end_partnership(&suppliers[1].id, &buyer.id).unwrap();
        r.end_partnership(&buyer.id, &suppliers[2].id).unwrap();
        assert_eq!(r.suppliers(&buyer.id).unwrap().len(), 1);
        assert!(matches!(r.end_partnership(&suppliers[3].id, &buyer.id), Err(RegistryError::NotFound(_))));
        r.request_partner(&buyer.id, &suppliers[3].id).unwrap();
    }
}
