-- Browser sessions of the web console (runtime/api/src/console). A session
-- is opened with an API key and acts with exactly that key's tenant and
-- scopes. Only a SHA-256 of the session token is stored (the cookie holds
-- the token); the CSRF token is not a secret from the page, only from
-- other origins. A session dies with its key: revoked keys are refused at
-- every request (the key is admitted again, see auth.rs), and a deleted key
-- takes its sessions with it.
CREATE TABLE console_sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    key_id      uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL CHECK (length(csrf_token) = 64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX console_sessions_key ON console_sessions (key_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
