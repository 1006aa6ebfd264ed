// Panel1 provisioning adapter in JavaScript, built with componentize-js
// (SpiderMonkey/StarlingMonkey) against wit/v0.1.0 (world `provisioning`).
//
// It drives the same generic JSON/REST panel API as the Rust reference
// adapter, relative to the configured `base_url`:
//   GET    {base_url}/version                   -> {"version": "..."}
//   POST   {base_url}/accounts                  {username, domain, plan}
//   GET    {base_url}/accounts/{id}             -> {username, domain, plan, state, owner}
//   POST   {base_url}/accounts/{id}/suspend     {reason}
//   POST   {base_url}/accounts/{id}/unsuspend
//   DELETE {base_url}/accounts/{id}
// (Against the refpanel fake provider, set base_url to `http://host:port/v1`.)
//
// WIT -> JS mapping (componentize-js):
//   * functions and record fields: kebab-case -> camelCase
//     (test-connection -> testConnection, remote-id -> remoteId);
//   * enum values: kebab-case strings ('test-connection', 'active', 'info');
//   * option<T>: undefined (or null) for none, the value for some;
//   * u64: BigInt (ctx.deadlineMs, transient.retryAfterMs);
//   * result<T, E> export: return T for ok, `throw {tag, val}` for err;
//   * result<T, E> import: returns T, throws on err (the variant may sit in
//     `.payload` of the thrown error, see `errorPayload`).
// Exports that call fetch() are async: componentize-js runs the event loop
// until the promise settles, so the component function stays synchronous.

import { get as configGet } from 'panel1:provisioning/config@0.1.0';
import { placeholder } from 'panel1:provisioning/secrets@0.1.0';
import { write as logWrite } from 'panel1:provisioning/log@0.1.0';

const CONFIG_SCHEMA = JSON.stringify({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['base_url'],
  properties: {
    base_url: { type: 'string', format: 'uri', description: 'e.g. https://panel.example.com' },
  },
  additionalProperties: false,
});

// Built once at module initialisation (snapshotted by wizer), so `info()`
// only hands back this record.
const INFO = {
  name: 'js-reference',
  version: '0.1.0',
  description: 'JavaScript reference adapter for the generic REST panel API (componentize-js)',
  operations: ['test-connection', 'provision', 'status', 'suspend', 'unsuspend', 'terminate'],
  configSchema: CONFIG_SCHEMA,
  egress: ['{base_url}'],
  secrets: ['api-token'],
};

// ---- errors (variant adapter-error) ---------------------------------------

const err = (tag, val) => ({ tag, val });
const transient = (message, retryAfterMs) => err('transient', { message, retryAfterMs });

/// The variant carried by an error thrown from an imported function.
function errorPayload(e) {
  if (e && typeof e === 'object') {
    if (e.payload && typeof e.payload === 'object' && 'tag' in e.payload) return e.payload;
    if ('tag' in e) return e;
  }
  return undefined;
}

/// `Retry-After` in seconds -> milliseconds as a u64 (BigInt), else none.
function retryAfterMs(resp) {
  const v = resp.headers.get('retry-after');
  if (v && /^\s*\d+\s*$/.test(v)) return BigInt(v.trim()) * 1000n;
  return undefined;
}

/// The typed error for a non-2xx response (same mapping as the Rust SDK).
async function statusError(resp) {
  let body = '';
  try {
    body = (await resp.text()).slice(0, 200);
  } catch (_) {
    // keep the status alone
  }
  const msg = `HTTP ${resp.status}: ${body}`;
  const s = resp.status;
  if (s === 400 || s === 422) return err('invalid-input', msg);
  if (s === 401 || s === 403) return err('auth-failed', msg);
  if (s === 404) return err('not-found', msg);
  if (s === 409) return err('conflict', msg);
  if (s === 408 || s === 425 || s === 429 || (s >= 500 && s <= 599)) return transient(msg, retryAfterMs(resp));
  return err('permanent', msg);
}

// ---- host capabilities ----------------------------------------------------

function log(level, message, fields = {}) {
  logWrite(level, message, Object.entries(fields).map(([k, v]) => [k, String(v)]));
}

function baseUrl() {
  const v = configGet('base_url');
  if (v == null || v === '') throw err('invalid-input', 'config `base_url` is required');
  return v.replace(/\/+$/, '');
}

function bearer() {
  try {
    return `Bearer ${placeholder('api-token')}`;
  } catch (e) {
    const p = errorPayload(e);
    if (p && p.tag === 'denied') throw err('auth-failed', `secret api-token: ${p.val}`);
    if (p) throw err('invalid-input', `secret api-token is not bound: ${p.val}`);
    throw err('permanent', `secret api-token: ${e}`);
  }
}

/// One request to the panel with auth and idempotency headers. Network
/// failures (including requests the egress policy refused, which JS only
/// sees as `TypeError: NetworkError`) are transient.
async function call(method, path, ctx, body) {
  const url = baseUrl() + path;
  const headers = {
    authorization: bearer(),
    accept: 'application/json',
    'idempotency-key': ctx.idempotencyKey,
  };
  const init = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    log('warn', 'request failed', { method, url, error: String(e) });
    throw transient(`${method} ${url}: ${e}`, undefined);
  }
  log('debug', 'response', { method, url, status: resp.status });
  return resp;
}

async function json(resp) {
  const text = await resp.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw err('permanent', `expected a JSON body (HTTP ${resp.status}): ${e}; body starts with ${JSON.stringify(text.slice(0, 120))}`);
  }
}

// ---- mapping --------------------------------------------------------------

const STATES = new Set(['active', 'suspended', 'terminated', 'pending']);
const stateOf = (s) => (STATES.has(s) ? s : 'unknown');
const opt = (v) => (v == null ? undefined : String(v));

function toStatus(a, fallbackId) {
  const details = [];
  if (a && a.owner != null) details.push({ key: 'owner', value: String(a.owner) });
  return {
    remoteId: String((a && a.username) ?? fallbackId),
    state: stateOf(a && a.state),
    plan: opt(a && a.plan),
    domain: opt(a && a.domain),
    details,
  };
}

function remoteIdOf(spec) {
  const id = spec.remoteId ?? spec.username;
  if (id == null || id === '') throw err('invalid-input', 'service has neither a remote id nor a username');
  return id;
}

async function expectAccount(resp, id) {
  if (!resp.ok) throw await statusError(resp);
  return toStatus(await json(resp), id);
}

// ---- the `adapter` interface ----------------------------------------------

function info() {
  return INFO;
}

async function testConnection(req) {
  const resp = await call('GET', '/version', req.ctx);
  if (!resp.ok) throw await statusError(resp);
  const body = await json(resp);
  if (!body || typeof body.version !== 'string') {
    throw err('permanent', 'GET /version: the body has no string field `version`');
  }
  log('info', 'connected', { version: body.version });
  return { serverVersion: body.version, details: [] };
}

async function provision(req) {
  const spec = req.service;
  const username = spec.username;
  if (username == null || username === '') throw err('invalid-input', 'username is required');
  const body = { username, domain: spec.domain ?? null, plan: spec.plan ?? null };
  const resp = await call('POST', '/accounts', req.ctx, body);
  if (resp.status === 409) {
    throw err('conflict', `account \`${username}\` already exists: ${(await resp.text()).slice(0, 200)}`);
  }
  if (!resp.ok) throw await statusError(resp);
  log('info', 'account created', { username });
  return { remoteId: username, state: 'active', plan: opt(spec.plan), domain: opt(spec.domain), details: [] };
}

async function status(req) {
  const id = remoteIdOf(req.service);
  const resp = await call('GET', `/accounts/${encodeURIComponent(id)}`, req.ctx);
  if (resp.status === 404) return { remoteId: id, state: 'terminated', plan: undefined, domain: undefined, details: [] };
  return expectAccount(resp, id);
}

async function suspend(req) {
  const id = remoteIdOf(req.service);
  return expectAccount(await call('POST', `/accounts/${encodeURIComponent(id)}/suspend`, req.ctx, { reason: req.reason }), id);
}

async function unsuspend(req) {
  const id = remoteIdOf(req.service);
  return expectAccount(await call('POST', `/accounts/${encodeURIComponent(id)}/unsuspend`, req.ctx), id);
}

async function terminate(req) {
  const id = remoteIdOf(req.service);
  const resp = await call('DELETE', `/accounts/${encodeURIComponent(id)}`, req.ctx);
  // Already gone is success: terminate is an "ensure".
  if (resp.ok || resp.status === 404) {
    return { remoteId: id, state: 'terminated', plan: undefined, domain: undefined, details: [] };
  }
  throw await statusError(resp);
}

const TAGS = new Set(['invalid-input', 'auth-failed', 'not-found', 'conflict', 'transient', 'permanent', 'unsupported']);

/// Any exception that is not an `adapter-error` (a bug, a bad body shape)
/// becomes `permanent` with its message, instead of a guest trap whose only
/// trace would go to stderr (stdio is disabled in this build).
function guarded(op, f) {
  return async (req) => {
    try {
      return await f(req);
    } catch (e) {
      if (e && typeof e === 'object' && TAGS.has(e.tag)) throw e;
      const message = `${op}: unexpected error: ${e}`;
      try {
        log('error', message, { stack: (e && e.stack) || '' });
      } catch (_) {
        // logging must not hide the error
      }
      throw err('permanent', message);
    }
  };
}

function unsupported(op) {
  return () => {
    throw err('unsupported', `js-reference does not implement ${op}`);
  };
}

export const adapter = {
  info,
  testConnection: guarded('test-connection', testConnection),
  provision: guarded('provision', provision),
  suspend: guarded('suspend', suspend),
  unsuspend: guarded('unsuspend', unsuspend),
  terminate: guarded('terminate', terminate),
  status: guarded('status', status),
  changePackage: unsupported('change-package'),
  changePassword: unsupported('change-password'),
  listServices: unsupported('list-services'),
  usage: unsupported('usage'),
  loginUrl: unsupported('login-url'),
};
