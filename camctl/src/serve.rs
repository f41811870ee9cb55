//! `camctl serve`: the web configurator, on the installer's laptop at
//! 127.0.0.1 only (the page has no login: whoever reaches it configures
//! the store's cameras). The page (`page/`, built into the binary, no
//! scripts from elsewhere) draws on a camera's snapshot; every check of
//! what is drawn is the camera's own code, run here ([`configure`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rumqttc::QoS;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::audit::{self, Kind, Settings, Tap};
use crate::commands::{CommandError, Recording, Store};
use crate::configure;
use crate::session::Incoming;

/// Why the configurator did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "camctl serve listens on loopback only (127.0.0.1 or ::1), not {0}: the page has no login"
    )]
    NotLoopback(SocketAddr),
    #[error("camctl serve: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
}

const INDEX: &str = include_str!("../page/index.html");
const SCRIPT: &str = include_str!("../page/app.js");
const STYLE: &str = include_str!("../page/style.css");

struct App {
    store: Store,
    audits: Mutex<HashMap<String, LiveAudit>>,
}

/// An audit run from the page: taps arrive by request, the camera's
/// records are recorded until the end.
struct LiveAudit {
    start_us: u64,
    end_us: u64,
    settings: Settings,
    taps: Vec<Tap>,
    recording: Option<tokio::task::JoinHandle<Result<Recording, CommandError>>>,
    report: Option<audit::Report>,
}

/// Bind `addr` (loopback only).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(addr));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serve the configurator until the process ends.
pub async fn serve(mut store: Store, listener: tokio::net::TcpListener) -> Result<(), ServeError> {
    // The cameras' status and health, kept up to date for the list.
    store.keep_fleet().await?;
    let app = Arc::new(App {
        store,
        audits: Mutex::new(HashMap::new()),
    });
    let router = Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route("/api/info", get(info))
        .route("/api/cameras", get(cameras))
        .route("/api/check", post(check))
        .route("/api/cameras/:id/config", get(config))
        .route("/api/cameras/:id/apply", post(apply))
        .route("/api/cameras/:id/snapshot", post(snapshot))
        .route("/api/cameras/:id/shelf-reference", post(shelf_reference))
        .route("/api/cameras/:id/live", get(live))
        .route("/api/cameras/:id/audit", get(audit_state).post(audit_start))
        .route("/api/cameras/:id/audit/tap", post(audit_tap))
        .route("/api/cameras/:id/audit/report.html", get(audit_html))
        .with_state(app)
        .layer(axum::middleware::from_fn(loopback_host_only));
    axum::serve(listener, router)
        .await
        .map_err(|source| ServeError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })
}

type Shared = State<Arc<App>>;

/// Answer only requests addressed to a loopback name: a web page
/// elsewhere that rebinds its own name to 127.0.0.1 (DNS rebinding) would
/// otherwise reach the store's cameras through the installer's browser.
async fn loopback_host_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    if matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        next.run(req).await
    } else {
        fail(
            StatusCode::FORBIDDEN,
            format!(
                "camctl serve answers only http://127.0.0.1 or http://localhost, not host {host:?}"
            ),
        )
    }
}

/// A failure as the page shows it: `{"error": ...}` with a status.
fn fail(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

fn command_error(e: &CommandError) -> Response {
    let status = match e {
        CommandError::UnknownCamera { .. } | CommandError::NoConfigState { .. } => {
            StatusCode::NOT_FOUND
        }
        CommandError::Offline { .. } | CommandError::SnapshotRefused { .. } => StatusCode::CONFLICT,
        CommandError::SnapshotTimeout { .. } | CommandError::ResultTimeout { .. } => {
            StatusCode::GATEWAY_TIMEOUT
        }
        CommandError::Session(_) => StatusCode::BAD_GATEWAY,
    };
    fail(status, e)
}

async fn info(State(app): Shared) -> Json<Value> {
    Json(json!({
        "broker": app.store.session.broker(),
        "store": app.store.layout.store(),
    }))
}

async fn cameras(State(app): Shared) -> Json<Value> {
    Json(json!(app.store.fleet()))
}

async fn config(State(app): Shared, Path(id): Path<String>) -> Response {
    match app.store.config(&id).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => command_error(&e),
    }
}

#[derive(Debug, Deserialize)]
struct CheckQuery {
    running: Option<u64>,
}

/// The camera's checks of a drawn configuration, with each problem's place.
async fn check(Query(q): Query<CheckQuery>, Json(doc): Json<Value>) -> Json<Value> {
    let (version, doc) = configure::with_version(doc, q.running);
    let problems = configure::check(&doc, q.running);
    Json(json!({"version": version, "problems": problems}))
}

async fn apply(State(app): Shared, Path(id): Path<String>, Json(doc): Json<Value>) -> Response {
    match app.store.apply(&id, doc, Duration::from_secs(30)).await {
        Ok(applied) => Json(applied).into_response(),
        Err(e) => command_error(&e),
    }
}

/// One snapshot, passed to the page and kept nowhere.
async fn snapshot(State(app): Shared, Path(id): Path<String>) -> Response {
    match app.store.snapshot(&id, Duration::from_secs(15)).await {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Err(e) => command_error(&e),
    }
}

async fn shelf_reference(
    State(app): Shared,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let topic = app.store.layout.topic(&id, "shelves/reference/request");
    match app
        .store
        .session
        .publish(
            &topic,
            body.to_string().into_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await
    {
        Ok(()) => Json(json!({"requested": body})).into_response(),
        Err(e) => fail(StatusCode::BAD_GATEWAY, e),
    }
}

/// What the camera publishes, as it arrives: `{"leaf": "events",
/// "payload": {...}}` per server-sent event.
async fn live(State(app): Shared, Path(id): Path<String>) -> Response {
    let leaves = [
        "bins",
        "events",
        "tamper",
        "config/result",
        "config/state",
        "shelves/reference/result",
    ];
    let rx = match app.store.follow(&id, &leaves).await {
        Ok(rx) => rx,
        Err(e) => return command_error(&e),
    };
    let prefix = format!("{}/", app.store.layout.prefix(&id));
    let stream = futures_util::stream::unfold((rx, prefix), |(mut rx, prefix)| async move {
        loop {
            match rx.recv().await {
                Ok(Incoming::Message(m)) => {
                    let Some(leaf) = m.topic.strip_prefix(&prefix) else {
                        continue;
                    };
                    if leaf == "health" || leaf == "status" || leaf == "snapshot" {
                        continue;
                    }
                    let payload: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
                    let data = json!({"leaf": leaf, "payload": payload}).to_string();
                    let ev: Result<Event, Infallible> = Ok(Event::default().data(data));
                    return Some((ev, (rx, prefix)));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditStart {
    seconds: f64,
    #[serde(default)]
    line: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
}

async fn audit_start(
    State(app): Shared,
    Path(id): Path<String>,
    Json(req): Json<AuditStart>,
) -> Response {
    if !(req.seconds.is_finite() && (5.0..=4.0 * 3600.0).contains(&req.seconds)) {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("seconds: {} is not within 5 s to 4 h", req.seconds),
        );
    }
    if let Err(e) = app.store.online(&id).await {
        return command_error(&e);
    }
    let start_us = now_us();
    let end_us = start_us + (req.seconds * 1e6) as u64;
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(req.seconds);
    let recorder = Arc::clone(&app);
    let camera = id.clone();
    let recording = tokio::spawn(async move { recorder.store.record(&camera, until).await });
    let settings = Settings {
        line: req.line.filter(|l| !l.is_empty()),
        threshold: req.threshold.unwrap_or(95.0) / 100.0,
        ..Settings::default()
    };
    let audit = LiveAudit {
        start_us,
        end_us,
        settings,
        taps: Vec::new(),
        recording: Some(recording),
        report: None,
    };
    if let Ok(mut a) = app.audits.lock() {
        a.insert(id, audit);
    }
    Json(json!({"start": audit::rfc3339(start_us), "end": audit::rfc3339(end_us)})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TapRequest {
    kind: String,
}

async fn audit_tap(
    State(app): Shared,
    Path(id): Path<String>,
    Json(req): Json<TapRequest>,
) -> Response {
    let t_us = now_us();
    let Some(kind) = Kind::parse(&req.kind) else {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("kind: {:?} is not in, out or passer", req.kind),
        );
    };
    let Ok(mut audits) = app.audits.lock() else {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, "audit state poisoned");
    };
    match audits.get_mut(&id) {
        Some(a) if t_us < a.end_us => {
            a.taps.push(Tap { t_us, kind });
            let n = a.taps.iter().filter(|t| t.kind == kind).count();
            Json(json!({"kind": kind, "count": n})).into_response()
        }
        Some(_) => fail(StatusCode::CONFLICT, "the audit's window has ended"),
        None => fail(StatusCode::NOT_FOUND, format!("no audit of {id} running")),
    }
}

/// The audit's state; its report once the window has passed.
async fn audit_state(State(app): Shared, Path(id): Path<String>) -> Response {
    let handle = {
        let Ok(mut audits) = app.audits.lock() else {
            return fail(StatusCode::INTERNAL_SERVER_ERROR, "audit state poisoned");
        };
        let Some(a) = audits.get_mut(&id) else {
            return fail(StatusCode::NOT_FOUND, format!("no audit of {id}"));
        };
        if a.report.is_none() && now_us() < a.end_us {
            let count = |k| a.taps.iter().filter(|t| t.kind == k).count();
            return Json(json!({
                "state": "running",
                "remaining_s": (a.end_us - now_us()) as f64 / 1e6,
                "taps": {"in": count(Kind::In), "out": count(Kind::Out), "passer": count(Kind::Passer)},
            }))
            .into_response();
        }
        a.recording.take()
    };
    if let Some(h) = handle {
        let recording = match h.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return command_error(&e),
            Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e),
        };
        if let Ok(mut audits) = app.audits.lock()
            && let Some(a) = audits.get_mut(&id)
        {
            a.report = Some(audit::audit(
                &id,
                a.start_us,
                a.end_us,
                &a.taps,
                &recording.counts,
                &a.settings,
            ));
        }
    }
    match finished(&app, &id) {
        Some(r) => Json(json!({"state": "done", "report": r})).into_response(),
        None => Json(json!({"state": "finishing"})).into_response(),
    }
}

/// The report of a camera's audit, once its window has passed.
fn finished(app: &App, id: &str) -> Option<audit::Report> {
    app.audits
        .lock()
        .ok()
        .and_then(|a| a.get(id).and_then(|a| a.report.clone()))
}

async fn audit_html(State(app): Shared, Path(id): Path<String>) -> Response {
    match finished(&app, &id) {
        Some(r) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "inline; filename=\"audit-report.html\"",
                ),
            ],
            crate::report::to_html(&r),
        )
            .into_response(),
        None => fail(StatusCode::NOT_FOUND, format!("no finished audit of {id}")),
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
