//! The command line: `parq serve`, `parq migrate`, `parq backup`, `parq openapi`, `parq config keys`; the pass
//! keyring (`parq keys generate|rotate|retire|list`); operators and their API keys against the
//! configured store (`parq operator create`, `parq key create|list|revoke`).

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
    /// The pass keyring file (`pass_keys`): make one, add a key, retire one, list them.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Operators, in the configured store (PostgreSQL or the SQLite file).
    Operator {
        /// Where the default database file (`parq.db`) is kept.
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<String>,
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Operators' API keys, in the configured account store.
    Key {
        /// Where the default database file (`parq.db`) is kept.
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<String>,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// About the configuration itself.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Writes a new keyring of one fresh key (id 1): into a new FILE, readable by its owner
    /// only, or to standard output. Give the same file to every replica
    /// (`PARQ_PASS_KEYS_FILE=FILE`).
    Generate {
        /// The new file (refused when it exists).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Adds a fresh key with the next id to the keyring FILE. Once every replica is restarted
    /// with the file, it signs new passes; the older keys still verify theirs.
    Rotate {
        /// The keyring file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Retires key ID of the keyring FILE: passes it signed are refused once the replicas are
    /// restarted with the file. Its seed is removed; its id is never used again.
    Retire {
        /// The keyring file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The key's id.
        #[arg(value_name = "ID")]
        id: u32,
    },
    /// Lists the keys of the keyring FILE: id, state and public key (never a seed).
    List {
        /// The keyring file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Makes an operator and its first operator API key, and prints both (the key only now).
    Create {
        /// The operator's name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// How many live holds one driver may have across its lots (default: no limit).
        #[arg(long, value_name = "N")]
        max_holds_per_user: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Makes an API key for an operator, and prints it (only now).
    Create {
        /// The operator's id.
        #[arg(long, value_name = "ID")]
        operator: uuid::Uuid,
        /// `operator` (manages lots, spots and keys) or `gate` (scans passes).
        #[arg(long, value_name = "ROLE", value_parser = ["operator", "gate"])]
        role: String,
        /// A name for people (default: the role).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists an operator's API keys (never the keys themselves), revoked ones too.
    List {
        /// The operator's id.
        #[arg(long, value_name = "ID")]
        operator: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revokes an API key: every replica refuses it from the next request on.
    Revoke {
        /// The key's id.
        #[arg(value_name = "KEY_ID")]
        id: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Lists every configuration key, one a line: the key, its kind (`string`, `integer`,
    /// `boolean`, `secret`) and the `PARQ_*` variables that set it (a secret's also from the
    /// file `PARQ_<KEY>_FILE` names). Other `PARQ_*` variables are not read.
    Keys,
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Reads no configuration: it describes it.
    if let Command::Config { what: ConfigCommand::Keys } = &cli.command {
        for (key, kind) in crate::config::keys() {
            println!("{key}\t{kind}\t{}", crate::config::env_names(key).join(" "));
        }
        return ExitCode::SUCCESS;
    }
    let mut flags: Vec<(&str, String)> = Vec::new();
    match &cli.command {
        Command::Migrate { data_dir: Some(d) }
        | Command::Backup { data_dir: Some(d), .. }
        | Command::Operator { data_dir: Some(d), .. }
        | Command::Key { data_dir: Some(d), .. } => {
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
    // The keyring file commands need no configuration.
    if let Command::Keys { command } = &cli.command {
        return keys(command);
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
        Command::Keys { .. } => ExitCode::SUCCESS,
        Command::Operator { command, .. } => admin(&config, Admin::Operator(command)),
        Command::Key { command, .. } => admin(&config, Admin::Key(command)),
        Command::Config { .. } => ExitCode::SUCCESS,
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

/// `parq keys …`: the keyring file.
fn keys(command: &KeysCommand) -> ExitCode {
    use crate::passkeys::Keyring;
    let read = |file: &std::path::Path| -> Result<Keyring, ExitCode> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            eprintln!("parq: cannot read {}: {e}", file.display());
            ExitCode::from(2)
        })?;
        Keyring::parse(&text).map_err(|e| {
            eprintln!("parq: the keyring {} {e}", file.display());
            ExitCode::from(2)
        })
    };
    match command {
        KeysCommand::Generate { out } => {
            let ring = match Keyring::generate() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("parq: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match out {
                None => {
                    print!("{}", ring.to_document());
                    ExitCode::SUCCESS
                }
                Some(file) => match write_secret(file, &ring.to_document(), true) {
                    Ok(()) => {
                        println!(
                            "wrote a pass keyring with key 1 to {}; give it to every replica as PARQ_PASS_KEYS_FILE={}",
                            file.display(),
                            file.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("parq: {e}");
                        ExitCode::FAILURE
                    }
                },
            }
        }
        KeysCommand::Rotate { file } => {
            let mut ring = match read(file) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let old = ring.signing_id();
            let id = match ring.rotate() {
                Ok(id) => id,
                Err(e) => {
                    eprintln!("parq: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = write_secret(file, &ring.to_document(), false) {
                eprintln!("parq: {e}");
                return ExitCode::FAILURE;
            }
            println!(
                "added key {id} to {}: it signs new passes once every replica is restarted with the file; \
                 key {old} still verifies until `parq keys retire {} {old}`",
                file.display(),
                file.display()
            );
            ExitCode::SUCCESS
        }
        KeysCommand::Retire { file, id } => {
            let mut ring = match read(file) {
                Ok(r) => r,
                Err(code) => return code,
            };
            match ring.retire(*id) {
                Ok(false) => {
                    println!("key {id} of {} was retired already", file.display());
                    ExitCode::SUCCESS
                }
                Ok(true) => match write_secret(file, &ring.to_document(), false) {
                    Ok(()) => {
                        println!(
                            "retired key {id} of {}: passes it signed are refused once every replica is restarted with the file",
                            file.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("parq: {e}");
                        ExitCode::FAILURE
                    }
                },
                Err(e) => {
                    eprintln!("parq: {e}");
                    ExitCode::from(2)
                }
            }
        }
        KeysCommand::List { file } => {
            let ring = match read(file) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let signing = ring.signing_id();
            for k in ring.keys() {
                let state = if k.retired {
                    "retired"
                } else if k.id == signing {
                    "signs"
                } else {
                    "verifies"
                };
                let public = k.seed.as_ref().map_or_else(|| "-".to_owned(), |s| s.public_key().to_hex());
                println!("{:>4}  {state:<8}  {public}", k.id);
            }
            ExitCode::SUCCESS
        }
    }
}

/// Writes a secret file, readable by its owner only: a new one (`new`: refused when it
/// exists), or in place of an existing one (through a new file renamed over it, keeping its
/// permissions).
fn write_secret(file: &std::path::Path, text: &str, new: bool) -> Result<(), String> {
    use std::io::Write;
    let open = |path: &std::path::Path| {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(path)
    };
    if new {
        let mut f = open(file).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!(
                    "{} exists: give a new file (`parq keys rotate` adds a key to a keyring)",
                    file.display()
                )
            }
            _ => format!("cannot create {}: {e}", file.display()),
        })?;
        return f
            .write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", file.display()));
    }
    let perms =
        std::fs::metadata(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?.permissions();
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(format!(".new-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::rename(&tmp, file)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", file.display())
    })
}

/// An operator or API key command.
enum Admin {
    Operator(OperatorCommand),
    Key(KeyCommand),
}

fn admin(config: &Config, command: Admin) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parq: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        match run_admin(config, command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, message)) => {
                eprintln!("parq: {message}");
                ExitCode::from(code)
            }
        }
    })
}

async fn run_admin(config: &Config, command: Admin) -> Result<(), (u8, String)> {
    use crate::accounts::Role;
    let failed = |e: parq_core::Error| (1, e.to_string());
    let s = crate::backends::stores(config).await.map_err(|e| match e {
        crate::backends::StartError::Config(e) => (2, e.to_string()),
        e => (1, e.to_string()),
    })?;
    match command {
        Admin::Operator(OperatorCommand::Create { name, max_holds_per_user, json }) => {
            let made = crate::operators::create(&*s.store, &s.accounts, &name, max_holds_per_user)
                .await
                .map_err(failed)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "operator_id": made.operator.id,
                        "name": made.operator.name,
                        "max_holds_per_user": made.operator.max_holds_per_user,
                        "key_id": made.record.id,
                        "key": made.key,
                    })
                );
            } else {
                println!("operator {}  {}", made.operator.id, made.operator.name);
                println!("operator API key (shown this once; keep it secret): {}", made.key);
                println!("  key id {} (`parq key revoke {}` revokes it)", made.record.id, made.record.id);
            }
        }
        Admin::Key(KeyCommand::Create { operator, role, name, json }) => {
            let role = if role == "gate" { Role::Gate } else { Role::Operator };
            let name = name.unwrap_or_else(|| role.as_str().to_owned());
            let operator = parq_core::OperatorId::from_uuid(operator);
            let (record, key) = crate::operators::create_key(&*s.store, &s.accounts, operator, role, &name)
                .await
                .map_err(failed)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": record.id, "name": record.name, "role": record.role,
                        "operator_id": record.operator, "key": key,
                    })
                );
            } else {
                println!(
                    "{} API key {} ({}) for operator {}",
                    role.as_str(),
                    record.id,
                    record.name,
                    operator
                );
                println!("key (shown this once; keep it secret): {key}");
            }
        }
        Admin::Key(KeyCommand::List { operator, json }) => {
            let operator = parq_core::OperatorId::from_uuid(operator);
            s.store.operator(operator).await.map_err(failed)?;
            let keys = s.accounts.api_keys(operator).await.map_err(failed)?;
            if json {
                let keys: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id, "name": k.name, "role": k.role,
                            "created_at": k.created_at, "revoked_at": k.revoked_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(keys));
            } else {
                println!("{:<36}  {:<8}  {:<20}  {:<20}  NAME", "ID", "ROLE", "CREATED", "REVOKED");
                for k in keys {
                    let revoked =
                        k.revoked_at.map_or_else(|| "-".to_owned(), |t| t.strftime("%FT%TZ").to_string());
                    println!(
                        "{:<36}  {:<8}  {:<20}  {revoked:<20}  {}",
                        k.id,
                        k.role.as_str(),
                        k.created_at.strftime("%FT%TZ").to_string(),
                        k.name
                    );
                }
            }
        }
        Admin::Key(KeyCommand::Revoke { id }) => {
            let before = s.accounts.api_key_by_id(id).await.map_err(failed)?;
            let Some(before) = before else {
                return Err((1, format!("there is no API key {id}")));
            };
            if let Some(at) = before.revoked_at {
                println!("API key {id} ({}) was revoked already, at {at}", before.name);
                return Ok(());
            }
            let k = s
                .accounts
                .revoke_api_key(id, jiff::Timestamp::now())
                .await
                .map_err(failed)?
                .ok_or_else(|| (1, format!("there is no API key {id}")))?;
            println!(
                "revoked API key {id} ({}, {} of operator {}): every replica refuses it from now on",
                k.name,
                k.role.as_str(),
                k.operator
            );
        }
    }
    Ok(())
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
