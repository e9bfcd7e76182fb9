//! The services as operating-system processes, for tests of what only processes can show: a
//! `kill -9` loses whatever the process held in memory. Also a TCP relay that can cut the
//! connections between two services, as a network partition would.
//!
//! The service binaries are the workspace's own (`govpulse-ingest`, `govpulse-aggregate`,
//! `govpulse-ranking`), found in the build folder next to the running test executable:
//! `cargo build --bins` (or `cargo test --workspace`, which the CI script precedes with
//! it) puts them there.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, ChildStderr, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use tokio::{net::TcpStream, sync::watch, task::JoinHandle};

/// The path of a workspace binary built beside the test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lies in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the service binaries first (cargo build --bins)",
        path.display()
    );
    path
}

/// A loopback port free when asked (the service binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Reads a service's JSON log (its standard error) to its end on a thread of its own and
/// hands over each JSON line: however few lines a test reads, the service never blocks on a
/// full pipe nor writes into a closed one.
pub fn json_log(stderr: ChildStderr) -> mpsc::Receiver<serde_json::Value> {
    json_log_counting(stderr, Arc::default())
}

/// [`json_log`], counting every line read in `lines`.
pub fn json_log_counting(
    stderr: ChildStderr,
    lines: Arc<AtomicUsize>,
) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Split on bytes: a line that is not UTF-8 must not end the reading.
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            lines.fetch_add(1, Ordering::Relaxed);
            if let Ok(log) = serde_json::from_slice(&line) {
                // The test may have stopped listening; the log is read to its end anyway.
                let _ = tx.send(log);
            }
        }
    });
    rx
}

/// One service binary running as a child process, restartable with the same settings.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    addr: SocketAddr,
    /// Log lines it wrote, since it started (all of its runs).
    log_lines: Arc<AtomicUsize>,
}

impl ServiceProcess {
    /// Starts `name` (e.g. `govpulse-aggregate`) with `env` (its `GOVPULSE_LISTEN` must name
    /// a fixed port so that a restart comes back on it) and returns once it has bound its
    /// listen address (it logs `<service> bound`).
    pub fn start(name: &str, env: &[(&str, String)]) -> ServiceProcess {
        let mut process = ServiceProcess {
            name: name.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_lines: Arc::default(),
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let mut child = Command::new(binary(&self.name))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("GOVPULSE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.name));
        let log = json_log_counting(
            child.stderr.take().expect("stderr is piped"),
            self.log_lines.clone(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let entry = match log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(entry) => entry,
                Err(e) => {
                    // Not yet owned by self: nothing else would stop it.
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{} did not log its bound address: {e}", self.name);
                }
            };
            let message = entry["fields"]["message"].as_str().unwrap_or_default();
            if message.ends_with(" bound")
                && let Some(addr) = entry["fields"]["addr"].as_str()
            {
                break addr.to_owned();
            }
        };
        self.addr = addr.parse().expect("a socket address");
        self.child = Some(child);
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its resident memory in bytes, from /proc (Linux).
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.pid().expect("the service runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// How many log lines it has written so far.
    pub fn log_lines(&self) -> usize {
        self.log_lines.load(Ordering::Relaxed)
    }

    /// `kill -9`: the process ends at once, whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same settings (after [`ServiceProcess::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP relay on a loopback port to `upstream`: while cut, every relayed connection is
/// closed and new ones are closed as soon as they are accepted.
#[derive(Debug)]
pub struct Cutter {
    addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Cutter {
    /// Starts relaying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Cutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the relay binds");
        let addr = listener.local_addr().expect("bound");
        let cut = Arc::new(watch::channel(false).0);
        let state = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Cutter { addr, cut, task }
    }

    /// Its address: give it to the client instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Relays again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
