// Tasks: the filtered list, and one task with every attempt: its log, its
// HTTP exchanges and what it cost in the sandbox (fuel, memory, wall time).
import { h, badge, when, link, table, facts, field, select, flash, json, bytes } from './dom.js';
import { api, query, liveEvents } from './api.js';
import { problemText } from './services.js';
import { coalesced } from './service.js';

const STATES = ['scheduled', 'available', 'running', 'retryable', 'succeeded', 'failed', 'cancelled'];

export async function tasksPage(ctx) {
  const p = ctx.params;
  const list = await api.get(`/v1/tasks${query({ state: p.state, operation: p.operation, server_id: p.server_id, service_id: p.service_id, limit: 50, cursor: p.cursor })}`);
  if (ctx.stale()) return;
  const state = select('state', [['', 'any state'], ...STATES.map((s) => [s, s])], p.state || '');
  const operation = h('input', { name: 'operation', value: p.operation || '', size: 14 });
  const filters = h('form', { class: 'filters', role: 'search' },
    field('State', state), field('Operation', operation), h('button', { type: 'submit' }, 'Filter'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/tasks${query({ state: state.value, operation: operation.value.trim() })}`;
  });
  const rows = table([
    { title: 'Task', cell: (t) => link(`#/tasks/${t.id}`, t.operation) },
    { title: 'State', cell: (t) => badge(t.state) },
    { title: 'Service', cell: (t) => (t.service_id ? link(`#/services/${t.service_id}`, t.service_id.slice(0, 8)) : '—') },
    { title: 'Attempt', cell: (t) => `${t.attempt} / ${t.max_attempts}` },
    { title: 'Created', cell: (t) => when(t.created_at) },
  ], list.items, 'No tasks match.', { id: 'tasks' });
  const more = list.next_cursor ? link(`#/tasks${query({ ...p, cursor: list.next_cursor })}`, 'Next page →') : null;
  ctx.page('Tasks', filters, rows, h('nav', { class: 'pager', 'aria-label': 'Pages' }, more));
}

function micros(us) {
  if (us === null || us === undefined) return '—';
  return us < 1000 ? `${us} µs` : `${(us / 1000).toFixed(1)} ms`;
}

function logLines(log) {
  const entries = Array.isArray(log) ? log : Array.isArray(log?.entries) ? log.entries : null;
  if (!entries) return log ? json(log) : h('p', { class: 'empty' }, 'No log lines.');
  if (!entries.length) return h('p', { class: 'empty' }, 'No log lines.');
  return h('pre', { class: 'log' }, entries.map((e) =>
    `${micros(e.at_us).padStart(10)} ${String(e.level ?? '').padEnd(5)} ${e.message ?? JSON.stringify(e)}${
      (e.fields || []).map(([k, v]) => ` ${k}=${v}`).join('')}\n`));
}

function exchanges(http) {
  const list = Array.isArray(http) ? http : Array.isArray(http?.exchanges) ? http.exchanges : [];
  return table([
    { title: 'Method', cell: (x) => x.method },
    { title: 'URL', cell: (x) => h('code', {}, x.url) },
    { title: 'Status', cell: (x) => x.status ?? x.denied ?? x.error ?? '—' },
    { title: 'Sent', cell: (x) => bytes(x.bytes_sent) },
    { title: 'Received', cell: (x) => bytes(x.bytes_received) },
    { title: 'Time', cell: (x) => micros(x.duration_us) },
  ], list, 'No HTTP exchanges.', { class: 'exchanges' });
}

function attemptSection(a) {
  return h('section', { class: 'attempt', 'aria-label': `Attempt ${a.attempt}` },
    h('h3', {}, `Attempt ${a.attempt} `, badge(a.outcome)),
    facts([
      ['Worker', a.worker],
      ['Started', when(a.started_at)],
      ['Finished', when(a.finished_at)],
      ['Wall time', micros(a.wall_us)],
      ['Fuel', a.fuel?.toLocaleString()],
      ['Peak memory', bytes(a.peak_memory)],
      ['HTTP requests', a.http_requests === null ? null : `${a.http_requests} (${a.http_denied ?? 0} denied)`],
      ['Error', a.error_kind ? `${a.error_kind}: ${a.error_message ?? ''}` : null],
    ]),
    h('h4', {}, 'HTTP exchanges'), exchanges(a.http),
    h('h4', {}, 'Log'), logLines(a.log));
}

export async function taskPage(ctx) {
  const id = ctx.id;
  const body = h('div', {});
  async function refresh() {
    const t = await api.get(`/v1/tasks/${id}`);
    if (ctx.stale()) return;
    const act = (label, op) => h('button', {
      type: 'button',
      onclick: async () => {
        try {
          await api.post(`/v1/tasks/${id}/${op}`);
          flash(`${label}: done.`);
          await refresh();
        } catch (e) {
          flash(problemText(e), 'error');
        }
      },
    }, label);
    const buttons = [];
    if (['scheduled', 'available', 'retryable', 'running'].includes(t.state)) buttons.push(act('Cancel', 'cancel'));
    if (['failed', 'cancelled'].includes(t.state)) buttons.push(act('Retry', 'retry'));
    body.replaceChildren(...[
      facts([
        ['Operation', t.operation],
        ['State', h('span', { id: 'task-state' }, badge(t.state))],
        ['Service', t.service_id ? link(`#/services/${t.service_id}`, t.service_id) : null],
        ['Server', link(`#/servers/${t.server_id}`, t.server_id)],
        ['Attempt', `${t.attempt} / ${t.max_attempts}`],
        ['Waiting for', t.waiting_for],
        ['Created', when(t.created_at)],
        ['Finished', when(t.finished_at)],
      ]),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, buttons),
      t.last_error ? [h('h2', {}, 'Last error'), json(t.last_error)] : null,
      t.result ? [h('h2', {}, 'Result'), json(t.result)] : null,
      h('h2', {}, 'Attempts'),
      t.attempts.length ? t.attempts.map(attemptSection) : h('p', { class: 'empty' }, 'No attempt yet.'),
    ].flat(Infinity).filter(Boolean));
  }
  await refresh();
  if (ctx.stale()) return;
  ctx.page('Task', body);
  ctx.live(liveEvents({ task_id: id }, coalesced(refresh)));
}
