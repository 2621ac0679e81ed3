//! The project's migration runner: plain SQL files from `migrations/`, embedded at
//! build time, applied in name order, each in its own transaction, under a Postgres
//! advisory lock so concurrent deploys or cold starts never race.
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Arbitrary constant shared by every runner of this schema ("dfmw" in ASCII).
const ADVISORY_LOCK_KEY: i64 = 0x6466_6d77;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
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

/// Connect with a URL and migrate: the `migrate` command and the tests use this.
pub async fn run_url(database_url: &str) -> Result<Vec<String>, MigrateError> {
    let (mut client, connection) =
        tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let result = run(&mut client).await;
    drop(client);
    let _ = driver.await;
    result
}

/// Create the URL's database when it does not exist yet, through the server's
/// `postgres` maintenance database. Returns whether it was created.
pub async fn ensure_database(database_url: &str) -> Result<bool, MigrateError> {
    let target: tokio_postgres::Config = database_url.parse()?;
    let Some(name) = target.get_dbname().map(str::to_string) else {
        return Ok(false);
    };
    let mut admin = target.clone();
    admin.dbname("postgres");
    let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
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
    drop(client);
    let _ = driver.await;
    Ok(!exists)
}
