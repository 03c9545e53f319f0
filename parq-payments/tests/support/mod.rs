//! Test support: a localstripe per test, a driver that pays through localstripe's API, an
//! idempotency proxy (localstripe ignores `Idempotency-Key`), and webhooks signed by Stripe's
//! own Python library.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parq_core::memory::MemoryStore;
use parq_core::testing::Fixture;
use parq_core::{Engine, ReservationId};
use parq_payments::{StripeConfig, StripeGateway};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

pub const SECRET_KEY: &str = "sk_test_parq";
pub const WEBHOOK_SECRET: &str = "whsec_parq_tests";

// ----- localstripe ------------------------------------------------------------------------

/// A localstripe server on a free port, killed when dropped.
pub struct LocalStripe {
    child: Child,
    pub port: u16,
    pub url: String,
}

impl LocalStripe {
    /// Starts `localstripe --port N --from-scratch` and waits until it answers.
    pub async fn start() -> LocalStripe {
        for _ in 0..5 {
            let port = free_port();
            let mut child = match Command::new("localstripe")
                .args(["--port", &port.to_string(), "--from-scratch"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "localstripe is not installed (not on PATH): run `pip install localstripe stripe` \
                     (scripts/test does this)"
                ),
                Err(e) => panic!("cannot start localstripe: {e}"),
            };
            let url = format!("http://127.0.0.1:{port}");
            for _ in 0..300 {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken meanwhile; try another
                }
                if let Ok((200, _)) = try_http(&url, "GET", "/v1/balance", &[]).await {
                    return LocalStripe { child, port, url };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.start_kill();
        }
        panic!("localstripe did not come up on a free loopback port (tried 5 ports, 30 s each)");
    }

    /// A request to localstripe as the driver's app or the operator would make it.
    pub async fn call(&self, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        try_http(&self.url, method, path, form)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} to localstripe: {e}"))
    }

    /// `GET` that must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, &[]).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The driver pays `intent` with `payment_method` as Stripe.js would: attach, confirm.
    pub async fn pay(&self, intent: &str, payment_method: &str) -> (u16, Value) {
        let (status, body) = self
            .call("POST", &format!("/v1/payment_intents/{intent}"), &[("payment_method", payment_method)])
            .await;
        assert_eq!(status, 200, "attaching {payment_method} to {intent}: {body}");
        self.call("POST", &format!("/v1/payment_intents/{intent}/confirm"), &[]).await
    }

    /// The intents of `reservation` that localstripe holds.
    pub async fn intents_of(&self, reservation: ReservationId) -> Vec<Value> {
        let list = self.get("/v1/payment_intents?limit=100").await;
        list["data"]
            .as_array()
            .expect("a list")
            .iter()
            .filter(|pi| pi["metadata"]["reservation"] == reservation.to_string())
            .cloned()
            .collect()
    }

    /// The refunds of `intent` that localstripe holds.
    pub async fn refunds_of(&self, intent: &str) -> Vec<Value> {
        let list = self.get(&format!("/v1/refunds?payment_intent={intent}")).await;
        list["data"].as_array().expect("a list").clone()
    }

    /// The intent as localstripe holds it.
    pub async fn intent(&self, intent: &str) -> Value {
        self.get(&format!("/v1/payment_intents/{intent}")).await
    }

    /// A gateway talking straight to this localstripe.
    pub fn gateway(&self) -> StripeGateway {
        gateway_at(&self.url, 2)
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A gateway for `url` with localstripe's limits (no `description`), `max_retries`, and a
/// short timeout.
pub fn gateway_at(url: &str, max_retries: u32) -> StripeGateway {
    let mut config = StripeConfig::new(SECRET_KEY, WEBHOOK_SECRET);
    config.api_base = Some(url.to_owned());
    config.timeout = Duration::from_secs(5);
    config.max_retries = max_retries;
    config.send_description = false;
    StripeGateway::new(config).expect("a gateway")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

// ----- HTTP -------------------------------------------------------------------------------

fn form_encode(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// One HTTP/1.1 request with `Connection: close`; the status and the JSON body.
pub async fn try_http(
    base: &str,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut sock = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
    let body = form_encode(form);
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {SECRET_KEY}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let (status, body) = split_response(&raw).ok_or("malformed response")?;
    let json = serde_json::from_slice(body).unwrap_or(Value::Null);
    Ok((status, json))
}

fn split_response(raw: &[u8]) -> Option<(u16, &[u8])> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, &raw[end + 4..]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ----- the idempotency proxy ---------------------------------------------------------------

/// What the proxy does to the next request instead of passing it through.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Pass it to localstripe, then close the connection without answering: the request took
    /// effect and the response was lost.
    LoseResponse,
    /// Answer with this status and body without passing it on.
    Answer(u16, &'static str),
    /// Hold the connection for this long, then close it, without passing it on.
    Stall(Duration),
}

/// A request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct ProxyState {
    /// key → (fingerprint of the request, raw response)
    replay: HashMap<String, (String, Vec<u8>)>,
    faults: VecDeque<Fault>,
    seen: Vec<Seen>,
}

/// A loopback proxy in front of localstripe that gives it Stripe's idempotency: a `POST`
/// with a key seen before is answered with the first response (same parameters) or a 400
/// `idempotency_error` (other parameters), without reaching localstripe. It can also inject
/// faults.
pub struct Proxy {
    pub url: String,
    state: Arc<Mutex<ProxyState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &LocalStripe) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream: SocketAddr = format!("127.0.0.1:{}", upstream.port).parse().expect("addr");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, upstream, st).await;
                });
            }
        });
        Proxy { url, state, task }
    }

    /// Queues a fault for the next request.
    pub fn fail_next(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// A gateway talking to localstripe through this proxy.
    pub fn gateway(&self, max_retries: u32) -> StripeGateway {
        gateway_at(&self.url, max_retries)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(sock: &mut TcpStream) -> std::io::Result<(String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((request_line, headers, body))
}

async fn serve(mut sock: TcpStream, upstream: SocketAddr, st: Arc<Mutex<ProxyState>>) -> std::io::Result<()> {
    let (request_line, headers, body) = read_request(&mut sock).await?;
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let key = headers.iter().find(|(k, _)| k == "idempotency-key").map(|(_, v)| v.clone());
    // Stripe compares parameters, not bytes: the order of form fields does not matter.
    let fingerprint = {
        let text = String::from_utf8_lossy(&body);
        let mut fields: Vec<&str> = text.split('&').collect();
        fields.sort_unstable();
        format!("{method} {path}\n{}", fields.join("&"))
    };
    let (fault, replay) = {
        let mut s = st.lock().unwrap();
        s.seen.push(Seen { method: method.clone(), path: path.clone(), idempotency_key: key.clone() });
        let replay = key.as_ref().filter(|_| method == "POST").and_then(|k| s.replay.get(k).cloned());
        (s.faults.pop_front(), replay)
    };
    match &fault {
        Some(Fault::Answer(status, body)) => {
            let resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return sock.write_all(resp.as_bytes()).await;
        }
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(*d).await;
            return Ok(());
        }
        _ => {}
    }
    if let Some((fp, resp)) = replay {
        if fp == fingerprint {
            return sock.write_all(&resp).await;
        }
        let body = r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#;
        let resp = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return sock.write_all(resp.as_bytes()).await;
    }
    // Pass it on, closing after one exchange.
    let mut out = TcpStream::connect(upstream).await?;
    let mut req = format!("{request_line}\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| k != "connection") {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("connection: close\r\n\r\n");
    out.write_all(req.as_bytes()).await?;
    out.write_all(&body).await?;
    let mut resp = Vec::new();
    out.read_to_end(&mut resp).await?;
    let status = split_response(&resp).map_or(0, |(s, _)| s);
    if let (Some(k), true) = (key, method == "POST" && status < 500) {
        st.lock().unwrap().replay.insert(k, (fingerprint, resp.clone()));
    }
    if matches!(fault, Some(Fault::LoseResponse)) {
        return Ok(());
    }
    sock.write_all(&resp).await
}

// ----- webhooks ---------------------------------------------------------------------------

/// The `Stripe-Signature` header for `payload` at `t`, computed by Stripe's Python library
/// (and checked by it).
pub fn stripe_python_signature(payload: &[u8], secret: &str, t: i64) -> String {
    const SCRIPT: &str = r#"
import sys
try:
    import stripe
except ImportError:
    sys.exit("the stripe Python package is missing: pip install stripe")
payload = sys.stdin.buffer.read().decode("utf-8")
secret, t = sys.argv[1], sys.argv[2]
sig = stripe.WebhookSignature._compute_signature("%s.%s" % (t, payload), secret)
header = "t=%s,v1=%s" % (t, sig)
stripe.WebhookSignature.verify_header(payload, header, secret)
print(header)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT, secret, &t.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (the stripe package: pip install stripe)");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(payload).expect("write the payload");
    let out = child.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "signing with stripe-python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// A Stripe event envelope of `kind` around `object`, as Stripe delivers it.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id,
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
        "data": { "object": object },
    }))
    .expect("json")
}

/// A signed delivery of `kind` for `intent` (as localstripe holds it now), at `t`.
pub async fn delivery(ls: &LocalStripe, id: &str, kind: &str, intent: &str, t: i64) -> (Vec<u8>, String) {
    let object = ls.intent(intent).await;
    let body = event(id, kind, t, object);
    let sig = stripe_python_signature(&body, WEBHOOK_SECRET, t);
    (body, sig)
}

// ----- the engine -------------------------------------------------------------------------

/// The conformance fixture (memory store, manual clock, one lot with four spots), with an
/// engine over the same store that uses `gateway`.
pub async fn engine_with(gateway: StripeGateway) -> (Fixture, Engine) {
    let fx = Fixture::new(Arc::new(MemoryStore::new())).await;
    let engine = Engine::builder(fx.store.clone(), Arc::new(gateway)).clock(fx.clock.clone()).build();
    (fx, engine)
}
