//! The server's metrics, kept by the Prometheus project's client library (`prometheus-client`)
//! and written on `/metrics` as Prometheus text (`text/plain; version=0.0.4`), or as
//! OpenMetrics text to a scraper that asks for it (`Accept: application/openmetrics-text`).
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `parq_holds_total` | counter | `outcome`: `held`, `conflict`, `failed` |
//! | `parq_conflicts_total` | counter | |
//! | `parq_rate_limited_total` | counter | |
//! | `parq_sweeper_expired_total`, `parq_sweeper_failures_total` | counter | |
//! | `parq_socket_connections_total` | counter | |
//! | `parq_sockets` | gauge | |
//! | `parq_http_requests_total` | counter | `method`, `route` (the matched template), `status` (`2xx`…) |
//! | `parq_http_request_duration_seconds` | histogram | `method`, `route` |
//! | `parq_backend_up` | gauge | `port`, `adapter` |

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The media type of [`Metrics::render_openmetrics`]'s text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The media type of [`Metrics::render`]'s text.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    port: String,
    adapter: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    holds: Family<OutcomeLabels, Counter>,
    conflicts: Counter,
    rate_limited: Counter,
    swept: Counter,
    sweep_failures: Counter,
    sockets: Gauge,
    socket_connections: Counter,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    backends: Family<BackendLabels, Gauge>,
}

/// How a hold request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held (or replayed).
    Held,
    /// Refused because the spot or lot was taken.
    Conflict,
    /// Any other error.
    Failed,
}

impl HoldOutcome {
    fn label(self) -> &'static str {
        match self {
            HoldOutcome::Held => "held",
            HoldOutcome::Conflict => "conflict",
            HoldOutcome::Failed => "failed",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            holds: Family::default(),
            conflicts: Counter::default(),
            rate_limited: Counter::default(),
            swept: Counter::default(),
            sweep_failures: Counter::default(),
            sockets: Gauge::default(),
            socket_connections: Counter::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            backends: Family::default(),
        };
        // Every outcome is shown from the start, at zero.
        for o in [HoldOutcome::Held, HoldOutcome::Conflict, HoldOutcome::Failed] {
            let _ = m.holds.get_or_create(&OutcomeLabels { outcome: o.label() });
        }
        let mut m = m;
        let r = &mut m.registry;
        // Counters are registered without `_total`, and help texts without their final full stop:
        // the encoder adds both.
        r.register("parq_holds", "Hold requests by outcome", m.holds.clone());
        r.register("parq_conflicts", "Requests answered 409 (conflicts of any kind)", m.conflicts.clone());
        r.register("parq_rate_limited", "Requests refused by a rate limit", m.rate_limited.clone());
        r.register("parq_sweeper_expired", "Holds expired by the sweeper", m.swept.clone());
        r.register("parq_sweeper_failures", "Items the sweeper failed on", m.sweep_failures.clone());
        r.register("parq_socket_connections", "Socket.IO connections accepted", m.socket_connections.clone());
        r.register("parq_sockets", "Socket.IO connections open now", m.sockets.clone());
        r.register("parq_http_requests", "HTTP requests by route and status class", m.requests.clone());
        r.register("parq_http_request_duration_seconds", "HTTP request latency by route", m.latency.clone());
        r.register("parq_backend_up", "Whether a backend answered its last health check", m.backends.clone());
        m
    }
}

impl Metrics {
    /// Counts a hold.
    pub fn hold(&self, outcome: HoldOutcome) {
        self.holds.get_or_create(&OutcomeLabels { outcome: outcome.label() }).inc();
    }

    /// Counts a `409 conflict` answer of any route.
    pub fn conflict(&self) {
        self.conflicts.inc();
    }

    /// Counts a request refused by a rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Counts a sweep's work.
    pub fn swept(&self, expired: usize, failed: usize) {
        self.swept.inc_by(expired as u64);
        self.sweep_failures.inc_by(failed as u64);
    }

    /// Counts a Socket.IO connection.
    pub fn socket_connected(&self) {
        self.sockets.inc();
        self.socket_connections.inc();
    }

    /// Counts a Socket.IO disconnection.
    pub fn socket_disconnected(&self) {
        self.sockets.dec();
    }

    /// Records a finished request: `route` is the matched route template.
    pub fn request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let class = CLASSES[usize::from((status / 100).clamp(1, 5)) - 1];
        let labels = RouteLabels { method: method.to_owned(), route: route.to_owned() };
        self.latency.get_or_create(&labels).observe(latency.as_secs_f64());
        let RouteLabels { method, route } = labels;
        self.requests.get_or_create(&RequestLabels { method, route, status: class }).inc();
    }

    /// Records a backend's health.
    pub fn backend(&self, port: &str, adapter: &str, up: bool) {
        let labels = BackendLabels { port: port.to_owned(), adapter: adapter.to_owned() };
        self.backends.get_or_create(&labels).set(i64::from(up));
    }

    /// The OpenMetrics text exposition ([`OPENMETRICS`]).
    pub fn render_openmetrics(&self) -> String {
        let mut o = String::with_capacity(4096);
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut o, &self.registry);
        o
    }

    /// The Prometheus text exposition ([`PROMETHEUS_TEXT`]): the OpenMetrics text, with each
    /// counter's `HELP` and `TYPE` naming its samples (`…_total`) and without `# EOF`.
    pub fn render(&self) -> String {
        let om = self.render_openmetrics();
        let counters: std::collections::HashSet<&str> =
            om.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
        let mut out = String::with_capacity(om.len() + 256);
        for line in om.lines() {
            if line == "# EOF" {
                continue;
            }
            let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
            match meta.and_then(|(p, rest)| Some((p, rest.split_once(' ')?))) {
                Some((p, (name, tail))) if counters.contains(name) => {
                    out.push_str(&format!("{p}{name}_total {tail}\n"));
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric() {
        let m = Metrics::default();
        m.hold(HoldOutcome::Held);
        m.conflict();
        m.socket_connected();
        m.request("POST", "/api/v1/holds", 201, Duration::from_millis(3));
        m.request("POST", "/api/v1/holds", 409, Duration::from_millis(7));
        m.backend("store", "memory", true);
        let text = m.render_openmetrics();
        for line in [
            "parq_holds_total{outcome=\"held\"} 1",
            "parq_holds_total{outcome=\"failed\"} 0",
            "parq_conflicts_total 1",
            "parq_rate_limited_total 0",
            "parq_socket_connections_total 1",
            "parq_sockets 1",
            "parq_http_requests_total{method=\"POST\",route=\"/api/v1/holds\",status=\"2xx\"} 1",
            "parq_http_requests_total{method=\"POST\",route=\"/api/v1/holds\",status=\"4xx\"} 1",
            "parq_http_request_duration_seconds_bucket{le=\"0.005\",method=\"POST\",route=\"/api/v1/holds\"} 1",
            "parq_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/holds\"} 2",
            "parq_backend_up{port=\"store\",adapter=\"memory\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        let plain = m.render();
        for line in [
            "# HELP parq_holds_total Hold requests by outcome.",
            "# TYPE parq_holds_total counter",
            "parq_holds_total{outcome=\"held\"} 1",
            "# TYPE parq_sockets gauge",
            "# TYPE parq_http_request_duration_seconds histogram",
            "parq_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/holds\"} 2",
        ] {
            assert!(plain.lines().any(|l| l == line), "{line} missing from\n{plain}");
        }
        assert!(!plain.contains("# EOF") && !plain.contains("# TYPE parq_holds counter"), "{plain}");
    }
}
