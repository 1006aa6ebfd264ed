// Secrets (write-only: values go in, never come back) and API keys.
import { h, when, table, field, select, flash } from './dom.js';
import { api } from './api.js';
import { problemText } from './services.js';

export async function secretsPage(ctx) {
  const list = await api.get('/v1/secrets?limit=500');
  if (ctx.stale()) return;
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,62}', autocomplete: 'off' });
  const value = h('input', { name: 'value', type: 'password', required: true, autocomplete: 'new-password' });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', id: 'secret' },
    h('p', {}, 'Values are encrypted at rest and never shown again; writing a name that exists replaces its value.'),
    field('Name', name), field('Value', value), error, h('button', { type: 'submit' }, 'Save secret'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      await api.post('/v1/secrets', { name: name.value.trim(), value: value.value });
      value.value = '';
      flash(`Secret ${name.value.trim()} saved.`);
      ctx.reload();
    } catch (e) {
      error.textContent = problemText(e);
    }
  });
  const remove = (s) => h('button', {
    type: 'button',
    class: 'danger',
    onclick: async () => {
      if (!window.confirm(`Delete the secret ${s.name}?`)) return;
      try {
        await api.del(`/v1/secrets/${encodeURIComponent(s.name)}`);
        ctx.reload();
      } catch (e) {
        flash(problemText(e), 'error');
      }
    },
  }, 'Delete');
  ctx.page('Secrets', form, table([
    { title: 'Name', cell: (s) => s.name },
    { title: 'Updated', cell: (s) => when(s.updated_at) },
    { title: '', cell: remove },
  ], list.items, 'No secrets.', { id: 'secrets' }));
}

export async function keysPage(ctx) {
  const list = await api.get('/v1/keys?limit=500');
  if (ctx.stale()) return;
  const name = h('input', { name: 'name', required: true, maxlength: 200 });
  const scope = select('scope', [['read', 'read'], ['write', 'write'], ['admin', 'admin']], 'read');
  const shown = h('div', { role: 'status' });
  const form = h('form', { class: 'card', id: 'new-key' }, field('Name', name), field('Scope', scope),
    h('button', { type: 'submit' }, 'Create key'), shown);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const k = await api.post('/v1/keys', { name: name.value.trim(), scopes: [scope.value] });
      // Shown once, as the API does; not stored by the page.
      shown.replaceChildren(h('p', {}, 'Copy this key now; it is not shown again:'), h('code', { class: 'secret' }, k.key));
    } catch (e) {
      shown.replaceChildren(h('p', { class: 'error' }, problemText(e)));
    }
  });
  const revoke = (k) => (k.revoked_at || k.id === ctx.session.key_id ? '—' : h('button', {
    type: 'button',
    class: 'danger',
    onclick: async () => {
      if (!window.confirm(`Revoke the key ${k.name}? Its sessions end too.`)) return;
      try {
        await api.del(`/v1/keys/${k.id}`);
        ctx.reload();
      } catch (e) {
        flash(problemText(e), 'error');
      }
    },
  }, 'Revoke'));
  ctx.page('API keys', form, table([
    { title: 'Name', cell: (k) => k.name },
    { title: 'Scopes', cell: (k) => k.scopes.join(', ') },
    { title: 'Last used', cell: (k) => when(k.last_used_at) },
    { title: 'Revoked', cell: (k) => when(k.revoked_at) },
    { title: '', cell: revoke },
  ], list.items, 'No keys.', { id: 'keys' }));
}
