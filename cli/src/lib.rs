//! `latchkey`, the command line of any Latchkey API, local or deployed, over its public HTTP API
//! only ([`client`]). Human tables by default, `--json` for scripts; a key made by a command is
//! printed once, on stdout; errors go to stderr as the API's code and message, with an exit code
//! per kind of failure ([`exit`]).

pub mod client;
pub mod credentials;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use client::{Client, ClientError, Failure, IssuedKey, Key, KeyChanges, NewKey};
use credentials::Credentials;

/// Exit codes: one per kind of failure, so that a script can tell them apart.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything else: credentials missing or unreadable, an unexpected answer.
    pub const OTHER: u8 = 1;
    /// A command line clap refused (its own code).
    pub const USAGE: u8 = 2;
    /// 401 or 403: the key is wrong, stopped, or lacks the permission.
    pub const AUTH: u8 = 3;
    /// 404: no such key or datasource in the tenant.
    pub const NOT_FOUND: u8 = 4;
    /// 400, 405, 409, 413: the request itself.
    pub const INVALID: u8 = 5;
    /// 429, 5xx, or no answer: try again later.
    pub const UNAVAILABLE: u8 = 6;
}

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Manage the keys of a Latchkey API (local or deployed) over its HTTP API"
)]
pub struct Cli {
    /// Print the API's answers as JSON (one document on stdout) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Remember an API and an admin key: the key is read from the terminal without echo, or
    /// from stdin (never from the command line); checked with /whoami, then stored 0600.
    Login {
        /// The API's URL, e.g. http://127.0.0.1:3000 or https://ID.execute-api.REGION.amazonaws.com/prod
        #[arg(long)]
        url: String,
    },
    /// Who the key is.
    Whoami,
    /// Keys of the tenant.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Datasources and their ingest keys.
    #[command(subcommand)]
    Datasources(DatasourcesCommand),
    /// The tenant's audit log, newest first.
    Audit(Page),
    /// Keys found where they must not be.
    #[command(subcommand)]
    Leaks(LeaksCommand),
    /// A completion script for your shell, on stdout.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct Page {
    /// At most this many (1-100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Where the previous page stopped (its next_cursor).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// A new key; the key itself is printed once, on stdout.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tier: Option<String>,
        /// Comma-separated, e.g. read,write.
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        /// RFC 3339, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        owner_id: Option<String>,
    },
    /// A page of the tenant's keys.
    List {
        #[command(flatten)]
        page: Page,
        /// active, expired or revoked.
        #[arg(long)]
        status: Option<String>,
    },
    /// One key.
    Get { id: String },
    /// Change what is given.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        #[arg(long)]
        expires_at: Option<String>,
        /// true or false.
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// A new key replacing this one; the new key is printed once, on stdout.
    Rotate {
        id: String,
        /// How long the old key keeps working (default 0: it stops now).
        #[arg(long)]
        grace_seconds: Option<u64>,
    },
    /// Revoke: immediate and irreversible.
    Revoke { id: String },
    /// Requests let through per UTC day.
    Usage {
        id: String,
        #[arg(long)]
        days: Option<u32>,
    },
    /// Every decision about the key, by outcome.
    Verifications {
        id: String,
        /// day or hour.
        #[arg(long)]
        granularity: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasourcesCommand {
    /// A new datasource; its ingest key is printed once, on stdout.
    Create {
        #[arg(long)]
        name: String,
    },
    List(Page),
    Get {
        id: String,
    },
    /// Delete it, its ingest key and its records.
    Delete {
        id: String,
    },
    /// A new ingest key; printed once, on stdout.
    RegenerateKey {
        id: String,
        #[arg(long)]
        grace_seconds: Option<u64>,
    },
    /// A page of its records.
    Records {
        id: String,
        #[command(flatten)]
        page: Page,
    },
}

#[derive(Debug, Subcommand)]
pub enum LeaksCommand {
    /// Report one of the tenant's keys found where it must not be (read from stdin, never from
    /// the command line); it is revoked, disabled or only audited, as the API is configured.
    Report {
        /// Where it was found: a URL, or a few words.
        #[arg(long)]
        found_at: Option<String>,
    },
}

/// What went wrong, and the exit code that says so.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error("{0}")]
    Input(String),
}

impl Error {
    fn exit(&self) -> u8 {
        match self {
            Error::Api(error) => match error.failure() {
                Failure::Auth => exit::AUTH,
                Failure::NotFound => exit::NOT_FOUND,
                Failure::Invalid => exit::INVALID,
                Failure::Unavailable => exit::UNAVAILABLE,
            },
            Error::Credentials(_) | Error::Input(_) => exit::OTHER,
        }
    }
}

/// Runs one command line; `var` reads the environment.
pub async fn run(cli: Cli, var: impl Fn(&str) -> Option<String>) -> ExitCode {
    let json = cli.json;
    match execute(cli, &var).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            if json {
                let (code, message) = match &error {
                    Error::Api(ClientError::Api { code, message, .. }) => (code.clone(), message.clone()),
                    other => ("CLI_ERROR".to_owned(), other.to_string()),
                };
                eprintln!("{}", serde_json::json!({"error": {"code": code, "message": message}}));
            } else {
                eprintln!("latchkey: {error}");
            }
            ExitCode::from(error.exit())
        }
    }
}

async fn execute(cli: Cli, var: &impl Fn(&str) -> Option<String>) -> Result<(), Error> {
    let json = cli.json;
    let client = || -> Result<Client, Error> {
        let Credentials { url, key } = credentials::load(var)?;
        Ok(Client::new(&url, &key))
    };
    match cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "latchkey", &mut std::io::stdout());
        }
        Command::Login { url } => {
            let key = read_secret("Key: ")?;
            let client = Client::new(&url, &key);
            let me = client.whoami().await?;
            let path = credentials::store(var, &Credentials { url: client.base().to_owned(), key })?;
            if json {
                print_json(&me);
            } else {
                eprintln!(
                    "logged in to {} as {} (tenant {}); credentials in {}",
                    client.base(),
                    text(&me["principal"]),
                    text(&me["tenant_id"]),
                    path.display()
                );
            }
        }
        Command::Whoami => {
            let me = client()?.whoami().await?;
            if json {
                print_json(&me);
            } else {
                print_fields(&me, &["auth_type", "principal", "tenant_id", "name", "tier", "status", "permissions"]);
            }
        }
        Command::Keys(command) => keys(&client()?, command, json).await?,
        Command::Datasources(command) => datasources(&client()?, command, json).await?,
        Command::Audit(page) => {
            let events = client()?.audit(page.limit, page.cursor.as_deref()).await?;
            if json {
                print_json(&events);
            } else {
                print_table(&events["events"], &["at", "actor", "action", "target", "found_at"]);
                print_next(&events);
            }
        }
        Command::Leaks(LeaksCommand::Report { found_at }) => {
            let key = read_secret("Leaked key: ")?;
            let reported = client()?.report_leak(&key, found_at.as_deref()).await?;
            if json {
                print_json(&reported);
            } else {
                println!(
                    "{}: {} is now {}",
                    text(&reported["action"]),
                    text(&reported["key"]["id"]),
                    status(&reported["key"])
                );
            }
        }
    }
    Ok(())
}

async fn keys(client: &Client, command: KeysCommand, json: bool) -> Result<(), Error> {
    match command {
        KeysCommand::Create { name, tier, permissions, expires_at, owner_id } => {
            let issued = client.create_key(&NewKey { name, tier, permissions, expires_at, owner_id }).await?;
            print_issued(&issued, json);
        }
        KeysCommand::List { page, status } => {
            let list = client.list_keys(page.limit, page.cursor.as_deref(), status.as_deref()).await?;
            if json {
                print_json(&list);
            } else {
                let rows = serde_json::to_value(&list.keys).expect("keys serialize");
                print_table(&rows, &["id", "name", "tier", "status", "hint", "last_used_at"]);
                if let Some(cursor) = &list.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
        }
        KeysCommand::Get { id } => print_key(&client.get_key(&id).await?, json),
        KeysCommand::Update { id, name, tier, permissions, expires_at, enabled } => {
            let changes = KeyChanges { name, tier, permissions, expires_at, enabled };
            print_key(&client.update_key(&id, &changes).await?, json);
        }
        KeysCommand::Rotate { id, grace_seconds } => print_issued(&client.rotate_key(&id, grace_seconds).await?, json),
        KeysCommand::Revoke { id } => {
            client.revoke_key(&id).await?;
            if json {
                print_json(&serde_json::json!({"revoked": id}));
            } else {
                eprintln!("revoked {id}");
            }
        }
        KeysCommand::Usage { id, days } => {
            let usage = client.key_usage(&id, days).await?;
            if json {
                print_json(&usage);
            } else {
                print_table(&usage["days"], &["date", "requests"]);
            }
        }
        KeysCommand::Verifications { id, granularity } => {
            let verifications = client.key_verifications(&id, granularity.as_deref()).await?;
            if json {
                print_json(&verifications);
            } else {
                print_fields(
                    &verifications["totals"],
                    &["valid", "expired", "revoked", "disabled", "ip_not_allowed", "usage_exceeded", "rate_limited"],
                );
            }
        }
    }
    Ok(())
}

async fn datasources(client: &Client, command: DatasourcesCommand, json: bool) -> Result<(), Error> {
    let shown = match command {
        DatasourcesCommand::Create { name } => {
            let made = client.create_datasource(&name).await?;
            return print_made_ingest_key(&made, json);
        }
        DatasourcesCommand::RegenerateKey { id, grace_seconds } => {
            let made = client.regenerate_datasource_key(&id, grace_seconds).await?;
            return print_made_ingest_key(&made, json);
        }
        DatasourcesCommand::List(page) => {
            let list = client.list_datasources(page.limit, page.cursor.as_deref()).await?;
            if !json {
                print_table(&list["datasources"], &["id", "name", "key_hint", "created_at"]);
                print_next(&list);
                return Ok(());
            }
            list
        }
        DatasourcesCommand::Get { id } => client.get_datasource(&id).await?,
        DatasourcesCommand::Delete { id } => client.delete_datasource(&id).await?,
        DatasourcesCommand::Records { id, page } => {
            let records = client.datasource_records(&id, page.limit, page.cursor.as_deref()).await?;
            if !json {
                for record in records["records"].as_array().into_iter().flatten() {
                    println!("{record}");
                }
                print_next(&records);
                return Ok(());
            }
            records
        }
    };
    if json {
        print_json(&shown);
    } else {
        let fields: Vec<&str> = shown.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        print_fields(&shown, &fields);
    }
    Ok(())
}

/// A datasource's new ingest key: the key alone on stdout (or the whole answer in `--json`).
fn print_made_ingest_key(made: &Value, json: bool) -> Result<(), Error> {
    if json {
        print_json(made);
    } else {
        println!("{}", text(&made["key"]));
        eprintln!(
            "datasource {}: its ingest key is shown this once (above); keep it",
            text(made.get("datasource_id").or_else(|| made.get("id")).unwrap_or(&Value::Null))
        );
    }
    Ok(())
}

/// A key just made: the key alone on stdout, what it is on stderr; `--json`: the answer.
fn print_issued(issued: &IssuedKey, json: bool) {
    if json {
        print_json(issued);
        return;
    }
    println!("{}", issued.key);
    let view = &issued.view;
    eprintln!("{} ({}, tier {}): the key is shown this once (above); keep it", view.id, view.name, view.tier);
}

fn print_key(key: &Key, json: bool) {
    if json {
        print_json(key);
    } else {
        let value = serde_json::to_value(key).expect("a key serializes");
        print_fields(
            &value,
            &["id", "name", "hint", "tier", "status", "enabled", "permissions", "expires_at", "last_used_at"],
        );
    }
}

fn print_json(value: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

/// `name: value` lines of `object`'s `fields`, those it has.
fn print_fields(object: &Value, fields: &[&str]) {
    let width = fields.iter().map(|f| f.len()).max().unwrap_or(0);
    for field in fields {
        if let Some(value) = object.get(*field) {
            println!("{field:width$}  {}", text(value));
        }
    }
}

/// A table of `rows`' `columns`, aligned; a header line first.
fn print_table(rows: &Value, columns: &[&str]) {
    let rows: Vec<Vec<String>> = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| columns.iter().map(|column| text(&row[*column])).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

fn print_next(page: &Value) {
    if let Some(cursor) = page["next_cursor"].as_str() {
        eprintln!("more: --cursor {cursor}");
    }
}

/// A value as a table cell: text as is, lists comma-separated, nothing as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn status(key: &Value) -> String {
    if key["enabled"] == Value::Bool(false) {
        format!("{} (disabled)", text(&key["status"]))
    } else {
        text(&key["status"])
    }
}

/// A secret from the terminal without echo, or else the first line of stdin.
fn read_secret(prompt: &str) -> Result<String, Error> {
    let secret = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).map_err(|e| Error::Input(format!("reading the key: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| Error::Input(format!("reading stdin: {e}")))?;
        line
    };
    let secret = secret.trim().to_owned();
    if secret.is_empty() {
        return Err(Error::Input("no key given: type it at the prompt, or pipe it on stdin".to_owned()));
    }
    Ok(secret)
}
