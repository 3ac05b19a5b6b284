//! An organisation's settlement profile: the public key designs are encrypted
//! to (an age X25519 recipient, made on the organisation's own machine) and
//! the bank account it pays from or is paid into.
//!
//! Invariants:
//! - the platform stores only public keys; the matching identity never leaves
//!   the organisation;
//! - a profile is written only by its own tenant; partners read the key of a
//!   co-member of a supply network, never the bank account (that goes into
//!   the buyer's bank file only).

use crate::kv::Table;
use crate::{Registry, RegistryError};
use serde::{Deserialize, Serialize};

pub use fc_tenancy_api::orgs::{AccountKind, BankAccount, BankKind};

/// An organisation's settlement profile.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgProfile {
    /// Its age recipient (`age1…`), when registered.
    pub age_recipient: Option<String>,
    /// When the key was registered, Unix ms.
    pub key_registered_ms: Option<i64>,
    /// Its bank account, when entered.
    pub bank: Option<BankAccount>,
}

impl Registry {
    /// The settlement profile of a tenant (empty when none was saved).
    pub fn org_profile(&self, tenant_id: &str) -> Result<OrgProfile, RegistryError> {
        self.get_tenant(tenant_id)?;
        Ok(self.get_json(Table::Orgs, tenant_id)?.unwrap_or_default())
    }

    /// Registers (or replaces) the tenant's public design key. The caller
    /// checks its format (`fc_sealed::parse_recipient`).
    pub fn set_org_key(&self, tenant_id: &str, age_recipient: &str) -> Result<OrgProfile, RegistryError> {
        let mut p = self.org_profile(tenant_id)?;
        p.age_recipient = Some(age_recipient.to_string());
        p.key_registered_ms = Some(fc_core::time::now_ms());
        self.put_json(Table::Orgs, "", tenant_id, &p, None)?;
        Ok(p)
    }

    /// Saves the tenant's bank account. The caller checks its formats.
    pub fn set_org_bank(&self, tenant_id: &str, bank: BankAccount) -> Result<OrgProfile, RegistryError> {
        let mut p = self.org_profile(tenant_id)?;
        p.bank = Some(bank);
        self.put_json(Table::Orgs, "", tenant_id, &p, None)?;
        Ok(p)
    }

    /// Whether `a` and `b` share a supply network (one is the other's buyer or
    /// accepted supplier, or they are the same): who may read whose key.
    pub fn share_network(&self, a: &str, b: &str) -> Result<bool, RegistryError> {
        Ok(self.is_network_member(a, b)? || self.is_network_member(b, a)?)
    }
}
