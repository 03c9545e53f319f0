//! The command line: `parq serve`, `parq migrate`, `parq backup`, `parq openapi`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::config::Config;

/// ParQ: parking reservations.
#[derive(Debug, Parser)]
#[command(name = "parq", version, about)]
pub struct Cli {
    /// A TOML configuration file (then `PARQ_*` variables, then flags, override it).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server. With nothing configured its data is kept in `<data dir>/parq.db`
    /// (SQLite), with the demo city made on the first start; `--memory` keeps nothing.
    Serve {
        /// Address to listen on (`--listen` too), e.g. `0.0.0.0:8080`.
        #[arg(long, visible_alias = "listen", value_name = "ADDR")]
        bind: Option<String>,
        /// Reservation store URL (`sqlite://<path>`, `memory:`, `postgres://…`).
        #[arg(long, value_name = "URL", conflicts_with = "memory")]
        store: Option<String>,
        /// Where the default database file (`parq.db`) is kept.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<String>,
        /// Keep everything in memory: nothing survives the process (`store_url = "memory:"`).
        #[arg(long)]
        memory: bool,
        /// Admission lock URL (`none`, `memory:`).
        #[arg(long, value_name = "URL")]
        lock: Option<String>,
        /// Notifier URL.
        #[arg(long, value_name = "URL")]
        notifier: Option<String>,
        /// Payment gateway (`test`).
        #[arg(long, value_name = "NAME")]
        gateway: Option<String>,
        /// Do not load the demo city.
        #[arg(long)]
        no_demo: bool,
        /// Log format: json or text.
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<String>,
    },
    /// Brings the durable backends' schemas up to date.
    Migrate {
        /// Where the default database file (`parq.db`) is kept.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<String>,
    },
    /// Copies the SQLite database (of `store_url`, or `<data dir>/parq.db`) into a new FILE
    /// with SQLite's online backup: safe while servers are serving on it.
    Backup {
        /// The new file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where the default database file (`parq.db`) is kept.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<String>,
    },
    /// Prints the OpenAPI document.
    Openapi,
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut flags: Vec<(&str, String)> = Vec::new();
    match &cli.command {
        Command::Migrate { data_dir: Some(d) } | Command::Backup { data_dir: Some(d), .. } => {
            flags.push(("data_dir", d.clone()));
        }
        _ => {}
    }
    if let Command::Serve { bind, store, data_dir, memory, lock, notifier, gateway, no_demo, log_format } =
        &cli.command
    {
        if *memory {
            flags.push(("store_url", "memory:".into()));
        }
        for (k, v) in [
            ("bind", bind),
            ("store_url", store),
            ("data_dir", data_dir),
            ("lock_url", lock),
            ("notifier_url", notifier),
            ("gateway", gateway),
            ("log_format", log_format),
        ] {
            if let Some(v) = v {
                flags.push((k, v.clone()));
            }
        }
        if *no_demo {
            flags.push(("demo", "false".into()));
        }
    }
    let config = match Config::load(cli.config.as_deref(), std::env::vars(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("parq: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&crate::openapi::document()).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Command::Backup { file, .. } => backup(&config, &file),
        Command::Migrate { .. } => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("parq: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(migrate(&config))
        }
        Command::Serve { .. } => {
            init_logs(&config);
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("parq: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(serve(config))
        }
    }
}

fn backup(config: &Config, to: &std::path::Path) -> ExitCode {
    let Some(from) = config.sqlite_path() else {
        eprintln!(
            "parq: backup copies an SQLite store; store_url is not sqlite:// (back PostgreSQL up with pg_dump)"
        );
        return ExitCode::from(2);
    };
    match crate::sqlite::backup(&from, to) {
        Ok(()) => {
            println!("backed up {} to {}", from.display(), to.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parq: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config) -> ExitCode {
    match crate::backends::migrate(config, |line| println!("{line}")).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::backends::StartError::Config(e)) => {
            eprintln!("parq: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("parq: migrate failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(config: &Config) {
    let filter: Targets = config.log.parse().unwrap_or_else(|e| {
        eprintln!("parq: log filter {:?}: {e}; using info", config.log);
        Targets::new().with_default(tracing::Level::INFO)
    });
    let registry = tracing_subscriber::registry().with(filter);
    if config.log_format == "text" {
        registry.with(tracing_subscriber::fmt::layer()).init();
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false))
            .init();
    }
}

async fn serve(config: Config) -> ExitCode {
    let running = match crate::app::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("parq: {e}");
            return ExitCode::from(2);
        }
    };
    // The banner is for people and goes to standard error; standard output carries only the
    // (JSON by default) log lines, so that it can be piped to a log collector.
    let names = running.app.state().backends.names;
    tracing::info!(addr = %running.addr, store = names.store, lock = names.lock, notifier = names.notifier,
        gateway = names.gateway, accounts = names.accounts, "listening");
    if let Some(lite) = &running.app.state().backends.sqlite {
        eprintln!(
            "data: {} (SQLite; `parq backup <file>` copies it; --memory keeps nothing)",
            lite.path.display()
        );
    }
    if let Some(demo) = running.app.demo() {
        match running.app.demo_loaded() {
            Some(crate::demo::Loaded::Kept) => eprintln!(
                "demo city kept from an earlier start: {} lots in Nicosia and Limassol",
                demo.lots.len()
            ),
            _ => eprintln!("demo city loaded: {} lots in Nicosia and Limassol", demo.lots.len()),
        }
        for (name, id) in &demo.lots {
            eprintln!("  {id}  {name}");
        }
        eprintln!("demo operator key: {}", demo.operator_key);
        eprintln!("demo gate key:     {}", demo.gate_key);
    }
    eprintln!("listening on {}", running.url());
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    running.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
