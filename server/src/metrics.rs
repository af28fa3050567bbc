//! Prometheus metrics, kept in a small hand-rolled registry and written in the text exposition
//! format (version 0.0.4) at `/metrics`.
//!
//! Hand-rolled because the server needs a handful of series and no push gateway; the exporter
//! crates bring an HTTP client along. Label values are bounded: the route is the matched template (or
//! `unmatched`), the method one of a fixed set, so a client cannot grow the registry at will.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use evault_core::index::IndexStats;
use evault_schema::documents::Outcome;

/// Upper bounds (seconds) of the request duration histogram's buckets.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<Http>,
    ingested_bytes: AtomicU64,
    sweeps: AtomicU64,
    sweep_failures: AtomicU64,
    swept_records: AtomicU64,
    /// Gate decisions answered: pass, warn, fail.
    gate_decisions: [AtomicU64; 3],
}

#[derive(Debug, Default)]
struct Http {
    /// (method, route, status) → count.
    requests: BTreeMap<(&'static str, String, u16), u64>,
    /// (method, route) → histogram.
    durations: BTreeMap<(&'static str, String), Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Cumulative: `buckets[i]` counts observations ≤ `BUCKETS[i]`.
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The method as a label: one of a fixed set, so odd methods cannot multiply series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        // The lock is held for two map updates, never across an await.
        let Ok(mut http) = self.http.lock() else {
            return;
        };
        *http
            .requests
            .entry((method, route.to_string(), status))
            .or_default() += 1;
        let h = http
            .durations
            .entry((method, route.to_string()))
            .or_default();
        for (bound, n) in BUCKETS.iter().zip(h.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// Counts the bytes of an upload whose push succeeded.
    pub fn add_ingested(&self, bytes: u64) {
        self.ingested_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a retention sweep that ran to its end (not a dry run) and the records it deleted.
    pub fn sweep_done(&self, records_deleted: u64) {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.swept_records
            .fetch_add(records_deleted, Ordering::Relaxed);
    }

    /// Counts a retention sweep that failed.
    pub fn sweep_failed(&self) {
        self.sweep_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a gate decision answered by `POST /v1/gates/check`.
    pub fn gate_decided(&self, decision: Outcome) {
        let i = match decision {
            Outcome::Pass => 0,
            Outcome::Warn => 1,
            Outcome::Fail => 2,
        };
        self.gate_decisions[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text. `stats` (read at scrape time) gives the vault gauges; they are left
    /// out when the index could not be read.
    pub fn render(&self, stats: Option<IndexStats>) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP evault_http_requests_total HTTP requests answered, by method, matched route and status.\n\
             # TYPE evault_http_requests_total counter\n",
        );
        if let Ok(http) = self.http.lock() {
            for ((method, route, status), n) in &http.requests {
                let _ = writeln!(
                    out,
                    "evault_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
            out.push_str(
                "# HELP evault_http_request_duration_seconds Time until the response started, by method and matched route.\n\
                 # TYPE evault_http_request_duration_seconds histogram\n",
            );
            for ((method, route), h) in &http.durations {
                let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
                for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                    let _ = writeln!(
                        out,
                        "evault_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "evault_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "evault_http_request_duration_seconds_sum{{{labels}}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "evault_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP evault_ingested_bytes_total Bytes of uploads taken in by successful pushes.\n\
             # TYPE evault_ingested_bytes_total counter\n\
             evault_ingested_bytes_total {}",
            self.ingested_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP evault_retention_sweeps_total Retention sweeps run to their end (dry runs excluded).\n\
             # TYPE evault_retention_sweeps_total counter\n\
             evault_retention_sweeps_total {}\n\
             # HELP evault_retention_sweep_failures_total Retention sweeps that failed.\n\
             # TYPE evault_retention_sweep_failures_total counter\n\
             evault_retention_sweep_failures_total {}\n\
             # HELP evault_retention_swept_records_total Records deleted by retention sweeps.\n\
             # TYPE evault_retention_swept_records_total counter\n\
             evault_retention_swept_records_total {}",
            self.sweeps.load(Ordering::Relaxed),
            self.sweep_failures.load(Ordering::Relaxed),
            self.swept_records.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP evault_gate_decisions_total Gate checks answered, by decision.\n\
             # TYPE evault_gate_decisions_total counter\n",
        );
        for (decision, n) in ["pass", "warn", "fail"].iter().zip(&self.gate_decisions) {
            let _ = writeln!(
                out,
                "evault_gate_decisions_total{{decision=\"{decision}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        if let Some(stats) = stats {
            let _ = writeln!(
                out,
                "# HELP evault_records Records in the vault.\n\
                 # TYPE evault_records gauge\n\
                 evault_records {}\n\
                 # HELP evault_blobs Blobs in the vault.\n\
                 # TYPE evault_blobs gauge\n\
                 evault_blobs {}",
                stats.records, stats.blobs
            );
        }
        out
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histograms_and_gauges() {
        let m = Metrics::new();
        m.observe("GET", "/v1/records", 200, Duration::from_millis(7));
        m.observe("GET", "/v1/records", 200, Duration::from_secs(40));
        m.observe("POST", "unmatched", 404, Duration::from_millis(1));
        m.add_ingested(42);
        m.sweep_done(3);
        m.sweep_done(0);
        m.sweep_failed();
        m.gate_decided(Outcome::Fail);
        m.gate_decided(Outcome::Fail);
        m.gate_decided(Outcome::Pass);
        let text = m.render(Some(IndexStats {
            records: 3,
            blobs: 2,
            bytes: 10,
            stored_bytes: 5,
        }));
        assert!(text.contains(
            "evault_http_requests_total{method=\"GET\",route=\"/v1/records\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "evault_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/records\",le=\"0.005\"} 0"
        ));
        assert!(text.contains(
            "evault_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/records\",le=\"0.01\"} 1"
        ));
        assert!(text.contains(
            "evault_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/records\",le=\"30\"} 1"
        ));
        assert!(text.contains(
            "evault_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/records\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("evault_ingested_bytes_total 42\n"));
        assert!(text.contains("evault_retention_sweeps_total 2\n"));
        assert!(text.contains("evault_retention_sweep_failures_total 1\n"));
        assert!(text.contains("evault_retention_swept_records_total 3\n"));
        assert!(text.contains("evault_gate_decisions_total{decision=\"pass\"} 1\n"));
        assert!(text.contains("evault_gate_decisions_total{decision=\"warn\"} 0\n"));
        assert!(text.contains("evault_gate_decisions_total{decision=\"fail\"} 2\n"));
        assert!(text.contains("evault_records 3\n"));
        assert!(text.contains("evault_blobs 2\n"));
        let without = m.render(None);
        assert!(!without.contains("evault_records"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
