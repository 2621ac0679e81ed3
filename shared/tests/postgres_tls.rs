//! Postgres over TLS with libpq's `sslmode` names, against a real server: the test
//! starts a private Postgres whose certificate (for `localhost`) is signed by a CA it
//! generates with `openssl`, then checks what each mode accepts and refuses. Skips with
//! a message where Postgres' server binaries or openssl are missing, except under
//! `CI=true`.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use df_shared::adapters::db::{self, SslMode, TlsSettings};
use df_shared::adapters::migrations;

struct TlsPostgres {
    dir: PathBuf,
    port: u16,
    ca_pem: String,
    server: Child,
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // runuser may not pass a kill on to Postgres: stop the server itself.
        if let Some(pg_ctl) = pg_bin("pg_ctl") {
            let data = self.dir.join("data");
            let _ = as_postgres(&pg_ctl)
                .args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// Run a command as the `postgres` user when we are root (Postgres refuses root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> Option<TlsPostgres> {
    let (initdb, postgres) = match (pg_bin("initdb"), pg_bin("postgres")) {
        (Some(i), Some(p)) if Command::new("openssl").arg("version").output().is_ok() => (i, p),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("Postgres server binaries or openssl missing under CI=true");
            }
            eprintln!("SKIPPED: no Postgres server binaries or openssl to run a TLS server");
            return None;
        }
    };
    let dir = std::env::temp_dir().join(format!("df-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = |name: &str| dir.join(name).to_string_lossy().into_owned();
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=df test CA",
        "-keyout",
        &f("ca.key"),
        "-out",
        &f("ca.crt"),
    ]));
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &f("server.key"),
        "-out",
        &f("server.csr"),
    ]));
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &f("server.csr"),
        "-CA",
        &f("ca.crt"),
        "-CAkey",
        &f("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &f("san.ext"),
        "-out",
        &f("server.crt"),
    ]));
    if is_root() {
        run(Command::new("chown").args(["-R", "postgres", &dir.to_string_lossy()]));
    }
    run(Command::new("chmod").args(["600", &f("server.key")]));
    run(as_postgres(&initdb)
        .args(["-D", &f("data"), "-U", "postgres", "--auth=trust"])
        .stdout(Stdio::null()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = as_postgres(&postgres)
        .args([
            "-D",
            &f("data"),
            "-p",
            &port.to_string(),
            "-k",
            &dir.to_string_lossy(),
        ])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
        .args(["-c", &format!("ssl_cert_file={}", f("server.crt"))])
        .args(["-c", &format!("ssl_key_file={}", f("server.key"))])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres starts");
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let pg = TlsPostgres {
        dir,
        port,
        ca_pem,
        server,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(pg);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the TLS Postgres did not start");
}

/// Whether the connection is encrypted, or the connection error.
async fn encrypted(url: &str, tls: &TlsSettings) -> Result<bool, String> {
    let client = db::connect(url, tls).await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_is_honoured_and_verify_full_checks_the_chain_and_the_name() {
    let Some(pg) = start() else { return };
    let url = |host: &str, mode: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?sslmode={mode}",
            pg.port
        )
    };
    let ca = TlsSettings {
        mode: None,
        ca_pem: Some(pg.ca_pem.clone()),
    };
    assert_eq!(
        encrypted(&url("localhost", "verify-full"), &ca).await,
        Ok(true)
    );
    // The name in the certificate is `localhost`, not the address.
    let wrong_name = encrypted(&url("127.0.0.1", "verify-full"), &ca).await;
    assert!(wrong_name.is_err(), "{wrong_name:?}");
    // Without the CA, the system's roots do not vouch for this server.
    let unknown_ca = encrypted(&url("localhost", "verify-full"), &TlsSettings::default()).await;
    assert!(unknown_ca.is_err(), "{unknown_ca:?}");
    // require: encrypted, not verified (libpq's meaning).
    assert_eq!(
        encrypted(&url("127.0.0.1", "require"), &TlsSettings::default()).await,
        Ok(true)
    );
    assert_eq!(
        encrypted(&url("127.0.0.1", "disable"), &TlsSettings::default()).await,
        Ok(false)
    );
    // DATABASE_SSLMODE applies when the URL names no mode.
    let plain = format!("postgres://postgres@localhost:{}/postgres", pg.port);
    let by_setting = TlsSettings {
        mode: Some(SslMode::VerifyFull),
        ca_pem: Some(pg.ca_pem.clone()),
    };
    assert_eq!(encrypted(&plain, &by_setting).await, Ok(true));
}

#[tokio::test]
async fn the_whole_ingest_path_runs_over_verify_full() {
    let Some(pg) = start() else { return };
    let ca_file = pg.dir.join("ca.crt");
    let url = format!(
        "postgres://postgres@localhost:{}/df_tls?sslmode=verify-full",
        pg.port
    );
    let settings = df_shared::lambda::Settings::from_pairs([
        ("DATABASE_URL", url.clone()),
        ("DATABASE_CA_FILE", ca_file.to_string_lossy().into_owned()),
        ("WEBHOOK_EVENTS_QUEUE_URL", fresh_queue().await),
        ("GHL_WORKFLOW_WEBHOOK_SECRET", WORKFLOW_SECRET.to_string()),
    ]);
    let tls = settings.database_tls().unwrap();
    assert!(migrations::ensure_database_with(&url, &tls).await.unwrap());
    assert!(!migrations::run_url_with(&url, &tls)
        .await
        .unwrap()
        .is_empty());
    let ingest =
        df_shared::ingest::Ingest::from_settings(&settings, df_shared::domain::EventKind::Webhook)
            .await
            .unwrap();
    let auth = df_shared::ingest::webhook_ghl::GhlWebhookAuth::from_settings(&settings).unwrap();
    let req = post(
        "/api/webhooks/ghl",
        &[("x-df-workflow-secret", WORKFLOW_SECRET)],
        serde_json::json!({"contact_id": "gtls", "customData": {"event": "ContactUpdate"}})
            .to_string(),
    );
    let (status, body) =
        json_of(df_shared::ingest::webhook_ghl::handle(&ingest, &auth, req).await).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
}
