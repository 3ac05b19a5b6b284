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
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use subtle_eq::eq;

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

/// A per-key attempt throttle (login attempts per e-mail, sign-ups per client address).
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

mod subtle_eq {
    /// Equality that does not stop at the first differing byte.
    pub fn eq(a: &str, b: &str) -> bool {
        use subtle::ConstantTimeEq;
        a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
    }
}
