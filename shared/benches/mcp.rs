//! Cold start of `mcp-http` with a 300-endpoint catalog (SPEC §12/§13 target < 50 ms):
//! the release binary is spawned against a stand-in Lambda runtime API that hands it one
//! API Gateway event (`tools/list` on `POST /mcp`); the figure is spawn → the response
//! posted back, which includes reading and parsing the catalog, generating every tool
//! and answering. Also: the in-process cost of parsing the catalog and building the
//! toolset alone. Run by `scripts/bench mcp`.
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A catalog heavier than Verity's: 300 endpoints, 1.75 methods each (525 operations; Verity
/// has 377), over 70 domains.
fn catalog(endpoints: usize) -> Value {
    let methods = [
        vec!["GET"],
        vec!["GET", "POST"],
        vec!["GET", "PATCH", "DELETE"],
        vec!["POST"],
    ];
    let eps: Vec<Value> = (0..endpoints)
        .map(|i| {
            let domain = format!("domain{}", i % 70);
            let path = match i % 4 {
                0 => format!("/api/{domain}/items{i}"),
                1 => format!("/api/{domain}/items{i}/[id]"),
                2 => format!("/api/{domain}/items{i}/{{id}}/sub"),
                _ => format!("/api{domain}/action{i}"),
            };
            json!({"path": path, "methods": methods[i % 4], "description": format!("Operation {i}"),
                "parameters": {"path": {"id": "string"}, "query": {"limit": "number", "q": "string", "tags": "string[]"},
                    "body": {"name": "string", "count": "number", "flag": "boolean"}}})
        })
        .collect();
    json!({"version": "bench", "generatedAt": "2026-11-23T00:00:00Z", "endpoints": eps})
}

fn event() -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    json!({
        "version": "2.0", "routeKey": "POST /mcp", "rawPath": "/mcp", "rawQueryString": "",
        "headers": {"host": "localhost", "content-type": "application/json",
            "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18",
            "authorization": "Bearer bench-key"},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "localhost", "domainPrefix": "x",
            "http": {"method": "POST", "path": "/mcp", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "r1", "routeKey": "POST /mcp", "stage": "$default", "time": "23/Nov/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": body, "isBase64Encoded": false
    })
}

/// Read one HTTP/1.1 request (head and Content-Length body) from the socket.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some((head, buf[end + 4..end + 4 + len].to_vec()));
        }
    }
}

/// Spawn → the first invocation's response, in ms; and the number of tools it listed.
async fn cold_start(binary: &str, catalog_path: &str) -> Option<(f64, usize)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
    let addr = listener.local_addr().ok()?;
    let start = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "mcp-http")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .env("VERITY_BASE_URL", "http://127.0.0.1:1")
        .env("VERITY_API_KEY", "unused")
        .env("VERITY_CATALOG_URI", catalog_path)
        .env("DF_MIDDLEWARE_API_KEY", "bench-key")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let event = event().to_string();
    let mut answered = None;
    while answered.is_none() {
        let (mut sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .ok()?
            .ok()?;
        while let Some((head, body)) = read_request(&mut sock).await {
            if head.starts_with("GET ") && head.contains("/invocation/next") {
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-1\r\nlambda-runtime-deadline-ms: {}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:1:function:mcp-http\r\ncontent-length: {}\r\n\r\n{}",
                    chrono::Utc::now().timestamp_millis() + 30_000,
                    event.len(),
                    event
                );
                sock.write_all(resp.as_bytes()).await.ok()?;
            } else if head.starts_with("POST ") {
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                let _ = sock
                    .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                    .await;
                let resp: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let inner: Value = resp["body"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                let tools = inner["result"]["tools"].as_array().map_or(0, Vec::len);
                answered = Some((elapsed, tools));
                break;
            }
        }
    }
    let _ = child.kill().await;
    answered
}

#[tokio::main]
async fn main() {
    let text = catalog(300).to_string();
    let dir = std::env::temp_dir().join(format!("df-bench-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api-catalog.json");
    std::fs::write(&path, &text).unwrap();
    // In process: parse + tools, median of 21.
    let mut runs = Vec::new();
    let mut ops = 0;
    let mut tools = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let c =
            std::sync::Arc::new(df_shared::domain::verity::catalog::Catalog::parse(&text).unwrap());
        ops = c.operations.len();
        let set = df_shared::domain::verity::tools::Toolset::new(c);
        tools = set.all().len();
        runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "catalog: 300 endpoints, {ops} operations, {} KB; parse + {tools} tools in process: {:.2} ms (median of 21)",
        text.len() / 1024,
        runs[10]
    );
    let binary =
        std::env::var("DF_BENCH_MCP_BINARY").unwrap_or_else(|_| "target/release/mcp-http".into());
    let mut cold = Vec::new();
    for _ in 0..15 {
        match cold_start(&binary, path.to_str().unwrap()).await {
            Some((ms, listed)) => {
                assert!(listed > 0, "the cold invocation listed no tools");
                cold.push((ms, listed));
            }
            None => {
                println!("cold start: {binary} missing or did not answer");
                return;
            }
        }
    }
    cold.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let (median, listed) = cold[cold.len() / 2];
    println!(
        "cold start of mcp-http (spawn → first tools/list answered, catalog read and {ops} tools built; median of 15): {median:.1} ms, {listed} tools on the first page  (target < 50 ms)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
