//! Who is asking: a session cookie (browsers) or an API key (machine clients).
//! Sessions must send their CSRF token with every state-changing request
//! (form field `csrf`, or header `x-csrf-token` on the JSON API).

use crate::PortalState;
use crate::i18n::Lang;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use fc_registry::Role;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use subtle_eq::eq;
use tokio::sync::Semaphore;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "fc_session";

/// The caller, as established from its credential.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Tenant every query is scoped to.
    pub tenant_id: String,
    /// What the caller may do.
    pub role: Role,
    /// Signed-in user (sessions only).
    pub user_id: Option<String>,
    /// The session's CSRF token (sessions only).
    pub csrf: Option<String>,
    /// UI language.
    pub lang: Lang,
}

impl Principal {
    /// `Ok` when the caller's role includes `needed`; a 403 naming the role otherwise.
    pub fn require(&self, needed: Role) -> Result<(), Problem> {
        if self.role.allows(needed) { Ok(()) } else { Err(Problem::forbidden(format!("this needs the {} role", needed.as_str()))) }
    }
}

/// A cookie's value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The page language of a request.
pub fn lang(headers: &HeaderMap) -> Lang {
    Lang::pick(cookie(headers, "lang"), headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

/// `Set-Cookie` value of a session.
pub fn session_cookie(id: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        fc_registry::identity::SESSION_TTL_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

fn from_credentials(state: &PortalState, parts: &Parts) -> Result<Principal, Problem> {
    let lang = lang(&parts.headers);
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let token = auth
            .strip_prefix("Bearer ")
            .ok_or_else(|| Problem::new(fc_core::ErrorCode::Unauthenticated, "use Authorization: Bearer <API key>"))?;
        let key = state.registry.authenticate_api_key(token.trim())?;
        return Ok(Principal { tenant_id: key.tenant_id, role: key.role, user_id: None, csrf: None, lang });
    }
    let sid = cookie(&parts.headers, SESSION_COOKIE)
        .ok_or_else(|| Problem::new(fc_core::ErrorCode::Unauthenticated, "sign in or send an API key"))?;
    let s = state.registry.session(sid)?;
    Ok(Principal { tenant_id: s.tenant_id, role: s.role, user_id: Some(s.user_id), csrf: Some(s.csrf), lang })
}

/// The JSON API's caller: API key, or session plus `x-csrf-token` on unsafe methods.
pub struct ApiAuth(pub Principal);

impl FromRequestParts<Arc<PortalState>> for ApiAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<PortalState>) -> Result<Self, Self::Rejection> {
        let p = from_credentials(state, parts)?;
        if let Some(csrf) = &p.csrf {
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !safe && !eq(sent, csrf) {
                return Err(Problem::forbidden("missing or wrong x-csrf-token header"));
            }
        }
        Ok(Self(p))
    }
}

/// A page's caller: a session, or a redirect to the login page.
pub struct PageAuth(pub Principal);

/// Rejection of [`PageAuth`]: back to the login page.
pub struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<Arc<PortalState>> for PageAuth {
    type Rejection = ToLogin;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<PortalState>) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ToLogin); // pages are for browsers; machines use /api
        }
        from_credentials(state, parts).map(Self).map_err(|_| ToLogin)
    }
}

/// Check a form's CSRF field against the session.
pub fn check_csrf(p: &Principal, sent: &str) -> Result<(), Problem> {
    match &p.csrf {
        Some(c) if eq(sent, c) => Ok(()),
        _ => Err(Problem::forbidden("the form is stale or forged (CSRF token mismatch); reload the page")),
    }
}

/// The address of the client that sent the request: the one place that decides
/// it, so every throttle (sign-up, login) counts the same client the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The client behind a request from `peer`: the peer itself, unless it is one of
    /// the `trusted` proxies. Then `X-Forwarded-For` is walked from the right (each
    /// proxy appends the address it got the request from), past the trusted proxies,
    /// to the first address that is not one: everything left of it was written by
    /// the client and proves nothing. An entry that does not parse stops the walk at
    /// the last address a trusted proxy vouched for.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> Self {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
        let mut client = peer.to_canonical();
        if !is_trusted(client) {
            return Self(client);
        }
        let hops: Vec<&str> =
            headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !is_trusted(ip) {
                break;
            }
        }
        Self(client)
    }

    /// The key of this client in a per-address throttle. An IPv6 client counts by
    /// its /64: one host usually holds a whole /64, and would otherwise get a fresh
    /// budget for each of its 2^64 addresses.
    pub fn throttle_key(self) -> String {
        match self.0.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            v4 => v4.to_string(),
        }
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`[::1]:443`, `192.0.2.1:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok()))?;
    Some(ip.to_canonical())
}

impl FromRequestParts<Arc<PortalState>> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<PortalState>) -> Result<Self, Self::Rejection> {
        // Without connection info (a router served without it, as in some tests) every
        // request is one client: throttles then bound the whole portal, never nobody.
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self::of(peer, &parts.headers, &state.trusted_proxies))
    }
}

/// An address range of `portal.trusted_proxies`: `10.0.0.0/8`, `2001:db8::/32`, or a
/// single address (`192.0.2.7`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an IP address or CIDR range");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let net = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { net, prefix })
    }
}

impl IpRange {
    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A per-key attempt throttle (sign-ups per client address; the parts of [`LoginThrottle`]).
pub struct Throttle(DefaultKeyedRateLimiter<String>);

impl Throttle {
    /// `n` attempts per key per minute (burst of the same size).
    pub fn per_minute(n: u32) -> Self {
        Self::new(n, Quota::per_minute)
    }
    /// `n` attempts per key per hour (burst of the same size).
    pub fn per_hour(n: u32) -> Self {
        Self::new(n, Quota::per_hour)
    }
    fn new(n: u32, per: fn(NonZeroU32) -> Quota) -> Self {
        let n = NonZeroU32::new(n.max(1)).expect("positive");
        Self(RateLimiter::keyed(per(n).allow_burst(n)))
    }
    /// Whether another attempt for `key` (case-insensitive) is allowed now.
    pub fn allow(&self, key: &str) -> bool {
        self.0.check_key(&key.trim().to_ascii_lowercase()).is_ok()
    }
    /// Forget keys whose bucket is full again (they would start full anyway), so
    /// the map does not grow with every address ever seen.
    pub fn prune(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The login throttle: three budgets, all of which must allow an attempt.
///
/// - per (e-mail, client address): slows guessing one account from one place.
///   The e-mail alone is deliberately not a key: anyone could then lock a user out
///   by failing on purpose from elsewhere. (The alternative, letting a correct
///   password pass an exhausted account bucket, would have to run argon2 for every
///   over-limit attempt to find out, which gives guessing back its full speed.)
/// - per client address: one client cannot spread guesses over many e-mails;
/// - global: bounds the argon2 work all clients together can cause.
///
/// Budgets are checked most specific first and stop at the first refusal, so a
/// client over its own budget does not spend the global one.
pub struct LoginThrottle {
    per_account: Throttle,
    per_address: Throttle,
    global: DefaultDirectRateLimiter,
}

impl LoginThrottle {
    /// Budgets per minute (each with a burst of the same size).
    pub fn per_minute(per_account: u32, per_address: u32, global: u32) -> Self {
        let n = NonZeroU32::new(global.max(1)).expect("positive");
        Self {
            per_account: Throttle::per_minute(per_account),
            per_address: Throttle::per_minute(per_address),
            global: RateLimiter::direct(Quota::per_minute(n).allow_burst(n)),
        }
    }
    /// Whether `client` may try to sign in as `email` now. Takes one attempt from each budget it passes.
    pub fn allow(&self, client: ClientAddr, email: &str) -> bool {
        let address = client.throttle_key();
        self.per_address.allow(&address) && self.per_account.allow(&format!("{}\n{address}", email.trim())) && self.global.check().is_ok()
    }
    /// Forget keys whose budget is full again.
    pub fn prune(&self) {
        self.per_account.prune();
        self.per_address.prune();
    }
}

/// Refusal of [`PasswordHashing::run`]: every slot is busy and the queue is full.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks at once; try again in a moment")]
pub struct HashingBusy;

/// The process's budget for argon2id: at most `concurrency` hashes or verifications
/// run at once (on the blocking pool), and at most `queue` more wait for a slot.
/// Anything beyond is refused at once instead of piling onto the blocking pool,
/// which the store's reads and writes also use: a flood of sign-ins costs those at
/// most `concurrency` threads and cores.
pub struct PasswordHashing {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

impl PasswordHashing {
    /// `concurrency` (at least 1) at once, `queue` waiting.
    pub fn new(concurrency: u32, queue: u32) -> Self {
        Self { slots: Arc::new(Semaphore::new(concurrency.max(1) as usize)), waiting: AtomicUsize::new(0), queue: queue as usize }
    }

    /// Slots free right now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Run `work` (which hashes or verifies a password) in a slot on the blocking pool.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashingBusy> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(HashingBusy);
                }
                // Leaves the queue when served or when the request is dropped while waiting.
                let _queued = Queued(&self.waiting);
                self.slots.clone().acquire_owned().await.map_err(|_| HashingBusy)?
            }
        };
        // The slot moves into the blocking task: it is held until the hash is done,
        // even if the client has gone away meanwhile.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            HashingBusy
        })
    }
}

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

mod subtle_eq {
    /// Equality that does not stop at the first differing byte.
    pub fn eq(a: &str, b: &str) -> bool {
        use subtle::ConstantTimeEq;
        a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_hashing_refuses_beyond_its_slots_and_queue() {
        // (slots, queue): how many blocked jobs are taken before the next is refused.
        for (slots, queue) in [(1, 0), (1, 2), (2, 1)] {
            let hashing = Arc::new(PasswordHashing::new(slots, queue));
            let (release, gate) = std::sync::mpsc::channel::<()>();
            let gate = Arc::new(std::sync::Mutex::new(gate));
            let mut held = Vec::new();
            for _ in 0..slots + queue {
                let (hashing, gate) = (hashing.clone(), gate.clone());
                held.push(tokio::spawn(async move { hashing.run(move || gate.lock().unwrap().recv().is_ok()).await }));
            }
            // Wait until every slot is taken and the queue is full.
            fc_wait(|| hashing.slots.available_permits() == 0 && hashing.waiting.load(Ordering::SeqCst) == queue as usize).await;
            assert!(hashing.run(|| ()).await.is_err(), "slots {slots} queue {queue}: one more is refused");
            for _ in 0..slots + queue {
                release.send(()).unwrap();
            }
            for h in held {
                assert!(h.await.unwrap().unwrap(), "the admitted jobs ran");
            }
            assert!(hashing.run(|| ()).await.is_ok(), "slots free up");
            assert_eq!(hashing.waiting.load(Ordering::SeqCst), 0);
        }
    }

    async fn fc_wait(mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "condition not reached");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwarded_the_request() {
        let trusted: Vec<IpRange> = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"].iter().map(|r| r.parse().unwrap()).collect();
        // (peer, X-Forwarded-For lines, the client)
        let cases: [(&str, &[&str], &str); 14] = [
            ("203.0.113.5", &[], "203.0.113.5"),
            ("203.0.113.5", &["198.51.100.1"], "203.0.113.5"),
            ("192.0.2.8", &["198.51.100.1"], "192.0.2.8"),
            ("192.0.2.7", &[], "192.0.2.7"),
            ("192.0.2.7", &["198.51.100.1"], "198.51.100.1"),
            ("10.1.2.3", &["198.51.100.9, 198.51.100.1, 10.0.0.2"], "198.51.100.1"),
            ("10.1.2.3", &["198.51.100.9", "198.51.100.1, 10.0.0.2"], "198.51.100.1"),
            ("10.1.2.3", &["10.0.0.4, 10.0.0.2"], "10.0.0.4"),
            ("10.1.2.3", &["198.51.100.1, garbage, 10.0.0.2"], "10.0.0.2"),
            ("10.1.2.3", &["garbage"], "10.1.2.3"),
            ("10.1.2.3", &["198.51.100.1:4711"], "198.51.100.1"),
            ("10.1.2.3", &["[2001:db9::1]:443"], "2001:db9::1"),
            ("::ffff:10.1.2.3", &["::ffff:198.51.100.1"], "198.51.100.1"),
            ("2001:db8::5", &["2001:db9::1, 2001:db8::9"], "2001:db9::1"),
        ];
        for (peer, lines, want) in cases {
            let mut headers = HeaderMap::new();
            for l in lines {
                headers.append("x-forwarded-for", l.parse().unwrap());
            }
            let got = ClientAddr::of(peer.parse().unwrap(), &headers, &trusted);
            assert_eq!(got.0, want.parse::<IpAddr>().unwrap(), "peer {peer}, X-Forwarded-For {lines:?}");
        }
        assert_eq!(ClientAddr::of("10.1.2.3".parse().unwrap(), &HeaderMap::new(), &[]).0.to_string(), "10.1.2.3");
    }

    #[test]
    fn ranges_parse_and_contain() {
        // (range, address, contained)
        for (range, ip, want) in [
            ("10.0.0.0/8", "10.255.0.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("0.0.0.0/0", "198.51.100.1", true),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("192.0.2.7/32", "::ffff:192.0.2.7", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("::1", "127.0.0.1", false),
        ] {
            let r: IpRange = range.parse().unwrap();
            assert_eq!(r.contains(ip.parse().unwrap()), want, "{range} contains {ip}");
        }
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0.0/x", "example.com", "10.0.0/8"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        for (ip, key) in [
            ("198.51.100.1", "198.51.100.1"),
            ("::ffff:198.51.100.1", "198.51.100.1"),
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ] {
            assert_eq!(ClientAddr(ip.parse().unwrap()).throttle_key(), key);
        }
    }

    #[test]
    fn login_budgets_are_per_account_and_address_per_address_and_global() {
        let a = ClientAddr("192.0.2.1".parse().unwrap());
        let b = ClientAddr("192.0.2.2".parse().unwrap());
        let t = LoginThrottle::per_minute(2, 3, 100);
        assert!(t.allow(a, "kim@x.example") && t.allow(a, "KIM@x.example "));
        assert!(!t.allow(a, "kim@x.example"), "the account budget at this address is spent");
        assert!(t.allow(b, "kim@x.example"), "another address still may try that account");
        assert!(!t.allow(a, "lee@x.example"), "the address budget is spent (three attempts)");
        let g = LoginThrottle::per_minute(10, 10, 2);
        assert!(g.allow(a, "x@x.example") && g.allow(b, "y@x.example"));
        assert!(!g.allow(ClientAddr("192.0.2.3".parse().unwrap()), "z@x.example"), "the global budget is spent");
    }
}
