//! A throwaway PostgreSQL cluster of a test's own (initdb + pg_ctl in a
//! temporary directory, never the shared server), on a port picked free at
//! run time: for the outage test and the TLS-to-PostgreSQL test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Prerequisite: initdb, pg_ctl and postgres, and as root a `postgres` user
/// to run them as (initdb refuses root).
pub fn postgres_binaries() -> Result<(), String> {
    let bin = PgInstance::find_bindir().ok_or(
        "no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin; \
         set CALLSCOPE_PG_BINDIR",
    )?;
    for tool in ["initdb", "pg_ctl", "postgres", "pg_basebackup"] {
        if !bin.join(tool).exists() {
            return Err(format!(
                "{} is missing (set CALLSCOPE_PG_BINDIR to the PostgreSQL binaries)",
                bin.join(tool).display()
            ));
        }
    }
    if is_root() {
        let user = Command::new("id").args(["-u", "postgres"]).output();
        if !user.is_ok_and(|o| o.status.success()) {
            return Err("running as root and there is no `postgres` user to run initdb as".into());
        }
    }
    Ok(())
}

/// A throwaway PostgreSQL instance; stopped (immediately) when dropped.
pub struct PgInstance {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the PostgreSQL tools as this user (initdb refuses root).
    run_as: Option<String>,
    /// More `postgres` options for every start.
    options: String,
}

impl PgInstance {
    /// The directory of initdb/pg_ctl: `CALLSCOPE_PG_BINDIR`, else the newest
    /// `/usr/lib/postgresql/*/bin`.
    pub fn find_bindir() -> Option<PathBuf> {
        if let Ok(dir) = std::env::var("CALLSCOPE_PG_BINDIR") {
            return Some(PathBuf::from(dir));
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("pg_ctl").exists().then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    }

    pub fn init() -> Result<Self, String> {
        let bin = Self::find_bindir().ok_or("no PostgreSQL binaries (initdb, pg_ctl) found")?;
        for tool in ["initdb", "pg_ctl", "postgres"] {
            if !bin.join(tool).exists() {
                return Err(format!("{} is missing", bin.join(tool).display()));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("callscope-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let run_as = is_root().then(|| "postgres".to_owned());
        chown_to(run_as.as_deref(), dir.path())?;
        let instance = Self {
            bin,
            dir,
            port: 0,
            options: String::new(),
            run_as,
        };
        let data = instance.data_dir();
        instance.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ],
        )?;
        Ok(instance)
    }

    /// A streaming replica of `primary` (which must be running):
    /// `pg_basebackup -R` into a directory of its own, not started yet.
    pub fn replica_of(primary: &PgInstance) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("callscope-pg-replica-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        chown_to(primary.run_as.as_deref(), dir.path())?;
        let replica = Self {
            bin: primary.bin.clone(),
            dir,
            port: 0,
            options: String::new(),
            run_as: primary.run_as.clone(),
        };
        let data = replica.data_dir();
        let port = primary.port.to_string();
        replica.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                // Writes standby.signal and primary_conninfo: the copy
                // starts as a hot standby streaming from the primary.
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        )?;
        Ok(replica)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Starts the instance on a port that is free now: asks the kernel for
    /// one (port 0), releases it and lets PostgreSQL bind it; tries again
    /// with another if something took it in between.
    pub fn start_on_free_port(&mut self) {
        self.start_on_free_port_with("");
    }

    /// [`Self::start_on_free_port`] with more `postgres` options (`-c …`),
    /// kept for later starts.
    pub fn start_on_free_port_with(&mut self, options: &str) {
        self.options = options.to_owned();
        for attempt in 1..=5 {
            self.port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            match self.try_start() {
                Ok(()) => return,
                Err(e) if attempt < 5 && e.contains("could not bind") => {
                    eprintln!("port {} was taken, trying another: {e}", self.port);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Starts the instance again on its port (after [`Self::stop`]).
    pub fn start(&self) {
        self.try_start().unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn try_start(&self) -> Result<(), String> {
        let dir = self.dir.path().to_str().unwrap();
        let options = format!(
            "-k {dir} -p {} -c listen_addresses=127.0.0.1 {}",
            self.port, self.options
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
        .map_err(|e| format!("{e}\n{}", read_log(&log)))
    }

    pub fn stop(&self, mode: &str) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-m",
                mode,
                "-w",
                "-t",
                "30",
                "stop",
            ],
        )
    }
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
    }
}

/// Writes `text` into the data directory as `name`, readable by the server's
/// user alone (PostgreSQL refuses a key file others can read).
impl PgInstance {
    pub fn install_private_file(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data_dir().join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        chown_to(self.run_as.as_deref(), &path)?;
        Ok(path)
    }
}

/// Gives `path` to `user` (the PostgreSQL tools' user when running as root).
pub fn chown_to(user: Option<&str>, path: &Path) -> Result<(), String> {
    let Some(user) = user else {
        return Ok(());
    };
    let status = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .map_err(|e| format!("chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown {user} {} failed", path.display()))
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
