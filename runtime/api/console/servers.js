// Servers: the list with health, one server (health, egress, bound secret
// names, test connection), and the form that connects a new one.
import { h, badge, when, link, table, facts, field, select, flash, json } from './dom.js';
import { api } from './api.js';
import { problemText } from './services.js';

export async function serversPage(ctx) {
  const list = await api.get('/v1/servers?limit=500');
  if (ctx.stale()) return;
  ctx.page('Servers',
    h('p', {}, link('#/servers/new', 'Connect a server')),
    table([
      { title: 'Server', cell: (s) => link(`#/servers/${s.id}`, s.name) },
      { title: 'Health', cell: (s) => badge(s.health?.state || 'unknown') },
      { title: 'Reason', cell: (s) => s.health?.reason || '—' },
      { title: 'Concurrency cap', cell: (s) => s.max_concurrency },
      { title: 'Secrets', cell: (s) => s.secrets.map((b) => b.name).join(', ') || '—' },
      { title: 'Connected', cell: (s) => when(s.created_at) },
    ], list.items, 'No servers yet.', { id: 'servers' }));
}

export async function serverPage(ctx) {
  const id = ctx.id;
  // The load against the cap: the server's tasks running now (the cap is
  // at most 256, so one page of 500 counts them all).
  const [s, health, running] = await Promise.all([
    api.get(`/v1/servers/${id}`),
    api.get(`/v1/servers/${id}/health`).catch(() => null),
    api.get(`/v1/tasks?server_id=${id}&state=running&limit=500`).catch(() => null),
  ]);
  if (ctx.stale()) return;
  const test = h('button', {
    type: 'button',
    onclick: async () => {
      try {
        const t = await api.post(`/v1/servers/${id}/test-connection`);
        flash('Connection test queued.');
        location.hash = `#/tasks/${t.id || t.task?.id}`;
      } catch (e) {
        flash(problemText(e), 'error');
      }
    },
  }, 'Test connection');
  const rules = Array.isArray(s.egress) ? s.egress : [];
  ctx.page(`Server ${s.name}`,
    facts([
      ['Health', badge(health?.state || s.health?.state || 'unknown')],
      ['Reason', health?.reason ?? s.health?.reason],
      ['Last check', when(health?.last_checked_at)],
      ['Latency', health?.last_latency_ms != null ? `${health.last_latency_ms} ms` : null],
      ['Breaker', health ? (health.breaker_open ? `open (${health.held_tasks} tasks held)` : 'closed') : null],
      ['Concurrency cap', s.max_concurrency],
      ['Running now', running ? h('span', { id: 'server-load', class: 'progress' },
        h('progress', { max: s.max_concurrency, value: running.items.length,
          'aria-label': `${running.items.length} of ${s.max_concurrency} slots in use` }),
        ` ${running.items.length} of ${s.max_concurrency}`) : null],
      ['Adapter version', s.adapter_version_id],
      ['Bound secrets', s.secrets.map((b) => `${b.name} → ${b.destinations.join(', ')}`).join('; ') || null],
    ]),
    h('div', { class: 'actions' }, test,
      link(`#/services/new?server_id=${id}`, 'Provision on this server'), ' ',
      link(`#/services?server_id=${id}`, 'Its services')),
    h('h2', {}, 'Egress rules'),
    rules.length ? h('ul', {}, rules.map((r) => h('li', {}, h('code', {}, typeof r === 'string' ? r : JSON.stringify(r)))))
      : h('p', { class: 'empty' }, 'None: no network.'),
    h('h2', {}, 'Configuration'), json(s.config),
    h('h2', {}, 'Limits'), json(s.limits));
}

// "name dest1 dest2" per line → bindings.
function parseBindings(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [name, ...destinations] = l.split(/\s+/);
    return { name, destinations };
  });
}

export async function connectPage(ctx) {
  const adapters = await api.get('/v1/adapters?limit=500');
  if (ctx.stale()) return;
  const ready = adapters.items.filter((a) => a.status === 'ready' && !a.deprecated);
  const adapter = select('adapter_version_id', ready.map((a) => [a.id, `${a.name} ${a.version}`]));
  const name = h('input', { name: 'name', required: true, maxlength: 200 });
  const config = h('textarea', { name: 'config', rows: 4, spellcheck: 'false' }, '{}');
  const egress = h('textarea', { name: 'egress', rows: 3, spellcheck: 'false' });
  const secrets = h('textarea', { name: 'secrets', rows: 2, spellcheck: 'false' });
  const cap = h('input', { name: 'max_concurrency', type: 'number', min: 1, max: 256, value: 4 });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', id: 'connect' },
    field('Name', name), field('Adapter', adapter),
    field('Configuration (JSON)', config, 'checked against the adapter\'s config schema'),
    field('Egress rules', egress, 'one per line: [METHODS ]scheme://host[:port][/path][ sha256:PIN]'),
    field('Secrets', secrets, 'one per line: secret-name destination [destination…]'),
    field('Operations at once', cap),
    error, h('button', { type: 'submit' }, 'Connect'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    let cfg;
    try {
      cfg = JSON.parse(config.value || '{}');
    } catch (e) {
      error.textContent = `The configuration is not valid JSON: ${e.message}`;
      return;
    }
    try {
      const made = await api.post('/v1/servers', {
        name: name.value.trim(),
        adapter_version_id: adapter.value,
        config: cfg,
        egress: egress.value.split('\n').map((l) => l.trim()).filter(Boolean),
        secrets: parseBindings(secrets.value),
        max_concurrency: Number(cap.value) || 4,
      });
      flash(`Connected ${made.name}.`);
      location.hash = `#/servers/${made.id}`;
    } catch (e) {
      error.textContent = problemText(e);
    }
  });
  ctx.page('Connect a server', ready.length ? form : h('p', {}, 'No adapter is ready yet: see ', link('#/adapters', 'adapters'), '.'));
}
