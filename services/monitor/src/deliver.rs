//! The notification worker: POSTs each queued alarm notification to its webhook,
//! signed (`fc_monitor::notify::sign`), or sends it as an e-mail over SMTP
//! (`lettre`); retried with backoff, and after the last attempt left in the
//! dead-letter list the portal shows. Each tenant has one notification rate for
//! both; deliveries over it wait for the next slot, they are not dropped.
//!
//! Boundary: every address a webhook URL resolves to is checked
//! (`fc_monitor::notify::check_ip`) before the request is made. The SMTP server is
//! the operator's (`monitor.smtp_url`), so it is not checked.

use crate::Config;
use crate::monitor::Monitor;
use crate::store::{DeliveryRecord, DeliveryState};
use fc_core::Shutdown;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends alarm e-mails through the operator's SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
    portal_url: String,
    /// The whole SMTP exchange (lettre's own timeout covers only the connect).
    timeout: Duration,
}

impl Mailer {
    /// The mailer `cfg` describes; `None` when `smtp_url` is empty.
    pub fn new(cfg: &Config) -> Result<Option<Self>, String> {
        if cfg.smtp_url.is_empty() {
            return Ok(None);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&cfg.smtp_url)
            .map_err(|e| format!("monitor.smtp_url: {e}"))?
            .timeout(Some(Duration::from_millis(cfg.webhook_timeout_ms)))
            .build();
        let from = cfg.smtp_from.parse().map_err(|e| format!("monitor.smtp_from: {:?} is not a mailbox: {e}", cfg.smtp_from))?;
        Ok(Some(Self {
            transport,
            from,
            portal_url: cfg.portal_url.trim_end_matches('/').to_owned(),
            timeout: Duration::from_millis(cfg.webhook_timeout_ms),
        }))
    }

    /// Send one alarm event (the delivery's JSON body) to `to`.
    async fn send(&self, to: &str, body: &str) -> Result<(), String> {
        let event: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("unreadable notification: {e}"))?;
        let (subject, text) = alarm_mail(&event, &self.portal_url);
        let to = to.parse().map_err(|e| format!("{to:?}: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(r) => r.map(|_| ()).map_err(|e| format!("SMTP: {e}")),
            Err(_) => Err(format!("SMTP: no answer within {} ms", self.timeout.as_millis())),
        }
    }
}

/// The subject and plain text of an alarm event's e-mail.
fn alarm_mail(event: &serde_json::Value, portal_url: &str) -> (String, String) {
    let kind = event["kind"].as_str().unwrap_or("changed");
    let a = &event["alarm"];
    let s = |k: &str| a[k].as_str().unwrap_or("").to_owned();
    let machine = s("machine");
    let severity = s("severity");
    let subject = format!("[FactoryChain] {} {kind}: {} on {machine}", severity.to_uppercase(), s("rule_id"));
    let mut text = format!("Alarm {kind}.\n\n");
    text += &format!("Machine:   {machine}\n");
    if let Some(metric) = a["metric"].as_str() {
        text += &format!("Metric:    {metric}\n");
    }
    text += &format!("Severity:  {severity}\n");
    text += &format!("Rule:      {} (version {})\n", s("rule_id"), a["rule_version"].as_u64().unwrap_or(0));
    text += &format!("Raised at: {}\n", fc_monitor::backtest::rfc3339(a["raised_at_ms"].as_i64().unwrap_or(0)));
    if let Some(cleared) = a["cleared_at_ms"].as_i64() {
        text += &format!("Cleared:   {}\n", fc_monitor::backtest::rfc3339(cleared));
    }
    text += &format!("\nWhy: {}\n", s("reason"));
    if !portal_url.is_empty() {
        text += &format!("\nOpen it: {portal_url}/alarms?all=true#{}\n", s("id"));
    }
    text += "\nYou get this because you subscribed to alarms on the Notifications page.\n";
    (subject, text)
}

/// Run until shutdown.
pub async fn run(monitor: Arc<Monitor>, cfg: Config, mailer: Option<Mailer>, shutdown: Shutdown) {
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
            if !d.email.is_empty() {
                let result = match &mailer {
                    Some(m) => m.send(&d.email, &d.body).await,
                    None => Err("this platform sends no e-mail (monitor.smtp_url is not set)".into()),
                };
                finish(&monitor, &mut d, cfg.webhook_attempts.max(1), result);
                continue;
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

/// webhook or email.
pub fn channel(d: &DeliveryRecord) -> &'static str {
    if d.email.is_empty() { "webhook" } else { "email" }
}

fn finish(monitor: &Monitor, d: &mut DeliveryRecord, max_attempts: u32, result: Result<(), String>) {
    d.attempts += 1;
    let now = fc_core::time::now_ms();
    match result {
        Ok(()) => {
            d.state = DeliveryState::Delivered;
            d.delivered_at_ms = Some(now);
            d.last_error.clear();
            metrics::counter!("monitor_notifications_total", "channel" => channel(d), "outcome" => "delivered").increment(1);
        }
        Err(e) => {
            d.last_error = e;
            let jitter = (now.rem_euclid(1000)) as f64 / 1000.0;
            match fc_monitor::notify::retry_delay_ms(d.attempts + 1, max_attempts, jitter) {
                Some(wait) => {
                    d.next_at_ms = now + wait as i64;
                    metrics::counter!("monitor_notifications_total", "channel" => channel(d), "outcome" => "retry").increment(1);
                }
                None => {
                    d.state = DeliveryState::Dead;
                    metrics::counter!("monitor_notifications_total", "channel" => channel(d), "outcome" => "dead").increment(1);
                    tracing::warn!(tenant = %d.tenant, webhook = %d.webhook_id, email = %d.email, error = %d.last_error, "notification failed for good");
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
