//! The tenancy owner's contract for the other services. The portal owns
//! tenants, plans, users, devices, API keys and partnerships (its registry);
//! ingest and settlement ask it over the internal `factorychain.v1.Tenancy`
//! gRPC API, with their service credential, through [`TenancyClient`].
//!
//! - [`plans`]: the plan table (pure data; the registry stores a plan id);
//! - [`TenancyClient`]: answers from a short-lived cache ([`CacheConfig`]);
//!   a refused device token is remembered for [`REFUSED_TTL`] (a flood of
//!   bad tokens costs the owner one question per token and 10 s, not one per
//!   batch; the owner may also refuse a good token while it throttles guesses,
//!   so the memory is short);
//! - [`CHANGES_SUBJECT`]: the owner publishes a [`Change`] there when a device
//!   or API key is revoked or a plan changes; [`TenancyClient::follow`] drops
//!   the cached answers it makes wrong and tells open streams
//!   ([`TenancyClient::changes`]), so a revocation applies at once, and within
//!   the cache's `ttl` even if a notice is lost.
//!
//! Invariant: when the owner is unreachable, a cached answer younger than
//! `stale_ms` is used (ingest keeps taking data from known devices through a
//! portal restart); nothing is ever answered that the owner did not say.

pub mod orgs;
pub mod plans;

pub use fc_proto::v1::TenancyChange as Change;
pub use fc_proto::v1::tenancy_change::Kind as ChangeKind;
pub use orgs::{AccountKind, BankAccount, BankKind};
pub use plans::Plan;

use fc_core::{ErrorCode, ServiceError};
use fc_proto::v1::tenancy_client::TenancyClient as Raw;
use fc_proto::v1::{
    AuthenticateApiKeyRequest, AuthenticateDeviceRequest, GetMembershipRequest, GetOrganisationRequest, GetTenantRequest,
    ListBuyersRequest, ListTenantsRequest,
};
use fc_rpc::service_auth::Credential;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The NATS subject of tenancy changes (core NATS; protobuf [`Change`]).
pub const CHANGES_SUBJECT: &str = "fc.sys.tenancy";

/// Publishes a change notice; returns once the server has it (flushed).
pub async fn publish(nats: &async_nats::Client, change: &Change) -> Result<(), String> {
    let payload = prost::Message::encode_to_vec(change);
    nats.publish(CHANGES_SUBJECT, payload.into()).await.map_err(|e| e.to_string())?;
    nats.flush().await.map_err(|e| e.to_string())
}

/// Whom a device token speaks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Tenant id.
    pub tenant_id: Arc<str>,
    /// Device id.
    pub device_id: Arc<str>,
    /// The tenant's plan.
    pub plan: &'static Plan,
}

/// Whom an API key speaks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    /// Tenant id.
    pub tenant_id: String,
    /// Key id.
    pub key_id: String,
    /// "owner", "operator" or "viewer".
    pub role: String,
}

/// A tenant as the owner describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its plan.
    pub plan: &'static Plan,
}

/// An organisation's settlement profile, as the owner describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Organisation {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its plan.
    pub plan: &'static Plan,
    /// The age recipient designs are encrypted to, when registered.
    pub age_recipient: Option<String>,
    /// Its bank account, when entered.
    pub bank: Option<BankAccount>,
}

/// A buyer whose supply network an organisation belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Buyer {
    /// The buyer's id (its network's id).
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Where the owner is and how long answers are kept (`tenancy` in a caller's configuration).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// The tenancy owner's internal gRPC address (the portal's `grpc_addr`).
    pub url: String,
    /// How long an answer is used before it is asked again.
    pub ttl_ms: u64,
    /// How long an answer may still be used while the owner is unreachable.
    pub stale_ms: u64,
    /// Longest wait for one answer of the owner.
    pub timeout_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:50053".into(), ttl_ms: 30_000, stale_ms: 600_000, timeout_ms: 2_000 }
    }
}

struct Cached<T> {
    value: T,
    at: Instant,
}

/// Refused tokens remembered, at most (then the memory is cleared).
const MAX_REFUSED: usize = 100_000;

/// How long a refused device token is answered from memory.
pub const REFUSED_TTL: Duration = Duration::from_secs(10);

/// The caching client of `factorychain.v1.Tenancy`.
pub struct TenancyClient {
    raw: Raw<InterceptedService<Channel, Credential>>,
    config: CacheConfig,
    devices: Mutex<HashMap<[u8; 32], Cached<Device>>>,
    refused: Mutex<HashMap<[u8; 32], Instant>>,
    tenants: Mutex<HashMap<String, Cached<Tenant>>>,
    /// `(network, org)` -> member.
    members: Mutex<HashMap<(String, String), Cached<bool>>>,
    changes: tokio::sync::broadcast::Sender<Arc<Change>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TenancyClient {
    /// A client of the owner at `config.url` (connected on first use, so the
    /// caller starts even when the owner is down).
    pub fn new(config: CacheConfig, credential: Credential) -> Result<Self, ServiceError> {
        let channel = Channel::from_shared(config.url.clone())
            .map_err(|e| ServiceError::invalid("tenancy.url", e))?
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_lazy();
        Ok(Self {
            raw: Raw::with_interceptor(channel, credential),
            config,
            devices: Mutex::default(),
            refused: Mutex::default(),
            tenants: Mutex::default(),
            members: Mutex::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
        })
    }

    /// The owner's address.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    fn status(&self, s: tonic::Status) -> ServiceError {
        match s.code() {
            tonic::Code::Unauthenticated if !s.message().starts_with("internal API") => ServiceError::unauthenticated(),
            tonic::Code::NotFound => ServiceError::not_found(s.message()),
            tonic::Code::InvalidArgument => ServiceError::new(ErrorCode::InvalidArgument, s.message()),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                tracing::error!(url = %self.config.url, error = %s.message(), "the tenancy service refused this service's credential");
                ServiceError::unavailable(format!("tenancy service at {} refused this service: {}", self.config.url, s.message()))
            }
            _ => ServiceError::unavailable(format!("tenancy service at {} is unreachable: {}", self.config.url, s.message())),
        }
    }

    fn fresh<T: Clone>(&self, c: Option<&Cached<T>>, limit_ms: u64) -> Option<T> {
        c.filter(|c| c.at.elapsed() < Duration::from_millis(limit_ms)).map(|c| c.value.clone())
    }

    /// The device a token speaks for; `UNAUTHENTICATED` when unknown or revoked.
    pub async fn device(&self, token: &str) -> Result<Device, ServiceError> {
        let key = digest(token);
        if let Some(d) = self.fresh(self.devices.lock().expect("tenancy cache").get(&key), self.config.ttl_ms) {
            return Ok(d);
        }
        if self.refused.lock().expect("tenancy cache").get(&key).is_some_and(|at| at.elapsed() < REFUSED_TTL) {
            return Err(ServiceError::unauthenticated());
        }
        match self.raw.clone().authenticate_device(AuthenticateDeviceRequest { token: token.to_string() }).await {
            Ok(r) => {
                let r = r.into_inner();
                let d = Device { tenant_id: r.tenant_id.into(), device_id: r.device_id.into(), plan: plans::plan_or_default(&r.plan) };
                self.devices.lock().expect("tenancy cache").insert(key, Cached { value: d.clone(), at: Instant::now() });
                Ok(d)
            }
            Err(s) if s.code() == tonic::Code::Unauthenticated && !s.message().starts_with("internal API") => {
                self.devices.lock().expect("tenancy cache").remove(&key);
                let mut refused = self.refused.lock().expect("tenancy cache");
                if refused.len() >= MAX_REFUSED {
                    refused.retain(|_, at| at.elapsed() < REFUSED_TTL);
                    if refused.len() >= MAX_REFUSED {
                        refused.clear();
                    }
                }
                refused.insert(key, Instant::now());
                Err(ServiceError::unauthenticated())
            }
            Err(s) => {
                let err = self.status(s);
                self.fresh(self.devices.lock().expect("tenancy cache").get(&key), self.config.stale_ms).ok_or(err)
            }
        }
    }

    /// One tenant (its plan included).
    pub async fn tenant(&self, tenant_id: &str) -> Result<Tenant, ServiceError> {
        if let Some(t) = self.fresh(self.tenants.lock().expect("tenancy cache").get(tenant_id), self.config.ttl_ms) {
            return Ok(t);
        }
        match self.raw.clone().get_tenant(GetTenantRequest { tenant_id: tenant_id.to_string() }).await {
            Ok(r) => {
                let t = tenant(r.into_inner());
                self.tenants.lock().expect("tenancy cache").insert(tenant_id.to_string(), Cached { value: t.clone(), at: Instant::now() });
                Ok(t)
            }
            Err(s) => {
                let err = self.status(s);
                if err.code == ErrorCode::NotFound {
                    return Err(err);
                }
                self.fresh(self.tenants.lock().expect("tenancy cache").get(tenant_id), self.config.stale_ms).ok_or(err)
            }
        }
    }

    /// The tenant's plan.
    pub async fn plan(&self, tenant_id: &str) -> Result<&'static Plan, ServiceError> {
        Ok(self.tenant(tenant_id).await?.plan)
    }

    /// Every tenant (not cached).
    pub async fn tenants(&self) -> Result<Vec<Tenant>, ServiceError> {
        let r = self.raw.clone().list_tenants(ListTenantsRequest {}).await.map_err(|s| self.status(s))?;
        Ok(r.into_inner().tenants.into_iter().map(tenant).collect())
    }

    /// The tenant and role an API key speaks for (not cached: keys are checked
    /// per request by the services that take them).
    pub async fn api_key(&self, key: &str) -> Result<ApiKey, ServiceError> {
        let r =
            self.raw.clone().authenticate_api_key(AuthenticateApiKeyRequest { key: key.to_string() }).await.map_err(|s| self.status(s))?;
        let r = r.into_inner();
        Ok(ApiKey { tenant_id: r.tenant_id, key_id: r.key_id, role: r.role })
    }

    /// An organisation's profile, its bank account included (not cached: it
    /// is read when a bank file is made, and must be the one just entered).
    pub async fn organisation(&self, org_id: &str) -> Result<Organisation, ServiceError> {
        let r = self
            .raw
            .clone()
            .get_organisation(GetOrganisationRequest { org_id: org_id.to_string() })
            .await
            .map_err(|s| self.status(s))?
            .into_inner();
        let bank = match r.bank {
            Some(b) => Some(BankAccount::from_pb(b).ok_or_else(|| {
                ServiceError::internal(format!("tenancy service: organisation {org_id} has a bank account of an unknown kind"))
            })?),
            None => None,
        };
        Ok(Organisation {
            plan: plans::plan_or_default(&r.plan),
            age_recipient: (!r.age_recipient.is_empty()).then_some(r.age_recipient),
            id: r.id,
            name: r.name,
            bank,
        })
    }

    /// Whether `org_id` belongs to the supply network of buyer `network` (the
    /// buyer itself, or an accepted supplier). A "yes" is cached, and dropped
    /// when a partnership change is announced ([`ChangeKind::PartnershipChanged`]);
    /// a "no" is not, so a partnership accepted a moment ago counts at once.
    pub async fn is_member(&self, network: &str, org_id: &str) -> Result<bool, ServiceError> {
        if network == org_id {
            return Ok(true);
        }
        let key = (network.to_string(), org_id.to_string());
        if let Some(m) = self.fresh(self.members.lock().expect("tenancy cache").get(&key), self.config.ttl_ms) {
            return Ok(m);
        }
        let req = GetMembershipRequest { network: network.to_string(), org_id: org_id.to_string() };
        match self.raw.clone().get_membership(req).await {
            Ok(r) => {
                let member = r.into_inner().member;
                let mut members = self.members.lock().expect("tenancy cache");
                if member {
                    members.insert(key, Cached { value: member, at: Instant::now() });
                } else {
                    members.remove(&key);
                }
                Ok(member)
            }
            Err(s) => {
                let err = self.status(s);
                self.fresh(self.members.lock().expect("tenancy cache").get(&key), self.config.stale_ms).ok_or(err)
            }
        }
    }

    /// The buyers `org_id` supplies (active partnerships; not cached).
    pub async fn buyers(&self, org_id: &str) -> Result<Vec<Buyer>, ServiceError> {
        let r =
            self.raw.clone().list_buyers(ListBuyersRequest { org_id: org_id.to_string() }).await.map_err(|s| self.status(s))?.into_inner();
        Ok(r.buyers.into_iter().map(|b| Buyer { id: b.buyer_id, name: b.buyer_name }).collect())
    }

    /// Applies a change notice: drops the cached answers it makes wrong and
    /// tells every [`changes`](Self::changes) receiver.
    pub fn apply(&self, change: Change) {
        match change.kind() {
            ChangeKind::DeviceRevoked => {
                self.devices.lock().expect("tenancy cache").retain(|_, d| *d.value.device_id != *change.device_id);
            }
            ChangeKind::PlanChanged => {
                self.tenants.lock().expect("tenancy cache").remove(&change.tenant_id);
                self.devices.lock().expect("tenancy cache").retain(|_, d| *d.value.tenant_id != *change.tenant_id);
            }
            ChangeKind::PartnershipChanged => {
                // Rare: drop every answer about the two organisations.
                let (a, b) = (change.tenant_id.as_str(), change.org_id.as_str());
                self.members.lock().expect("tenancy cache").retain(|(n, o), _| !(n == a || n == b || o == a || o == b));
            }
            ChangeKind::ApiKeyRevoked | ChangeKind::Unspecified => {}
        }
        let _ = self.changes.send(Arc::new(change));
    }

    /// Change notices as they arrive (for open streams to end themselves).
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// Follows [`CHANGES_SUBJECT`] until `stop` resolves; returns once subscribed.
    pub async fn follow(
        self: &Arc<Self>,
        nats: &async_nats::Client,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let mut sub = nats.subscribe(CHANGES_SUBJECT).await.map_err(|e| e.to_string())?;
        nats.flush().await.map_err(|e| e.to_string())?;
        let me = self.clone();
        Ok(tokio::spawn(async move {
            use futures::StreamExt as _;
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    m = sub.next() => match m {
                        Some(m) => match <Change as prost::Message>::decode(m.payload) {
                            Ok(c) => me.apply(c),
                            Err(e) => tracing::warn!(error = %e, "undecodable tenancy change notice"),
                        },
                        None => return,
                    },
                }
            }
        }))
    }
}

fn tenant(t: fc_proto::v1::Tenant) -> Tenant {
    Tenant { plan: plans::plan_or_default(&t.plan), id: t.id, name: t.name }
}
