//! The background retention sweeper of `evault serve`: every `retention.sweep_interval_secs`
//! (docs/configuration.md), one [`Vault::sweep`] on the blocking pool, logged and counted.
//!
//! The first sweep runs one interval after start, never at startup: a server restarted in a
//! crash loop must not sweep on every start. A failed or panicking sweep is logged and counted
//! and the next interval tries again; the sweeper never stops the server. A sweep is safe to
//! interrupt anywhere (see `evault_core::sweep`), so at shutdown the server waits for a running
//! one only within its grace period.

use std::sync::Arc;
use std::time::Duration;

use evault_core::Vault;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::metrics::Metrics;

/// Starts the sweeper, sweeping every `interval` until `stop` turns true.
pub fn spawn(
    vault: Arc<Vault>,
    metrics: Arc<Metrics>,
    interval: Duration,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tracing::info!(
        interval_secs = interval.as_secs(),
        "background retention sweeps every {}s, the first one interval from now",
        interval.as_secs()
    );
    tokio::spawn(sweep_every(vault, metrics, interval, stop))
}

async fn sweep_every(
    vault: Arc<Vault>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    // A sweep longer than the interval delays the next one instead of starting a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // A stop and a tick at once: stop.
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            _ = ticks.tick() => {}
        }
        sweep_once(&vault, &metrics).await;
    }
}

/// One sweep, its outcome logged and counted; never panics.
async fn sweep_once(vault: &Arc<Vault>, metrics: &Metrics) {
    let vault = Arc::clone(vault);
    let span = tracing::info_span!("retention_sweep");
    let outcome =
        tokio::task::spawn_blocking(move || span.in_scope(|| vault.sweep(false, &mut |_, _| {})))
            .await;
    match outcome {
        Ok(Ok(report)) => {
            metrics.sweep_done(report.deleted.len() as u64);
            tracing::info!(
                deleted = report.deleted.len(),
                kept = report.kept.len(),
                blobs_removed = report.blobs_removed.len(),
                orphan_files = report.orphan_files.len(),
                bytes_freed = report.bytes_freed,
                "background retention sweep done"
            );
        }
        Ok(Err(e)) => {
            metrics.sweep_failed();
            tracing::error!(error = %e, "background retention sweep failed; the next one retries");
        }
        Err(e) => {
            metrics.sweep_failed();
            tracing::error!(error = %e, "background retention sweep panicked; the next one retries");
        }
    }
}
