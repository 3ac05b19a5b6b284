//! RFC 9457 problem details for every API error.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fc_core::{ErrorCode, ServiceError};
use serde::Serialize;

/// A problem+json answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI naming the error class.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the class.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

impl Problem {
    /// A problem of `code` with `detail`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let detail = if code == ErrorCode::Internal {
            tracing::error!(error = %detail, "internal error");
            "internal error; it has been logged".to_string()
        } else {
            detail
        };
        Self {
            kind: format!("https://factorychain.example/problems/{}", code.as_str()),
            title: code.as_str().replace('_', " "),
            status: code.http_status(),
            detail,
        }
    }
    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, detail)
    }
    /// 404 (also for objects of other tenants).
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such object")
    }
    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, detail)
    }
    /// A refused request body: 413 when it was too large, 400 otherwise.
    pub fn body_rejected(status: StatusCode, detail: String) -> Self {
        let mut p = Self::bad_request(detail);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            p.status = 413;
            p.title = "payload too large".into();
        }
        p
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<fc_registry::RegistryError> for Problem {
    fn from(e: fc_registry::RegistryError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<fc_store::StoreError> for Problem {
    fn from(e: fc_store::StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, Json(&self)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
        res
    }
}
