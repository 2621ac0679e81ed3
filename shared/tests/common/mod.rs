//! Test support: a fresh migrated database per test, real FIFO queues in the SQS
//! emulator, and request builders. `scripts/test` provides Postgres and the emulator.
#![allow(dead_code)]

use std::path::PathBuf;

use aws_sdk_sqs::types::QueueAttributeName;
use df_shared::adapters::{migrations, queue};
use df_shared::ingest::Ingest;
use df_shared::lambda::Settings;
use lambda_http::{Body, Request};
use uuid::Uuid;

pub const ALOWARE_USER: &str = "aloware-test";
pub const ALOWARE_PASS: &str = "test-pass";
pub const WORKFLOW_SECRET: &str = "test-workflow-secret";
pub const TEXTING_SECRET: &str = "test-texting-secret";
/// Nothing listens on port 1: connections are refused at once.
pub const DEAD_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:1/nothing";
pub const DEAD_QUEUE_URL: &str = "http://127.0.0.1:1/123456789012/nothing.fifo";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The server's maintenance database; each test creates its own database there.
pub fn admin_url() -> String {
    std::env::var("DF_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new database with every migration applied.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("DF_TEST_DATABASE_URL has a database path");
    let url = format!("{base}/df_test_{}", Uuid::new_v4().simple());
    migrations::ensure_database(&url).await.unwrap_or_else(|e| {
        panic!("cannot reach Postgres at {admin} ({e}); run scripts/test, which starts it")
    });
    migrations::run_url(&url).await.expect("migrations apply");
    url
}

pub async fn db_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

fn require_emulator() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        panic!(
            "AWS_ENDPOINT_URL is not set: run scripts/test, which starts the SQS emulator (moto)"
        );
    }
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    require_emulator();
    aws_sdk_sqs::Client::new(&queue::aws_config().await)
}

/// A new FIFO queue in the emulator; returns its URL.
pub async fn fresh_queue() -> String {
    let out = sqs()
        .await
        .create_queue()
        .queue_name(format!("t-{}.fifo", Uuid::new_v4().simple()))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create queue in the emulator");
    out.queue_url().unwrap().to_string()
}

/// Every message on a queue (receives until empty; makes them invisible).
pub async fn drain(queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let client = sqs().await;
    let mut all = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

pub fn settings(database_url: &str, queue_url: &str) -> Settings {
    Settings::from_pairs([
        ("DATABASE_URL", database_url),
        ("WEBHOOK_EVENTS_QUEUE_URL", queue_url),
        ("TEXTING_EVENTS_QUEUE_URL", queue_url),
        ("ALOWARE_WEBHOOK_BASIC_USER", ALOWARE_USER),
        ("ALOWARE_WEBHOOK_BASIC_PASS", ALOWARE_PASS),
        ("GHL_WORKFLOW_WEBHOOK_SECRET", WORKFLOW_SECRET),
        ("TEXTING_WEBHOOK_SECRET", TEXTING_SECRET),
        ("DB_POOL_SIZE", "16"),
    ])
}

/// An ingest context on a fresh database and queue.
pub struct Stack {
    pub database_url: String,
    pub queue_url: String,
    pub settings: Settings,
    pub ingest: Ingest,
}

impl Stack {
    pub async fn new() -> Stack {
        Self::with(&fresh_database().await, &fresh_queue().await).await
    }

    pub async fn with(database_url: &str, queue_url: &str) -> Stack {
        require_emulator();
        let settings = settings(database_url, queue_url);
        let ingest = settings
            .ingest("WEBHOOK_EVENTS_QUEUE_URL")
            .await
            .expect("ingest context");
        Stack {
            database_url: database_url.into(),
            queue_url: queue_url.into(),
            settings,
            ingest,
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        db_client(&self.database_url)
            .await
            .query_one(sql, &[])
            .await
            .expect(sql)
            .get(0)
    }
}

pub fn fixture(name: &str) -> Request {
    let path = repo_root().join("infra/events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn post(path: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::Binary(body.into())).unwrap()
}

pub fn basic_auth() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ALOWARE_USER}:{ALOWARE_PASS}"))
    )
}

pub async fn json_of(resp: lambda_http::Response<Body>) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let body = match resp.body() {
        Body::Text(t) => t.clone().into_bytes(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("response is not JSON: {body:?}"));
    (status, value)
}

/// `shared/reference` of the steering repository, when this checkout has it beside it.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var("DF_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("../shared/reference"));
    dir.is_dir().then_some(dir)
}
