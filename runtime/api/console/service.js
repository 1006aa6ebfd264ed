// One service: its facts, the actions on it, and its tasks, kept current
// by the event stream (no reload: each event re-reads the service and its
// tasks from the API).
import { h, badge, when, link, table, facts, flash } from './dom.js';
import { api, liveEvents } from './api.js';
import { problemText } from './services.js';
import { usageSection } from './usage.js';

export async function servicePage(ctx) {
  const id = ctx.id;
  const stateCell = h('span', { id: 'service-state' });
  const details = h('div', {});
  const tasks = h('div', { id: 'service-tasks' });
  const live = h('p', { class: 'live', id: 'live' }, 'Connecting to live updates…');

  async function refresh() {
    const [svc, list] = await Promise.all([
      api.get(`/v1/services/${id}`),
      api.get(`/v1/tasks?service_id=${id}&limit=50`),
    ]);
    if (ctx.stale()) return;
    stateCell.replaceChildren(badge(svc.state));
    details.replaceChildren(facts([
      ['State', stateCell],
      ['Username', svc.spec?.username],
      ['Domain', svc.spec?.domain],
      ['Plan', svc.plan],
      ['Remote id', svc.remote_id],
      ['Server', link(`#/servers/${svc.server_id}`, svc.server_id)],
      ['Failure', svc.failure_reason],
      ['Created', when(svc.created_at)],
      ['Updated', when(svc.updated_at)],
    ]));
    tasks.replaceChildren(table([
      { title: 'Task', cell: (t) => link(`#/tasks/${t.id}`, t.operation) },
      { title: 'State', cell: (t) => badge(t.state) },
      { title: 'Attempt', cell: (t) => `${t.attempt} / ${t.max_attempts}` },
      { title: 'Waiting for', cell: (t) => t.waiting_for || '—' },
      { title: 'Created', cell: (t) => when(t.created_at) },
      { title: 'Finished', cell: (t) => when(t.finished_at) },
    ], list.items, 'No tasks.'));
    actions.replaceChildren(...buttons(svc));
  }

  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
  function buttons(svc) {
    const act = (label, op, confirmText) => h('button', {
      type: 'button',
      'data-op': op,
      onclick: async () => {
        if (confirmText && !window.confirm(confirmText)) return;
        try {
          await api.post(`/v1/services/${id}/${op}`);
          flash(`${label}: queued.`);
          await refresh();
        } catch (e) {
          flash(problemText(e), 'error');
        }
      },
    }, label);
    const out = [];
    if (svc.state === 'active') out.push(act('Suspend', 'suspend'));
    if (svc.state === 'suspended') out.push(act('Unsuspend', 'unsuspend'));
    if (!['terminated', 'terminating'].includes(svc.state)) {
      out.push(act('Terminate', 'terminate', 'Terminate this service? The account is removed from the server.'));
    }
    if (['active', 'suspended'].includes(svc.state)) out.push(act('Refresh status', 'refresh-status'));
    return out;
  }

  await refresh();
  const usage = await usageSection(id);
  if (ctx.stale()) return;
  ctx.page('Service', details, actions, h('h2', {}, 'Tasks'), live, tasks, h('h2', {}, 'Usage (last 24 hours)'), usage);
  ctx.live(liveEvents({ service_id: id }, coalesced(async () => {
    await refresh();
    live.textContent = 'Live: updated from the event stream.';
  })));
  live.textContent = 'Live: listening for changes.';
}

// Run `fn` for a burst of events without overlapping: one more run after
// the current one covers every event that came during it.
export function coalesced(fn) {
  let running = false;
  let again = false;
  return async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await fn().catch(() => {});
      } while (again);
    } finally {
      running = false;
    }
  };
}
