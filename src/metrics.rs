//! Prometheus metrics at `/metrics` (text format 0.0.4): HTTP requests by route and status
//! with latency histograms, GraphQL operations by name and outcome, database reads and their
//! durations, the connection pool, live progress, and build info. Kept in atomics and small
//! maps; rendering reads them, it runs no query.
//!
//! Why not `prometheus-client`: its label families grow with every label set they see, and
//! the one label clients choose (the GraphQL operation name) must stay bounded (at most
//! 100 names, then `other`), which would have to be written around it anyway;
//! its encoder writes OpenMetrics, while this exposition is the 0.0.4 text format every
//! scraper reads. The families here are few and fixed, and the formatting is one function.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Most distinct GraphQL operation names tracked; later ones count as `other`.
const MAX_OPERATIONS: usize = 100;

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// The instance's request metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, u16), Arc<Histogram>>>,
    /// Operation name → outcome → count.
    graphql: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
}

/// A GraphQL operation's outcome.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// Data and no errors.
    Ok,
    /// Data with errors.
    Partial,
    /// Errors only (not executed, or every field failed).
    Failed,
}

impl Metrics {
    /// Records an HTTP request on `route` (the matched route pattern).
    pub fn http(&self, route: &str, status: u16, took: Duration) {
        let histogram = {
            let mut map = self.http.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry((route.to_owned(), status)).or_default().clone()
        };
        histogram.observe(took);
    }

    /// Records a GraphQL operation.
    pub fn graphql(&self, operation: Option<&str>, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
        };
        let name = match operation {
            None => "anonymous",
            Some(n)
                if !n.is_empty()
                    && n.len() <= 64
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                n
            }
            Some(_) => "invalid",
        };
        let mut map = self.graphql.lock().unwrap_or_else(PoisonError::into_inner);
        let name = if map.contains_key(name) || map.len() < MAX_OPERATIONS {
            name
        } else {
            "other"
        };
        *map.entry(name.to_owned())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }

    /// The text exposition, with the gauges and counters `extra` adds.
    pub fn render(&self, extra: &[Sample]) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP mj_tasks_build_info Version of this build.\n# TYPE mj_tasks_build_info gauge\n",
        );
        let _ = writeln!(
            out,
            "mj_tasks_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out.push_str("# HELP mj_tasks_http_request_duration_seconds HTTP requests by matched route and status, with their latency.\n# TYPE mj_tasks_http_request_duration_seconds histogram\n");
        let http: Vec<_> = self
            .http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((route, status), h) in &http {
            let labels = format!("route=\"{}\",status=\"{status}\"", escape(route));
            h.render("mj_tasks_http_request_duration_seconds", &labels, &mut out);
        }
        out.push_str("# HELP mj_tasks_graphql_operations_total GraphQL operations by operation name and outcome.\n# TYPE mj_tasks_graphql_operations_total counter\n");
        for (name, outcomes) in self
            .graphql
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for (outcome, n) in outcomes {
                let _ = writeln!(
                    out,
                    "mj_tasks_graphql_operations_total{{operation=\"{name}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        for s in extra {
            s.render(&mut out);
        }
        out
    }
}

/// One more metric to render: a gauge or counter with labels, or a histogram.
pub enum Sample<'a> {
    Value {
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        values: Vec<(String, f64)>,
    },
    Histogram {
        name: &'static str,
        help: &'static str,
        histogram: &'a Histogram,
    },
}

impl Sample<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Sample::Value {
                name,
                help,
                kind,
                values,
            } => {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, v) in values {
                    if labels.is_empty() {
                        let _ = writeln!(out, "{name} {v}");
                    } else {
                        let _ = writeln!(out, "{name}{{{labels}}} {v}");
                    }
                }
            }
            Sample::Histogram {
                name,
                help,
                histogram,
            } => {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                histogram.render(name, "", out);
            }
        }
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}
