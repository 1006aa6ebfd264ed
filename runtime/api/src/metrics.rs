//! Prometheus `/metrics`: the worker's metrics (registered by the caller into
//! the same registry), request counts by route, and the task table by state
//! and the servers by health (read at scrape time).
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use std::sync::Arc;

type Labels = Vec<(&'static str, String)>;

pub struct ApiMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    tasks: Family<Labels, Gauge>,
    servers: Family<Labels, Gauge>,
}

impl ApiMetrics {
    /// Takes the registry the worker metrics were registered in (if any).
    pub fn new(mut registry: Registry) -> Arc<ApiMetrics> {
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "panel1_http_requests",
            "API requests answered, by method, route and status",
            requests.clone(),
        );
        let tasks = Family::<Labels, Gauge>::default();
        registry.register(
            "panel1_tasks",
            "Tasks in the hot table, by state (read at scrape time)",
            tasks.clone(),
        );
        let servers = Family::<Labels, Gauge>::default();
        registry.register(
            "panel1_servers",
            "Servers by health state (read at scrape time; `down` holds their tasks)",
            servers.clone(),
        );
        Arc::new(ApiMetrics {
            registry,
            requests,
            tasks,
            servers,
        })
    }

    pub fn request(&self, method: &str, route: &str, status: u16) {
        self.requests
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// The text exposition.
    pub async fn render(&self, pool: &PgPool) -> Result<String, sqlx::Error> {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT state::text, count(*) FROM tasks GROUP BY state")
                .fetch_all(pool)
                .await?;
        for state in [
            "scheduled",
            "available",
            "running",
            "retryable",
            "succeeded",
            "failed",
            "cancelled",
        ] {
            let n = counts.iter().find(|(s, _)| s == state).map_or(0, |c| c.1);
            self.tasks
                .get_or_create(&vec![("state", state.to_string())])
                .set(n);
        }
        let health: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM server_health GROUP BY state")
                .fetch_all(pool)
                .await?;
        for state in ["unknown", "healthy", "degraded", "down"] {
            let n = health.iter().find(|(s, _)| s == state).map_or(0, |c| c.1);
            self.servers
                .get_or_create(&vec![("health", state.to_string())])
                .set(n);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        Ok(out)
    }
}
