//! The embedded Postgres of `panel1 serve`: real binaries, real clusters in
//! temporary directories.
use panel1_store::embedded::EmbeddedPostgres;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;

/// A temporary data dir, removed (after stopping any server left in it) on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("panel1-embedded-{}", uuid::Uuid::new_v4()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.join("pgdata/postmaster.pid").exists() {
            if let Ok(pg) = EmbeddedPostgres::start(&self.0) {
                let _ = pg.stop();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

#[tokio::test]
async fn data_survives_a_stop_and_start_on_the_same_dir() {
    let scratch = Scratch::new();
    let pg = EmbeddedPostgres::start(&scratch.0).expect("first start");
    assert!(!pg.reused(), "a fresh dir has no running server to reuse");
    assert!(pg.url().ends_with("/panel1"), "url: {}", pg.url());
    assert!(scratch.0.join("pgdata/PG_VERSION").exists());
    let recorded = std::fs::read_to_string(scratch.0.join("port")).unwrap();
    assert_eq!(recorded.trim(), pg.port().to_string());
    let socket = scratch.0.join(format!("socket/.s.PGSQL.{}", pg.port()));
    assert!(socket.exists(), "unix socket inside the data dir");

    let mut conn = connect(&pg.url()).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(db, "panel1");
    // Loopback only.
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(listen, "127.0.0.1");
    sqlx::query("CREATE TABLE kept (v text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES ('first run')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let url = pg.url();
    pg.stop().expect("stop");
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "the server is down after stop()"
    );
    assert!(!scratch.0.join("pgdata/postmaster.pid").exists());

    let pg = EmbeddedPostgres::start(&scratch.0).expect("second start");
    assert!(!pg.reused());
    let mut conn = connect(&pg.url()).await;
    let kept: Vec<String> = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, vec!["first run".to_string()]);
    conn.close().await.unwrap();

    // Drop of the value that started it stops the server.
    let url = pg.url();
    drop(pg);
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "the server is down after drop"
    );
}

#[tokio::test]
async fn a_second_start_on_a_running_cluster_reuses_it() {
    let scratch = Scratch::new();
    let first = EmbeddedPostgres::start(&scratch.0).expect("first start");
    let mut conn = connect(&first.url()).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(pid > 0);
    let postmaster_start: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();

    let second = EmbeddedPostgres::start(&scratch.0).expect("start on a running cluster");
    assert!(second.reused(), "the running postmaster is adopted");
    assert_eq!(second.port(), first.port());
    assert_eq!(second.url(), first.url());
    let mut conn2 = connect(&second.url()).await;
    let same_start: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::text")
        .fetch_one(&mut conn2)
        .await
        .unwrap();
    assert_eq!(
        same_start, postmaster_start,
        "same postmaster, not a new one"
    );
    conn2.close().await.unwrap();

    // Dropping the adopter leaves the server to its owner.
    drop(second);
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("the first connection survives the adopter's drop");
    assert_eq!(one, 1);
    conn.close().await.unwrap();
    first.stop().expect("stop");
}

#[tokio::test]
async fn a_killed_postmaster_leaves_a_stale_pid_file_that_start_gets_past() {
    let scratch = Scratch::new();
    let pg = EmbeddedPostgres::start(&scratch.0).expect("first start");
    let mut conn = connect(&pg.url()).await;
    sqlx::query("CREATE TABLE kept (v int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES (7)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let pidfile = scratch.0.join("pgdata/postmaster.pid");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let pid = pid.lines().next().unwrap().trim().to_string();
    // The postmaster dies without cleaning up, as in a machine crash.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proc_dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(pidfile.exists(), "SIGKILL leaves postmaster.pid behind");
    std::mem::forget(pg); // its server is gone; nothing to stop

    let pg = EmbeddedPostgres::start(&scratch.0).expect("start past a stale pid file");
    assert!(!pg.reused(), "a dead postmaster is not adopted");
    let mut conn = connect(&pg.url()).await;
    let kept: i32 = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, 7, "committed data survives the crash");
    conn.close().await.unwrap();
    pg.stop().unwrap();
}
