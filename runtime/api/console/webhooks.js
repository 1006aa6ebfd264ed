// Webhooks: the tenant's endpoints, a form to add one, and one endpoint
// with its delivery log (redeliver, enable again, the signing secret on
// request only).
import { h, badge, when, link, table, facts, field, select, flash } from './dom.js';
import { api, query } from './api.js';
import { problemText } from './services.js';

const DELIVERY_STATES = ['pending', 'delivering', 'succeeded', 'failed'];

export async function webhooksPage(ctx) {
  const list = await api.get('/v1/webhooks?limit=50');
  if (ctx.stale()) return;
  const url = h('input', { name: 'url', type: 'url', required: true, size: 48, placeholder: 'https://billing.example.com/panel1' });
  const types = h('input', { name: 'event_types', size: 32, placeholder: 'service.updated, task.*' });
  const description = h('input', { name: 'description', size: 32, maxlength: 500 });
  const form = h('form', { class: 'card', id: 'new-webhook' },
    h('h2', {}, 'Add an endpoint'),
    field('URL', url),
    field('Events', types, 'Comma separated kinds or families; empty: every event.'),
    field('Description', description),
    h('button', { type: 'submit' }, 'Add endpoint'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const created = await api.post('/v1/webhooks', {
        url: url.value.trim(),
        description: description.value.trim(),
        event_types: types.value.split(',').map((t) => t.trim()).filter(Boolean),
      });
      flash('Endpoint added.');
      location.hash = `#/webhooks/${created.id}`;
    } catch (e) {
      flash(problemText(e), 'error');
    }
  });
  const rows = table([
    { title: 'URL', cell: (w) => link(`#/webhooks/${w.id}`, w.url) },
    { title: 'Events', cell: (w) => (w.event_types.length ? w.event_types.join(', ') : 'every event') },
    { title: 'State', cell: (w) => badge(w.enabled ? 'enabled' : 'disabled') },
    { title: 'Created', cell: (w) => when(w.created_at) },
  ], list.items, 'No webhook endpoints yet.', { id: 'webhooks' });
  ctx.page('Webhooks', rows, form);
}

export async function webhookPage(ctx) {
  const id = ctx.id;
  const p = ctx.params;
  const [w, deliveries] = await Promise.all([
    api.get(`/v1/webhooks/${id}`),
    api.get(`/v1/webhooks/${id}/deliveries${query({ state: p.state, limit: 50, cursor: p.cursor })}`),
  ]);
  if (ctx.stale()) return;
  const secret = h('code', { id: 'webhook-secret' }, 'hidden');
  const reveal = h('button', {
    type: 'button',
    onclick: async () => {
      try {
        secret.textContent = (await api.get(`/v1/webhooks/${id}/secret`)).secret;
      } catch (e) {
        flash(problemText(e), 'error');
      }
    },
  }, 'Show the signing secret');
  const enable = w.enabled ? null : h('button', {
    type: 'button',
    onclick: async () => {
      try {
        await api.patch(`/v1/webhooks/${id}`, { enabled: true });
        flash('Enabled: pending deliveries go out again.');
        ctx.reload();
      } catch (e) {
        flash(problemText(e), 'error');
      }
    },
  }, 'Enable again');
  const redeliver = (d) => h('button', {
    type: 'button',
    onclick: async () => {
      try {
        await api.post(`/v1/webhooks/${id}/deliveries/${d.id}/redeliver`);
        flash(`Delivery ${d.id} queued again.`);
        ctx.reload();
      } catch (e) {
        flash(problemText(e), 'error');
      }
    },
  }, 'Redeliver');
  const state = select('state', [['', 'any state'], ...DELIVERY_STATES.map((s) => [s, s])], p.state || '');
  const filters = h('form', { class: 'filters', role: 'search' }, field('State', state), h('button', { type: 'submit' }, 'Filter'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/webhooks/${id}${query({ state: state.value })}`;
  });
  const rows = table([
    { title: 'Event', cell: (d) => d.event_kind },
    { title: 'State', cell: (d) => badge(d.state) },
    { title: 'Attempts', cell: (d) => String(d.attempts) },
    { title: 'Last answer', cell: (d) => (d.last_status ? String(d.last_status) : d.last_error || '—') },
    { title: 'Service', cell: (d) => (d.service_id ? link(`#/services/${d.service_id}`, d.service_id.slice(0, 8)) : '—') },
    { title: 'Created', cell: (d) => when(d.created_at) },
    { title: '', cell: (d) => (['succeeded', 'failed'].includes(d.state) ? redeliver(d) : '') },
  ], deliveries.items, 'No deliveries yet.', { id: 'deliveries' });
  const more = deliveries.next_cursor
    ? link(`#/webhooks/${id}${query({ ...p, cursor: deliveries.next_cursor })}`, 'Next page →') : null;
  ctx.page('Webhook endpoint',
    facts([
      ['URL', w.url],
      ['Description', w.description],
      ['Events', w.event_types.length ? w.event_types.join(', ') : 'every event'],
      ['State', badge(w.enabled ? 'enabled' : 'disabled')],
      ['Disabled because', w.disabled_reason],
      ['Signing secret', h('span', {}, secret, ' ', reveal)],
      ['Created', when(w.created_at)],
    ]),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, enable),
    h('h2', {}, 'Deliveries'), filters, rows,
    h('nav', { class: 'pager', 'aria-label': 'Pages' }, more));
}
