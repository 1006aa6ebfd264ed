// The REST API is the console's only backend. Requests ride the session
// cookie (HttpOnly: this code never sees it) and echo the CSRF token the
// session endpoint hands out on every unsafe method.

let csrf = null;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (r.status === 401 && path !== '/console/session') {
    window.dispatchEvent(new CustomEvent('panel1:signed-out'));
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// A component upload: the file's bytes as application/wasm, with the CSRF
// token like every unsafe request.
async function upload(path, file) {
  const headers = { Accept: 'application/json', 'Content-Type': 'application/wasm' };
  if (csrf) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, { method: 'POST', headers, credentials: 'same-origin', body: file });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const api = {
  upload,
  get: (path) => call('GET', path),
  post: (path, body) => call('POST', path, body ?? {}),
  del: (path) => call('DELETE', path),
  patch: (path, body) => call('PATCH', path, body),
};

export async function currentSession() {
  try {
    const s = await call('GET', '/console/session');
    csrf = s.csrf_token;
    return s;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function signIn(key) {
  const s = await call('POST', '/console/session', { key });
  csrf = s.csrf_token;
  return s;
}

export async function signOut() {
  try {
    await call('DELETE', '/console/session');
  } finally {
    csrf = null;
  }
}

// `?a=1&b=2` from an object, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

const KINDS = ['task.created', 'task.started', 'task.succeeded', 'task.failed', 'task.retrying',
  'task.cancelled', 'task.retried', 'task.rescued', 'service.updated', 'service.adopted',
  'service.drift_detected', 'server.health_changed', 'bulk.created', 'bulk.progress', 'bulk.paused',
  'bulk.resumed', 'bulk.cancelled', 'bulk.completed'];

// Live updates from /v1/events (SSE, same cookie). Returns a closer.
export function liveEvents(filter, onEvent) {
  const es = new EventSource(`/v1/events${query(filter)}`, { withCredentials: true });
  const handler = (e) => {
    let data = null;
    try {
      data = JSON.parse(e.data);
    } catch {
      return;
    }
    onEvent(data);
  };
  es.onmessage = handler;
  for (const k of KINDS) es.addEventListener(k, handler);
  return () => es.close();
}
