//! `df-mcp --bridge <url>`: a stdio ↔ streamable-HTTP bridge, so a client that only starts
//! stdio servers (Claude Desktop) can use the deployed `mcp-http`. Each JSON-RPC line
//! from stdin is POSTed to the URL with `Authorization: Bearer $DF_MCP_BRIDGE_KEY`; the
//! answer (JSON, or the `data:` events of an SSE stream) goes to stdout, one line each.
//! An HTTP refusal of a request comes back as that request's JSON-RPC error, so the
//! client shows the reason ("401 … an MCP API key is required") instead of hanging.
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Mutex};

/// What the server told us at `initialize` and every later request must repeat.
#[derive(Default)]
struct Negotiated {
    protocol_version: Option<String>,
    session_id: Option<String>,
}

pub struct Bridge {
    url: String,
    key: Option<String>,
    http: reqwest::Client,
    negotiated: Mutex<Negotiated>,
}

impl Bridge {
    pub fn new(url: String, key: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("HTTP client builds");
        Bridge {
            url,
            key: key.filter(|k| !k.is_empty()),
            http,
            negotiated: Mutex::new(Negotiated::default()),
        }
    }

    /// Forward one message; answers the lines to write to stdout.
    async fn forward(&self, line: &str) -> Vec<String> {
        let message: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => return vec![error_line(&Value::Null, -32700, "parse error: not JSON")],
        };
        let id = message.get("id").cloned();
        let is_initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(line.to_string());
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        {
            let n = self.negotiated.lock().await;
            if let Some(v) = &n.protocol_version {
                req = req.header("mcp-protocol-version", v);
            }
            if let Some(s) = &n.session_id {
                req = req.header("mcp-session-id", s);
            }
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => return failure(id, &format!("{} did not answer: {}", self.url, kind(&e))),
        };
        let status = response.status();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return failure(id, &refusal(status.as_u16(), &body));
        }
        let lines = if is_sse {
            sse_data(&body)
        } else {
            json_lines(&body)
        };
        if is_initialize {
            let mut n = self.negotiated.lock().await;
            n.session_id = session.or(n.session_id.take());
            n.protocol_version = lines.iter().find_map(|l| protocol_version(l));
        }
        lines
    }
}

/// Run until stdin closes. Requests are forwarded concurrently (a slow tool call does not
/// hold up a ping); lines reach stdout whole, one at a time.
pub async fn run<W>(bridge: Bridge, stdin: impl tokio::io::AsyncRead + Unpin, mut out: W)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let bridge = Arc::new(bridge);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if out.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                break;
            }
            let _ = out.flush().await;
        }
    });
    let mut lines = BufReader::new(stdin).lines();
    let mut tasks = tokio::task::JoinSet::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let (bridge, tx) = (bridge.clone(), tx.clone());
        // initialize must finish first: later requests carry what it negotiated.
        let first = serde_json::from_str::<Value>(&line)
            .is_ok_and(|m| m.get("method").and_then(Value::as_str) == Some("initialize"));
        let task = async move {
            for out in bridge.forward(&line).await {
                let _ = tx.send(out);
            }
        };
        if first {
            task.await;
        } else {
            tasks.spawn(task);
        }
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
}

fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "no connection"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "the request failed"
    }
}

/// The server's own reason for a refusal (`{"error","message"}`), else the status.
fn refusal(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
    match message {
        Some(m) => format!("HTTP {status} from the MCP server: {m}"),
        None => format!("HTTP {status} from the MCP server"),
    }
}

/// A request's failure as its JSON-RPC error; a notification's is only logged.
fn failure(id: Option<Value>, message: &str) -> Vec<String> {
    match id {
        Some(id) => vec![error_line(&id, -32000, message)],
        None => {
            eprintln!("df-mcp bridge: {message}");
            Vec::new()
        }
    }
}

fn error_line(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// A JSON answer (202 has none); a batch answer becomes one line per message.
fn json_lines(body: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
        Ok(v) => vec![v.to_string()],
        Err(_) => Vec::new(),
    }
}

/// The messages of an SSE body: each event's `data:` lines joined.
fn sse_data(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    for event in body.replace("\r\n", "\n").split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if !data.is_empty() {
            let joined = data.join("\n");
            if !joined.trim().is_empty() {
                out.extend(json_lines(&joined));
            }
        }
    }
    out
}

fn protocol_version(line: &str) -> Option<String> {
    serde_json::from_str::<Value>(line)
        .ok()?
        .pointer("/result/protocolVersion")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_become_one_line_each() {
        let body = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n: keep-alive\n\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"id\":2,\"result\":{}}\n\n";
        let lines = sse_data(body);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].contains("\"id\":2"));
    }

    #[test]
    fn a_refusal_keeps_the_servers_reason_and_the_request_id() {
        let lines = failure(
            Some(json!(7)),
            &refusal(
                401,
                r#"{"error":"unauthorized","message":"an MCP API key is required"}"#,
            ),
        );
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(
            v["error"]["message"],
            "HTTP 401 from the MCP server: an MCP API key is required"
        );
        assert!(
            failure(None, "x").is_empty(),
            "a notification has no answer"
        );
    }

    #[test]
    fn the_negotiated_version_is_read_from_initialize() {
        let line = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18"}}"#;
        assert_eq!(protocol_version(line).as_deref(), Some("2025-06-18"));
        assert_eq!(json_lines(""), Vec::<String>::new());
    }
}
