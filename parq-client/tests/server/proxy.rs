//! A tiny loopback TCP proxy in front of the server that can lose or delay the answer to a
//! hold, cut every connection, and refuse new ones for a while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const HOLD: &[u8] = b"POST /api/v1/holds ";

#[derive(Default)]
struct State {
    drop_holds: AtomicU32,
    delay_holds: AtomicU32,
    delay_ms: AtomicU64,
    refusing: AtomicBool,
    connections: Mutex<Vec<AbortHandle>>,
    hold_keys: Mutex<Vec<String>>,
}

pub struct Proxy {
    pub url: String,
    state: Arc<State>,
    accept: AbortHandle,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}

impl Proxy {
    /// A proxy to the server at `upstream` (`http://127.0.0.1:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().expect("an address");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let s = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                if s.refusing.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let s2 = s.clone();
                let conn = tokio::spawn(async move { relay(s2, client, upstream).await });
                let mut conns = s.connections.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(conn.abort_handle());
            }
        })
        .abort_handle();
        Proxy { url, state, accept }
    }

    /// Loses the answers to the next `n` holds (the server handles them; the client never
    /// hears back).
    pub fn drop_next_hold_answers(&self, n: u32) {
        self.state.drop_holds.store(n, Ordering::SeqCst);
    }

    /// Delays the answer to the next hold by `by`.
    pub fn delay_next_hold_answer(&self, by: Duration) {
        self.state.delay_ms.store(by.as_millis() as u64, Ordering::SeqCst);
        self.state.delay_holds.store(1, Ordering::SeqCst);
    }

    /// The `Idempotency-Key` of every hold that went through, in order.
    pub fn hold_keys(&self) -> Vec<String> {
        self.state.hold_keys.lock().unwrap().clone()
    }

    /// Cuts every open connection.
    pub fn sever(&self) {
        for c in self.state.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// While on, new connections are closed at once.
    pub fn refuse(&self, on: bool) {
        self.state.refusing.store(on, Ordering::SeqCst);
    }
}

const PASS: u8 = 0;
const DROP: u8 = 1;
const DELAY: u8 = 2;

async fn relay(s: Arc<State>, client: TcpStream, upstream: SocketAddr) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let next = AtomicU8::new(PASS);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if chunk.starts_with(HOLD) {
                if let Some(key) = header(chunk, "idempotency-key") {
                    s.hold_keys.lock().unwrap().push(key);
                }
                let take = |c: &AtomicU32| {
                    c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
                };
                if take(&s.drop_holds) {
                    next.store(DROP, Ordering::SeqCst);
                } else if take(&s.delay_holds) {
                    next.store(DELAY, Ordering::SeqCst);
                }
            }
            if sw.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            match next.swap(PASS, Ordering::SeqCst) {
                // The answer is lost: the connection closes without it.
                DROP => return,
                DELAY => tokio::time::sleep(Duration::from_millis(s.delay_ms.load(Ordering::SeqCst))).await,
                _ => {}
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

fn header(request: &[u8], name: &str) -> Option<String> {
    let head = String::from_utf8_lossy(request);
    head.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}
