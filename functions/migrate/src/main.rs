//! Applies `migrations/` to `MIGRATION_DATABASE_URL` (the owner; else `DATABASE_URL`). Runs as a command (`cargo run --bin migrate`,
//! or the built binary in a deploy step) or, inside Lambda, once per invocation.
//! `--create-database` first creates the database named in the URL when missing.
use df_shared::{adapters::migrations, lambda};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    if std::env::var("AWS_LAMBDA_RUNTIME_API").is_ok() {
        return lambda_runtime::run(lambda_runtime::service_fn(
            |_: lambda_runtime::LambdaEvent<serde_json::Value>| async {
                let settings = lambda::Settings::load().await?;
                let url = settings
                    .get("MIGRATION_DATABASE_URL")
                    .map_or_else(|| settings.require("DATABASE_URL"), Ok)?;
                let applied = migrations::run_url_with(url, &settings.database_tls()?).await?;
                Ok::<_, Error>(serde_json::json!({ "applied": applied }))
            },
        ))
        .await;
    }
    let settings = lambda::Settings::load().await?;
    let url = settings
        .get("MIGRATION_DATABASE_URL")
        .map_or_else(|| settings.require("DATABASE_URL"), Ok)?;
    let tls = settings.database_tls()?;
    if std::env::args().any(|a| a == "--create-database")
        && migrations::ensure_database_with(url, &tls).await?
    {
        println!("database created");
    }
    let applied = migrations::run_url_with(url, &tls).await?;
    println!(
        "migrations applied: {}",
        if applied.is_empty() {
            "none (up to date)".to_string()
        } else {
            applied.join(", ")
        }
    );
    Ok(())
}
