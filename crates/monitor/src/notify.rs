//! Notifications, the parts without I/O: who wants an alarm (subscriptions), how a
//! webhook body is signed and checked, when a failed delivery is tried again, and which
//! webhook addresses are safe to call from inside the platform.
//!
//! Webhook signature (the header `FactoryChain-Signature`): `t=<unix seconds>,v1=<hex>`,
//! where `<hex>` is HMAC-SHA256 over `"<t>.<body>"` with the endpoint's secret. A receiver
//! recomputes it, compares in constant time and refuses a `t` too far from its clock, so a
//! captured delivery cannot be replayed later ([`verify`]).
//!
//! Invariant: an address is called only if every IP it resolves to passed
//! [`check_ip`]; loopback, link-local (cloud metadata), private, multicast and
//! unspecified addresses are refused unless the operator allows private networks.

use crate::rule::{Severity, glob};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::IpAddr;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "FactoryChain-Signature";
/// Attempts of one delivery before it goes to the dead-letter list, by default.
pub const MAX_ATTEMPTS: u32 = 8;

/// `t=<timestamp_s>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn sign(secret: &[u8], timestamp_s: i64, body: &[u8]) -> String {
    format!("t={timestamp_s},v1={}", hex::encode(mac(secret, timestamp_s, body).finalize().into_bytes()))
}

fn mac(secret: &[u8], timestamp_s: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(timestamp_s.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignatureError {
    /// The header is not `t=...,v1=...`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is too far from now (a replay, or a wrong clock).
    #[error("signature timestamp is {0} s from now")]
    Stale(i64),
    /// The HMAC does not match.
    #[error("signature does not match")]
    Mismatch,
}

/// Check a signature header against the body, with `tolerance_s` of clock difference.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return Err(SignatureError::Malformed) };
    if (now_s - t).abs() > tolerance_s {
        return Err(SignatureError::Stale(now_s - t));
    }
    mac(secret, t, body).verify_slice(&v1).map_err(|_| SignatureError::Mismatch)
}

/// Delay before attempt `attempt` (1-based; attempt 1 is immediate) of a delivery, or
/// `None` past `max_attempts`: 0, 1 s, 2 s, 4 s ... capped at 5 minutes, with up to
/// 20 % jitter from `jitter` (0..1) so retries of many alarms do not march together.
pub fn retry_delay_ms(attempt: u32, max_attempts: u32, jitter: f64) -> Option<u64> {
    if attempt == 0 || attempt > max_attempts {
        return None;
    }
    if attempt == 1 {
        return Some(0);
    }
    let base = (1000u64 << (attempt - 2).min(20)).min(300_000);
    Some(base + (base as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as u64)
}

/// Check a webhook URL's shape: http or https, a host, no user info, and (when the host
/// is an IP address) an allowed address. Names are checked again after resolution with
/// [`check_ip`]. Returns the host.
pub fn check_url(url: &str, allow_private: bool) -> Result<String, String> {
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(format!("{url:?}: only http and https webhooks")),
    }
    let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?}: put credentials in the secret, not the URL"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        check_ip(ip, allow_private).map_err(|why| format!("{url:?}: {why}"))?;
    } else if !allow_private
        && (host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local") || host.ends_with(".internal"))
    {
        return Err(format!("{url:?}: {host} is a local name"));
    }
    Ok(host)
}

/// Whether the platform may connect to `ip` for a tenant's webhook.
pub fn check_ip(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let never = ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if never {
        return Err(format!("{ip} is not a host address"));
    }
    let local = match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_private() || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            v6.is_loopback() || (s & 0xffc0) == 0xfe80 || (s & 0xfe00) == 0xfc00
        }
    };
    if local && !allow_private {
        return Err(format!("{ip} is a loopback, link-local or private address (refused unless the operator allows private networks)"));
    }
    Ok(())
}

/// Where a subscription sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// An e-mail address.
    Email {
        /// The address.
        address: String,
    },
    /// A webhook endpoint of the tenant, by id.
    Webhook {
        /// The endpoint's id.
        endpoint: String,
    },
}

/// A user's wish to hear of alarms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Where to.
    pub channel: Channel,
    /// Alarms at or above this severity.
    #[serde(default)]
    pub min_severity: Severity,
    /// Machine globs; empty: every machine.
    #[serde(default)]
    pub machines: Vec<String>,
}

impl Subscription {
    /// Whether an alarm of `severity` on `machine` goes to this subscription.
    pub fn wants(&self, severity: Severity, machine: &str) -> bool {
        severity >= self.min_severity && (self.machines.is_empty() || self.machines.iter().any(|m| glob(m, machine)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse_tampering_and_replays() {
        let body = br#"{"alarm":"a1"}"#;
        let h = sign(b"s3cret", 1_800_000_000, body);
        assert!(h.starts_with("t=1800000000,v1="));
        assert_eq!(h.len(), "t=1800000000,v1=".len() + 64);
        assert_eq!(verify(b"s3cret", &h, body, 1_800_000_100, 300), Ok(()));
        assert_eq!(verify(b"s3cret", &h, br#"{"alarm":"a2"}"#, 1_800_000_000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"other", &h, body, 1_800_000_000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"s3cret", &h, body, 1_800_001_000, 300), Err(SignatureError::Stale(1000)));
        assert_eq!(verify(b"s3cret", "v1=abc", body, 1_800_000_000, 300), Err(SignatureError::Malformed));
        let forged = h.replace("t=1800000000", "t=1800000900");
        assert_eq!(verify(b"s3cret", &forged, body, 1_800_000_900, 300), Err(SignatureError::Mismatch), "the timestamp is signed too");
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256(key "key", "1.hello"), computed independently (Python hmac).
        assert_eq!(sign(b"key", 1, b"hello"), "t=1,v1=9233658ef5e21fe59dba8abb099c978547d7626f87090a6a585c26a2a98a91f8");
    }

    #[test]
    fn retries_back_off_then_stop() {
        let d: Vec<Option<u64>> = (0..=9).map(|a| retry_delay_ms(a, MAX_ATTEMPTS, 0.0)).collect();
        assert_eq!(d, vec![None, Some(0), Some(1000), Some(2000), Some(4000), Some(8000), Some(16000), Some(32000), Some(64000), None]);
        assert_eq!(retry_delay_ms(3, MAX_ATTEMPTS, 1.0), Some(2400));
        assert_eq!(retry_delay_ms(30, 40, 0.0), Some(300_000), "capped at five minutes");
        assert_eq!(retry_delay_ms(3, 2, 0.0), None);
    }

    #[test]
    fn unsafe_webhook_addresses_are_refused() {
        for (url, ok) in [
            ("https://hooks.example.com/fc?x=1", true),
            ("http://203.0.113.7:8080/hook", true),
            ("https://[2001:db8::1]/h", true),
            ("http://127.0.0.1:9000/", false),
            ("http://localhost/", false),
            ("http://169.254.169.254/latest/meta-data", false),
            ("http://10.0.0.5/", false),
            ("http://192.168.1.10/", false),
            ("http://100.64.0.1/", false),
            ("http://[::1]/", false),
            ("http://[fe80::1]/", false),
            ("http://[::ffff:127.0.0.1]/", false),
            ("http://0.0.0.0/", false),
            ("http://224.0.0.1/", false),
            ("ftp://example.com/", false),
            ("https://user:pw@example.com/", false),
            ("not a url", false),
            ("https:///nohost", false),
        ] {
            assert_eq!(check_url(url, false).is_ok(), ok, "{url}: {:?}", check_url(url, false));
        }
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok(), "the operator may allow private networks");
        assert!(check_url("http://0.0.0.0/", true).is_err(), "but never a non-host address");
        assert!(check_url("http://10.0.0.5/", false).unwrap_err().contains("unless the operator allows"));
    }

    #[test]
    fn subscriptions_filter_by_severity_and_machine() {
        let s = Subscription {
            channel: Channel::Email { address: "kim@example.com".into() },
            min_severity: Severity::Major,
            machines: vec!["press-*".into()],
        };
        assert!(s.wants(Severity::Critical, "press-2"));
        assert!(!s.wants(Severity::Warning, "press-2"));
        assert!(!s.wants(Severity::Critical, "lathe-1"));
        let all = Subscription { machines: vec![], min_severity: Severity::Info, ..s };
        assert!(all.wants(Severity::Info, "anything"));
    }
}
