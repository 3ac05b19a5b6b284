//! The webhook delivery worker: POSTs each queued alarm notification to its endpoint,
//! signed (`fc_monitor::notify::sign`), retried with backoff, and after the last
//! attempt left in the dead-letter list the portal shows. Each tenant has a
//! notification rate; deliveries over it wait for the next slot, they are not dropped.
//!
//! Boundary: every address a URL resolves to is checked
//! (`fc_monitor::notify::check_ip`) before the request is made.

use crate::Config;
use crate::monitor::Monitor;
use crate::store::{DeliveryRecord, DeliveryState};
use fc_core::Shutdown;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Run until shutdown.
pub async fn run(monitor: Arc<Monitor>, cfg: Config, shutdown: Shutdown) {
    let per_minute = NonZeroU32::new(cfg.notifications_per_minute.max(1)).expect("at least 1");
    let limiter: Arc<DefaultKeyedRateLimiter<String>> = Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute)));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_millis(cfg.webhook_timeout_ms)))
        .max_redirects(0)
        .build()
        .new_agent();
    loop {
        tokio::select! { _ = shutdown.wait() => return, _ = tokio::time::sleep(Duration::from_millis(200)) => {} }
        let due = match monitor.store().due(fc_core::time::now_ms(), 50) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "webhook queue unreadable");
                continue;
            }
        };
        for mut d in due {
            if limiter.check_key(&d.tenant).is_err() {
                continue; // over the tenant's rate: it waits for the next round
            }
            let hook = monitor.webhooks(&d.tenant).ok().and_then(|hooks| hooks.into_iter().find(|w| w.id == d.webhook_id));
            let Some(hook) = hook else {
                d.state = DeliveryState::Dead;
                d.last_error = "the webhook was deleted".into();
                let _ = monitor.store().update_delivery(&d);
                continue;
            };
            let allow_private = monitor.allow_private_webhooks();
            let a = agent.clone();
            let body = d.body.clone();
            let result = tokio::task::spawn_blocking(move || post(&a, &hook.url, &hook.secret, &body, allow_private))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            finish(&monitor, &mut d, cfg.webhook_attempts.max(1), result);
        }
    }
}

fn finish(monitor: &Monitor, d: &mut DeliveryRecord, max_attempts: u32, result: Result<(), String>) {
    d.attempts += 1;
    let now = fc_core::time::now_ms();
    match result {
        Ok(()) => {
            d.state = DeliveryState::Delivered;
            d.delivered_at_ms = Some(now);
            d.last_error.clear();
            metrics::counter!("monitor_webhook_deliveries_total", "outcome" => "delivered").increment(1);
        }
        Err(e) => {
            d.last_error = e;
            let jitter = (now.rem_euclid(1000)) as f64 / 1000.0;
            match fc_monitor::notify::retry_delay_ms(d.attempts + 1, max_attempts, jitter) {
                Some(wait) => {
                    d.next_at_ms = now + wait as i64;
                    metrics::counter!("monitor_webhook_deliveries_total", "outcome" => "retry").increment(1);
                }
                None => {
                    d.state = DeliveryState::Dead;
                    metrics::counter!("monitor_webhook_deliveries_total", "outcome" => "dead").increment(1);
                    tracing::warn!(tenant = %d.tenant, webhook = %d.webhook_id, error = %d.last_error, "webhook delivery failed for good");
                }
            }
        }
    }
    if let Err(e) = monitor.store().update_delivery(d) {
        tracing::warn!(error = %e, "webhook delivery state not saved; it will be tried again");
    }
}

/// One signed POST; `Ok` on a 2xx answer.
fn post(agent: &ureq::Agent, url: &str, secret: &str, body: &str, allow_private: bool) -> Result<(), String> {
    let host = fc_monitor::notify::check_url(url, allow_private)?;
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).map_err(|e| format!("{host}: {e}"))?;
    for a in addrs {
        fc_monitor::notify::check_ip(a.ip(), allow_private).map_err(|e| format!("{host} resolves to {e}"))?;
    }
    let signature = fc_monitor::notify::sign(secret.as_bytes(), fc_core::time::now_ms() / 1000, body.as_bytes());
    let res = agent
        .post(url)
        .header("content-type", "application/json")
        .header(fc_monitor::notify::SIGNATURE_HEADER, &signature)
        .header("user-agent", "FactoryChain-Monitor")
        .send(body)
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    if (200..300).contains(&status) { Ok(()) } else { Err(format!("the endpoint answered {status}")) }
}
