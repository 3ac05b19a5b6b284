//! The shutdown signal passed into every service's `serve`.

use tokio_util::sync::CancellationToken;

/// Fires once, on SIGTERM/SIGINT or when a test drops the service. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self(CancellationToken::new())
    }
    /// Fire the token; every clone sees it.
    pub fn trigger(&self) {
        self.0.cancel();
    }
    /// Whether the token fired.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }
    /// Completes when the token fires.
    pub async fn wait(&self) {
        self.0.cancelled().await
    }
    /// A child token: fires with its parent, or alone.
    pub fn child(&self) -> Self {
        Self(self.0.child_token())
    }
    /// Fire the token on the first SIGTERM or SIGINT (ctrl-c).
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for sigterm");
                        let _ = ctrl_c.await;
                        this.trigger();
                        return;
                    }
                };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
            tracing::info!("shutdown signal received");
            this.trigger();
        });
    }
}
