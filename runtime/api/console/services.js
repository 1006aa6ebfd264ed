// Services: the filtered, server-side paged list and the provision form.
import { h, badge, when, link, table, field, select, flash } from './dom.js';
import { api, query } from './api.js';

const STATES = ['pending', 'provisioning', 'active', 'suspended', 'terminating', 'terminated', 'failed'];

export async function serverNames() {
  const servers = await api.get('/v1/servers?limit=500');
  return new Map(servers.items.map((s) => [s.id, s.name]));
}

export async function servicesPage(ctx) {
  const p = ctx.params;
  const [names, list] = await Promise.all([
    serverNames(),
    api.get(`/v1/services${query({ state: p.state, server_id: p.server_id, plan: p.plan, limit: p.limit || 50, cursor: p.cursor })}`),
  ]);
  if (ctx.stale()) return;
  const state = select('state', [['', 'any state'], ...STATES.map((s) => [s, s])], p.state || '');
  const server = select('server_id', [['', 'any server'], ...[...names].map(([id, n]) => [id, n])], p.server_id || '');
  const plan = h('input', { name: 'plan', value: p.plan || '', size: 12 });
  const filters = h('form', { class: 'filters', role: 'search' },
    field('State', state), field('Server', server), field('Plan', plan),
    h('button', { type: 'submit' }, 'Filter'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/services${query({ state: state.value, server_id: server.value, plan: plan.value.trim() })}`;
  });
  const rows = table([
    { title: 'Service', cell: (s) => link(`#/services/${s.id}`, s.spec?.username || s.spec?.domain || s.id.slice(0, 8)) },
    { title: 'Domain', cell: (s) => s.spec?.domain || '—' },
    { title: 'State', cell: (s) => badge(s.state) },
    { title: 'Plan', cell: (s) => s.plan || '—' },
    { title: 'Server', cell: (s) => link(`#/servers/${s.server_id}`, names.get(s.server_id) || s.server_id.slice(0, 8)) },
    { title: 'Updated', cell: (s) => when(s.updated_at) },
  ], list.items, 'No services match.', { id: 'services' });
  const more = list.next_cursor
    ? link(`#/services${query({ ...p, cursor: list.next_cursor })}`, 'Next page →')
    : null;
  const first = p.cursor ? link(`#/services${query({ ...p, cursor: '' })}`, '← First page') : null;
  ctx.page('Services',
    h('p', {}, link('#/services/new', 'Provision a service')),
    filters, rows, h('nav', { class: 'pager', 'aria-label': 'Pages' }, first, ' ', more));
}

export async function provisionPage(ctx) {
  const names = await serverNames();
  if (ctx.stale()) return;
  if (!names.size) {
    ctx.page('Provision a service', h('p', {}, 'Connect a server first: ', link('#/servers/new', 'connect a server'), '.'));
    return;
  }
  const server = select('server_id', [...names].map(([id, n]) => [id, n]), ctx.params.server_id);
  const input = (name, attrs = {}) => h('input', { name, ...attrs });
  const username = input('username', { required: true, maxlength: 64, autocomplete: 'off' });
  const domain = input('domain', { maxlength: 253 });
  const plan = input('plan', { maxlength: 128 });
  const email = input('contact_email', { type: 'email', maxlength: 254 });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', id: 'provision' },
    field('Server', server), field('Username', username), field('Domain', domain),
    field('Plan', plan, 'the package name on the provider'), field('Contact e-mail', email),
    error, h('button', { type: 'submit' }, 'Provision'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const body = { server_id: server.value };
    for (const [k, el] of [['username', username], ['domain', domain], ['plan', plan], ['contact_email', email]]) {
      if (el.value.trim()) body[k] = el.value.trim();
    }
    try {
      const made = await api.post('/v1/services', body);
      flash(`Provisioning ${made.service.spec?.username || made.service.id}.`);
      location.hash = `#/services/${made.service.id}`;
    } catch (e) {
      error.textContent = problemText(e);
    }
  });
  ctx.page('Provision a service', form);
}

// A problem's detail and its field errors, in one line.
export function problemText(e) {
  const fields = (e.problem?.errors || []).map((f) => `${f.field}: ${f.message}`);
  return fields.length > 1 ? `${e.message} (${fields.join('; ')})` : e.message;
}
