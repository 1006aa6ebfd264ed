// {{name}}: a Panel1 provisioning adapter in TypeScript (componentize-js).
//
// A small but real starter for WHM API 1 (cPanel's server API), the provider
// `panel1 sim whm` simulates. Every call is
//   GET https://{host}:{port}/json-api/<function>?api.version=1&...
// with `Authorization: whm <user>:<whm-token>`; the token is a secret
// placeholder the host fills in, so its value never enters this component.
//
// The WIT's types come from types/ (generated from wit/ by the build):
// functions and fields are camelCase (testConnection, remoteId), enums are
// kebab-case strings ('active'), option<T> is `T | undefined`, u64 is a
// bigint (ctx.deadlineMs), an error is thrown as {tag, val}.
//
// Change the provider: replace `whm()` and the operations below; keep
// statusError/transportError and the Deadline-based request timeout.
import type {
  AdapterInfo, CallContext, RemoteState, ServiceRequest, ServiceSpec, ServiceStatus,
} from 'panel1:provisioning/types@0.1.0';
import {
  adapterExports, config, placeholder, log, request, statusError, transportError, Deadline,
  invalidInput, notFound, conflict, permanent, transient,
} from './panel1.js';
import type { Adapter, Response } from './panel1.js';

const TOKEN = 'whm-token';

const SCHEMA = JSON.stringify({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['host'],
  properties: {
    host: { type: 'string', minLength: 1, description: 'WHM host name or IP, without scheme or port' },
    port: { type: 'integer', minimum: 1, maximum: 65535, default: 2087 },
    whm_user: { type: 'string', minLength: 1, default: 'root' },
    request_timeout_ms: { type: 'integer', minimum: 100, default: 30000, description: "Timeout of one WHM call (kept below the call's deadline)" },
  },
  additionalProperties: false,
});

// Built once at initialisation (snapshotted), so `info()` only returns it.
const INFO: AdapterInfo = {
  name: '{{name}}',
  version: '0.1.0',
  description: '{{name}}: WHM API 1 starter adapter',
  operations: ['test-connection', 'provision', 'suspend', 'unsuspend', 'terminate', 'status'],
  configSchema: SCHEMA,
  egress: ['https://{host}:{port}/json-api/'],
  secrets: [TOKEN],
};

/** What WHM API 1 answers: `metadata.result` 1 or 0, and the data. */
interface WhmDoc {
  metadata?: { result?: number | string; reason?: string };
  data?: { version?: string; acct?: Array<{ suspended?: number | string }> };
}
type WhmAnswer = { ok: true; doc: WhmDoc } | { ok: false; reason: string };

/** The server's settings and the call's clock, for one operation. */
function whm(ctx: CallContext) {
  const host = config('host');
  if (!host || !/^[A-Za-z0-9_.-]+$/.test(host)) throw invalidInput('config `host` must be a host name or IP address');
  const port = Number(config('port') ?? 2087);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidInput('config `port` is not a TCP port');
  const timeoutMs = Number(config('request_timeout_ms') ?? 30000);
  if (!(timeoutMs > 0)) throw invalidInput('config `request_timeout_ms` is not a positive integer');
  const base = `https://${host}:${port}/json-api/`;
  const user = config('whm_user') ?? 'root';
  const deadline = new Deadline(ctx);

  /** One WHM API 1 call. */
  function call(fn: string, params: Record<string, string> = {}): WhmAnswer {
    const timeout = deadline.requestTimeout(timeoutMs);
    if (timeout === undefined) throw transient(`WHM ${fn}: no time left in the call`);
    const query = Object.entries(params).map(([k, v]) => `&${k}=${encodeURIComponent(v)}`).join('');
    const headers = { authorization: `whm ${user}:${placeholder(TOKEN)}`, accept: 'application/json' };
    let resp: Response;
    try {
      resp = request('GET', `${base}${fn}?api.version=1${query}`, { headers, timeoutMs: timeout });
    } catch (e) {
      throw transportError(`WHM ${fn}`, e, `the egress rules must allow ${base} and \`${TOKEN}\` must be bound to its host`);
    }
    log('info', 'whm call', { function: fn, status: resp.status });
    if (!resp.ok) throw statusError(resp, `WHM ${fn}`);
    const doc = resp.json() as WhmDoc;
    const result = doc && doc.metadata ? Number(doc.metadata.result) : NaN;
    if (result === 1) return { ok: true, doc };
    if (result === 0) return { ok: false, reason: String(doc.metadata?.reason ?? 'no reason') };
    throw permanent(`WHM ${fn}: not a WHM API 1 answer`);
  }

  /** 'active' | 'suspended', or undefined when WHM has no such account. */
  function account(username: string): RemoteState | undefined {
    const a = call('accountsummary', { user: username });
    if (a.ok) return Number(a.doc.data?.acct?.[0]?.suspended) === 1 ? 'suspended' : 'active';
    if (/does not exist/i.test(a.reason)) return undefined;
    throw permanent(`WHM accountsummary: ${a.reason}`);
  }

  return { call, account };
}

function userOf(service: ServiceSpec): string {
  const id = service.remoteId ?? service.username;
  if (!id) throw invalidInput('the service has neither a remote id nor a username');
  return id;
}

const statusOf = (remoteId: string, state: RemoteState): ServiceStatus =>
  ({ remoteId, state, plan: undefined, domain: undefined, details: [] });

/** suspend/unsuspend as an "ensure": nothing to do when already there. */
function ensure(req: ServiceRequest, fn: string, want: RemoteState): ServiceStatus {
  const w = whm(req.ctx);
  const user = userOf(req.service);
  const state = w.account(user);
  if (state === undefined) throw notFound(`WHM has no account \`${user}\``);
  if (state === want) return statusOf(user, want);
  const r = w.call(fn, { user, reason: req.reason || 'Panel1' });
  if (!r.ok) throw permanent(`WHM ${fn}: ${r.reason}`);
  return statusOf(user, want);
}

// Typed as the generated `adapter` interface: a wrong signature is a build error.
export const adapter: Adapter = adapterExports({
  info: () => INFO,

  testConnection(req) {
    const r = whm(req.ctx).call('version');
    if (!r.ok) throw permanent(`WHM version: ${r.reason}`);
    return { serverVersion: `WHM ${r.doc.data?.version ?? '?'}`, details: [] };
  },

  provision(req) {
    const w = whm(req.ctx);
    const s = req.service;
    if (!s.username) throw invalidInput('username is required');
    // Ensure semantics: a retry (or a lost answer) finds the account the
    // first attempt created.
    const existing = w.account(s.username);
    if (existing !== undefined) return statusOf(s.username, existing);
    const params: Record<string, string> = { username: s.username };
    if (s.domain) params.domain = s.domain;
    if (s.plan) params.plan = s.plan;
    if (s.contactEmail) params.contactemail = s.contactEmail;
    const r = w.call('createacct', params);
    if (r.ok) {
      log('info', 'account created', { username: s.username });
      return statusOf(s.username, 'active');
    }
    if (/already exists/i.test(r.reason)) {
      const state = w.account(s.username);
      if (state !== undefined) return statusOf(s.username, state);
      throw conflict(`WHM createacct: ${r.reason}`);
    }
    throw invalidInput(`WHM createacct: ${r.reason}`);
  },

  suspend: (req) => ensure(req, 'suspendacct', 'suspended'),
  unsuspend: (req) => ensure(req, 'unsuspendacct', 'active'),

  terminate(req) {
    const user = userOf(req.service);
    const r = whm(req.ctx).call('removeacct', { username: user });
    // Already gone is success: terminate is an "ensure".
    if (r.ok || /does not exist/i.test(r.reason)) return statusOf(user, 'terminated');
    throw permanent(`WHM removeacct: ${r.reason}`);
  },

  status(req) {
    const user = userOf(req.service);
    return statusOf(user, whm(req.ctx).account(user) ?? 'terminated');
  },
});
