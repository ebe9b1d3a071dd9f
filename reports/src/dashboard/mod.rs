//! `unas dashboard`: a live, read-only view of a study, served over HTTP while it runs.
//!
//! One page (`/`, no external resources) polls the JSON endpoints once a second and redraws
//! when the study's state changes:
//! - `GET /api/study`: settings, counts by status, running trials with their worker and
//!   heartbeat age, the front, knee, hypervolume, references, the quality objective's
//!   calibration, and `version` (changes when any trial or rung changes state);
//! - `GET /api/trials?since=N`: the trials that changed at or after store time `N` (Unix ms;
//!   0 or absent: all) with their blocks, scores, rungs and failure reasons, and `cursor`, the
//!   `N` to pass next time (rows repeat at the cursor's instant: merge them by `number`);
//! - `GET /api/plots`: the report's Pareto, hypervolume and composition plots as SVG, with
//!   each trial's point position in the Pareto plot (`hits`);
//! - `GET /api/samples`: the sample grids of the front and the references that `unas search`
//!   drew into the run directory (`prompts`, `how`, `grids`: `label`, `number`, `file`), each
//!   PNG at `/samples/FILE`; no grids when none were drawn.
//!
//! The store is opened read-only ([`unas_search::open_store_read_only`]); PostgreSQL
//! sessions are read-only transactions, so nothing here can write a study.

mod views;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use unas_search::{open_store_read_only, SearchError, Study};

use views::Snapshot;

/// The page, with its script and style inline.
const PAGE: &str = include_str!("page.html");

/// What to serve and where.
#[derive(Clone, Debug)]
pub struct DashboardOptions {
    /// The store: a run directory, a SQLite file or a `postgres://` URL.
    pub store: String,
    /// The study's name (needed when the store holds several).
    pub study: Option<String>,
    /// Address to listen on (loopback unless asked otherwise).
    pub bind: SocketAddr,
    /// The run directory whose `samples/` holds the front's sample grids, if any.
    pub run_dir: Option<std::path::PathBuf>,
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The store or study could not be opened or read.
    #[error("{0}")]
    Store(#[from] SearchError),
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("dashboard server: {0}")]
    Serve(std::io::Error),
}

/// Where the dashboard listens and what it shows (for the caller's first line of output).
#[derive(Clone, Debug)]
pub struct Serving {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The study's name.
    pub study: String,
    /// The store's location, password removed.
    pub location: String,
}

struct AppState {
    study: Mutex<Study>,
    location: String,
    run_dir: Option<std::path::PathBuf>,
    /// The last plots drawn, by version.
    plots: Mutex<Option<(u64, Arc<Value>)>>,
}

impl AppState {
    fn snapshot(&self) -> Result<Snapshot, SearchError> {
        let mut study = self.study.lock().unwrap_or_else(|e| e.into_inner());
        Snapshot::read(&mut study, &self.location)
    }
}

/// Opens the study read-only, binds `bind`, calls `ready` and serves until Ctrl-C.
pub fn serve(o: &DashboardOptions, ready: impl FnOnce(&Serving)) -> Result<(), DashboardError> {
    let store = open_store_read_only(&o.store)?;
    let location = store.location();
    let mut study = match &o.study {
        Some(name) => Study::open_in(store, name)?,
        None => Study::open_only(store)?,
    };
    // Read once now: a study the views cannot read fails here, not in the browser.
    Snapshot::read(&mut study, &location)?;
    let listener = std::net::TcpListener::bind(o.bind).map_err(|source| DashboardError::Bind {
        addr: o.bind,
        source,
    })?;
    let addr = listener.local_addr().map_err(DashboardError::Serve)?;
    listener
        .set_nonblocking(true)
        .map_err(DashboardError::Serve)?;
    let serving = Serving {
        addr,
        study: study.config().name.clone(),
        location: location.clone(),
    };
    let state = Arc::new(AppState {
        study: Mutex::new(study),
        location,
        run_dir: o.run_dir.clone(),
        plots: Mutex::new(None),
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/api/study", get(api_study))
        .route("/api/trials", get(api_trials))
        .route("/api/plots", get(api_plots))
        .route("/api/samples", get(api_samples))
        .route("/samples/{file}", get(sample_png))
        .with_state(state);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DashboardError::Serve)?;
    runtime
        .block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            ready(&serving);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
        })
        .map_err(DashboardError::Serve)
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}

/// Runs a store read off the async threads (the PostgreSQL client blocks).
async fn blocking<T: Send + 'static>(
    state: Arc<AppState>,
    f: impl FnOnce(&AppState) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(move || f(&state)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(message)) => Err(unavailable(message)),
        Err(e) => Err(unavailable(format!("reading the study failed: {e}"))),
    }
}

fn unavailable(message: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": message })),
    )
        .into_response()
}

async fn api_study(State(state): State<Arc<AppState>>) -> Response {
    match blocking(state, |s| s.snapshot().map_err(|e| e.to_string())).await {
        Ok(snap) => Json(snap.study).into_response(),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
struct Since {
    since: Option<i64>,
}

async fn api_trials(State(state): State<Arc<AppState>>, Query(q): Query<Since>) -> Response {
    let since = q.since.unwrap_or(0);
    match blocking(state, |s| s.snapshot().map_err(|e| e.to_string())).await {
        Ok(snap) => Json(snap.trials_since(since)).into_response(),
        Err(r) => r,
    }
}

async fn api_plots(State(state): State<Arc<AppState>>) -> Response {
    let drawn = blocking(state, |s| {
        let snap = s.snapshot().map_err(|e| e.to_string())?;
        let mut cache = s.plots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, plots)) = cache.as_ref() {
            if *v == snap.version {
                return Ok(plots.clone());
            }
        }
        let plots = Arc::new(snap.plots()?);
        *cache = Some((snap.version, plots.clone()));
        Ok(plots)
    })
    .await;
    match drawn {
        Ok(plots) => Json(plots.as_ref().clone()).into_response(),
        Err(r) => r,
    }
}

async fn api_samples(State(state): State<Arc<AppState>>) -> Response {
    let grids = blocking(state, |s| {
        Ok(s.run_dir
            .as_deref()
            .and_then(crate::SampleGrids::read_index))
    })
    .await;
    match grids {
        Ok(Some(g)) => Json(g).into_response(),
        // None drawn: an empty set (not an error a browser would log).
        Ok(None) => Json(crate::SampleGrids::default()).into_response(),
        Err(r) => r,
    }
}

async fn sample_png(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let png = blocking(state, move |s| {
        // Only a file the index lists; only that file is read.
        Ok(s.run_dir.as_deref().and_then(|dir| {
            let index = crate::SampleGrids::read_index(dir)?;
            index.grids.iter().any(|g| g.file == file).then_some(())?;
            crate::SampleGrids::png(dir, &file)
        }))
    })
    .await;
    match png {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "image/png")], bytes).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(r) => r,
    }
}
