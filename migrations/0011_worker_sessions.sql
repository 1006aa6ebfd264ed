-- A worker's liveness is its database session: a worker process registers
-- the backend of a connection it keeps open for its whole life. When the
-- process dies (SIGKILL, OOM, a crashed host), the kernel closes the socket
-- and Postgres ends that backend at once, so the rescuer can hand the dead
-- worker's running tasks to others within a second instead of waiting out
-- their leases. The lease stays the fallback for a worker that is alive but
-- stuck (its session lives on) and for workers that never registered.
--
-- Rows are (worker name, backend): a process re-registers after its kept
-- connection drops, and two processes given the same name each add a row; a
-- name is dead only when every one of its rows is dead.
CREATE TABLE worker_sessions (
    worker        text NOT NULL,
    backend_pid   integer NOT NULL,
    backend_start timestamptz NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker, backend_pid, backend_start)
);

-- Workers whose every registered session has ended since this server
-- started. Sessions registered before a Postgres restart say nothing (every
-- one of them ended with the restart, while their workers may be alive and
-- reconnecting): they are ignored here and deleted by the upkeep, and those
-- workers fall back to their leases until they register again.
CREATE FUNCTION panel1_dead_workers() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT s.worker
    FROM worker_sessions s
    GROUP BY s.worker
    HAVING bool_and(
        s.registered_at > pg_postmaster_start_time()
        AND NOT EXISTS (
            SELECT 1 FROM pg_stat_activity a
            WHERE a.pid = s.backend_pid
              -- Another role's sessions show no start time: the pid alone.
              AND (a.backend_start IS NULL OR a.backend_start = s.backend_start)))
$$;
