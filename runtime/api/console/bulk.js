// Bulk operations: the list, and one bulk with its progress, kept current
// by the bulk.* events (no reload), with pause, resume and cancel.
import { h, badge, when, link, table, facts, select, field, flash } from './dom.js';
import { api, query, liveEvents } from './api.js';
import { problemText } from './services.js';
import { coalesced } from './service.js';

const STATES = ['running', 'paused', 'cancelled', 'completed'];

// Finished children over the total, as a native <progress> (announced by
// screen readers) with the counts beside it.
export function progress(b) {
  const done = b.succeeded + b.failed + b.cancelled;
  return h('span', { class: 'progress' },
    h('progress', { max: Math.max(b.total, 1), value: done, 'aria-label': `${done} of ${b.total} done` }),
    ` ${done}/${b.total}`);
}

export async function bulkListPage(ctx) {
  const p = ctx.params;
  const list = await api.get(`/v1/bulk${query({ state: p.state, limit: 50, cursor: p.cursor })}`);
  if (ctx.stale()) return;
  const state = select('state', [['', 'any state'], ...STATES.map((s) => [s, s])], p.state || '');
  const filters = h('form', { class: 'filters', role: 'search' }, field('State', state), h('button', { type: 'submit' }, 'Filter'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/bulk${query({ state: state.value })}`;
  });
  const rows = table([
    { title: 'Bulk', cell: (b) => link(`#/bulk/${b.id}`, b.action) },
    { title: 'State', cell: (b) => badge(b.state) },
    { title: 'Progress', cell: progress },
    { title: 'Failed', cell: (b) => String(b.failed) },
    { title: 'Skipped', cell: (b) => String(b.skipped) },
    { title: 'Created', cell: (b) => when(b.created_at) },
  ], list.items, 'No bulk operations yet.', { id: 'bulks' });
  const more = list.next_cursor ? link(`#/bulk${query({ ...p, cursor: list.next_cursor })}`, 'Next page →') : null;
  ctx.page('Bulk operations', filters, rows, h('nav', { class: 'pager', 'aria-label': 'Pages' }, more));
}

export async function bulkPage(ctx) {
  const id = ctx.id;
  const body = h('div', {});
  async function refresh() {
    const b = await api.get(`/v1/bulk/${id}`);
    if (ctx.stale()) return;
    const act = (label, op) => h('button', {
      type: 'button',
      'data-op': op,
      onclick: async () => {
        try {
          await api.post(`/v1/bulk/${id}/${op}`);
          flash(`${label}: done.`);
          await refresh();
        } catch (e) {
          flash(problemText(e), 'error');
        }
      },
    }, label);
    const buttons = [];
    if (b.state === 'running') buttons.push(act('Pause', 'pause'));
    if (b.state === 'paused') buttons.push(act('Resume', 'resume'));
    if (['running', 'paused'].includes(b.state)) buttons.push(act('Cancel', 'cancel'));
    body.replaceChildren(...[
      facts([
        ['Action', b.action],
        ['State', h('span', { id: 'bulk-state' }, badge(b.state))],
        ['Progress', h('span', { id: 'bulk-progress' }, progress(b))],
        ['Succeeded', String(b.succeeded)],
        ['Failed', String(b.failed)],
        ['Cancelled', String(b.cancelled)],
        ['Running', String(b.running)],
        ['Waiting', String(b.waiting)],
        ['Skipped', String(b.skipped)],
        ['Created', when(b.created_at)],
        ['Finished', when(b.finished_at)],
      ]),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, buttons),
      h('p', {}, link(`#/tasks${query({ operation: b.operation })}`, `Tasks running ${b.operation}`)),
      b.skipped_some?.length ? [
        h('h2', {}, 'Skipped services'),
        table([
          { title: 'Service', cell: (s) => link(`#/services/${s.service_id}`, s.service_id.slice(0, 8)) },
          { title: 'Why', cell: (s) => s.reason },
        ], b.skipped_some),
      ] : null,
    ].flat(Infinity).filter(Boolean));
  }
  await refresh();
  if (ctx.stale()) return;
  ctx.page('Bulk operation', body);
  ctx.live(liveEvents({ kind: 'bulk.' }, coalesced(refresh)));
}
