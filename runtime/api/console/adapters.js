// Adapters: every version visible to the tenant with what `check` found,
// and an upload form that shows the check report (or why it was refused).
import { h, badge, table, field, flash, json } from './dom.js';
import { api, query } from './api.js';
import { problemText } from './services.js';

const capabilities = (a) => {
  const c = a.report?.capabilities || a.report?.imports;
  return Array.isArray(c) ? c.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ') : '—';
};

function uploadForm() {
  const file = h('input', { type: 'file', name: 'component', accept: '.wasm,application/wasm', required: true });
  const name = h('input', { name: 'name', required: true, autocomplete: 'off' });
  const version = h('input', { name: 'version', required: true, size: 12, placeholder: '1.0.0' });
  const report = h('div', { id: 'upload-report', 'aria-live': 'polite' });
  const form = h('form', { class: 'card', id: 'upload-adapter' },
    h('h2', {}, 'Upload a version'),
    h('p', {}, 'The component is checked and compiled by the API, then inspected by a worker before servers can use it.'),
    field('Component (.wasm)', file), field('Name', name), field('Version', version),
    h('button', { type: 'submit' }, 'Upload'), report);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) return;
    report.replaceChildren(h('p', { class: 'live' }, `Uploading and checking ${f.name}…`));
    try {
      const a = await api.upload(`/v1/adapters${query({ name: name.value.trim(), version: version.value.trim() })}`, f);
      flash(`${a.name} ${a.version} uploaded (${a.status}).`);
      report.replaceChildren(h('h3', {}, `Check report: world ${a.world_version}, `, badge(a.status)), json(a.report));
    } catch (e) {
      report.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(e)));
    }
  });
  return form;
}

export async function adaptersPage(ctx) {
  const list = await api.get('/v1/adapters?limit=500');
  if (ctx.stale()) return;
  ctx.page('Adapters', table([
    { title: 'Adapter', cell: (a) => a.name },
    { title: 'Version', cell: (a) => a.version },
    { title: 'World', cell: (a) => a.world_version },
    { title: 'Status', cell: (a) => badge(a.deprecated ? 'deprecated' : a.status) },
    { title: 'Capabilities', cell: capabilities },
    { title: 'Size', cell: (a) => `${a.size_bytes} B` },
    { title: 'SHA-256', cell: (a) => h('code', { title: a.sha256 }, a.sha256.slice(0, 12)) },
  ], list.items, 'No adapters.', { id: 'adapters' }), uploadForm());
}
