//! `factorychain.v1.Query`: reads of the caller's own tenant.

use crate::{AppState, auth};
use fc_core::ServiceError;
use fc_proto::v1::{
    AggregatePoint, Aggregation, LatestRequest, LatestResponse, ListSeriesRequest, ListSeriesResponse, RangeRequest, RangeResponse,
    Reading, SeriesInfo as PbSeriesInfo, SeriesKey as PbSeriesKey,
};
use fc_store::SeriesKey;
use fc_store::range::RangeSpec;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Query service.
pub struct QueryService {
    state: Arc<AppState>,
}

impl QueryService {
    /// A service over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

fn key(k: Option<PbSeriesKey>) -> Result<SeriesKey, ServiceError> {
    let k = k.ok_or_else(|| ServiceError::invalid("series", "is required"))?;
    if k.machine.is_empty() || k.machine.len() > 64 {
        return Err(ServiceError::invalid("series.machine", "must be 1-64 characters"));
    }
    if k.metric.is_empty() || k.metric.len() > 128 {
        return Err(ServiceError::invalid("series.metric", "must be 1-128 characters"));
    }
    Ok(SeriesKey { machine: k.machine, metric: k.metric })
}

#[tonic::async_trait]
impl fc_proto::v1::query_server::Query for QueryService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let (tenant, plan) = auth::reader(&self.state, request.metadata()).await?;
        let req = request.into_inner();
        let k = key(req.series.clone())?;
        for (i, a) in req.aggregations.iter().enumerate() {
            if Aggregation::try_from(*a).is_err() {
                return Err(ServiceError::invalid(&format!("aggregations[{i}]"), format!("unknown aggregation {a}")).into());
            }
        }
        // proto3 cannot tell an unset limit from 0: 0 means the default.
        let spec = RangeSpec {
            start_ms: req.start_ms,
            end_ms: req.end_ms,
            step_ms: req.step_ms,
            limit: (req.limit > 0).then_some(u64::from(req.limit)),
        };
        let budget = plan.max_read_points_per_s;
        let plan = spec.plan().map_err(ServiceError::from)?;
        let r = fc_store::range::read(&self.state.store, &self.state.reads, &tenant, budget, &k, plan).await?;
        Ok(Response::new(RangeResponse {
            series: req.series,
            found: r.unit.is_some(),
            unit: r.unit.unwrap_or_default(),
            readings: r
                .points
                .iter()
                .map(|p| Reading { timestamp_ms: p.ts_ms, value: p.value, quality: i32::from(p.quality), ..Default::default() })
                .collect(),
            points: r
                .buckets
                .into_iter()
                .map(|b| AggregatePoint { bucket_start_ms: b.start_ms, min: b.min, max: b.max, avg: b.avg(), count: b.count, last: b.last })
                .collect(),
            truncated: r.truncated,
        }))
    }

    async fn latest(&self, request: Request<LatestRequest>) -> Result<Response<LatestResponse>, Status> {
        let (tenant, _) = auth::reader(&self.state, request.metadata()).await?;
        let req = request.into_inner();
        if req.series.len() > 10_000 {
            return Err(ServiceError::invalid("series", "at most 10000 series per call").into());
        }
        let keys = req.series.into_iter().map(|k| key(Some(k))).collect::<Result<Vec<_>, _>>()?;
        let latest = self.state.store.latest(&tenant, &keys).await.map_err(ServiceError::from)?;
        let readings = latest
            .into_iter()
            .take(10_000)
            .map(|(info, p)| Reading {
                machine: info.key.machine,
                metric: info.key.metric,
                unit: info.unit,
                timestamp_ms: p.ts_ms,
                value: p.value,
                quality: i32::from(p.quality),
            })
            .collect();
        Ok(Response::new(LatestResponse { readings }))
    }

    async fn list_series(&self, request: Request<ListSeriesRequest>) -> Result<Response<ListSeriesResponse>, Status> {
        let (tenant, _) = auth::reader(&self.state, request.metadata()).await?;
        let req = request.into_inner();
        let machine = (!req.machine.is_empty()).then_some(req.machine.as_str());
        let series = self.state.store.list_series(&tenant, machine).await.map_err(ServiceError::from)?;
        Ok(Response::new(ListSeriesResponse {
            series: series.into_iter().map(|s| PbSeriesInfo { machine: s.key.machine, metric: s.key.metric, unit: s.unit }).collect(),
        }))
    }
}
