//! PostgreSQL primary + streaming replica on 127.0.0.1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::net::{free_port, wait_until};
use crate::process::{command_as, give_to, run, tail};
use crate::{HarnessError, Result};

const PG_USER: &str = "postgres";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory holding `initdb`, `pg_ctl` and `pg_basebackup`: `SURGE_PG_BIN`, else the
/// newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SURGE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("pg_ctl").is_file().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(HarnessError::Missing {
            program: "PostgreSQL server binaries".into(),
            hint: "install postgresql (Debian: apt-get install postgresql) or set SURGE_PG_BIN",
        })
}

/// One PostgreSQL server (data directory + port).
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    running: bool,
}

impl PgServer {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A libpq key/value connection string for database `db`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={PG_USER} dbname={db}",
            self.port
        )
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<String> {
        run(command_as(PG_USER, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(args))
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) -> Result<()> {
        let log = self.log.to_string_lossy().into_owned();
        self.pg_ctl(&["-l", &log, "-w", "-t", "60", "start"])
            .map_err(|e| self.with_log(e))?;
        self.running = true;
        Ok(())
    }

    /// Stops the server at once (`-m immediate`, like a crash: no checkpoint).
    pub fn kill(&mut self) -> Result<()> {
        if self.running {
            self.pg_ctl(&["-m", "immediate", "-w", "stop"])?;
            self.running = false;
        }
        Ok(())
    }

    /// Stops the server cleanly (`-m fast`).
    pub fn stop(&mut self) -> Result<()> {
        if self.running {
            self.pg_ctl(&["-m", "fast", "-w", "stop"])?;
            self.running = false;
        }
        Ok(())
    }

    /// Whether the harness believes it is running.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Runs SQL through `psql` on database `db` and returns the unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = run(Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.conninfo(db))
            .arg("-c")
            .arg(sql))?;
        Ok(out.trim().to_string())
    }

    fn with_log(&self, e: HarnessError) -> HarnessError {
        HarnessError::Command {
            command: format!("PostgreSQL on port {}", self.port),
            output: format!("{e}\nlog:\n{}", tail(&self.log, 20)),
        }
    }
}

/// A primary and one streaming replica, each in its own data directory under a temporary
/// directory that is removed on drop.
#[derive(Debug)]
pub struct PgPair {
    /// The primary (read-write).
    pub primary: PgServer,
    /// The hot-standby replica (read-only, streaming from the primary).
    pub replica: PgServer,
    dir: TempDir,
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

impl PgPair {
    /// Creates, starts and connects a primary and a replica; returns once the replica streams.
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// [`PgPair::start`] with both servers speaking TLS with the server certificate of
    /// `certs`, and refusing every TCP connection that does not.
    pub fn start_tls(certs: &crate::tls::TestCerts) -> Result<Self> {
        Self::start_with(Some(certs))
    }

    fn start_with(tls: Option<&crate::tls::TestCerts>) -> Result<Self> {
        let bin = pg_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("surge-pg-").tempdir()?;
        give_to(PG_USER, dir.path())?;
        let root = dir.path().to_path_buf();
        let primary_data = root.join("primary");
        run(command_as(PG_USER, &bin.join("initdb"))
            .arg("-D")
            .arg(&primary_data)
            .args([
                "--auth=trust",
                "-U",
                PG_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]))?;
        let primary_port = free_port()?;
        let socket_dir = root.to_string_lossy().into_owned();
        append(
            &primary_data.join("postgresql.conf"),
            &format!(
                "\nport = {primary_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n\
                 wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\nmax_connections = 200\n\
                 shared_buffers = 32MB\nfsync = off\nfull_page_writes = off\nwal_keep_size = 64MB\n"
            ),
        )?;
        append(
            &primary_data.join("pg_hba.conf"),
            "\nhost replication all 127.0.0.1/32 trust\n",
        )?;
        if let Some(certs) = tls {
            // The replica copies this configuration (and the files, which live in its data
            // directory too once pg_basebackup has run, under the same relative names).
            std::fs::copy(certs.cert(), primary_data.join("server.crt"))?;
            std::fs::copy(certs.key(), primary_data.join("server.key"))?;
            give_to(PG_USER, &primary_data)?;
            run(Command::new("chmod")
                .arg("0600")
                .arg(primary_data.join("server.key")))?;
            append(
                &primary_data.join("postgresql.conf"),
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            )?;
            let hba = primary_data.join("pg_hba.conf");
            let rules = std::fs::read_to_string(&hba)?;
            std::fs::write(
                &hba,
                format!(
                    "hostnossl all all 0.0.0.0/0 reject\nhostnossl replication all 0.0.0.0/0 reject\n{rules}"
                ),
            )?;
        }
        let mut primary = PgServer {
            bin: bin.clone(),
            data: primary_data,
            log: root.join("primary.log"),
            port: primary_port,
            running: false,
        };
        primary.start()?;

        let replica_data = root.join("replica");
        run(command_as(PG_USER, &bin.join("pg_basebackup"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port.to_string(),
                "-U",
                PG_USER,
            ])
            .arg("-D")
            .arg(&replica_data)
            .args(["-R", "-X", "stream", "-c", "fast"]))?;
        let replica_port = free_port()?;
        append(
            &replica_data.join("postgresql.conf"),
            &format!("\nport = {replica_port}\n"),
        )?;
        let mut replica = PgServer {
            bin,
            data: replica_data,
            log: root.join("replica.log"),
            port: replica_port,
            running: false,
        };
        replica.start()?;
        let pair = Self {
            primary,
            replica,
            dir,
        };
        pair.wait_streaming()?;
        Ok(pair)
    }

    /// Waits until the primary reports the replica as streaming.
    pub fn wait_streaming(&self) -> Result<()> {
        wait_until(
            "streaming replication",
            READY_TIMEOUT,
            || {
                Ok(self.primary.psql(
                    "postgres",
                    "select count(*) from pg_stat_replication where state = 'streaming'",
                )? == "1")
            },
            || tail(&self.replica.log, 10),
        )
    }

    /// Creates database `name` on the primary (it reaches the replica by replication).
    pub fn create_database(&self, name: &str) -> Result<()> {
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(HarnessError::Command {
                command: "create database".into(),
                output: format!("{name:?}: use lower-case letters, digits and '_'"),
            });
        }
        self.primary
            .psql("postgres", &format!("create database {name}"))
            .map(|_| ())
    }

    /// The temporary directory holding both data directories and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        self.replica.kill().ok();
        self.primary.kill().ok();
    }
}
