//! Payment files for the buyer's bank: ISO 20022 `pain.001.001.09`
//! (Customer Credit Transfer Initiation, namespace [`NAMESPACE`]), written
//! and read back. Pure: strings in, strings out, no I/O.
//!
//! The settlement fold ([`crate::settle`]) tells what the buyer owes for each
//! accepted shipment as a [`PaymentInstruction`]. A buyer pays those by
//! uploading one `pain.001` file to its bank's corporate channel; this module
//! writes that file from a validated [`Batch`] ([`Batch::to_xml`]) and
//! [`parse`]s such a file back, so tests and the settlement service can check
//! what a file would pay before it is sent.
//!
//! What is written (element names as in the ISO 20022 message definition
//! `CustomerCreditTransferInitiationV09`, schema `pain.001.001.09.xsd`, in
//! schema order):
//! - `GrpHdr`: `MsgId`, `CreDtTm` (UTC, `Z`, milliseconds), `NbOfTxs`,
//!   `CtrlSum`, `InitgPty/Nm` (the debtor's name).
//! - One `PmtInf` per requested execution date, earliest first: the date is
//!   the UTC calendar date of `due_date_ms` ([`execution_date`]), written as
//!   `ReqdExctnDt/Dt` (a choice with `DtTm` since version .09). Each has
//!   `PmtInfId`, `PmtMtd` `TRF`, `BtchBookg` `false`, `NbOfTxs`, `CtrlSum`,
//!   `Dbtr/Nm`, `DbtrAcct`, `DbtrAgt`, `ChrgBr` `SLEV`.
//! - One `CdtTrfTxInf` per instruction, in the order given: `PmtId/InstrId`
//!   and `PmtId/EndToEndId` (both the instruction ID), `Amt/InstdAmt
//!   Ccy="KRW"`, `CdtrAgt`, `Cdtr/Nm`, `CdtrAcct`, `RmtInf/Ustrd`
//!   (`order <order_id> shipment <shipment_id>`).
//! - Accounts are `Id/IBAN` or `Id/Othr/Id` (a Korean domestic account
//!   number); agents are `FinInstnId/BICFI` or `FinInstnId/Othr/Id` (a Korean
//!   bank code such as `004`).
//!
//! Invariant: KRW has no minor unit (ISO 4217), so amounts and control sums
//! are whole numbers written without a decimal point (`1500000`, never
//! `1500000.00`, which a bank rejects for KRW).
//!
//! Invariant: [`Batch::new`] checks everything a bank would refuse (lengths
//! of the `Max35Text`/`Max140Text` fields, IBAN and BIC formats, amounts
//! above zero, no duplicate instruction) and returns a [`Pain001Error`];
//! nothing is truncated or dropped silently, so a [`Batch`] always writes a
//! valid file and the file pays exactly the instructions given.
//!
//! Invariant: [`parse`] returns errors on untrusted input, it does not panic.
//! It reads the profile this module writes (every element above, in schema
//! order, nothing else; KRW only), refuses other elements rather than
//! skipping them (a skipped `UltmtCdtr` would change who is paid), and
//! checks that every `NbOfTxs` and `CtrlSum` agrees with the transactions.

use std::collections::{BTreeMap, HashSet};

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;
use quick_xml::writer::Writer;
use sha2::{Digest, Sha256};

use crate::entry::PaymentInstruction;

/// The XML namespace of `pain.001.001.09` documents.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";

/// The only currency written and read: Korean won, no minor unit.
pub const CURRENCY: &str = "KRW";

/// Most characters in an ISO 20022 `Max35Text` identifier.
pub const MAX_ID_CHARS: usize = 35;

/// Most characters in an ISO 20022 `Max140Text` (names, remittance).
pub const MAX_TEXT_CHARS: usize = 140;

/// Most characters of a domestic account number (`Othr/Id` is `Max34Text`).
const MAX_ACCOUNT_CHARS: usize = 34;

/// Largest amount or control sum: ISO 20022 amounts and `DecimalNumber`
/// have at most 18 digits.
const MAX_AMOUNT: u64 = 999_999_999_999_999_999;

/// Timestamps must fall in years 1970 to 9999: ISO dates have four-digit
/// years, and a payment before 1970 is a bug. This is 10000-01-01T00:00Z.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_800_000;

const MS_PER_DAY: i64 = 86_400_000;

/// Deepest element nesting [`parse`] accepts; the profile needs 7.
const MAX_DEPTH: usize = 16;

/// Why a batch could not be written or a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pain001Error {
    /// A batch without any transfer.
    #[error("a payment file needs at least one transfer")]
    NoTransfers,
    /// A required text is empty or only whitespace.
    #[error("{field} is empty")]
    Empty {
        /// Which field, e.g. `transfers[2].creditor.name`.
        field: String,
    },
    /// A text is longer than the message definition allows. It is refused,
    /// never cut: a cut identifier would no longer match the ledger.
    #[error("{field} has {chars} characters, at most {max} are allowed")]
    TooLong {
        /// Which field.
        field: String,
        /// Its length in characters.
        chars: usize,
        /// The most allowed.
        max: usize,
    },
    /// A value with the wrong format or characters (IBAN, BIC, account,
    /// identifier, control character in a name, date, number).
    #[error("{field} is invalid: {reason}")]
    InvalidValue {
        /// Which field.
        field: String,
        /// What is wrong, for people.
        reason: String,
    },
    /// An instruction with amount 0 (fully penalised). Nothing is owed, so
    /// the caller leaves it out; [`Batch::new`] does not drop it silently.
    #[error("instruction {instruction_id} has amount 0 (fully penalised): leave it out of the batch")]
    ZeroAmount {
        /// The instruction's ID.
        instruction_id: String,
    },
    /// An amount or a sum over 18 digits.
    #[error("{field} is larger than an ISO 20022 amount (18 digits)")]
    AmountTooLarge {
        /// Which field.
        field: String,
    },
    /// The same instruction ID twice in one batch: it would be paid twice.
    #[error("instruction {instruction_id} appears more than once")]
    DuplicateInstruction {
        /// The repeated instruction ID.
        instruction_id: String,
    },
    /// Not well-formed XML.
    #[error("not well-formed XML at byte {position}: {reason}")]
    Xml {
        /// Byte offset where the reader stopped.
        position: u64,
        /// The XML reader's message.
        reason: String,
    },
    /// An element outside the `pain.001.001.09` namespace.
    #[error("element {element} is in namespace {found:?}, expected {NAMESPACE}")]
    WrongNamespace {
        /// Path of the element.
        element: String,
        /// Its namespace, empty when it has none.
        found: String,
    },
    /// Elements missing, unexpected or out of order, or a DTD.
    #[error("{path}: {reason}")]
    Structure {
        /// Path of the element where the problem is.
        path: String,
        /// What is wrong, for people.
        reason: String,
    },
    /// An amount in another currency than KRW.
    #[error("{path} is in {currency}, only {CURRENCY} is supported")]
    UnsupportedCurrency {
        /// Path of the amount.
        path: String,
        /// Its currency code.
        currency: String,
    },
    /// A declared `NbOfTxs` that does not count the transactions.
    #[error("{path}/NbOfTxs says {declared}, but there are {actual} transactions")]
    CountMismatch {
        /// Path of the `GrpHdr` or `PmtInf`.
        path: String,
        /// The number in the file.
        declared: u64,
        /// The transactions counted.
        actual: u64,
    },
    /// A declared `CtrlSum` that does not add up the amounts.
    #[error("{path}/CtrlSum says {declared}, but the amounts add up to {actual}")]
    ControlSumMismatch {
        /// Path of the `GrpHdr` or `PmtInf`.
        path: String,
        /// The sum in the file, as written.
        declared: String,
        /// The amounts added up.
        actual: u64,
    },
}

/// A bank account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Account {
    /// An IBAN (written `Id/IBAN`), e.g. a foreign supplier's account;
    /// checked for format and check digits.
    Iban(String),
    /// A domestic account number (written `Id/Othr/Id`), as Korean banks
    /// number accounts: ASCII letters, digits and `-`, at most 34.
    Domestic(String),
}

/// The bank that holds an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Agent {
    /// A BIC (written `FinInstnId/BICFI`), 8 or 11 characters.
    Bic(String),
    /// A domestic bank code (written `FinInstnId/Othr/Id`), e.g. the Korean
    /// code `004`: ASCII letters and digits, at most 35.
    BankCode(String),
}

/// The debtor or a creditor of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Party {
    /// Legal name, any UTF-8 text without control characters, at most 140
    /// characters (e.g. `(주)대한정밀`).
    pub name: String,
    /// The account paid from or into.
    pub account: Account,
    /// The bank of that account.
    pub agent: Agent,
}

impl Party {
    /// Checks the name, account and agent formats [`Batch::new`] checks, so
    /// bank details can be refused when they are entered rather than when
    /// the first file is written. `field` names the party in the error.
    pub fn validate(&self, field: &str) -> Result<(), Pain001Error> {
        check_party(field, self)
    }
}

/// One payment: what the ledger instructed and whom to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTransfer {
    /// The ledger's instruction: amount, due date, IDs.
    pub instruction: PaymentInstruction,
    /// The supplier paid.
    pub creditor: Party,
}

/// A validated set of transfers from one debtor: always writes a valid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    message_id: String,
    created_ms: i64,
    debtor: Party,
    transfers: Vec<CreditTransfer>,
}

impl Batch {
    /// Checks a batch: `message_id` is 1 to 35 printable ASCII characters;
    /// `created_ms` and every due date fall in years 1970 to 9999; names are
    /// 1 to 140 characters without control characters; accounts and agents
    /// have their formats; every instruction ID is 1 to 35 printable ASCII
    /// characters and unique in the batch; every amount is above zero; the
    /// remittance text fits 140 characters; the sum fits 18 digits.
    ///
    /// It filters nothing: an instruction with amount 0 (fully penalised) is
    /// refused with [`Pain001Error::ZeroAmount`], not skipped, so the caller
    /// decides, and the file never pays less than it was given to pay.
    pub fn new(
        message_id: impl Into<String>,
        created_ms: i64,
        debtor: Party,
        transfers: Vec<CreditTransfer>,
    ) -> Result<Self, Pain001Error> {
        let message_id = message_id.into();
        check_id("message_id", &message_id)?;
        check_timestamp("created_ms", created_ms)?;
        check_party("debtor", &debtor)?;
        if transfers.is_empty() {
            return Err(Pain001Error::NoTransfers);
        }
        let mut seen = HashSet::with_capacity(transfers.len());
        let mut sum: u64 = 0;
        for (i, transfer) in transfers.iter().enumerate() {
            let instruction = &transfer.instruction;
            let id = &instruction.instruction_id;
            check_id(&format!("transfers[{i}].instruction.instruction_id"), id)?;
            if instruction.amount_krw == 0 {
                return Err(Pain001Error::ZeroAmount { instruction_id: id.clone() });
            }
            sum = sum
                .checked_add(instruction.amount_krw)
                .filter(|sum| *sum <= MAX_AMOUNT)
                .ok_or_else(|| Pain001Error::AmountTooLarge { field: format!("sum of amounts up to transfers[{i}]") })?;
            check_timestamp(&format!("transfers[{i}].instruction.due_date_ms"), instruction.due_date_ms)?;
            check_text(&format!("transfers[{i}].remittance"), &remittance(instruction))?;
            check_party(&format!("transfers[{i}].creditor"), &transfer.creditor)?;
            if !seen.insert(id.as_str()) {
                return Err(Pain001Error::DuplicateInstruction { instruction_id: id.clone() });
            }
        }
        Ok(Self { message_id, created_ms, debtor, transfers })
    }

    /// The message ID (`GrpHdr/MsgId`).
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// When the file was created (`GrpHdr/CreDtTm`), ms since the Unix epoch.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// The paying party; its name is also the initiating party's.
    pub fn debtor(&self) -> &Party {
        &self.debtor
    }

    /// The transfers, in the order given.
    pub fn transfers(&self) -> &[CreditTransfer] {
        &self.transfers
    }

    /// The `pain.001.001.09` document: UTF-8, starting with the XML
    /// declaration, indented by two spaces, ending with a newline.
    pub fn to_xml(&self) -> String {
        // Grouped by date string: "YYYY-MM-DD" sorts like the dates it
        // names. Within a date the caller's order is kept.
        let mut by_date: BTreeMap<String, Vec<&CreditTransfer>> = BTreeMap::new();
        for transfer in &self.transfers {
            by_date.entry(utc_date(transfer.instruction.due_date_ms)).or_default().push(transfer);
        }
        let total = amount_sum(self.transfers.iter());

        let mut out = XmlOut::new();
        out.declaration();
        out.start_with(BytesStart::new("Document").with_attributes([("xmlns", NAMESPACE)]));
        out.start("CstmrCdtTrfInitn");
        out.start("GrpHdr");
        out.leaf("MsgId", &self.message_id);
        out.leaf("CreDtTm", &utc_date_time(self.created_ms));
        out.leaf("NbOfTxs", &self.transfers.len().to_string());
        out.leaf("CtrlSum", &total.to_string());
        out.start("InitgPty");
        out.leaf("Nm", &self.debtor.name);
        out.end("InitgPty");
        out.end("GrpHdr");
        for (date, transfers) in &by_date {
            out.start("PmtInf");
            out.leaf("PmtInfId", &payment_information_id(&self.message_id, date));
            out.leaf("PmtMtd", "TRF");
            // One debit per transfer: the bank confirms each instruction on
            // its own, which is how the ledger records confirmations.
            out.leaf("BtchBookg", "false");
            out.leaf("NbOfTxs", &transfers.len().to_string());
            out.leaf("CtrlSum", &amount_sum(transfers.iter().copied()).to_string());
            out.start("ReqdExctnDt");
            out.leaf("Dt", date);
            out.end("ReqdExctnDt");
            out.start("Dbtr");
            out.leaf("Nm", &self.debtor.name);
            out.end("Dbtr");
            out.account("DbtrAcct", &self.debtor.account);
            out.agent("DbtrAgt", &self.debtor.agent);
            out.leaf("ChrgBr", "SLEV");
            for transfer in transfers {
                let instruction = &transfer.instruction;
                out.start("CdtTrfTxInf");
                out.start("PmtId");
                out.leaf("InstrId", &instruction.instruction_id);
                out.leaf("EndToEndId", &instruction.instruction_id);
                out.end("PmtId");
                out.start("Amt");
                out.start_with(BytesStart::new("InstdAmt").with_attributes([("Ccy", CURRENCY)]));
                out.text(&instruction.amount_krw.to_string());
                out.end("InstdAmt");
                out.end("Amt");
                out.agent("CdtrAgt", &transfer.creditor.agent);
                out.start("Cdtr");
                out.leaf("Nm", &transfer.creditor.name);
                out.end("Cdtr");
                out.account("CdtrAcct", &transfer.creditor.account);
                out.start("RmtInf");
                out.leaf("Ustrd", &remittance(instruction));
                out.end("RmtInf");
                out.end("CdtTrfTxInf");
            }
            out.end("PmtInf");
        }
        out.end("CstmrCdtTrfInitn");
        out.end("Document");
        out.finish()
    }
}

/// The requested execution date of an instruction due at `due_date_ms`: its
/// UTC calendar date as `YYYY-MM-DD`, the key [`Batch::to_xml`] groups by.
pub fn execution_date(due_date_ms: i64) -> Result<String, Pain001Error> {
    check_timestamp("due_date_ms", due_date_ms)?;
    Ok(utc_date(due_date_ms))
}

/// A parsed `pain.001.001.09` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// `GrpHdr/MsgId`.
    pub message_id: String,
    /// `GrpHdr/CreDtTm` as ms since the Unix epoch (a time without a UTC
    /// offset names no instant and is refused; digits past ms are dropped).
    pub created_ms: i64,
    /// `GrpHdr/NbOfTxs`, checked against the transactions.
    pub number_of_transactions: u64,
    /// `GrpHdr/CtrlSum` in KRW, checked against the amounts.
    pub control_sum: u64,
    /// `GrpHdr/InitgPty/Nm`.
    pub initiating_party: String,
    /// The `PmtInf` blocks, in document order.
    pub payment_information: Vec<PaymentInformation>,
}

/// One parsed `PmtInf`: the transfers of one debtor on one execution date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInformation {
    /// `PmtInfId`.
    pub id: String,
    /// `BtchBookg`: one debit for the block (`true`) or one per transfer.
    pub batch_booking: bool,
    /// `NbOfTxs`, checked against the transactions.
    pub number_of_transactions: u64,
    /// `CtrlSum` in KRW, checked against the amounts.
    pub control_sum: u64,
    /// `ReqdExctnDt/Dt`, `YYYY-MM-DD`.
    pub requested_execution_date: String,
    /// `Dbtr/Nm`, `DbtrAcct`, `DbtrAgt`.
    pub debtor: Party,
    /// `ChrgBr`: `DEBT`, `CRED`, `SHAR` or `SLEV`.
    pub charge_bearer: String,
    /// The `CdtTrfTxInf` entries, in document order.
    pub transfers: Vec<CreditTransferInformation>,
}

/// One parsed `CdtTrfTxInf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTransferInformation {
    /// `PmtId/InstrId`.
    pub instruction_id: String,
    /// `PmtId/EndToEndId`.
    pub end_to_end_id: String,
    /// `Amt/InstdAmt`, in whole units of `currency`, above zero.
    pub amount: u64,
    /// `Amt/InstdAmt/@Ccy`; only [`CURRENCY`] is accepted.
    pub currency: String,
    /// `Cdtr/Nm`, `CdtrAcct`, `CdtrAgt`.
    pub creditor: Party,
    /// `RmtInf/Ustrd`.
    pub remittance: String,
}

/// Reads a `pain.001.001.09` document of the profile this module writes
/// (see the module docs), checking formats, lengths, the namespace of every
/// element, and that each `NbOfTxs` and `CtrlSum` agrees with the
/// transactions. Refuses DTDs, other elements and other currencies.
pub fn parse(xml: &str) -> Result<Document, Pain001Error> {
    let root = read_tree(xml)?;
    if root.name != "Document" {
        return Err(structure(&root.path, "the root element must be Document"));
    }
    let [initiation] = root.children(["CstmrCdtTrfInitn"])?;
    let ([header], blocks) = initiation.children_then_many(["GrpHdr"], "PmtInf")?;
    let [message_id, created, count, sum, initiating_party] = header.children(["MsgId", "CreDtTm", "NbOfTxs", "CtrlSum", "InitgPty"])?;
    let message_id = message_id.id()?;
    let created_ms = created.date_time()?;
    let number_of_transactions = count.count()?;
    let control_sum = sum.control_sum()?;
    let [initiating_party] = initiating_party.children(["Nm"])?;
    let initiating_party = initiating_party.name_text()?;

    let payment_information = blocks.into_iter().map(Element::payment_information).collect::<Result<Vec<_>, _>>()?;
    let actual_count = payment_information.iter().map(|block| block.number_of_transactions).sum();
    let actual_sum = payment_information
        .iter()
        .try_fold(0u64, |sum, block| sum.checked_add(block.control_sum))
        .filter(|sum| *sum <= MAX_AMOUNT)
        .ok_or_else(|| Pain001Error::AmountTooLarge { field: format!("{}/CtrlSum", header.path) })?;
    check_totals(header, number_of_transactions, actual_count, control_sum, actual_sum)?;
    Ok(Document { message_id, created_ms, number_of_transactions, control_sum, initiating_party, payment_information })
}

// ---------------------------------------------------------------------------
// Input checks.

fn check_id(field: &str, value: &str) -> Result<(), Pain001Error> {
    check_length(field, value, MAX_ID_CHARS)?;
    // Banks' channels take identifiers in ASCII; a space would be trimmed
    // by some and kept by others, so the ID would not match the ledger's.
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(field, "only printable ASCII without spaces is allowed"));
    }
    Ok(())
}

fn check_text(field: &str, value: &str) -> Result<(), Pain001Error> {
    check_length(field, value, MAX_TEXT_CHARS)?;
    // XML 1.0 cannot carry most control characters at all, and a bank's
    // channel would refuse the others.
    if value.chars().any(|c| c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}') {
        return Err(invalid(field, "control characters are not allowed"));
    }
    Ok(())
}

fn check_length(field: &str, value: &str, max: usize) -> Result<(), Pain001Error> {
    if value.trim().is_empty() {
        return Err(Pain001Error::Empty { field: field.to_owned() });
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Pain001Error::TooLong { field: field.to_owned(), chars, max });
    }
    Ok(())
}

fn check_timestamp(field: &str, ms: i64) -> Result<(), Pain001Error> {
    if !(0..MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(invalid(field, format!("{ms} ms is not in years 1970 to 9999")));
    }
    Ok(())
}

fn check_party(field: &str, party: &Party) -> Result<(), Pain001Error> {
    check_text(&format!("{field}.name"), &party.name)?;
    check_account(&format!("{field}.account"), &party.account)?;
    check_agent(&format!("{field}.agent"), &party.agent)
}

fn check_account(field: &str, account: &Account) -> Result<(), Pain001Error> {
    match account {
        Account::Iban(iban) => check_iban(field, iban),
        Account::Domestic(number) => {
            check_length(field, number, MAX_ACCOUNT_CHARS)?;
            if !number.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(invalid(field, "only ASCII letters, digits and '-' are allowed"));
            }
            Ok(())
        }
    }
}

/// The schema's pattern `[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}` and the ISO 13616
/// check digits (mod 97 equals 1), so a mistyped IBAN fails here rather
/// than at the bank.
fn check_iban(field: &str, iban: &str) -> Result<(), Pain001Error> {
    let b = iban.as_bytes();
    let pattern = (5..=34).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b[4..].iter().all(u8::is_ascii_alphanumeric);
    if !pattern {
        return Err(invalid(field, "an IBAN is 2 capital letters, 2 check digits and 1 to 30 letters or digits"));
    }
    let remainder = b[4..].iter().chain(&b[..4]).fold(0u32, |acc, &c| {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_digit() { (acc * 10 + u32::from(c - b'0')) % 97 } else { (acc * 100 + u32::from(c - b'A' + 10)) % 97 }
    });
    if remainder != 1 {
        return Err(invalid(field, "the IBAN check digits do not match"));
    }
    Ok(())
}

fn check_agent(field: &str, agent: &Agent) -> Result<(), Pain001Error> {
    match agent {
        // The schema's pattern [A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?.
        Agent::Bic(bic) => {
            let b = bic.as_bytes();
            let upper_alnum = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit();
            let pattern = (b.len() == 8 || b.len() == 11)
                && b[..4].iter().all(upper_alnum)
                && b[4..6].iter().all(u8::is_ascii_uppercase)
                && b[6..].iter().all(upper_alnum);
            if !pattern {
                return Err(invalid(field, "a BIC is 8 or 11 capital letters or digits"));
            }
            Ok(())
        }
        Agent::BankCode(code) => {
            check_length(field, code, MAX_ID_CHARS)?;
            if !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid(field, "only ASCII letters and digits are allowed"));
            }
            Ok(())
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Pain001Error {
    Pain001Error::InvalidValue { field: field.to_owned(), reason: reason.into() }
}

fn structure(path: &str, reason: impl Into<String>) -> Pain001Error {
    Pain001Error::Structure { path: path.to_owned(), reason: reason.into() }
}

// ---------------------------------------------------------------------------
// Writing.

fn remittance(instruction: &PaymentInstruction) -> String {
    format!("order {} shipment {}", instruction.order_id, instruction.shipment_id)
}

/// Sum of validated amounts: [`Batch::new`] checked it fits.
fn amount_sum<'a>(transfers: impl Iterator<Item = &'a CreditTransfer>) -> u64 {
    transfers.map(|t| t.instruction.amount_krw).sum()
}

/// `MsgId-YYYYMMDD` when that fits 35 characters. A longer message ID is
/// cut to 17 characters and followed by 8 hex digits of its SHA-256, so
/// two long message IDs with the same start still give different IDs.
fn payment_information_id(message_id: &str, date: &str) -> String {
    let compact_date: String = date.chars().filter(|c| *c != '-').collect();
    // Message IDs are ASCII (check_id), so byte lengths are char counts.
    if message_id.len() + 1 + compact_date.len() <= MAX_ID_CHARS {
        return format!("{message_id}-{compact_date}");
    }
    let digest = Sha256::digest(message_id.as_bytes());
    format!("{}-{}-{compact_date}", &message_id[..17], hex::encode(&digest[..4]))
}

/// A quick-xml writer into memory. Writing into a `Vec` cannot fail, so
/// these methods do not return errors (quick-xml's `io::Result` is for
/// writers that do I/O).
struct XmlOut {
    writer: Writer<Vec<u8>>,
}

const IN_MEMORY: &str = "writing XML into a Vec cannot fail";

impl XmlOut {
    fn new() -> Self {
        Self { writer: Writer::new_with_indent(Vec::with_capacity(4096), b' ', 2) }
    }

    fn declaration(&mut self) {
        self.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    }

    fn start(&mut self, name: &str) {
        self.start_with(BytesStart::new(name));
    }

    fn start_with(&mut self, start: BytesStart<'_>) {
        self.event(Event::Start(start));
    }

    fn end(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// Escapes `&`, `<`, `>`, `'` and `"`; other characters (Korean
    /// included) are written as UTF-8.
    fn text(&mut self, text: &str) {
        self.event(Event::Text(BytesText::new(text)));
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.start(name);
        self.text(text);
        self.end(name);
    }

    fn account(&mut self, name: &str, account: &Account) {
        self.start(name);
        self.start("Id");
        match account {
            Account::Iban(iban) => self.leaf("IBAN", iban),
            Account::Domestic(number) => {
                self.start("Othr");
                self.leaf("Id", number);
                self.end("Othr");
            }
        }
        self.end("Id");
        self.end(name);
    }

    fn agent(&mut self, name: &str, agent: &Agent) {
        self.start(name);
        self.start("FinInstnId");
        match agent {
            Agent::Bic(bic) => self.leaf("BICFI", bic),
            Agent::BankCode(code) => {
                self.start("Othr");
                self.leaf("Id", code);
                self.end("Othr");
            }
        }
        self.end("FinInstnId");
        self.end(name);
    }

    fn event(&mut self, event: Event<'_>) {
        self.writer.write_event(event).expect(IN_MEMORY);
    }

    fn finish(self) -> String {
        let mut bytes = self.writer.into_inner();
        bytes.push(b'\n');
        // Only &str was written, so the bytes are UTF-8.
        String::from_utf8(bytes).expect("XML written from str is UTF-8")
    }
}

// ---------------------------------------------------------------------------
// Dates: proleptic Gregorian calendar, UTC (the `time` crate's calendar).

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = time::OffsetDateTime::UNIX_EPOCH.date().to_julian_day() as i64;

/// The date `days` after 1970-01-01; `None` outside the years `time` covers.
fn date_of_day(days: i64) -> Option<time::Date> {
    time::Date::from_julian_day(i32::try_from(days + UNIX_EPOCH_JULIAN_DAY).ok()?).ok()
}

/// `YYYY-MM-DD` of a checked timestamp (years 1970-9999).
fn utc_date(ms: i64) -> String {
    let date = date_of_day(ms.div_euclid(MS_PER_DAY)).expect("a checked timestamp lies in years 1970-9999");
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` of a checked timestamp.
fn utc_date_time(ms: i64) -> String {
    let in_day = ms.rem_euclid(MS_PER_DAY);
    format!("{}T{:02}:{:02}:{:02}.{:03}Z", utc_date(ms), in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000)
}

fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Days since the epoch of an ISO `YYYY-MM-DD` date.
fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !text.is_ascii() {
        return None;
    }
    let (year, month, day) = (digits(&text[..4])?, digits(&text[5..7])?, digits(&text[8..])?);
    if year == 0 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    // `from_calendar_date` refuses days the month does not have (29 February included).
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    Some(i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY)
}

/// Ms since the epoch of an ISO 8601 date-time with a UTC offset:
/// `YYYY-MM-DDTHH:MM:SS[.f+](Z|+HH:MM|-HH:MM)`.
fn parse_date_time(text: &str) -> Option<i64> {
    if !text.is_ascii() || text.len() < 20 || text.as_bytes()[10] != b'T' {
        return None;
    }
    let days = parse_date(&text[..10])?;
    let (clock, rest) = text[11..].split_at(8);
    let c = clock.as_bytes();
    if c[2] != b':' || c[5] != b':' {
        return None;
    }
    let (hour, minute, second) = (digits(&clock[..2])?, digits(&clock[3..5])?, digits(&clock[6..])?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let (millis, zone) = match rest.strip_prefix('.') {
        Some(fraction) => {
            let end = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
            if end == 0 {
                return None;
            }
            let mut ms = fraction[..end.min(3)].to_owned();
            while ms.len() < 3 {
                ms.push('0');
            }
            (digits(&ms)?, &fraction[end..])
        }
        None => (0, rest),
    };
    let offset_minutes = match zone.as_bytes() {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (digits(&zone[1..3])?, digits(&zone[4..])?);
            if hours > 14 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    Some(days * MS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis - offset_minutes * 60_000)
}

// ---------------------------------------------------------------------------
// Reading: quick-xml events into a small element tree, then the profile.

/// An element of the document: its local name, its text (whitespace
/// between child elements included), its children.
struct Element {
    name: String,
    /// `Document/CstmrCdtTrfInitn/PmtInf[2]/...`, for error messages;
    /// repeated elements carry their 1-based position.
    path: String,
    /// Attributes other than namespace declarations, values normalised.
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

/// Elements the profile repeats; their paths carry a position.
const REPEATED: [&str; 2] = ["PmtInf", "CdtTrfTxInf"];

fn read_tree(xml: &str) -> Result<Element, Pain001Error> {
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().expand_empty_elements = true;
    let mut tree = TreeBuilder::default();
    loop {
        let (namespace, event) = match reader.read_resolved_event() {
            Ok((ResolveResult::Bound(Namespace(ns)), event)) => (Some(ns.to_owned()), event),
            Ok((_, event)) => (None, event),
            Err(error) => {
                return Err(Pain001Error::Xml { position: reader.error_position(), reason: error.to_string() });
            }
        };
        let position = reader.buffer_position();
        match event {
            Event::Start(start) => tree.open(namespace, &start, position)?,
            // Not produced with `expand_empty_elements`, read alike anyway.
            Event::Empty(start) => {
                tree.open(namespace, &start, position)?;
                tree.close()?;
            }
            Event::End(_) => tree.close()?,
            Event::Text(text) => tree.push_text(&text.xml10_content())?,
            Event::CData(cdata) => tree.push_text(&cdata.xml10_content())?,
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match resolve_predefined_entity(&reference) {
                        Some(text) => text.to_owned(),
                        None => {
                            return Err(Pain001Error::Xml { position, reason: format!("unknown entity &{};", &*reference) });
                        }
                    },
                    Err(error) => {
                        return Err(Pain001Error::Xml { position, reason: error.to_string() });
                    }
                };
                tree.push_text(&resolved)?;
            }
            // A DTD could declare entities and defaults that change what the
            // document says; payment files have none.
            Event::DocType(_) => return Err(structure("Document", "a DTD is not allowed")),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    tree.finish()
}

/// The elements being read: those still open, and the root once closed.
#[derive(Default)]
struct TreeBuilder {
    open: Vec<Element>,
    root: Option<Element>,
}

impl TreeBuilder {
    fn open(&mut self, namespace: Option<String>, start: &BytesStart<'_>, position: u64) -> Result<(), Pain001Error> {
        let name = start.local_name().as_ref().to_owned();
        let path = match self.open.last() {
            None if self.root.is_some() => {
                return Err(structure(&name, "a second root element"));
            }
            None => name.clone(),
            Some(parent) if REPEATED.contains(&name.as_str()) => {
                let n = parent.children.iter().filter(|c| c.name == name).count() + 1;
                format!("{}/{name}[{n}]", parent.path)
            }
            Some(parent) => format!("{}/{name}", parent.path),
        };
        if namespace.as_deref() != Some(NAMESPACE) {
            return Err(Pain001Error::WrongNamespace { element: path, found: namespace.unwrap_or_default() });
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(structure(&path, "elements nested too deeply"));
        }
        let xml_error = |e: &dyn std::fmt::Display| Pain001Error::Xml { position, reason: e.to_string() };
        let mut attributes = Vec::new();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| xml_error(&e))?;
            let key = attribute.key.as_ref();
            if key == "xmlns" || key.starts_with("xmlns:") {
                continue;
            }
            let value = attribute.normalized_value(XmlVersion::Implicit1_0).map_err(|e| xml_error(&e))?;
            attributes.push((key.to_owned(), value.into_owned()));
        }
        self.open.push(Element { name, path, attributes, text: String::new(), children: Vec::new() });
        Ok(())
    }

    fn close(&mut self) -> Result<(), Pain001Error> {
        let Some(element) = self.open.pop() else {
            return Err(structure("Document", "an end tag without a start tag"));
        };
        if !element.children.is_empty() && !is_xml_whitespace(&element.text) {
            return Err(structure(&element.path, "text mixed with elements"));
        }
        match self.open.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
        Ok(())
    }

    fn push_text(&mut self, text: &str) -> Result<(), Pain001Error> {
        match self.open.last_mut() {
            Some(element) => element.text.push_str(text),
            None if is_xml_whitespace(text) => {}
            None => return Err(structure("Document", "text outside the root element")),
        }
        Ok(())
    }

    fn finish(self) -> Result<Element, Pain001Error> {
        if let Some(element) = self.open.last() {
            return Err(structure(&element.path, "the element is not closed"));
        }
        self.root.ok_or_else(|| structure("Document", "no root element"))
    }
}

fn is_xml_whitespace(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// The value of a schema type that collapses whitespace (numbers, dates,
/// codes): XML whitespace around it is ignored.
fn collapsed(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

impl Element {
    /// Exactly the children `names`, in that order.
    fn children<const N: usize>(&self, names: [&str; N]) -> Result<[&Element; N], Pain001Error> {
        let (fixed, rest) = self.split_children(names)?;
        if let Some(extra) = rest.first() {
            return Err(structure(&extra.path, "unexpected element"));
        }
        Ok(fixed)
    }

    /// The children `names` in that order, then one or more `repeated`.
    fn children_then_many<const N: usize>(&self, names: [&str; N], repeated: &str) -> Result<([&Element; N], Vec<&Element>), Pain001Error> {
        let (fixed, rest) = self.split_children(names)?;
        if rest.is_empty() {
            return Err(structure(&self.path, format!("no {repeated}")));
        }
        if let Some(other) = rest.iter().find(|c| c.name != repeated) {
            return Err(structure(&other.path, "unexpected element"));
        }
        Ok((fixed, rest.iter().collect()))
    }

    fn split_children<const N: usize>(&self, names: [&str; N]) -> Result<([&Element; N], &[Element]), Pain001Error> {
        if self.children.is_empty() && !is_xml_whitespace(&self.text) && N > 0 {
            return Err(structure(&self.path, "text where elements are expected"));
        }
        let mut fixed = [self; N];
        for (i, name) in names.iter().enumerate() {
            match self.children.get(i) {
                Some(child) if child.name == *name => fixed[i] = child,
                Some(child) => {
                    return Err(structure(&child.path, format!("unexpected element, expected {name}")));
                }
                None => return Err(structure(&self.path, format!("missing {name}"))),
            }
        }
        Ok((fixed, &self.children[N.min(self.children.len())..]))
    }

    /// The single child of a choice, by name.
    fn choice(&self, allowed: &[&str]) -> Result<&Element, Pain001Error> {
        match self.children.as_slice() {
            [child] if allowed.contains(&child.name.as_str()) => Ok(child),
            [child] | [_, child, ..] => Err(structure(&child.path, format!("unexpected element, expected one of {}", allowed.join(", ")))),
            [] => Err(structure(&self.path, format!("missing one of {}", allowed.join(", ")))),
        }
    }

    /// The text of an element without children.
    fn text(&self) -> Result<&str, Pain001Error> {
        if let Some(child) = self.children.first() {
            return Err(structure(&child.path, "unexpected element in text"));
        }
        Ok(&self.text)
    }

    fn id(&self) -> Result<String, Pain001Error> {
        let text = self.text()?;
        check_id(&self.path, text)?;
        Ok(text.to_owned())
    }

    fn name_text(&self) -> Result<String, Pain001Error> {
        let text = self.text()?;
        check_text(&self.path, text)?;
        Ok(text.to_owned())
    }

    fn date_time(&self) -> Result<i64, Pain001Error> {
        parse_date_time(collapsed(self.text()?)).ok_or_else(|| invalid(&self.path, "expected an ISO 8601 date-time with a UTC offset"))
    }

    fn date(&self) -> Result<String, Pain001Error> {
        let text = collapsed(self.text()?);
        parse_date(text).ok_or_else(|| invalid(&self.path, "expected a date YYYY-MM-DD"))?;
        Ok(text.to_owned())
    }

    /// `Max15NumericText`.
    fn count(&self) -> Result<u64, Pain001Error> {
        let text = collapsed(self.text()?);
        match digits(text) {
            Some(n) if text.len() <= 15 => Ok(n.unsigned_abs()),
            _ => Err(invalid(&self.path, "expected 1 to 15 digits")),
        }
    }

    /// A `DecimalNumber` that must be whole: the amounts are KRW, so their
    /// sum is. `1500000.00` is read as 1500000, `1500000.50` is refused.
    fn control_sum(&self) -> Result<u64, Pain001Error> {
        let text = collapsed(self.text()?);
        let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(&self.path, "expected a decimal number"));
        }
        let sum = self.amount_digits(whole)?;
        if fraction.bytes().any(|b| b != b'0') {
            return Err(Pain001Error::ControlSumMismatch {
                path: parent_path(&self.path).to_owned(),
                declared: text.to_owned(),
                actual: sum,
            });
        }
        Ok(sum)
    }

    fn amount_digits(&self, text: &str) -> Result<u64, Pain001Error> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(&self.path, "expected a whole number of KRW"));
        }
        let significant = text.trim_start_matches('0');
        if significant.len() > 18 {
            return Err(Pain001Error::AmountTooLarge { field: self.path.clone() });
        }
        Ok(significant.parse().unwrap_or(0))
    }

    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn party(&self, account: &Element, agent: &Element) -> Result<Party, Pain001Error> {
        let [name] = self.children(["Nm"])?;
        Ok(Party { name: name.name_text()?, account: account.account()?, agent: agent.agent()? })
    }

    fn account(&self) -> Result<Account, Pain001Error> {
        let [id] = self.children(["Id"])?;
        let choice = id.choice(&["IBAN", "Othr"])?;
        let account = if choice.name == "IBAN" {
            Account::Iban(choice.text()?.to_owned())
        } else {
            let [number] = choice.children(["Id"])?;
            Account::Domestic(number.text()?.to_owned())
        };
        check_account(&id.path, &account)?;
        Ok(account)
    }

    fn agent(&self) -> Result<Agent, Pain001Error> {
        let [institution] = self.children(["FinInstnId"])?;
        let choice = institution.choice(&["BICFI", "Othr"])?;
        let agent = if choice.name == "BICFI" {
            Agent::Bic(choice.text()?.to_owned())
        } else {
            let [code] = choice.children(["Id"])?;
            Agent::BankCode(code.text()?.to_owned())
        };
        check_agent(&institution.path, &agent)?;
        Ok(agent)
    }

    fn payment_information(&self) -> Result<PaymentInformation, Pain001Error> {
        let ([id, method, batch_booking, count, sum, date, debtor, account, agent, charge_bearer], transfers) = self.children_then_many(
            ["PmtInfId", "PmtMtd", "BtchBookg", "NbOfTxs", "CtrlSum", "ReqdExctnDt", "Dbtr", "DbtrAcct", "DbtrAgt", "ChrgBr"],
            "CdtTrfTxInf",
        )?;
        if collapsed(method.text()?) != "TRF" {
            return Err(invalid(&method.path, "only credit transfers (TRF) are supported"));
        }
        let batch_booking = match collapsed(batch_booking.text()?) {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(invalid(&batch_booking.path, "expected true or false")),
        };
        let [date] = date.children(["Dt"])?;
        let charge_bearer_code = collapsed(charge_bearer.text()?);
        if !["DEBT", "CRED", "SHAR", "SLEV"].contains(&charge_bearer_code) {
            return Err(invalid(&charge_bearer.path, "expected DEBT, CRED, SHAR or SLEV"));
        }
        let transfers = transfers.into_iter().map(Element::credit_transfer).collect::<Result<Vec<_>, _>>()?;
        let number_of_transactions = count.count()?;
        let control_sum = sum.control_sum()?;
        let actual_sum = transfers
            .iter()
            .try_fold(0u64, |sum, t| sum.checked_add(t.amount))
            .filter(|sum| *sum <= MAX_AMOUNT)
            .ok_or_else(|| Pain001Error::AmountTooLarge { field: sum.path.clone() })?;
        check_totals(self, number_of_transactions, transfers.len() as u64, control_sum, actual_sum)?;
        Ok(PaymentInformation {
            id: id.id()?,
            batch_booking,
            number_of_transactions,
            control_sum,
            requested_execution_date: date.date()?,
            debtor: debtor.party(account, agent)?,
            charge_bearer: charge_bearer_code.to_owned(),
            transfers,
        })
    }

    fn credit_transfer(&self) -> Result<CreditTransferInformation, Pain001Error> {
        let [payment_id, amount, agent, creditor, account, remittance] =
            self.children(["PmtId", "Amt", "CdtrAgt", "Cdtr", "CdtrAcct", "RmtInf"])?;
        let [instruction_id, end_to_end_id] = payment_id.children(["InstrId", "EndToEndId"])?;
        let [amount] = amount.children(["InstdAmt"])?;
        let currency = amount.attribute("Ccy").ok_or_else(|| structure(&amount.path, "no Ccy attribute"))?;
        if currency != CURRENCY {
            return Err(Pain001Error::UnsupportedCurrency { path: amount.path.clone(), currency: currency.to_owned() });
        }
        // KRW has no minor unit, so ISO 20022 allows no fraction digits.
        let value = amount.amount_digits(collapsed(amount.text()?))?;
        if value == 0 {
            return Err(invalid(&amount.path, "an amount must be above zero"));
        }
        let [remittance] = remittance.children(["Ustrd"])?;
        Ok(CreditTransferInformation {
            instruction_id: instruction_id.id()?,
            end_to_end_id: end_to_end_id.id()?,
            amount: value,
            currency: currency.to_owned(),
            creditor: creditor.party(account, agent)?,
            remittance: remittance.name_text()?,
        })
    }
}

fn parent_path(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(parent, _)| parent)
}

fn check_totals(block: &Element, declared_count: u64, actual_count: u64, declared_sum: u64, actual_sum: u64) -> Result<(), Pain001Error> {
    if declared_count != actual_count {
        return Err(Pain001Error::CountMismatch { path: block.path.clone(), declared: declared_count, actual: actual_count });
    }
    if declared_sum != actual_sum {
        return Err(Pain001Error::ControlSumMismatch { path: block.path.clone(), declared: declared_sum.to_string(), actual: actual_sum });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settle::instruction_id;
    use proptest::prelude::*;

    // 2026-12-01T00:00:00Z, the same day's last ms, and the next day.
    const DEC_1: i64 = 1_796_083_200_000;
    const DEC_1_LAST_MS: i64 = 1_796_169_599_999;
    const DEC_2: i64 = 1_796_169_600_000;
    // 2026-11-21T22:17:43.123Z
    const CREATED: i64 = 1_795_299_463_123;

    fn instruction(order: &str, shipment: &str, amount_krw: u64, due_date_ms: i64) -> PaymentInstruction {
        PaymentInstruction {
            order_id: order.to_owned(),
            shipment_id: shipment.to_owned(),
            amount_krw,
            penalty_krw: 0,
            due_date_ms,
            instruction_id: instruction_id(order, shipment),
        }
    }

    fn debtor() -> Party {
        Party {
            name: "FactoryChain Buyer Co".to_owned(),
            account: Account::Domestic("1002-345-678901".to_owned()),
            agent: Agent::BankCode("004".to_owned()),
        }
    }

    fn supplier(name: &str) -> Party {
        Party { name: name.to_owned(), account: Account::Domestic("110-123-456789".to_owned()), agent: Agent::BankCode("088".to_owned()) }
    }

    fn foreign_supplier() -> Party {
        Party {
            name: "Präzision GmbH".to_owned(),
            account: Account::Iban("DE89370400440532013000".to_owned()),
            agent: Agent::Bic("DEUTDEFF".to_owned()),
        }
    }

    fn transfer(creditor: Party, instruction: PaymentInstruction) -> CreditTransfer {
        CreditTransfer { instruction, creditor }
    }

    /// Three transfers over two execution dates, the second date given
    /// first, domestic and foreign creditors.
    fn sample_transfers() -> Vec<CreditTransfer> {
        vec![
            transfer(supplier("(주)대한정밀"), instruction("PO-1", "S-2", 2_500_000, DEC_2)),
            transfer(supplier("(주)대한정밀"), instruction("PO-1", "S-1", 1_500_000, DEC_1)),
            transfer(foreign_supplier(), instruction("PO-7", "S-1", 990, DEC_1_LAST_MS)),
        ]
    }

    fn sample_batch() -> Batch {
        Batch::new("FC-20261121-0001", CREATED, debtor(), sample_transfers()).unwrap()
    }

    fn parsed(transfer: &CreditTransfer) -> CreditTransferInformation {
        let instruction = &transfer.instruction;
        CreditTransferInformation {
            instruction_id: instruction.instruction_id.clone(),
            end_to_end_id: instruction.instruction_id.clone(),
            amount: instruction.amount_krw,
            currency: "KRW".to_owned(),
            creditor: transfer.creditor.clone(),
            remittance: format!("order {} shipment {}", instruction.order_id, instruction.shipment_id),
        }
    }

    #[test]
    fn export_then_parse_gives_back_every_field() {
        let transfers = sample_transfers();
        let xml = sample_batch().to_xml();
        let block = |id: &str, date: &str, sum: u64, transfers: Vec<CreditTransferInformation>| PaymentInformation {
            id: id.to_owned(),
            batch_booking: false,
            number_of_transactions: transfers.len() as u64,
            control_sum: sum,
            requested_execution_date: date.to_owned(),
            debtor: debtor(),
            charge_bearer: "SLEV".to_owned(),
            transfers,
        };
        let expected = Document {
            message_id: "FC-20261121-0001".to_owned(),
            created_ms: CREATED,
            number_of_transactions: 3,
            control_sum: 4_000_990,
            initiating_party: "FactoryChain Buyer Co".to_owned(),
            payment_information: vec![
                block("FC-20261121-0001-20261201", "2026-12-01", 1_500_990, vec![parsed(&transfers[1]), parsed(&transfers[2])]),
                block("FC-20261121-0001-20261202", "2026-12-02", 2_500_000, vec![parsed(&transfers[0])]),
            ],
        };
        assert_eq!(parse(&xml), Ok(expected), "{xml}");
    }

    #[test]
    fn header_is_utf8_declaration_and_namespaced_document() {
        let xml = sample_batch().to_xml();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\">\n  <CstmrCdtTrfInitn>\n"), "{xml}");
        assert!(xml.ends_with("</Document>\n"), "{xml}");
        assert_eq!(NAMESPACE, "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09");
    }

    #[test]
    fn writes_the_elements_a_bank_expects_in_schema_order() {
        let xml = sample_batch().to_xml();
        let expected_fragments = [
            "<MsgId>FC-20261121-0001</MsgId>",
            "<CreDtTm>2026-11-21T22:17:43.123Z</CreDtTm>",
            "<NbOfTxs>3</NbOfTxs>",
            "<CtrlSum>4000990</CtrlSum>",
            "<InitgPty>\n        <Nm>FactoryChain Buyer Co</Nm>",
            "<PmtInfId>FC-20261121-0001-20261201</PmtInfId>\n      <PmtMtd>TRF</PmtMtd>\n      <BtchBookg>false</BtchBookg>\n      <NbOfTxs>2</NbOfTxs>\n      <CtrlSum>1500990</CtrlSum>\n      <ReqdExctnDt>\n        <Dt>2026-12-01</Dt>\n      </ReqdExctnDt>",
            "<DbtrAcct>\n        <Id>\n          <Othr>\n            <Id>1002-345-678901</Id>",
            "<DbtrAgt>\n        <FinInstnId>\n          <Othr>\n            <Id>004</Id>",
            "<ChrgBr>SLEV</ChrgBr>",
            "<EndToEndId>",
            "<InstdAmt Ccy=\"KRW\">1500000</InstdAmt>",
            "<Ustrd>order PO-1 shipment S-1</Ustrd>",
            "<InstdAmt Ccy=\"KRW\">990</InstdAmt>",
            "<BICFI>DEUTDEFF</BICFI>",
            "<Nm>Präzision GmbH</Nm>",
            "<IBAN>DE89370400440532013000</IBAN>",
            "<Ustrd>order PO-7 shipment S-1</Ustrd>",
            "<Dt>2026-12-02</Dt>",
            "<Ustrd>order PO-1 shipment S-2</Ustrd>",
        ];
        let mut from = 0;
        for fragment in expected_fragments {
            let at = xml[from..].find(fragment).unwrap_or_else(|| panic!("{fragment:?} not found after byte {from} in\n{xml}"));
            from += at + fragment.len();
        }
    }

    /// Groups by execution date: (due dates in input order) -> (date,
    /// positions of the input transfers) per PmtInf, in document order.
    #[test]
    fn groups_by_utc_execution_date() {
        type Case = (&'static str, Vec<i64>, Vec<(&'static str, Vec<usize>)>);
        let cases: Vec<Case> = vec![
            ("one date", vec![DEC_1], vec![("2026-12-01", vec![0])]),
            ("first and last ms of a day are one date", vec![DEC_1_LAST_MS, DEC_1], vec![("2026-12-01", vec![0, 1])]),
            (
                "midnight starts the next date; dates sorted, input order kept within",
                vec![DEC_2, DEC_1_LAST_MS, DEC_2 + 5, DEC_1],
                vec![("2026-12-01", vec![1, 3]), ("2026-12-02", vec![0, 2])],
            ),
            (
                // 2026-12-01T00:00 KST is still 2026-11-30 in UTC.
                "UTC, not Korean time",
                vec![DEC_1 - 9 * 3_600_000],
                vec![("2026-11-30", vec![0])],
            ),
            ("leap day", vec![951_825_600_000], vec![("2000-02-29", vec![0])]),
        ];
        for (name, due_dates, expected) in cases {
            let transfers: Vec<CreditTransfer> = due_dates
                .iter()
                .enumerate()
                .map(|(i, due)| transfer(supplier("Supplier"), instruction("PO", &format!("S-{i}"), 1000, *due)))
                .collect();
            let document = parse(&Batch::new("MSG", CREATED, debtor(), transfers.clone()).unwrap().to_xml()).unwrap();
            let got: Vec<(&str, Vec<usize>)> = document
                .payment_information
                .iter()
                .map(|block| {
                    let positions = block
                        .transfers
                        .iter()
                        .map(|t| transfers.iter().position(|x| x.instruction.instruction_id == t.instruction_id).unwrap())
                        .collect();
                    (block.requested_execution_date.as_str(), positions)
                })
                .collect();
            assert_eq!(got, expected, "{name}");
            for (block, (date, _)) in document.payment_information.iter().zip(&expected) {
                assert_eq!(block.id, format!("MSG-{}", date.replace('-', "")), "{name}");
            }
        }
    }

    /// (amounts with their dates) -> (CtrlSum of the document, CtrlSum per
    /// PmtInf).
    #[test]
    fn control_sums_add_up_per_block_and_in_total() {
        type Case = (Vec<(u64, i64)>, &'static str, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (vec![(1, DEC_1)], "1", vec!["1"]),
            (vec![(1_500_000, DEC_1), (500_000, DEC_1)], "2000000", vec!["2000000"]),
            (vec![(7, DEC_2), (1_000_000, DEC_1), (3, DEC_2)], "1000010", vec!["1000000", "10"]),
            (vec![(MAX_AMOUNT - 1, DEC_1), (1, DEC_2)], "999999999999999999", vec!["999999999999999998", "1"]),
        ];
        for (amounts, total, per_block) in cases {
            let transfers = amounts
                .iter()
                .enumerate()
                .map(|(i, (amount, due))| transfer(supplier("S"), instruction("PO", &format!("S{i}"), *amount, *due)))
                .collect();
            let xml = Batch::new("MSG", CREATED, debtor(), transfers).unwrap().to_xml();
            let sums: Vec<&str> = xml.split("<CtrlSum>").skip(1).map(|rest| &rest[..rest.find('<').unwrap()]).collect();
            let mut expected = vec![total];
            expected.extend(&per_block);
            assert_eq!(sums, expected, "{amounts:?}");
            let document = parse(&xml).unwrap();
            assert_eq!(document.control_sum.to_string(), total);
        }
    }

    /// KRW has no minor unit: whole numbers, no decimal point, no grouping.
    #[test]
    fn amounts_are_whole_won() {
        let cases =
            [(1, "1"), (990, "990"), (1_500_000, "1500000"), (1_000_000_000_000, "1000000000000"), (MAX_AMOUNT, "999999999999999999")];
        for (amount, written) in cases {
            let transfers = vec![transfer(supplier("S"), instruction("PO", "S", amount, DEC_1))];
            let xml = Batch::new("MSG", CREATED, debtor(), transfers).unwrap().to_xml();
            assert!(xml.contains(&format!("<InstdAmt Ccy=\"KRW\">{written}</InstdAmt>")), "{xml}");
            assert!(xml.contains(&format!("<CtrlSum>{written}</CtrlSum>")), "{xml}");
            assert!(!xml.contains(&format!(">{written}.")), "{xml}");
            assert_eq!(parse(&xml).unwrap().payment_information[0].transfers[0].amount, amount);
        }
    }

    /// (name, how it must appear in the file); it must parse back as is.
    #[test]
    fn names_are_escaped_and_read_back() {
        let cases = [
            (r#"A&B <Co> "x""#, "A&amp;B &lt;Co&gt; &quot;x&quot;"),
            ("(주)대한정밀", "(주)대한정밀"),
            ("O'Brien & Sons", "O&apos;Brien &amp; Sons"),
            ("]]> <![CDATA[ x", "]]&gt; &lt;![CDATA[ x"),
            ("&amp; is not an entity", "&amp;amp; is not an entity"),
            ("  padded  ", "  padded  "),
        ];
        for (name, written) in cases {
            let debtor = Party { name: name.to_owned(), ..debtor() };
            let creditor = supplier(name);
            let transfers = vec![transfer(creditor.clone(), instruction("PO&<1>", "S\"1", 10, DEC_1))];
            let xml = Batch::new("MSG", CREATED, debtor.clone(), transfers).unwrap().to_xml();
            assert!(xml.contains(&format!("<Nm>{written}</Nm>")), "{xml}");
            assert!(xml.contains("<Ustrd>order PO&amp;&lt;1&gt; shipment S&quot;1</Ustrd>"), "{xml}");
            let document = parse(&xml).unwrap();
            assert_eq!(document.initiating_party, name);
            let block = &document.payment_information[0];
            assert_eq!(block.debtor, debtor);
            assert_eq!(block.transfers[0].creditor, creditor);
            assert_eq!(block.transfers[0].remittance, "order PO&<1> shipment S\"1");
        }
    }

    #[test]
    fn created_time_is_iso_8601_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (CREATED, "2026-11-21T22:17:43.123Z"),
            (951_825_600_000, "2000-02-29T12:00:00.000Z"),
            (MAX_TIMESTAMP_MS - 1, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, written) in cases {
            assert_eq!(utc_date_time(ms), written);
            assert_eq!(parse_date_time(written), Some(ms), "{written}");
        }
    }

    #[test]
    fn reads_date_times_with_offsets() {
        let cases = [
            ("2026-11-22T07:17:43.123+09:00", Some(CREATED)),
            ("2026-11-21T22:17:43.123456789Z", Some(CREATED)),
            ("2026-11-21T21:17:43.1-01:00", Some(CREATED - 23)),
            ("2026-11-21T22:17:43Z", Some(CREATED - 123)),
            // No offset names no instant.
            ("2026-11-21T22:17:43", None),
            ("2026-11-21T22:17:43.Z", None),
            ("2026-11-21T24:00:00Z", None),
            ("2026-02-29T00:00:00Z", None),
            ("2026-11-21T22:17:43+15:00", None),
            ("2026-11-21 22:17:43Z", None),
            ("２026-11-21T22:17:43Z", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_date_time(text), expected, "{text}");
        }
    }

    #[test]
    fn long_message_ids_get_distinct_payment_information_ids() {
        let a = "M".repeat(35);
        let b = format!("{}N", "M".repeat(34));
        let id_a = payment_information_id(&a, "2026-12-01");
        let id_b = payment_information_id(&b, "2026-12-01");
        assert_ne!(id_a, id_b);
        for id in [&id_a, &id_b] {
            assert_eq!(id.len(), 35, "{id}");
            assert!(id.starts_with("MMMMMMMMMMMMMMMMM-") && id.ends_with("-20261201"), "{id}");
        }
        assert_eq!(payment_information_id(&"M".repeat(26), "2026-12-01").len(), 35);
        let transfers = vec![transfer(supplier("S"), instruction("PO", "S", 10, DEC_1))];
        let document = parse(&Batch::new(a, CREATED, debtor(), transfers).unwrap().to_xml()).unwrap();
        assert_eq!(document.payment_information[0].id, id_a);
    }

    struct Input {
        message_id: String,
        created_ms: i64,
        debtor: Party,
        transfers: Vec<CreditTransfer>,
    }

    /// The one helper the rejection table goes through.
    fn check_rejected(name: &str, change: impl FnOnce(&mut Input), expected: Pain001Error) {
        let mut input = Input { message_id: "MSG".to_owned(), created_ms: CREATED, debtor: debtor(), transfers: sample_transfers() };
        change(&mut input);
        let got = Batch::new(input.message_id, input.created_ms, input.debtor, input.transfers);
        assert_eq!(got, Err(expected), "{name}");
    }

    #[test]
    fn refuses_bad_input() {
        let id_36 = "a".repeat(36);
        let too_long = |field: &str, chars, max| Pain001Error::TooLong { field: field.to_owned(), chars, max };
        let empty = |field: &str| Pain001Error::Empty { field: field.to_owned() };
        let bad = |field: &str, reason: &str| invalid(field, reason);
        check_rejected("no transfers", |i| i.transfers.clear(), Pain001Error::NoTransfers);
        check_rejected(
            "36-character instruction id",
            |i| i.transfers[1].instruction.instruction_id = "a".repeat(36),
            too_long("transfers[1].instruction.instruction_id", 36, 35),
        );
        check_rejected("36-character message id", |i| i.message_id = id_36.clone(), too_long("message_id", 36, 35));
        check_rejected(
            "zero amount (fully penalised)",
            |i| i.transfers[2].instruction.amount_krw = 0,
            Pain001Error::ZeroAmount { instruction_id: instruction_id("PO-7", "S-1") },
        );
        check_rejected(
            "sum over 18 digits",
            |i| {
                i.transfers[0].instruction.amount_krw = MAX_AMOUNT;
            },
            Pain001Error::AmountTooLarge { field: "sum of amounts up to transfers[1]".to_owned() },
        );
        check_rejected(
            "u64 overflow",
            |i| {
                i.transfers[0].instruction.amount_krw = u64::MAX;
            },
            Pain001Error::AmountTooLarge { field: "sum of amounts up to transfers[0]".to_owned() },
        );
        check_rejected(
            "duplicate instruction",
            |i| i.transfers[2].instruction = i.transfers[0].instruction.clone(),
            Pain001Error::DuplicateInstruction { instruction_id: instruction_id("PO-1", "S-2") },
        );
        check_rejected("empty debtor name", |i| i.debtor.name.clear(), empty("debtor.name"));
        check_rejected("blank creditor name", |i| i.transfers[0].creditor.name = "   ".to_owned(), empty("transfers[0].creditor.name"));
        check_rejected(
            "141-character name (counted in characters, not bytes)",
            |i| i.transfers[0].creditor.name = "가".repeat(141),
            too_long("transfers[0].creditor.name", 141, 140),
        );
        check_rejected(
            "control character in a name",
            |i| i.debtor.name = "Buyer\u{0}Co".to_owned(),
            bad("debtor.name", "control characters are not allowed"),
        );
        check_rejected(
            "space in an instruction id",
            |i| i.transfers[0].instruction.instruction_id = "a b".to_owned(),
            bad("transfers[0].instruction.instruction_id", "only printable ASCII without spaces is allowed"),
        );
        check_rejected(
            "remittance over 140 characters",
            |i| i.transfers[0].instruction.order_id = "P".repeat(122),
            too_long("transfers[0].remittance", 141, 140),
        );
        check_rejected(
            "IBAN with wrong check digits",
            |i| i.debtor.account = Account::Iban("DE88370400440532013000".to_owned()),
            bad("debtor.account", "the IBAN check digits do not match"),
        );
        check_rejected(
            "IBAN with spaces",
            |i| i.debtor.account = Account::Iban("DE89 3704 0044 0532 0130 00".to_owned()),
            bad("debtor.account", "an IBAN is 2 capital letters, 2 check digits and 1 to 30 letters or digits"),
        );
        check_rejected(
            "BIC of 9 characters",
            |i| i.transfers[2].creditor.agent = Agent::Bic("DEUTDEFF5".to_owned()),
            bad("transfers[2].creditor.agent", "a BIC is 8 or 11 capital letters or digits"),
        );
        check_rejected(
            "domestic account with a slash",
            |i| i.transfers[0].creditor.account = Account::Domestic("110/123".to_owned()),
            bad("transfers[0].creditor.account", "only ASCII letters, digits and '-' are allowed"),
        );
        check_rejected(
            "domestic account of 35 characters",
            |i| i.transfers[0].creditor.account = Account::Domestic("1".repeat(35)),
            too_long("transfers[0].creditor.account", 35, 34),
        );
        check_rejected("empty bank code", |i| i.debtor.agent = Agent::BankCode(String::new()), empty("debtor.agent"));
        check_rejected(
            "due date before 1970",
            |i| i.transfers[1].instruction.due_date_ms = -1,
            bad("transfers[1].instruction.due_date_ms", "-1 ms is not in years 1970 to 9999"),
        );
        check_rejected(
            "created after 9999",
            |i| i.created_ms = MAX_TIMESTAMP_MS,
            bad("created_ms", "253402300800000 ms is not in years 1970 to 9999"),
        );
    }

    #[test]
    fn accepts_valid_ibans_and_bics() {
        for iban in ["DE89370400440532013000", "GB82WEST12345698765432", "NL91ABNA0417164300"] {
            assert_eq!(check_iban("iban", iban), Ok(()), "{iban}");
        }
        for bic in ["DEUTDEFF", "KOEXKRSEXXX", "SHBKKRSE"] {
            assert_eq!(check_agent("bic", &Agent::Bic(bic.to_owned())), Ok(()), "{bic}");
        }
    }

    /// The one helper the tampered-document table goes through: edits the
    /// sample file and expects `parse` to refuse it.
    fn check_refused(name: &str, edit: impl FnOnce(String) -> String, expected: Pain001Error) {
        let original = sample_batch().to_xml();
        let edited = edit(original.clone());
        assert_ne!(edited, original, "{name}: the edit changed nothing");
        assert_eq!(parse(&edited), Err(expected), "{name}");
    }

    #[test]
    fn parse_refuses_tampered_documents() {
        let header = "Document/CstmrCdtTrfInitn/GrpHdr";
        let first_block = "Document/CstmrCdtTrfInitn/PmtInf[1]";
        let first_amount = "Document/CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[1]/Amt/InstdAmt";
        check_refused(
            "group CtrlSum edited",
            |xml| xml.replace("<CtrlSum>4000990</CtrlSum>", "<CtrlSum>4000991</CtrlSum>"),
            Pain001Error::ControlSumMismatch { path: header.to_owned(), declared: "4000991".to_owned(), actual: 4_000_990 },
        );
        check_refused(
            "block CtrlSum edited",
            |xml| xml.replace("<CtrlSum>1500990</CtrlSum>", "<CtrlSum>1500999</CtrlSum>"),
            Pain001Error::ControlSumMismatch { path: first_block.to_owned(), declared: "1500999".to_owned(), actual: 1_500_990 },
        );
        check_refused(
            "CtrlSum with won fractions",
            |xml| xml.replace("<CtrlSum>4000990</CtrlSum>", "<CtrlSum>4000990.50</CtrlSum>"),
            Pain001Error::ControlSumMismatch { path: header.to_owned(), declared: "4000990.50".to_owned(), actual: 4_000_990 },
        );
        check_refused(
            "amount edited, sums left alone",
            |xml| xml.replacen(">1500000</InstdAmt>", ">1600000</InstdAmt>", 1),
            Pain001Error::ControlSumMismatch { path: first_block.to_owned(), declared: "1500990".to_owned(), actual: 1_600_990 },
        );
        check_refused(
            "group NbOfTxs edited",
            |xml| xml.replacen("<NbOfTxs>3</NbOfTxs>", "<NbOfTxs>4</NbOfTxs>", 1),
            Pain001Error::CountMismatch { path: header.to_owned(), declared: 4, actual: 3 },
        );
        check_refused(
            "block NbOfTxs edited",
            |xml| xml.replacen("<NbOfTxs>2</NbOfTxs>", "<NbOfTxs>1</NbOfTxs>", 1),
            Pain001Error::CountMismatch { path: first_block.to_owned(), declared: 1, actual: 2 },
        );
        check_refused(
            "amount with decimals",
            |xml| xml.replacen(">1500000</InstdAmt>", ">1500000.00</InstdAmt>", 1),
            invalid(first_amount, "expected a whole number of KRW"),
        );
        check_refused(
            "other currency",
            |xml| xml.replacen("Ccy=\"KRW\"", "Ccy=\"USD\"", 1),
            Pain001Error::UnsupportedCurrency { path: first_amount.to_owned(), currency: "USD".to_owned() },
        );
        check_refused(
            "amount zero",
            |xml| xml.replacen(">990</InstdAmt>", ">0</InstdAmt>", 1),
            invalid("Document/CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[2]/Amt/InstdAmt", "an amount must be above zero"),
        );
        check_refused(
            "other namespace",
            |xml| xml.replace("pain.001.001.09", "pain.001.001.03"),
            Pain001Error::WrongNamespace {
                element: "Document".to_owned(),
                found: "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03".to_owned(),
            },
        );
        check_refused(
            "no namespace",
            |xml| xml.replace(&format!(" xmlns=\"{NAMESPACE}\""), ""),
            Pain001Error::WrongNamespace { element: "Document".to_owned(), found: String::new() },
        );
        check_refused(
            "an ultimate creditor slipped in",
            |xml| xml.replacen("<RmtInf>", "<UltmtCdtr><Nm>Mallory</Nm></UltmtCdtr><RmtInf>", 1),
            structure("Document/CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[1]/UltmtCdtr", "unexpected element, expected RmtInf"),
        );
        check_refused(
            "elements out of order",
            |xml| {
                xml.replacen(
                    "<PmtMtd>TRF</PmtMtd>\n      <BtchBookg>false</BtchBookg>",
                    "<BtchBookg>false</BtchBookg>\n      <PmtMtd>TRF</PmtMtd>",
                    1,
                )
            },
            structure("Document/CstmrCdtTrfInitn/PmtInf[1]/BtchBookg", "unexpected element, expected PmtMtd"),
        );
        check_refused(
            "an element missing",
            |xml| xml.replacen("<ChrgBr>SLEV</ChrgBr>", "", 1),
            structure("Document/CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[1]", "unexpected element, expected ChrgBr"),
        );
        check_refused(
            "instruction id over 35 characters",
            |xml| {
                let id = instruction_id("PO-1", "S-1");
                xml.replacen(&format!("<InstrId>{id}</InstrId>"), &format!("<InstrId>{id}xxxx</InstrId>"), 1)
            },
            too_long_at("Document/CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[1]/PmtId/InstrId", 36),
        );
        check_refused(
            "a DTD",
            |xml| xml.replacen("<Document", "<!DOCTYPE Document [<!ENTITY x \"y\">]>\n<Document", 1),
            structure("Document", "a DTD is not allowed"),
        );
        check_refused("truncated", |xml| xml.replace("</Document>", ""), structure("Document", "the element is not closed"));
    }

    fn too_long_at(path: &str, chars: usize) -> Pain001Error {
        Pain001Error::TooLong { field: path.to_owned(), chars, max: 35 }
    }

    #[test]
    fn parse_refuses_what_is_not_xml() {
        for text in ["", "not xml", "<Document", "<a></b>", "<?xml version=\"1.0\"?>"] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        let mismatched = format!("<Document xmlns=\"{NAMESPACE}\"></b>");
        assert!(matches!(parse(&mismatched), Err(Pain001Error::Xml { .. })));
    }

    #[test]
    fn parse_reads_a_prefixed_namespace_and_empty_tags_alike() {
        let xml = sample_batch().to_xml();
        let body = &xml[xml.find("<Document").unwrap()..];
        let prefixed = body.replace("</", "\u{1}").replace('<', "<p:").replace('\u{1}', "</p:").replace("xmlns=", "xmlns:p=");
        assert_eq!(parse(&prefixed), parse(&xml));
        // A prefixed element bound to another namespace is not ours.
        let foreign = prefixed.replacen("<p:GrpHdr>", "<q:GrpHdr xmlns:q=\"urn:other\">", 1).replacen("</p:GrpHdr>", "</q:GrpHdr>", 1);
        assert_eq!(
            parse(&foreign),
            Err(Pain001Error::WrongNamespace { element: "Document/CstmrCdtTrfInitn/GrpHdr".to_owned(), found: "urn:other".to_owned() })
        );
    }

    #[test]
    fn execution_date_is_the_utc_date() {
        assert_eq!(execution_date(DEC_1_LAST_MS), Ok("2026-12-01".to_owned()));
        assert_eq!(execution_date(DEC_2), Ok("2026-12-02".to_owned()));
        assert!(execution_date(-1).is_err());
    }

    fn arbitrary_name() -> impl Strategy<Value = String> {
        // Printable text with XML's special characters and Hangul.
        proptest::string::string_regex("[a-zA-Z0-9 &<>\"'()\\]\\[가-힣]{0,139}").unwrap().prop_map(|s| format!("N{s}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_valid_batch_round_trips(
            debtor_name in arbitrary_name(),
            creditors in proptest::collection::vec(
                (arbitrary_name(), 1u64..=1_000_000_000_000, 0i64..MAX_TIMESTAMP_MS),
                1..8,
            ),
            created_ms in 0i64..MAX_TIMESTAMP_MS,
        ) {
            let transfers: Vec<CreditTransfer> = creditors
                .iter()
                .enumerate()
                .map(|(i, (name, amount, due))| {
                    transfer(supplier(name), instruction("PO", &i.to_string(), *amount, *due))
                })
                .collect();
            let debtor = Party { name: debtor_name, ..debtor() };
            let batch = Batch::new("MSG", created_ms, debtor.clone(), transfers.clone()).unwrap();
            let document = parse(&batch.to_xml()).unwrap();
            prop_assert_eq!(document.created_ms, created_ms);
            prop_assert_eq!(document.initiating_party, debtor.name.clone());
            prop_assert_eq!(
                document.control_sum,
                transfers.iter().map(|t| t.instruction.amount_krw).sum::<u64>()
            );
            let mut seen = 0;
            for block in &document.payment_information {
                prop_assert_eq!(&block.debtor, &debtor);
                for parsed_transfer in &block.transfers {
                    let original = transfers
                        .iter()
                        .find(|t| t.instruction.instruction_id == parsed_transfer.instruction_id)
                        .unwrap();
                    prop_assert_eq!(parsed_transfer, &parsed(original));
                    prop_assert_eq!(
                        &block.requested_execution_date,
                        &utc_date(original.instruction.due_date_ms)
                    );
                    seen += 1;
                }
            }
            prop_assert_eq!(seen, transfers.len());
        }

        #[test]
        fn dates_round_trip(days in 0i64..2_932_897) {
            prop_assert_eq!(parse_date(&utc_date(days * MS_PER_DAY)), Some(days));
        }

        #[test]
        fn parse_does_not_panic_on_damaged_files(cut in 0usize..4000, byte in any::<u8>()) {
            let xml = sample_batch().to_xml();
            let mut bytes = xml.into_bytes();
            let at = cut % bytes.len();
            bytes[at] = byte;
            if let Ok(text) = String::from_utf8(bytes) {
                let _ = parse(&text);
                // The damaged byte may have made `at` fall inside a character.
                if let Some(head) = text.get(..at) {
                    let _ = parse(head);
                }
            }
        }
    }
}
