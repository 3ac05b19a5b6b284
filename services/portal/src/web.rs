//! Pieces every handler module shares (a leaf: it depends on no handler
//! module): the JSON body extractor with problem+json rejections and downloads.

use crate::problem::Problem;
use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `Json<T>` whose rejections (malformed JSON, unknown fields, wrong types,
/// wrong content type, oversized bodies) are problem+json 400s.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(Problem::body_rejected(e.status(), e.body_text())),
        }
    }
}

/// A download: `body` as `content_type`, saved as `filename`.
pub fn attachment(content_type: &'static str, filename: &str, body: impl IntoResponse) -> Response {
    (
        [(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))],
        body,
    )
        .into_response()
}

/// A body that streams from another service (a design's ciphertext from
/// settlement); an error midway ends the response early.
pub fn streamed(parts: impl futures::Stream<Item = Result<Vec<u8>, fc_core::ServiceError>> + Send + 'static) -> axum::body::Body {
    use futures::StreamExt;
    axum::body::Body::from_stream(parts.map(|r| r.map_err(|e| std::io::Error::other(e.message))))
}
