//! The command line: `parq serve`, `parq migrate`, `parq openapi`.

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
    /// Runs the server (on memory with the demo city when nothing else is configured).
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Reservation store URL.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
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
    Migrate,
    /// Prints the OpenAPI document.
    Openapi,
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut flags: Vec<(&str, String)> = Vec::new();
    if let Command::Serve { bind, store, lock, notifier, gateway, no_demo, log_format } = &cli.command {
        for (k, v) in [
            ("bind", bind),
            ("store_url", store),
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
        Command::Migrate => {
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
    let names = running.app.state().backends.names;
    tracing::info!(addr = %running.addr, store = names.store, lock = names.lock, notifier = names.notifier,
        gateway = names.gateway, accounts = names.accounts, "listening");
    if let Some(demo) = running.app.demo() {
        println!("demo city loaded: {} lots in Nicosia and Limassol", demo.lots.len());
        for (name, id) in &demo.lots {
            println!("  {id}  {name}");
        }
        println!("demo operator key: {}", demo.operator_key);
        println!("demo gate key:     {}", demo.gate_key);
    }
    println!("listening on {}", running.url());
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
