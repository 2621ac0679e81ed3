//! `df-sandbox`: GHL, Aloware and the texting system on loopback, for the local stack.
//! Base URLs: http://127.0.0.1:PORT/ghl, /aloware, /texting; control under /_sandbox.
use df_sandbox::{serve, SandboxConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("DF_SANDBOX_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7700);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let config = SandboxConfig::from_env();
    eprintln!("df-sandbox listening on http://127.0.0.1:{port} (ghl, aloware, texting, _sandbox)");
    serve(listener, config).await
}
