//! `switchyard db`: serve the OVN northbound and southbound databases.
//!
//! [`DbServerConfig`] is the one typed description of what to serve (remotes, data
//! directory, limits); the `switchyard db` subcommand ([`DbArgs`]) and tests build it. [`start`]
//! binds every remote first (refusing a `punix:` socket a live process answers on), then opens
//! or creates `<data_dir>/OVN_Northbound.db` and `OVN_Southbound.db` (locking them as
//! ovsdb-server does, replaying their logs, converting them if the built-in schema is newer),
//! and only then serves: a server that cannot bind or lock leaves nothing behind and no client
//! sees it half-started. Each remote serves both databases, as one ovsdb-server serving two
//! files would. [`serve`] runs until SIGINT/SIGTERM; `--repair` runs [`repair`] and
//! `--convert IN OUT` [`storage::convert`] (to or from ovsdb-server's file format) instead, the
//! way `ovsdb-tool` works on a stopped server's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::convert::convert;
use crate::error::OvsdbError;
use crate::schemas;
use crate::server::{Listener, OvsdbServer, Remote, ServerConfig, ServerError};
use crate::storage::{self, CompactionPolicy, Log, Repair, StorageError};

/// What `switchyard db` serves.
#[derive(Debug, Clone)]
pub struct DbServerConfig {
    /// Where the northbound database listens (default `ptcp:6641:127.0.0.1`).
    pub nb_remotes: Vec<Remote>,
    /// Where the southbound database listens (default `ptcp:6642:127.0.0.1`).
    pub sb_remotes: Vec<Remote>,
    /// Directory of the database files.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub compaction: CompactionPolicy,
}

impl Default for DbServerConfig {
    fn default() -> Self {
        DbServerConfig {
            nb_remotes: vec!["ptcp:6641:127.0.0.1".parse().expect("valid remote")],
            sb_remotes: vec!["ptcp:6642:127.0.0.1".parse().expect("valid remote")],
            data_dir: PathBuf::from("/var/lib/switchyard"),
            server: ServerConfig::default(),
            compaction: CompactionPolicy::default(),
        }
    }
}

/// Why the database server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{path}: {source}")]
    Convert {
        path: PathBuf,
        #[source]
        source: OvsdbError,
    },
    #[error("built-in schema is invalid: {0}")]
    Schema(#[from] OvsdbError),
    #[error("waiting for a shutdown signal failed: {0}")]
    Signal(#[source] std::io::Error),
}

/// A running database server and the addresses it actually bound.
pub struct RunningDb {
    pub server: OvsdbServer,
    pub nb_remotes: Vec<Remote>,
    pub sb_remotes: Vec<Remote>,
}

fn open_or_create(
    dir: &Path,
    schema_text: &str,
    policy: CompactionPolicy,
) -> Result<(Log, crate::Database), DbError> {
    let schema = schemas::parse(schema_text)?;
    let path = dir.join(format!("{}.db", schema.name));
    if path.exists() {
        let (mut log, db) = Log::open(&path, policy)?;
        tracing::info!(path = %path.display(), "recovered database");
        if db.schema.json == schema.json {
            return Ok((log, db));
        }
        // The built-in schema changed (an upgrade): convert the data and rewrite the file.
        tracing::info!(path = %path.display(), stored = %db.schema.version, built_in = %schema.version, "converting database to the built-in schema");
        let converted = convert(&db, Arc::new(schema)).map_err(|source| DbError::Convert {
            path: path.clone(),
            source,
        })?;
        log.compact(&converted)?;
        Ok((log, converted))
    } else {
        tracing::info!(path = %path.display(), "creating database");
        Ok(Log::create(&path, Arc::new(schema), policy)?)
    }
}

/// Binds every remote, opens the databases, then serves; returns once every remote accepts.
pub async fn start(cfg: &DbServerConfig) -> Result<RunningDb, DbError> {
    let bind = |remotes: &[Remote]| -> Result<Vec<Listener>, ServerError> {
        remotes.iter().map(Listener::bind).collect()
    };
    // Dropping these on an error below closes them and removes their socket files.
    let nb_listeners = bind(&cfg.nb_remotes)?;
    let sb_listeners = bind(&cfg.sb_remotes)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| DbError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let server = OvsdbServer::new(cfg.server);
    for text in [schemas::OVN_NB, schemas::OVN_SB] {
        let (log, db) = open_or_create(&cfg.data_dir, text, cfg.compaction)?;
        server.add_database(db, Some(log))?;
    }
    let serve = |listeners: Vec<Listener>| -> Result<Vec<Remote>, ServerError> {
        listeners.into_iter().map(|l| server.serve_on(l)).collect()
    };
    let nb = serve(nb_listeners)?;
    let sb = serve(sb_listeners)?;
    tracing::info!(nb = ?nb.iter().map(ToString::to_string).collect::<Vec<_>>(), sb = ?sb.iter().map(ToString::to_string).collect::<Vec<_>>(), "OVSDB server listening");
    Ok(RunningDb {
        server,
        nb_remotes: nb,
        sb_remotes: sb,
    })
}

/// Repairs the database files in `data_dir` (see [`storage::repair`]); files that do not
/// exist are skipped. Refused while a server has them open.
pub fn repair(data_dir: &Path) -> Result<Vec<Repair>, DbError> {
    let mut done = Vec::new();
    for text in [schemas::OVN_NB, schemas::OVN_SB] {
        let path = data_dir.join(format!("{}.db", schemas::parse(text)?.name));
        if path.exists() {
            done.push(storage::repair(&path)?);
        }
    }
    Ok(done)
}

/// Serves until SIGINT or SIGTERM.
///
/// The handlers are installed before anything is bound: a signal that arrives while the
/// databases open (a service manager stopping us during start-up, or a test that stops the
/// server as soon as it answers) is then kept and handled once serving started, instead of
/// killing the process with the default action and leaving its `punix:` socket files behind.
pub async fn serve(cfg: DbServerConfig) -> Result<(), DbError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DbError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DbError::Signal)?;
    let _running = start(&cfg).await?;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    Ok(())
}

/// Command-line flags of `switchyard db`.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// Northbound remote(s): ptcp:PORT, ptcp:PORT:IP, tcp:IP:PORT, punix:PATH or unix:PATH.
    #[arg(long = "nb-remote", default_value = "ptcp:6641:127.0.0.1")]
    pub nb_remotes: Vec<Remote>,
    /// Southbound remote(s).
    #[arg(long = "sb-remote", default_value = "ptcp:6642:127.0.0.1")]
    pub sb_remotes: Vec<Remote>,
    /// Directory holding OVN_Northbound.db and OVN_Southbound.db.
    #[arg(long, default_value = "/var/lib/switchyard")]
    pub data_dir: PathBuf,
    /// Largest accepted JSON-RPC message, in bytes.
    #[arg(long, default_value_t = ServerConfig::default().max_message_bytes)]
    pub max_message_bytes: usize,
    /// Milliseconds of client silence before an echo probe (and as much again before the
    /// connection is closed); 0 disables probing.
    #[arg(long, default_value_t = 5000)]
    pub inactivity_probe_ms: u64,
    /// Do not serve: repair the database files in --data-dir and exit. A file damaged in the
    /// middle keeps the records before the damage; the original is kept beside it as
    /// `<file>.corrupt-<unix time>`, and what was dropped is printed.
    #[arg(long)]
    pub repair: bool,
    /// Do not serve: convert the database file IN to the other server's format in OUT (which
    /// must not exist) and exit. A switchyard db file becomes an ovsdb-server standalone file
    /// (ovsdb(5)), and a standalone file becomes one `switchyard db` serves (copy it into
    /// --data-dir as OVN_Northbound.db or OVN_Southbound.db). Every row keeps its UUID.
    #[arg(long, num_args = 2, value_names = ["IN", "OUT"])]
    pub convert: Option<Vec<PathBuf>>,
}

impl From<DbArgs> for DbServerConfig {
    fn from(a: DbArgs) -> Self {
        DbServerConfig {
            nb_remotes: a.nb_remotes,
            sb_remotes: a.sb_remotes,
            data_dir: a.data_dir,
            server: ServerConfig {
                max_message_bytes: a.max_message_bytes,
                inactivity_probe: (a.inactivity_probe_ms > 0)
                    .then(|| std::time::Duration::from_millis(a.inactivity_probe_ms)),
                ..ServerConfig::default()
            },
            compaction: CompactionPolicy::default(),
        }
    }
}

/// Entry point for `switchyard db`: converts a file with `--convert`, repairs with `--repair`,
/// otherwise builds a runtime and
/// serves until a shutdown signal.
pub fn cli(args: DbArgs) -> Result<(), DbError> {
    if let Some([input, output]) = args.convert.as_deref() {
        println!("{}", storage::convert(input, output)?);
        return Ok(());
    }
    if args.repair {
        let repaired = repair(&args.data_dir)?;
        if repaired.is_empty() {
            println!("{}: no database files to repair", args.data_dir.display());
        }
        for r in repaired {
            println!("{r}");
        }
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DbError::Signal)?;
    rt.block_on(serve(args.into()))
}
