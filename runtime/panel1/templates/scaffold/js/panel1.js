// panel1.js: the Panel1 helpers for a JavaScript adapter (componentize-js).
//
// HTTP goes straight through wasi:http/outgoing-handler rather than fetch():
// fetch() turns a host denial into a bare NetworkError (so a misconfigured
// adapter would be retried for nothing) and has no timeouts without timers.
// Here a request has connect/first-byte/between-bytes timeouts, and every
// failure is typed as the Rust SDK types it:
//   HTTP 400/422 -> invalid-input   401/403 -> auth-failed   404 -> not-found
//   409 -> conflict   408/425/429/5xx -> transient (Retry-After as retryAfterMs)
//   egress denied by the host -> permanent   timeout/reset/refused -> transient
import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingRequest, OutgoingBody, RequestOptions } from 'wasi:http/types@0.2.12';
import { now } from 'wasi:clocks/monotonic-clock@0.2.12';
import { get as configGet } from 'panel1:provisioning/config@0.1.0';
import { placeholder as rawPlaceholder } from 'panel1:provisioning/secrets@0.1.0';
import { write as logWrite } from 'panel1:provisioning/log@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---- typed errors (variant adapter-error): `throw` them from operations ----

export const TAGS = new Set(['invalid-input', 'auth-failed', 'not-found', 'conflict', 'transient', 'permanent', 'unsupported']);
const err = (tag, val) => ({ tag, val });
export const invalidInput = (m) => err('invalid-input', m);
export const authFailed = (m) => err('auth-failed', m);
export const notFound = (m) => err('not-found', m);
export const conflict = (m) => err('conflict', m);
export const permanent = (m) => err('permanent', m);
export const unsupported = (m) => err('unsupported', m);
/** `retryAfterMs`: a number of milliseconds, or undefined. */
export const transient = (message, retryAfterMs) =>
  err('transient', { message, retryAfterMs: retryAfterMs == null ? undefined : BigInt(Math.round(retryAfterMs)) });

/** Is `e` an adapter-error (a value of the constructors above)? */
export function isAdapterError(e) {
  return typeof e === 'object' && e !== null && TAGS.has(String(e.tag));
}

/** The variant carried by an error an imported function threw. */
function payloadOf(e) {
  if (e && typeof e === 'object') {
    if (e.payload && typeof e.payload === 'object' && 'tag' in e.payload) return e.payload;
    if ('tag' in e) return e;
  }
  return undefined;
}

// ---- host capabilities ------------------------------------------------------

/** One structured log line (level: trace|debug|info|warn|error). */
export function log(level, message, fields = {}) {
  logWrite(level, message, Object.entries(fields).map(([k, v]) => [k, String(v)]));
}

/** A server setting, or undefined. */
export function config(key) {
  const v = configGet(key);
  return v == null || v === '' ? undefined : v;
}

/** Text standing for secret `name`; the host puts the value in at send time. */
export function placeholder(name) {
  try {
    return rawPlaceholder(name);
  } catch (e) {
    const p = payloadOf(e);
    throw invalidInput(`secret \`${name}\`: ${p ? p.val : e}`);
  }
}

// ---- the call's deadline ------------------------------------------------------

/** Time left in a call, on the host's monotonic clock. */
export class Deadline {
  constructor(ctx) {
    this.start = now();
    this.budgetMs = Number(ctx.deadlineMs);
  }
  remainingMs() {
    const elapsed = Number((now() - this.start) / 1000000n);
    return Math.max(0, this.budgetMs - elapsed);
  }
  /** The next request's timeout: `configuredMs`, ended a margin before the
   *  deadline (a tenth, 250 ms to 2 s); undefined when too little is left. */
  requestTimeout(configuredMs) {
    if (this.budgetMs === 0) return configuredMs;
    const left = this.remainingMs();
    const margin = Math.min(2000, Math.max(250, Math.floor(left / 10)));
    const usable = left - margin;
    return usable >= 100 ? Math.min(configuredMs, usable) : undefined;
  }
}

// ---- HTTP -------------------------------------------------------------------

/** A request that got no answer: kind is denied | network | invalid-url | other. */
export class HttpError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const NETWORK = new Set([
  'DNS-timeout', 'DNS-error', 'destination-not-found', 'destination-unavailable', 'destination-IP-unroutable',
  'connection-refused', 'connection-terminated', 'connection-timeout', 'connection-read-timeout',
  'connection-write-timeout', 'connection-limit-reached', 'HTTP-response-incomplete', 'HTTP-response-timeout',
]);

function httpError(code) {
  const tag = code && code.tag ? code.tag : String(code);
  if (tag === 'HTTP-request-denied' || tag === 'destination-IP-prohibited') return new HttpError('denied', tag);
  if (NETWORK.has(tag)) return new HttpError('network', tag);
  return new HttpError('other', tag);
}

const METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch']);

/**
 * Send a request and read the whole answer.
 *   request('GET', 'https://host:2087/json-api/version?api.version=1',
 *           { headers: { accept: 'application/json' }, body: '...', timeoutMs: 5000 })
 * Resolves to { status, headers (lowercase names), text, json(), ok, retryAfterMs }.
 * Throws HttpError when no answer came.
 */
export function request(method, url, { headers = {}, body, timeoutMs } = {}) {
  let u;
  try {
    u = new URL(url);
  } catch (e) {
    throw new HttpError('invalid-url', `${url}: ${e}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new HttpError('invalid-url', `unsupported scheme ${u.protocol}`);
  const fields = Fields.fromList(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), encoder.encode(String(v))]));
  const req = new OutgoingRequest(fields);
  const m = method.toLowerCase();
  req.setMethod(METHODS.has(m) ? { tag: m } : { tag: 'other', val: method });
  req.setScheme({ tag: u.protocol === 'https:' ? 'HTTPS' : 'HTTP' });
  req.setAuthority(u.host);
  req.setPathWithQuery(`${u.pathname}${u.search}`);
  const outgoing = req.body();
  let options;
  if (timeoutMs !== undefined) {
    options = new RequestOptions();
    const ns = BigInt(Math.max(1, Math.round(timeoutMs))) * 1000000n;
    options.setConnectTimeout(ns);
    options.setFirstByteTimeout(ns);
    options.setBetweenBytesTimeout(ns);
  }
  let future;
  try {
    future = handle(req, options);
  } catch (e) {
    throw httpError(payloadOf(e));
  }
  // The body is written after `handle`: the host reads it as it goes out
  // (written before, a large body would block on a full pipe).
  if (body !== undefined && body !== null) {
    const stream = outgoing.write();
    const bytes = typeof body === 'string' ? encoder.encode(body) : body;
    // blocking-write-and-flush takes at most 4096 bytes at a time.
    for (let i = 0; i < bytes.length; i += 4096) stream.blockingWriteAndFlush(bytes.subarray(i, i + 4096));
    stream[Symbol.dispose]();
  }
  OutgoingBody.finish(outgoing, undefined);
  future.subscribe().block();
  const got = future.get();
  if (got === undefined || got.tag === 'err') throw new HttpError('other', 'the response was already taken');
  if (got.val.tag === 'err') throw httpError(got.val.val);
  const response = got.val.val;
  const status = response.status();
  const hs = {};
  for (const [k, v] of response.headers().entries()) hs[k.toLowerCase()] = decoder.decode(v);
  const chunks = [];
  const incoming = response.consume();
  const stream = incoming.stream();
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(65536n);
    } catch (e) {
      const p = payloadOf(e);
      if (p && p.tag === 'closed') break;
      throw new HttpError('network', `reading the body: ${p ? p.tag : e}`);
    }
    chunks.push(chunk);
  }
  const text = chunks.map((c) => decoder.decode(c, { stream: true })).join('') + decoder.decode();
  const ra = hs['retry-after'];
  return {
    status,
    headers: hs,
    text,
    ok: status >= 200 && status < 300,
    retryAfterMs: ra && /^\s*\d+\s*$/.test(ra) ? Number(ra.trim()) * 1000 : undefined,
    json() {
      try {
        return JSON.parse(text);
      } catch (e) {
        throw permanent(`expected a JSON body (HTTP ${status}): ${e}; body starts with ${JSON.stringify(text.slice(0, 100))}`);
      }
    },
  };
}

/** The typed error for a non-2xx answer. */
export function statusError(resp, at = '') {
  const msg = `${at ? `${at}: ` : ''}HTTP ${resp.status}: ${resp.text.slice(0, 200)}`;
  const s = resp.status;
  if (s === 400 || s === 422) return invalidInput(msg);
  if (s === 401 || s === 403) return authFailed(msg);
  if (s === 404) return notFound(msg);
  if (s === 409) return conflict(msg);
  if (s === 408 || s === 425 || s === 429 || (s >= 500 && s <= 599)) return transient(msg, resp.retryAfterMs);
  return permanent(msg);
}

/** The typed error for a request that got no answer (`hint`: what to fix
 *  after a denial). */
export function transportError(at, e, hint = 'check the egress rules and secret bindings') {
  if (e instanceof HttpError) {
    if (e.kind === 'network') return transient(`${at}: network error: ${e.message}`);
    if (e.kind === 'denied') return permanent(`${at}: request denied by the host: ${e.message}; ${hint}`);
    return permanent(`${at}: ${e.kind}: ${e.message}`);
  }
  if (isAdapterError(e)) return e;
  return permanent(`${at}: ${e}`);
}

// ---- exports ------------------------------------------------------------------

const OPERATIONS = ['testConnection', 'provision', 'suspend', 'unsuspend', 'terminate', 'status',
  'changePackage', 'changePassword', 'listServices', 'usage', 'loginUrl'];

/**
 * The `adapter` interface from your functions: `info` plus the operations
 * you implement; the others answer `unsupported`. An exception that is not
 * an adapter-error (a bug) becomes `permanent` with an `error` log line,
 * instead of a guest trap without a message (stdio is disabled).
 */
export function adapterExports(impl) {
  const out = { info: impl.info };
  for (const op of OPERATIONS) {
    const f = impl[op];
    out[op] = (req) => {
      if (!f) throw unsupported(`${op} is not implemented`);
      try {
        return f(req);
      } catch (e) {
        if (isAdapterError(e)) throw e;
        const message = `${op}: unexpected error: ${e}`;
        try {
          log('error', message, { stack: (e && e.stack) || '' });
        } catch (_) {
          // logging must not hide the error
        }
        throw permanent(message);
      }
    };
  }
  return out;
}
