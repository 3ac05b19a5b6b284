//! `factorychain`: run the platform on one machine (`up`), administer it
//! (`admin`), and push or read readings (`push`, `query`).

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use fc_proto::v1::{
    Aggregation, CreateDeviceRequest, CreateTenantRequest, InviteUserRequest, LatestRequest, ListSeriesRequest, ListTenantsRequest,
    RangeRequest, Reading, ReadingBatch, RevokeDeviceRequest, SeriesKey, SetTenantPlanRequest, admin_client::AdminClient,
    ingest_client::IngestClient, query_client::QueryClient,
};
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

mod monitor;
mod split;
mod supply;
mod up;
mod verify;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that ends the process quietly when stdout is closed (`| head`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

#[derive(Parser)]
#[command(name = "factorychain", version, about = "FactoryChain: rent smart-factory capabilities")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process (embedded store by default), starting a local nats-server if none answers.
    Up(up::UpArgs),
    /// Service identities for deployments other than `up` (which makes its own): print the
    /// issuer's public key, or mint a service's token, with the issuer key file (created once).
    ServiceToken {
        /// The issuer's secret key file (`fcsi1.…`, mode 0600; created when missing).
        #[arg(long, default_value = "./data/service-issuer.key")]
        issuer_key: PathBuf,
        /// The service to mint a token for (ingest, portal, settlement, ...); none: print the public key.
        #[arg(long)]
        service: Option<String>,
        /// Days the token is valid.
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
    /// Platform administration: tenants and devices (needs the admin token).
    Admin {
        #[command(flatten)]
        conn: AdminConn,
        #[command(subcommand)]
        what: AdminCmd,
    },
    /// Push one reading as a device.
    Push {
        #[command(flatten)]
        conn: DeviceConn,
        /// Machine identifier.
        #[arg(long)]
        machine: String,
        /// Metric name.
        #[arg(long)]
        metric: String,
        /// Value.
        #[arg(long, allow_negative_numbers = true)]
        value: f64,
        /// Unit (UCUM code, e.g. Cel, kW).
        #[arg(long, default_value = "")]
        unit: String,
        /// Timestamp in Unix ms (default: now).
        #[arg(long)]
        timestamp_ms: Option<i64>,
    },
    /// Your organisation's design key pair (made here; only the public half is registered).
    Keys {
        #[command(flatten)]
        portal: supply::Portal,
        #[command(subcommand)]
        what: supply::KeysCmd,
    },
    /// Share design files with partners, encrypted on this machine.
    Design {
        #[command(flatten)]
        portal: supply::Portal,
        #[command(subcommand)]
        what: supply::DesignCmd,
    },
    /// Recompute settlement from the ledger and compare with the service.
    Settlement {
        #[command(flatten)]
        portal: supply::Portal,
        #[command(subcommand)]
        what: supply::SettlementCmd,
    },
    /// Check ledger checkpoints and proofs offline (exit 0 valid, 1 not, with the reason).
    Verify {
        #[command(subcommand)]
        what: verify::VerifyCmd,
    },
    /// Alarm rules without a service: backtest a rule or the anomaly detector over a CSV.
    Monitor {
        #[command(subcommand)]
        what: monitor::MonitorCmd,
    },
    /// Read readings back.
    Query {
        #[command(flatten)]
        conn: DeviceConn,
        #[command(subcommand)]
        what: QueryCmd,
    },
}

#[derive(Args)]
struct AdminConn {
    /// gRPC address of the Admin service (the portal's gRPC port).
    #[arg(long, env = "FC_ADMIN_SERVER", default_value = "http://127.0.0.1:50053", global = true)]
    server: String,
    /// Admin token (default: read from <data-dir>/admin.token).
    #[arg(long, env = "FC_ADMIN_TOKEN", hide_env_values = true, global = true)]
    admin_token: Option<String>,
    /// Data directory holding admin.token.
    #[arg(long, env = "FC_DATA_DIR", default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
struct DeviceConn {
    /// gRPC address of the service.
    #[arg(long, env = "FC_SERVER", default_value = "http://127.0.0.1:50051", global = true)]
    server: String,
    /// Device token.
    #[arg(long, env = "FC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of text (CSV for readings).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        what: TenantCmd,
    },
    /// Devices.
    Device {
        #[command(subcommand)]
        what: DeviceCmd,
    },
}

#[derive(Subcommand)]
enum TenantCmd {
    /// Create a tenant.
    Create {
        /// Display name.
        name: String,
        /// Plan: starter, growth or enterprise.
        #[arg(long, default_value = "starter")]
        plan: String,
        /// Invite this e-mail as the tenant's first owner (prints the portal link, shown once).
        #[arg(long)]
        owner_email: Option<String>,
        /// Portal base URL used in the printed invitation link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        portal_url: String,
    },
    /// Invite a person into a tenant (prints the portal link, shown once).
    Invite {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The invitee's e-mail.
        #[arg(long)]
        email: String,
        /// owner, operator or viewer.
        #[arg(long, default_value = "owner")]
        role: String,
        /// Portal base URL used in the printed invitation link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        portal_url: String,
    },
    /// List tenants.
    List,
    /// Move a tenant to another plan (how an operator grants a plan sign-up does not offer).
    SetPlan {
        /// Tenant id.
        tenant: String,
        /// starter, growth or enterprise.
        plan: String,
    },
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Create a device and print its token (shown once).
    Create {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Display name.
        name: String,
    },
    /// Revoke a device's token.
    Revoke {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Device id.
        device: String,
    },
}

#[derive(Subcommand)]
enum QueryCmd {
    /// Readings of one series over a time range, raw or aggregated.
    Range {
        /// Machine identifier.
        #[arg(long)]
        machine: String,
        /// Metric name.
        #[arg(long)]
        metric: String,
        /// How far back from the end, e.g. 15m, 1h, 7d (ignored with --start-ms).
        #[arg(long, default_value = "1h")]
        since: String,
        /// Start, Unix ms.
        #[arg(long)]
        start_ms: Option<i64>,
        /// End, Unix ms (default: now + 1 s).
        #[arg(long)]
        end_ms: Option<i64>,
        /// Aggregate per step, e.g. 1m (raw readings when absent).
        #[arg(long)]
        step: Option<String>,
        /// Most raw readings.
        #[arg(long, default_value_t = 100_000)]
        limit: u32,
    },
    /// Latest reading of every series.
    Latest,
    /// Every series of the tenant.
    Series {
        /// Only this machine's.
        #[arg(long)]
        machine: Option<String>,
    },
}

/// Parse "15m", "2h", "7d", "30s", "500ms".
fn parse_duration_ms(s: &str) -> Result<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().with_context(|| format!("duration {s:?}: expected a number then ms, s, m, h or d"))?;
    let mult = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("duration {s:?}: unit must be ms, s, m, h or d"),
    };
    n.checked_mul(mult).filter(|v| *v > 0).with_context(|| format!("duration {s:?} out of range"))
}

async fn channel(server: &str) -> Result<Channel> {
    Channel::from_shared(server.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach FactoryChain at {server} (is `factorychain up` running?)"))
}

fn with_bearer<T>(token: &str, msg: T) -> Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().context("token has characters not allowed in a header")?);
    Ok(req)
}

fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

fn admin_token(conn: &AdminConn) -> Result<String> {
    if let Some(t) = &conn.admin_token {
        return Ok(t.clone());
    }
    let path = conn.data_dir.join("admin.token");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("no --admin-token given and {} is not readable", path.display()))?
        .trim()
        .to_string())
}

fn device_token(conn: &DeviceConn) -> Result<&str> {
    conn.token.as_deref().context("a device token is needed: --token or FC_TOKEN")
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::ServiceToken { issuer_key, service, days } => service_token(&issuer_key, service.as_deref(), days),
        Command::Admin { conn, what } => admin(conn, what).await,
        Command::Push { conn, machine, metric, value, unit, timestamp_ms } => push(conn, machine, metric, value, unit, timestamp_ms).await,
        Command::Query { conn, what } => query(conn, what).await,
        Command::Keys { portal, what } => print_result(supply::keys(&portal, what)),
        Command::Design { portal, what } => print_result(supply::design(&portal, what)),
        Command::Settlement { portal, what } => print_result(supply::settlement(&portal, what)),
        Command::Monitor { what } => print_result(monitor::run(what)),
        Command::Verify { what } => match verify::check(&what) {
            Ok(msg) => {
                out!("{msg}");
                Ok(())
            }
            Err(e) => {
                eprintln!("invalid: {e:#}");
                std::process::exit(1);
            }
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `service-token`: the issuer's public key, or a token of `service` valid `days`.
fn service_token(issuer_key: &std::path::Path, service: Option<&str>, days: u64) -> Result<()> {
    let issuer = fc_rpc::service_auth::Issuer::load_or_create(issuer_key)?;
    match service {
        None => out!("{}", issuer.public_key()),
        Some(name) => {
            if days == 0 || days > 3650 {
                anyhow::bail!("--days: {days} is not in 1..=3650");
            }
            let token = issuer
                .mint(name, std::time::Duration::from_secs(days * 86_400))
                .map_err(|e| anyhow::anyhow!("--service {name:?}: {e} (1-32 of a-z, 0-9, -)"))?;
            out!("{token}");
        }
    }
    Ok(())
}

/// Prints what a command reports.
fn print_result(r: Result<String>) -> Result<()> {
    let said = r?;
    out!("{said}");
    Ok(())
}

/// The portal page where an invitation token is accepted.
fn invitation_link(portal_url: &str, token: &str) -> String {
    format!("{}/invite/{token}", portal_url.trim_end_matches('/'))
}

async fn admin(conn: AdminConn, what: AdminCmd) -> Result<()> {
    let token = admin_token(&conn)?;
    let mut client = AdminClient::new(channel(&conn.server).await?);
    match what {
        AdminCmd::Tenant { what: TenantCmd::Create { name, plan, owner_email, portal_url } } => {
            let t = client.create_tenant(with_bearer(&token, CreateTenantRequest { name, plan })?).await.map_err(status_err)?.into_inner();
            let invite = match owner_email {
                Some(email) => Some(
                    client
                        .invite_user(with_bearer(&token, InviteUserRequest { tenant_id: t.id.clone(), email, role: "owner".into() })?)
                        .await
                        .map_err(status_err)?
                        .into_inner(),
                ),
                None => None,
            };
            let link = invite.as_ref().map(|i| invitation_link(&portal_url, &i.token));
            if conn.json {
                out!(
                    "{}",
                    serde_json::json!({"id": t.id, "name": t.name, "plan": t.plan, "created_ms": t.created_ms, "owner_invitation": link})
                );
            } else {
                out!("tenant {} created ({}, {} plan)", t.id, t.name, t.plan);
                match link {
                    Some(l) => out!("owner invitation (shown once, valid 7 days): {l}"),
                    None => out!(
                        "nobody can sign in yet: invite an owner with `factorychain admin tenant invite --tenant {} --email ...`",
                        t.id
                    ),
                }
            }
        }
        AdminCmd::Tenant { what: TenantCmd::Invite { tenant, email, role, portal_url } } => {
            let i = client
                .invite_user(with_bearer(&token, InviteUserRequest { tenant_id: tenant, email, role })?)
                .await
                .map_err(status_err)?
                .into_inner();
            let link = invitation_link(&portal_url, &i.token);
            if conn.json {
                out!("{}", serde_json::json!({"invitation_id": i.invitation_id, "link": link, "expires_ms": i.expires_ms}));
            } else {
                out!("invitation {} (shown once, valid 7 days): {link}", i.invitation_id);
            }
        }
        AdminCmd::Tenant { what: TenantCmd::SetPlan { tenant, plan } } => {
            let t = client
                .set_tenant_plan(with_bearer(&token, SetTenantPlanRequest { tenant_id: tenant, plan })?)
                .await
                .map_err(status_err)?
                .into_inner();
            if conn.json {
                out!("{}", serde_json::json!({"id": t.id, "name": t.name, "plan": t.plan}));
            } else {
                out!("tenant {} ({}) is on the {} plan", t.id, t.name, t.plan);
            }
        }
        AdminCmd::Tenant { what: TenantCmd::List } => {
            let ts = client.list_tenants(with_bearer(&token, ListTenantsRequest {})?).await.map_err(status_err)?.into_inner().tenants;
            if conn.json {
                let v: Vec<_> = ts.iter().map(|t| serde_json::json!({"id": t.id, "name": t.name, "created_ms": t.created_ms})).collect();
                out!("{}", serde_json::Value::Array(v));
            } else {
                for t in ts {
                    out!("{}\t{}", t.id, t.name);
                }
            }
        }
        AdminCmd::Device { what: DeviceCmd::Create { tenant, name } } => {
            let d = client
                .create_device(with_bearer(&token, CreateDeviceRequest { tenant_id: tenant, name })?)
                .await
                .map_err(status_err)?
                .into_inner();
            if conn.json {
                out!("{}", serde_json::json!({"device_id": d.device_id, "tenant_id": d.tenant_id, "name": d.name, "token": d.token}));
            } else {
                out!("device {} created for tenant {}", d.device_id, d.tenant_id);
                out!("token (shown once, store it now): {}", d.token);
            }
        }
        AdminCmd::Device { what: DeviceCmd::Revoke { tenant, device } } => {
            client
                .revoke_device(with_bearer(&token, RevokeDeviceRequest { tenant_id: tenant, device_id: device.clone() })?)
                .await
                .map_err(status_err)?;
            out!("device {device} revoked");
        }
    }
    Ok(())
}

async fn push(conn: DeviceConn, machine: String, metric: String, value: f64, unit: String, ts: Option<i64>) -> Result<()> {
    let token = device_token(&conn)?;
    let mut client = IngestClient::new(channel(&conn.server).await?);
    let now = fc_core::time::now_ms();
    // A fresh sequence number per invocation: the clock in microseconds is unique enough for a CLI.
    let seq = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros() as u64;
    let batch = ReadingBatch {
        device_seq: seq,
        readings: vec![Reading { machine, metric, unit, timestamp_ms: ts.unwrap_or(now), value, quality: 0 }],
        series: vec![],
    };
    let r = client.push(with_bearer(token, batch)?).await.map_err(status_err)?.into_inner();
    if conn.json {
        out!("{}", serde_json::json!({"accepted": r.accepted, "duplicate": r.duplicate}));
    } else {
        out!("accepted {} reading(s)", r.accepted);
    }
    Ok(())
}

async fn query(conn: DeviceConn, what: QueryCmd) -> Result<()> {
    let token = device_token(&conn)?;
    let mut client = QueryClient::new(channel(&conn.server).await?).max_decoding_message_size(256 << 20);
    match what {
        QueryCmd::Range { machine, metric, since, start_ms, end_ms, step, limit } => {
            let now = fc_core::time::now_ms();
            let end = end_ms.unwrap_or(now + 1000);
            let start = match start_ms {
                Some(s) => s,
                None => end - parse_duration_ms(&since)?,
            };
            let step_ms = step.as_deref().map(parse_duration_ms).transpose()?.unwrap_or(0);
            let aggs = if step_ms > 0 {
                vec![
                    Aggregation::Min as i32,
                    Aggregation::Max as i32,
                    Aggregation::Avg as i32,
                    Aggregation::Count as i32,
                    Aggregation::Last as i32,
                ]
            } else {
                vec![]
            };
            let req = RangeRequest {
                series: Some(SeriesKey { machine, metric }),
                start_ms: start,
                end_ms: end,
                step_ms,
                aggregations: aggs,
                limit,
            };
            let r = client.range(with_bearer(token, req)?).await.map_err(status_err)?.into_inner();
            if step_ms > 0 {
                if conn.json {
                    for p in &r.points {
                        out!(
                            "{}",
                            serde_json::json!({"bucket_start_ms": p.bucket_start_ms, "min": p.min, "max": p.max, "avg": p.avg, "count": p.count, "last": p.last})
                        );
                    }
                } else {
                    out!("bucket_start_ms,min,max,avg,count,last");
                    for p in &r.points {
                        out!("{},{},{},{},{},{}", p.bucket_start_ms, p.min, p.max, p.avg, p.count, p.last);
                    }
                }
            } else if conn.json {
                for x in &r.readings {
                    out!("{}", serde_json::json!({"timestamp_ms": x.timestamp_ms, "value": x.value, "quality": x.quality, "unit": r.unit}));
                }
            } else {
                out!("timestamp_ms,value,quality");
                for x in &r.readings {
                    out!("{},{},{}", x.timestamp_ms, x.value, x.quality);
                }
            }
            if r.truncated {
                eprintln!("note: truncated at {limit} readings; narrow the range or raise --limit");
            }
        }
        QueryCmd::Latest => {
            let r = client.latest(with_bearer(token, LatestRequest { series: vec![] })?).await.map_err(status_err)?.into_inner();
            for x in r.readings {
                if conn.json {
                    out!(
                        "{}",
                        serde_json::json!({"machine": x.machine, "metric": x.metric, "unit": x.unit, "timestamp_ms": x.timestamp_ms, "value": x.value, "quality": x.quality})
                    );
                } else {
                    out!("{}/{}\t{} {}\t@{}", x.machine, x.metric, x.value, x.unit, x.timestamp_ms);
                }
            }
        }
        QueryCmd::Series { machine } => {
            let r = client
                .list_series(with_bearer(token, ListSeriesRequest { machine: machine.unwrap_or_default() })?)
                .await
                .map_err(status_err)?
                .into_inner();
            for s in r.series {
                if conn.json {
                    out!("{}", serde_json::json!({"machine": s.machine, "metric": s.metric, "unit": s.unit}));
                } else {
                    out!("{}/{}\t{}", s.machine, s.metric, s.unit);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse() {
        for (s, want) in [
            ("15m", Some(900_000)),
            ("2h", Some(7_200_000)),
            ("7d", Some(604_800_000)),
            ("500ms", Some(500)),
            ("30", Some(30_000)),
            ("x", None),
            ("5y", None),
            ("0s", None),
        ] {
            assert_eq!(super::parse_duration_ms(s).ok(), want, "{s}");
        }
    }
}
