//! Ingest's read contract for the other services: the telemetry store is
//! ingest's, and the portal and settlement read it through ingest's
//! `factorychain.v1.Query` with their service credential and the tenant they
//! act for (`x-fc-tenant`). Ingest applies the same range rules
//! (`fc_store::range`) and charges the same per-tenant read budget as for a
//! device's own reads.
//!
//! Invariant: the tenant is always explicit; nothing here reads without one.

use fc_core::ServiceError;
use fc_proto::v1::query_client::QueryClient as Raw;
use fc_proto::v1::{LatestRequest, ListSeriesRequest, RangeRequest, SeriesKey};
use fc_rpc::service_auth::{Credential, TENANT_HEADER};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A series of a tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Machine.
    pub machine: String,
    /// Metric.
    pub metric: String,
    /// Unit as recorded.
    pub unit: String,
}

/// A series' newest reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Latest {
    /// The series.
    pub series: Series,
    /// Timestamp, Unix ms.
    pub ts_ms: i64,
    /// Value.
    pub value: f64,
    /// Quality (0 bad, 1 good, 2 uncertain).
    pub quality: u8,
}

/// One raw reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Timestamp, Unix ms.
    pub ts_ms: i64,
    /// Value.
    pub value: f64,
    /// Quality.
    pub quality: u8,
}

/// One aggregate bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Bucket start, Unix ms.
    pub start_ms: i64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub avg: f64,
    /// Readings in the bucket.
    pub count: u64,
    /// Newest value.
    pub last: f64,
}

/// What a range read asks (the rules are `fc_store::range`'s, applied by ingest).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RangeSpec {
    /// Start, inclusive, Unix ms.
    pub start_ms: i64,
    /// End, exclusive, Unix ms.
    pub end_ms: i64,
    /// Bucket width; 0 for raw readings.
    pub step_ms: i64,
    /// Most raw readings (0: the default).
    pub limit: u32,
}

/// A range read's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Range {
    /// The series' unit; `None` when the series was never written.
    pub unit: Option<String>,
    /// Raw readings (step 0).
    pub points: Vec<Point>,
    /// Buckets (step > 0).
    pub buckets: Vec<Bucket>,
    /// Cut short by the limit.
    pub truncated: bool,
}

/// A `Query` client acting for tenants, with this service's credential.
#[derive(Clone)]
pub struct QueryClient {
    raw: Raw<InterceptedService<Channel, Credential>>,
    url: String,
}

impl QueryClient {
    /// A client of ingest's `Query` at `url` (connected on first use).
    pub fn new(url: &str, credential: Credential, timeout: Duration) -> Result<Self, ServiceError> {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| ServiceError::invalid("query url", e))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .connect_lazy();
        Ok(Self { raw: Raw::with_interceptor(channel, credential).max_decoding_message_size(256 << 20), url: url.to_string() })
    }

    fn request<T>(&self, tenant: &str, msg: T) -> Result<tonic::Request<T>, ServiceError> {
        let mut r = tonic::Request::new(msg);
        let value = tenant.parse().map_err(|_| ServiceError::invalid("tenant", "not a valid id"))?;
        r.metadata_mut().insert(TENANT_HEADER, value);
        Ok(r)
    }

    fn error(&self, s: tonic::Status) -> ServiceError {
        ServiceError::from_status(&s, &format!("telemetry (ingest Query at {})", self.url))
    }

    /// A tenant's series (of one machine, or all).
    pub async fn list_series(&self, tenant: &str, machine: Option<&str>) -> Result<Vec<Series>, ServiceError> {
        let req = self.request(tenant, ListSeriesRequest { machine: machine.unwrap_or_default().to_string() })?;
        let r = self.raw.clone().list_series(req).await.map_err(|s| self.error(s))?.into_inner();
        Ok(r.series.into_iter().map(|s| Series { machine: s.machine, metric: s.metric, unit: s.unit }).collect())
    }

    /// The newest reading of each series in `keys` (`(machine, metric)`), or of every series when empty.
    pub async fn latest(&self, tenant: &str, keys: &[(String, String)]) -> Result<Vec<Latest>, ServiceError> {
        let series = keys.iter().map(|(machine, metric)| SeriesKey { machine: machine.clone(), metric: metric.clone() }).collect();
        let req = self.request(tenant, LatestRequest { series })?;
        let r = self.raw.clone().latest(req).await.map_err(|s| self.error(s))?.into_inner();
        Ok(r.readings
            .into_iter()
            .map(|r| Latest {
                series: Series { machine: r.machine, metric: r.metric, unit: r.unit },
                ts_ms: r.timestamp_ms,
                value: r.value,
                quality: u8::try_from(r.quality).unwrap_or(0),
            })
            .collect())
    }

    /// Readings or buckets of one series.
    pub async fn range(&self, tenant: &str, machine: &str, metric: &str, spec: RangeSpec) -> Result<Range, ServiceError> {
        let req = self.request(
            tenant,
            RangeRequest {
                series: Some(SeriesKey { machine: machine.to_string(), metric: metric.to_string() }),
                start_ms: spec.start_ms,
                end_ms: spec.end_ms,
                step_ms: spec.step_ms,
                limit: spec.limit,
                ..Default::default()
            },
        )?;
        let r = self.raw.clone().range(req).await.map_err(|s| self.error(s))?.into_inner();
        Ok(Range {
            unit: r.found.then_some(r.unit),
            points: r
                .readings
                .into_iter()
                .map(|p| Point { ts_ms: p.timestamp_ms, value: p.value, quality: u8::try_from(p.quality).unwrap_or(0) })
                .collect(),
            buckets: r
                .points
                .into_iter()
                .map(|b| Bucket { start_ms: b.bucket_start_ms, min: b.min, max: b.max, avg: b.avg, count: b.count, last: b.last })
                .collect(),
            truncated: r.truncated,
        })
    }
}
