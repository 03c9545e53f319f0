//! Throwaway `redis-server`s of the tests' own, on free ports, stopped by pid when dropped:
//! one over TLS (with a CA and certificates made here by the `openssl` command), and a
//! three-master Redis Cluster.
#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on the loopback interface.
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh directory under the temporary one, removed by [`Dir`]'s drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(what: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("parq-{what}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command must be installed for the TLS tests");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`<name>.pem`, `<name>.key`).
fn make_ca(dir: &Path, name: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &pem,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `<name>.pem` with key `<name>.key`, signed by the CA `ca`.
fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) {
    let (key, csr, pem, extfile) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    std::fs::write(dir.join(&extfile), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &extfile,
        ],
    );
}

/// The files of a test PKI: `ca.pem` signed `server.pem` (for localhost and 127.0.0.1) and
/// `client.pem`; `other-ca.pem` signed nothing the server presents, and `stranger.pem` is a
/// client certificate of that other CA.
pub struct Pki {
    pub dir: Dir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = Dir::new("redis-tls");
        make_ca(&dir.0, "ca");
        make_ca(&dir.0, "other-ca");
        make_cert(
            &dir.0,
            "ca",
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        let client = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n";
        make_cert(&dir.0, "ca", "client", client);
        make_cert(&dir.0, "other-ca", "stranger", client);
        Pki { dir }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }
}

/// One `redis-server` process, killed on drop.
pub struct Process {
    pub port: u16,
    child: Option<Child>,
}

impl Process {
    fn spawn(port: u16, dir: &Path, args: &[String]) -> Process {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests");
        Process { port, child: Some(child) }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis-server` listening only with TLS (`--port 0 --tls-port P`).
pub struct TlsServer {
    pub process: Process,
    _dir: Dir,
}

impl TlsServer {
    /// With `auth_clients`, a client must present a certificate signed by the CA.
    pub fn start(pki: &Pki, auth_clients: bool) -> TlsServer {
        let dir = Dir::new("redis-tls-data");
        let port = spare_port();
        let file = |n: &str| pki.file(n).display().to_string();
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file("server.pem"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.pem"),
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let process = Process::spawn(port, &dir.0, &args);
        wait_for("the TLS redis-server", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        TlsServer { process, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.process.port)
    }
}

/// Three masters, no replicas, made a cluster with `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<Process>,
    _dir: Dir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = Dir::new("redis-cluster");
        let nodes: Vec<Process> = (0..3)
            .map(|i| {
                let (port, bus) = (spare_port(), spare_port());
                let node_dir = dir.path(&format!("node{i}"));
                let args: Vec<String> = [
                    "--port",
                    &port.to_string(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                Process::spawn(port, &node_dir, &args)
            })
            .collect();
        for n in &nodes {
            wait_for("a cluster node", || cli(n.port, &["PING"]).is_some_and(|o| o.contains("PONG")));
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed for the cluster tests");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &nodes {
            wait_for("the cluster", || {
                cli(n.port, &["CLUSTER", "INFO"]).is_some_and(|o| o.contains("cluster_state:ok"))
            });
        }
        Cluster { nodes, _dir: dir }
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The node whose slots hold `key`.
    pub fn owner_of(&self, key: &str) -> usize {
        let slot: u16 =
            cli(self.nodes[0].port, &["CLUSTER", "KEYSLOT", key]).unwrap().trim().parse().unwrap();
        let shards = cli(self.nodes[0].port, &["CLUSTER", "NODES"]).unwrap();
        for line in shards.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port: u16 = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            for range in &fields[8..] {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>())
                    && (a..=b).contains(&slot)
                {
                    return self.nodes.iter().position(|n| n.port == port).unwrap();
                }
            }
        }
        panic!("no node serves slot {slot}");
    }

    /// How many keys each node holds.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| cli(n.port, &["DBSIZE"]).map_or(0, |o| o.trim().parse().unwrap_or(0)))
            .collect()
    }
}

/// `redis-cli -p port args…`'s output, or `None` when it failed.
pub fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
