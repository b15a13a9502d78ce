//! Redis on 127.0.0.1: a single node, and a 3-master + 3-replica cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::net::{free_port, wait_until};
use crate::process::{ChildGuard, run, tail, which};
use crate::{HarnessError, Result};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Node timeout for cluster nodes: a killed master is failed over in a few seconds.
pub const CLUSTER_NODE_TIMEOUT_MS: u32 = 2000;

fn redis_server() -> Result<PathBuf> {
    std::env::var_os("SURGE_REDIS_SERVER")
        .map(PathBuf::from)
        .or_else(|| which("redis-server"))
        .ok_or(HarnessError::Missing {
            program: "redis-server".into(),
            hint: "apt-get install redis-server, or set SURGE_REDIS_SERVER",
        })
}

/// Runs `redis-cli -p port <args>` and returns its output.
pub fn cli(port: u16, args: &[&str]) -> Result<String> {
    run(Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args))
}

/// One `redis-server` process with a fixed port and directory, restartable.
#[derive(Debug)]
pub struct RedisNode {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// `redis-cli` arguments that reach it (TLS and credentials), after host and port.
    cli_args: Vec<String>,
    /// The URL clients use.
    url: String,
    child: Option<ChildGuard>,
}

impl RedisNode {
    fn new(port: u16, dir: PathBuf, extra: Vec<String>) -> Self {
        Self {
            port,
            dir,
            extra,
            cli_args: Vec::new(),
            url: format!("redis://127.0.0.1:{port}"),
            child: None,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>` (`rediss://user:password@…` for a TLS node).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Starts the process (no persistence) and waits for `PING`.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let mut command = Command::new(redis_server()?);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra);
        let mut child = ChildGuard::spawn(&mut command, &self.log())?;
        let port = self.port;
        let mut ping: Vec<&str> = self.cli_args.iter().map(String::as_str).collect();
        ping.push("ping");
        let mut exited = false;
        let ready = wait_until(
            &format!("redis on port {port}"),
            READY_TIMEOUT,
            || {
                if cli(port, &ping).is_ok_and(|answer| answer.trim() == "PONG") {
                    return Ok(true);
                }
                // A server that could not bind its ports exits at once: no use waiting.
                exited = !child.is_running();
                Ok(exited)
            },
            || tail(&self.log(), 10),
        );
        if exited {
            return Err(HarnessError::Command {
                command: format!("redis-server --port {port}"),
                output: format!("exited while starting: {}", tail(&self.log(), 10)),
            });
        }
        self.child = Some(child);
        ready
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }
}

/// A single Redis node in its own temporary directory.
#[derive(Debug)]
pub struct RedisServer {
    node: RedisNode,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a node on a free port.
    pub fn start() -> Result<Self> {
        Self::start_on(free_port()?)
    }

    /// Starts a node on `port` (a process already pointed at it connects when it is up).
    pub fn start_on(port: u16) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("surge-redis-").tempdir()?;
        let mut node = RedisNode::new(port, dir.path().to_path_buf(), Vec::new());
        node.start()?;
        Ok(Self { node, _dir: dir })
    }

    /// Starts a node that speaks only TLS, with the server certificate of `certs`, and
    /// refuses every client but ACL user `user` with `password`.
    pub fn start_tls(certs: &crate::tls::TestCerts, user: &str, password: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("surge-redis-tls-")
            .tempdir()?;
        let port = free_port()?;
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let extra: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(certs.cert()),
            "--tls-key-file",
            &path(certs.key()),
            "--tls-ca-cert-file",
            &path(certs.ca()),
            "--tls-auth-clients",
            "no",
            "--user",
            "default",
            "off",
            "--user",
            user,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let mut node = RedisNode::new(port, dir.path().to_path_buf(), extra);
        node.cli_args = vec![
            "--tls".into(),
            "--cacert".into(),
            path(certs.ca()),
            "--user".into(),
            user.into(),
            "--pass".into(),
            password.into(),
            "--no-auth-warning".into(),
        ];
        node.url = format!("rediss://{user}:{password}@127.0.0.1:{port}");
        node.start()?;
        Ok(Self { node, _dir: dir })
    }

    /// `redis://127.0.0.1:<port>` (`rediss://user:password@…` for a TLS node).
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.node.port()
    }

    /// Kills the server (data is lost, as after a crash without persistence).
    pub fn kill(&mut self) {
        self.node.kill();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.node.start()
    }
}

/// Role of a cluster node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves a slot range.
    Master,
    /// Replicates a master.
    Replica,
}

/// A Redis Cluster of three masters and three replicas.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisNode>,
    dir: TempDir,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until it is fully healthy.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("surge-redis-cluster-")
            .tempdir()?;
        let mut nodes = Vec::new();
        for i in 0..6 {
            let node_dir = dir.path().join(format!("node{i}"));
            nodes.push(Self::start_node(&node_dir)?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        run(Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"]))?;
        let cluster = Self { nodes, dir };
        cluster.wait_healthy()?;
        Ok(cluster)
    }

    /// Starts one cluster node on a free client port and bus port. Another process may take
    /// a port between the check and the bind; the node then exits, and is started again on
    /// other ports.
    fn start_node(node_dir: &Path) -> Result<RedisNode> {
        let mut attempt = 0;
        loop {
            let port = free_port()?;
            let bus = free_port()?;
            let extra = vec![
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-port".into(),
                bus.to_string(),
                "--cluster-config-file".into(),
                node_dir.join("nodes.conf").to_string_lossy().into_owned(),
                "--cluster-node-timeout".into(),
                CLUSTER_NODE_TIMEOUT_MS.to_string(),
            ];
            let mut node = RedisNode::new(port, node_dir.to_path_buf(), extra);
            match node.start() {
                Ok(()) => return Ok(node),
                Err(e @ HarnessError::Command { .. }) if attempt < 3 => {
                    attempt += 1;
                    eprintln!("redis cluster node: {e}; trying other ports");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// Ports of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisNode::port).collect()
    }

    /// The role a running node reports now.
    pub fn role(&self, port: u16) -> Result<Role> {
        let out = cli(port, &["role"])?;
        match out.lines().next().map(str::trim) {
            Some("master") => Ok(Role::Master),
            Some("slave") => Ok(Role::Replica),
            other => Err(HarnessError::Command {
                command: format!("ROLE on {port}"),
                output: format!("unexpected answer {other:?}"),
            }),
        }
    }

    /// Ports of the running nodes that are masters now.
    pub fn masters(&mut self) -> Vec<u16> {
        let running: Vec<u16> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then_some(n.port))
            .collect();
        running
            .into_iter()
            .filter(|p| matches!(self.role(*p), Ok(Role::Master)))
            .collect()
    }

    /// Waits until every running node says `cluster_state:ok`, there are three masters, and
    /// every replica's link to its master is up.
    pub fn wait_healthy(&self) -> Result<()> {
        let ports = self.ports();
        wait_until(
            "redis cluster",
            READY_TIMEOUT,
            || {
                let mut masters = 0;
                for port in &ports {
                    let Ok(info) = cli(*port, &["cluster", "info"]) else {
                        continue;
                    };
                    if !info.contains("cluster_state:ok") {
                        return Ok(false);
                    }
                    match self.role(*port)? {
                        Role::Master => masters += 1,
                        Role::Replica => {
                            if !cli(*port, &["info", "replication"])?
                                .contains("master_link_status:up")
                            {
                                return Ok(false);
                            }
                        }
                    }
                }
                Ok(masters == 3)
            },
            || self.log_tails(),
        )
    }

    fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("[{}] {}", n.port, tail(&n.log(), 3)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn node(&mut self, port: u16) -> Result<&mut RedisNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .ok_or_else(|| HarnessError::Command {
                command: format!("cluster node {port}"),
                output: "no such node in this cluster".into(),
            })
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) -> Result<()> {
        self.node(port)?.kill();
        Ok(())
    }

    /// Starts the node on `port` again; it rejoins with its saved cluster config.
    pub fn restart(&mut self, port: u16) -> Result<()> {
        self.node(port)?.start()
    }

    /// Waits until a replica has taken over from a killed master: three running masters
    /// again, and `cluster_state:ok` on every running node.
    pub fn wait_failover(&mut self) -> Result<()> {
        let running: Vec<u16> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then_some(n.port))
            .collect();
        wait_until(
            "redis cluster failover",
            READY_TIMEOUT,
            || {
                let mut masters = 0;
                for port in &running {
                    if !cli(*port, &["cluster", "info"])?.contains("cluster_state:ok") {
                        return Ok(false);
                    }
                    if self.role(*port)? == Role::Master {
                        masters += 1;
                    }
                }
                Ok(masters == 3)
            },
            || self.log_tails(),
        )
    }

    /// The directory holding every node's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
