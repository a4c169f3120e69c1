//! A real, throwaway PostgreSQL server for tests, started from Debian's packages
//! (`initdb` + `pg_ctl`) on a free loopback port in a temporary directory, once per test
//! binary. Every gateway gets its own fresh database in it.
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user the
//! package creates (`runuser`). A small shell keeps the server's lifetime tied to the test
//! process: it holds the read end of a pipe whose write end lives in this process, and when
//! the process exits (normally, by panic or by signal) the pipe closes and the shell stops the
//! server and deletes its directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    // Never read: holding it keeps the watchdog's stdin open for the life of the process.
    _watchdog: Child,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

const SCRIPT: &str = r#"
dir="$1"; port="$2"; bin="$3"
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir" || exit 1
  as="runuser -u postgres --"
else
  as=""
fi
stop() {
  $as "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$dir"
}
trap 'stop; exit 0' INT TERM HUP
$as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
$as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
  start >/dev/null 2>&1 || { cat "$dir/server.log" >&2; stop; exit 1; }
echo ready
cat >/dev/null
stop
"#;

/// Where Debian puts the server binaries (not on PATH), else wherever PATH has them all.
fn bin_dir() -> Result<PathBuf, String> {
    let complete = |dir: &PathBuf| {
        ["initdb", "pg_ctl", "postgres", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(complete)
                .collect()
        })
        .unwrap_or_default();
    // Newest major version last (the directory names are version numbers).
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = debian.pop() {
        return Ok(dir);
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(complete))
        .ok_or_else(no_postgres)
}

fn no_postgres() -> String {
    "PostgreSQL server binaries not found: install them (`apt-get install -y postgresql`)".into()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn start() -> Result<PgServer, String> {
    let bin = bin_dir()?;
    let mut last_error = String::new();
    // The port is free when picked but could be taken before the server binds it: retry.
    for _ in 0..3 {
        let dir = tempfile::Builder::new()
            .prefix("secureinfer-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let port = free_port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("pg-watchdog")
            .arg(&dir)
            .arg(port.to_string())
            .arg(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() == "ready" {
            return Ok(PgServer {
                port,
                bin,
                _watchdog: child,
            });
        }
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        last_error = String::from_utf8_lossy(&output.stderr).into_owned();
    }
    Err(format!("PostgreSQL did not start: {last_error}"))
}

/// The test binary's PostgreSQL server, started on first use.
pub fn server() -> &'static PgServer {
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

impl PgServer {
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// A new, empty database on the shared server; returns its URL. Synchronous (through
/// `psql`) so that tests which only spawn processes can use it too.
pub fn fresh_database() -> String {
    let server = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new(server.bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
        ])
        .arg("-p")
        .arg(server.port.to_string())
        .arg("-c")
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.url(&name)
}

/// Which database the shared integration suite runs against: `SECUREINFER_TEST_DATABASE=postgres`
/// runs it on PostgreSQL, anything else (or unset) on SQLite.
pub fn suite_uses_postgres() -> bool {
    std::env::var("SECUREINFER_TEST_DATABASE").is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}
