//! Bank accounts, as organisations enter them and bank files name them
//! (the registry stores them in an organisation's profile; settlement reads
//! them through [`crate::TenancyClient::organisation`]).

use serde::{Deserialize, Serialize};

/// How an account is numbered.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// An IBAN.
    Iban,
    /// A domestic account number (Korean banks).
    Domestic,
}

/// How the bank is identified.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BankKind {
    /// A BIC (8 or 11 characters).
    Bic,
    /// A domestic bank code, e.g. `004`.
    BankCode,
}

/// A bank account, as the bank file names it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BankAccount {
    /// The account holder's legal name.
    pub holder: String,
    /// How `account` is numbered.
    pub account_kind: AccountKind,
    /// The account number.
    pub account: String,
    /// How `bank` identifies the bank.
    pub bank_kind: BankKind,
    /// The bank.
    pub bank: String,
}

impl AccountKind {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iban => "iban",
            Self::Domestic => "domestic",
        }
    }

    /// From its wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iban" => Some(Self::Iban),
            "domestic" => Some(Self::Domestic),
            _ => None,
        }
    }
}

impl BankKind {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bic => "bic",
            Self::BankCode => "bank_code",
        }
    }

    /// From its wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bic" => Some(Self::Bic),
            "bank_code" => Some(Self::BankCode),
            _ => None,
        }
    }
}

impl BankAccount {
    /// As the internal API carries it.
    pub fn to_pb(&self) -> fc_proto::v1::BankAccount {
        fc_proto::v1::BankAccount {
            holder: self.holder.clone(),
            account_kind: self.account_kind.as_str().into(),
            account: self.account.clone(),
            bank_kind: self.bank_kind.as_str().into(),
            bank: self.bank.clone(),
        }
    }

    /// From the internal API; `None` for kinds this version does not know.
    pub fn from_pb(b: fc_proto::v1::BankAccount) -> Option<Self> {
        Some(Self {
            account_kind: AccountKind::parse(&b.account_kind)?,
            bank_kind: BankKind::parse(&b.bank_kind)?,
            holder: b.holder,
            account: b.account,
            bank: b.bank,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_account_survives_the_wire() {
        for (a, b) in [(AccountKind::Iban, BankKind::Bic), (AccountKind::Domestic, BankKind::BankCode)] {
            let acct = BankAccount { holder: "H".into(), account_kind: a, account: "1".into(), bank_kind: b, bank: "004".into() };
            assert_eq!(BankAccount::from_pb(acct.to_pb()), Some(acct.clone()));
            // The wire names are the JSON names.
            let json = serde_json::to_value(&acct).unwrap();
            assert_eq!(json["account_kind"], a.as_str());
            assert_eq!(json["bank_kind"], b.as_str());
        }
        assert_eq!(BankAccount::from_pb(fc_proto::v1::BankAccount { account_kind: "swift".into(), ..Default::default() }), None);
    }
}
