//! Prometheus metrics, kept in atomics and rendered as text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Default, Clone)]
struct RouteStats {
    by_class: [u64; 5],
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    holds: AtomicU64,
    hold_conflicts: AtomicU64,
    hold_failures: AtomicU64,
    conflicts: AtomicU64,
    rate_limited: AtomicU64,
    swept: AtomicU64,
    sweep_failures: AtomicU64,
    sockets: AtomicU64,
    socket_connections: AtomicU64,
    routes: Mutex<BTreeMap<String, RouteStats>>,
    backends: Mutex<BTreeMap<String, (String, bool)>>,
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

impl Metrics {
    /// Counts a hold.
    pub fn hold(&self, outcome: HoldOutcome) {
        match outcome {
            HoldOutcome::Held => &self.holds,
            HoldOutcome::Conflict => &self.hold_conflicts,
            HoldOutcome::Failed => &self.hold_failures,
        }
        .fetch_add(1, Relaxed);
    }

    /// Counts a `409 conflict` answer of any route.
    pub fn conflict(&self) {
        self.conflicts.fetch_add(1, Relaxed);
    }

    /// Counts a request refused by a rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    /// Counts a sweep's work.
    pub fn swept(&self, expired: usize, failed: usize) {
        self.swept.fetch_add(expired as u64, Relaxed);
        self.sweep_failures.fetch_add(failed as u64, Relaxed);
    }

    /// Counts a Socket.IO connection.
    pub fn socket_connected(&self) {
        self.sockets.fetch_add(1, Relaxed);
        self.socket_connections.fetch_add(1, Relaxed);
    }

    /// Counts a Socket.IO disconnection.
    pub fn socket_disconnected(&self) {
        self.sockets.fetch_sub(1, Relaxed);
    }

    /// Records a finished request: `route` is the matched route template.
    pub fn request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let secs = latency.as_secs_f64();
        let key = format!("{method} {route}");
        let mut routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = routes.entry(key).or_default();
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        s.by_class[class] += 1;
        s.count += 1;
        s.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            s.buckets[i] += 1;
        }
    }

    /// Records a backend's health.
    pub fn backend(&self, port: &str, adapter: &str, up: bool) {
        self.backends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port.to_owned(), (adapter.to_owned(), up));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let _ =
            writeln!(o, "# HELP parq_holds_total Hold requests by outcome.\n# TYPE parq_holds_total counter");
        for (outcome, v) in
            [("held", &self.holds), ("conflict", &self.hold_conflicts), ("failed", &self.hold_failures)]
        {
            let _ = writeln!(o, "parq_holds_total{{outcome=\"{outcome}\"}} {}", v.load(Relaxed));
        }
        counter(
            &mut o,
            "parq_conflicts_total",
            "Requests answered 409 (conflicts of any kind).",
            self.conflicts.load(Relaxed),
        );
        counter(
            &mut o,
            "parq_rate_limited_total",
            "Requests refused by a rate limit.",
            self.rate_limited.load(Relaxed),
        );
        counter(
            &mut o,
            "parq_sweeper_expired_total",
            "Holds expired by the sweeper.",
            self.swept.load(Relaxed),
        );
        counter(
            &mut o,
            "parq_sweeper_failures_total",
            "Items the sweeper failed on.",
            self.sweep_failures.load(Relaxed),
        );
        counter(
            &mut o,
            "parq_socket_connections_total",
            "Socket.IO connections accepted.",
            self.socket_connections.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP parq_sockets Socket.IO connections open now.\n# TYPE parq_sockets gauge\nparq_sockets {}",
            self.sockets.load(Relaxed)
        );

        let routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let _ = writeln!(
            o,
            "# HELP parq_http_requests_total HTTP requests by route and status class.\n# TYPE parq_http_requests_total counter"
        );
        for (key, s) in &routes {
            let (method, route) = key.split_once(' ').unwrap_or(("", key));
            for (i, n) in s.by_class.iter().enumerate() {
                if *n > 0 {
                    let _ = writeln!(
                        o,
                        "parq_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{}xx\"}} {n}",
                        i + 1
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            "# HELP parq_http_request_duration_seconds HTTP request latency by route.\n# TYPE parq_http_request_duration_seconds histogram"
        );
        for (key, s) in &routes {
            let (method, route) = key.split_once(' ').unwrap_or(("", key));
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(
                    o,
                    "parq_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
                );
            }
            let _ =
                writeln!(o, "parq_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(o, "parq_http_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(o, "parq_http_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
        let _ = writeln!(
            o,
            "# HELP parq_backend_up Whether a backend answered its last health check.\n# TYPE parq_backend_up gauge"
        );
        for (port, (adapter, up)) in
            self.backends.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter()
        {
            let _ = writeln!(o, "parq_backend_up{{port=\"{port}\",adapter=\"{adapter}\"}} {}", u8::from(*up));
        }
        o
    }
}
