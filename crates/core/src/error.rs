//! One small error vocabulary shared by every service. Each code knows its
//! gRPC status, its HTTP status (for RFC 9457 problem+json), whether a client
//! may retry, and how loudly to log it.

use std::fmt;

/// The error classes a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed; the message names the bad field.
    InvalidArgument,
    /// The object does not exist (or the caller may not know that it does).
    NotFound,
    /// The object exists already.
    AlreadyExists,
    /// The system is not in a state that allows the request.
    FailedPrecondition,
    /// No valid credential.
    Unauthenticated,
    /// A valid credential without the right.
    PermissionDenied,
    /// A quota or rate limit was hit.
    ResourceExhausted,
    /// A dependency is down; retry later.
    Unavailable,
    /// The deadline passed before the work was done.
    DeadlineExceeded,
    /// A bug or an unexpected failure; details are logged, not sent.
    Internal,
}

impl ErrorCode {
    /// Every variant, for table tests and documentation.
    pub const ALL: [ErrorCode; 10] = [
        Self::InvalidArgument,
        Self::NotFound,
        Self::AlreadyExists,
        Self::FailedPrecondition,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::ResourceExhausted,
        Self::Unavailable,
        Self::DeadlineExceeded,
        Self::Internal,
    ];

    /// The gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::AlreadyExists => tonic::Code::AlreadyExists,
            Self::FailedPrecondition => tonic::Code::FailedPrecondition,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Self::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status for problem+json answers.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::NotFound => 404,
            Self::AlreadyExists => 409,
            Self::FailedPrecondition => 409,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::ResourceExhausted => 429,
            Self::Unavailable => 503,
            Self::DeadlineExceeded => 504,
            Self::Internal => 500,
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn retryable(self) -> bool {
        matches!(self, Self::ResourceExhausted | Self::Unavailable | Self::DeadlineExceeded)
    }

    /// Whether this is the server's fault (log at error level) or the caller's (debug).
    pub fn is_server_fault(self) -> bool {
        matches!(self, Self::Internal | Self::Unavailable)
    }

    /// Stable snake_case name, used as a bounded metric label and in problem+json `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error on its way to a client: a code plus a message meant for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    /// The class of error.
    pub code: ErrorCode,
    /// For the caller. For `Internal` this is the full detail, logged but not sent.
    pub message: String,
}

impl ServiceError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    /// `InvalidArgument` naming the field.
    pub fn invalid(field: &str, why: impl fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidArgument, format!("{field}: {why}"))
    }
    /// `Internal`, logged in full when turned into a status.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, detail.to_string())
    }
    /// `Unavailable`.
    pub fn unavailable(detail: impl fmt::Display) -> Self {
        Self::new(ErrorCode::Unavailable, detail.to_string())
    }
    /// `NotFound`.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, what.to_string())
    }
    /// `Unauthenticated` with a message that reveals nothing about why.
    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "missing or invalid credential")
    }
}

impl ServiceError {
    /// A callee's status as this service's error (the callee's message kept;
    /// `Internal` and unknown codes become `Unavailable`: the callee failed, not this request).
    pub fn from_status(s: &tonic::Status, callee: &str) -> Self {
        let code = match s.code() {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorCode::InvalidArgument,
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::AlreadyExists => ErrorCode::AlreadyExists,
            tonic::Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
            tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            tonic::Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            _ => return Self::unavailable(format!("{callee}: {}", s.message())),
        };
        Self::new(code, s.message())
    }
}

impl From<ServiceError> for tonic::Status {
    /// Internal details never reach the client: they are logged with the
    /// current span (and so its trace id) and replaced by a generic message.
    fn from(e: ServiceError) -> Self {
        if e.code == ErrorCode::Internal {
            tracing::error!(error = %e.message, "internal error");
            return tonic::Status::internal("internal error; it has been logged");
        }
        if e.code.is_server_fault() {
            tracing::warn!(error = %e.message, code = %e.code, "request failed");
        }
        tonic::Status::new(e.code.grpc(), e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_consistently() {
        // (code, grpc, http, retryable)
        let table = [
            (ErrorCode::InvalidArgument, tonic::Code::InvalidArgument, 400, false),
            (ErrorCode::NotFound, tonic::Code::NotFound, 404, false),
            (ErrorCode::AlreadyExists, tonic::Code::AlreadyExists, 409, false),
            (ErrorCode::FailedPrecondition, tonic::Code::FailedPrecondition, 409, false),
            (ErrorCode::Unauthenticated, tonic::Code::Unauthenticated, 401, false),
            (ErrorCode::PermissionDenied, tonic::Code::PermissionDenied, 403, false),
            (ErrorCode::ResourceExhausted, tonic::Code::ResourceExhausted, 429, true),
            (ErrorCode::Unavailable, tonic::Code::Unavailable, 503, true),
            (ErrorCode::DeadlineExceeded, tonic::Code::DeadlineExceeded, 504, true),
            (ErrorCode::Internal, tonic::Code::Internal, 500, false),
        ];
        assert_eq!(table.len(), ErrorCode::ALL.len());
        for (code, grpc, http, retry) in table {
            assert_eq!(code.grpc(), grpc, "{code}");
            assert_eq!(code.http_status(), http, "{code}");
            assert_eq!(code.retryable(), retry, "{code}");
            let status = tonic::Status::from(ServiceError::new(code, "secret detail"));
            assert_eq!(status.code(), grpc);
            if code == ErrorCode::Internal {
                assert!(!status.message().contains("secret"), "internal detail leaked");
            } else {
                assert_eq!(status.message(), "secret detail");
            }
        }
    }
}
