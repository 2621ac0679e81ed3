//! The project's migration runner: plain SQL files from `migrations/`, embedded at
//! build time, applied in name order, each in its own transaction, under a Postgres
//! advisory lock so concurrent deploys or cold starts never race.
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::db::{self, DbError, TlsSettings};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Arbitrary constant shared by every runner of this schema ("dfmw" in ASCII).
const ADVISORY_LOCK_KEY: i64 = 0x6466_6d77;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Connect(#[from] DbError),
    #[error("DATABASE_URL must be a postgres:// URL with a database name")]
    NotAUrl,
    #[error("migration {0} was changed after it was applied (checksum mismatch)")]
    Changed(String),
}

/// Apply every pending migration; returns the names applied by this call.
pub async fn run(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .await?;
    let result = apply_pending(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
        .await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply_pending(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let rows = client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await?;
    let applied: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut newly = Vec::new();
    for (name, sql) in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        match applied.get(*name) {
            Some(known) if *known == checksum => continue,
            Some(_) => return Err(MigrateError::Changed(name.to_string())),
            None => {}
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
            &[name, &checksum],
        )
        .await?;
        tx.commit().await?;
        newly.push(name.to_string());
    }
    Ok(newly)
}

/// Connect with a URL (and its TLS rules) and migrate: the `migrate` command and the
/// tests use this.
pub async fn run_url(database_url: &str) -> Result<Vec<String>, MigrateError> {
    run_url_with(database_url, &TlsSettings::default()).await
}

pub async fn run_url_with(
    database_url: &str,
    tls: &TlsSettings,
) -> Result<Vec<String>, MigrateError> {
    let mut client = db::connect(database_url, tls).await?;
    run(&mut client).await
}

/// Create the URL's database when it does not exist yet, through the server's
/// `postgres` maintenance database. Returns whether it was created.
pub async fn ensure_database(database_url: &str) -> Result<bool, MigrateError> {
    ensure_database_with(database_url, &TlsSettings::default()).await
}

pub async fn ensure_database_with(
    database_url: &str,
    tls: &TlsSettings,
) -> Result<bool, MigrateError> {
    let (base, query) = match database_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (database_url, String::new()),
    };
    let (server, name) = base.rsplit_once('/').ok_or(MigrateError::NotAUrl)?;
    if name.is_empty() || !server.contains("://") {
        return Err(MigrateError::NotAUrl);
    }
    let name = name.to_string();
    let client = db::connect(&format!("{server}/postgres{query}"), tls).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = name.replace('"', "\"\"");
        if let Err(err) = client
            .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
            .await
        {
            // A concurrent creator won the race: that is fine.
            if err.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(err.into());
            }
        }
    }
    Ok(!exists)
}
