//! A real `redis-server` for tests: started on a free loopback port in a temporary folder,
//! stopped (and its folder removed) when dropped; and a real three-master Redis Cluster of
//! such servers.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

/// A `redis-server` process owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    options: Vec<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl RedisServer {
    /// Starts a server that keeps nothing on disk.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with extra command-line options (for example `--appendonly yes`),
    /// returning once it accepts connections.
    pub fn start_with(options: &[&str]) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "govpulse-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        // A port is free when we look; another process could take it before redis binds
        // it, so a failed start is retried on a new port.
        let mut last_error = None;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match Self::spawn(&dir, port, options) {
                Ok(child) => {
                    let options = options.iter().map(|o| (*o).to_owned()).collect();
                    return Ok(Self {
                        child,
                        port,
                        dir,
                        options,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    fn spawn(
        dir: &PathBuf,
        port: u16,
        options: &[impl AsRef<std::ffi::OsStr>],
    ) -> std::io::Result<Child> {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(dir)
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        // Wait for the server to say it is ready, reading its log rather than polling. The
        // log is read to its end on a thread of its own: redis goes on logging (rewrites of
        // its append-only file, its shutdown) into a pipe that must stay open and drained.
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (ready_tx, ready) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                if String::from_utf8_lossy(&line).contains("Ready to accept connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        match ready.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => Ok(child),
            // The log ended without the line: the server exited.
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                Err(std::io::Error::other(format!(
                    "redis-server exited before it was ready: {status}"
                )))
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(std::io::Error::other(
                    "redis-server did not say it was ready within 30 s",
                ))
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it with SIGKILL, as a crash would, and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it with SIGKILL, as a crash would, and starts it again on the same port, with
    /// the same options and data folder (so an append-only file is loaded back), returning
    /// once it accepts connections again.
    pub fn crash_and_restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.child = Self::spawn(&self.dir, self.port, &self.options)?;
        Ok(())
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback ports, each its own
/// `redis-server` owned by the test; the 16,384 slots are spread over the three.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create`,
    /// and returns once every node reports `cluster_state:ok`.
    pub fn start() -> std::io::Result<Self> {
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            // Each node keeps its cluster state file in its own temporary folder.
            nodes.push(RedisServer::start_with(&[
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "5000",
            ])?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
            )));
        }
        let cluster = Self { nodes };
        cluster.wait_until_ok(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn wait_until_ok(&self, limit: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let all_ok = self.nodes.iter().all(|node| {
                Command::new("redis-cli")
                    .args(["-p", &node.port().to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            if all_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(
                    "the cluster did not reach cluster_state:ok in time",
                ));
            }
            // The nodes agree on the slot map through their gossip; there is no event to
            // wait on from outside, so this polls with a deadline.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `redis+cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }
}

/// A [`crate::RedisStore`] at `url` (a [`RedisServer`]'s or a [`RedisCluster`]'s) under the
/// key prefix `prefix`; panics when it cannot connect.
pub async fn connect(url: String, prefix: impl Into<String>) -> crate::RedisStore {
    let config = crate::RedisStoreConfig {
        url,
        prefix: prefix.into(),
        write_cache_bytes: crate::redis_store::DEFAULT_WRITE_CACHE_BYTES,
    };
    crate::RedisStore::connect(config)
        .await
        .expect("connects to the test's Redis")
}

/// A fresh store for each case of a property test: a [`crate::RedisStore`] at `url` (a
/// [`RedisServer`]'s or a [`RedisCluster`]'s) under its own key prefix, `<prefix><case>`,
/// connected on `runtime`.
pub fn store_per_case<'a>(
    url: String,
    runtime: &'a tokio::runtime::Runtime,
    prefix: &'a str,
) -> impl Fn(u32) -> std::sync::Arc<dyn crate::CounterStore> + 'a {
    move |case| {
        std::sync::Arc::new(runtime.block_on(connect(url.clone(), format!("{prefix}{case}"))))
    }
}
