// The console's entry: session check, sign-in, and a hash router (each page
// is a real link, so Back, bookmarks and the keyboard work as usual).
import { h, page, flash, clearFlash, field } from './dom.js';
import { currentSession, signIn, signOut } from './api.js';
import { servicesPage, provisionPage } from './services.js';
import { servicePage } from './service.js';
import { tasksPage, taskPage } from './tasks.js';
import { serversPage, serverPage, connectPage } from './servers.js';
import { secretsPage, keysPage } from './settings.js';
import { adaptersPage } from './adapters.js';
import { bulkListPage, bulkPage } from './bulk.js';
import { webhooksPage, webhookPage } from './webhooks.js';

const UUID = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
const ROUTES = [
  ['/services', servicesPage],
  ['/services/new', provisionPage],
  [`/services/${UUID}`, servicePage],
  ['/tasks', tasksPage],
  [`/tasks/${UUID}`, taskPage],
  ['/servers', serversPage],
  ['/servers/new', connectPage],
  [`/servers/${UUID}`, serverPage],
  ['/bulk', bulkListPage],
  [`/bulk/${UUID}`, bulkPage],
  ['/webhooks', webhooksPage],
  [`/webhooks/${UUID}`, webhookPage],
  ['/adapters', adaptersPage],
  ['/secrets', secretsPage],
  ['/keys', keysPage],
].map(([p, fn]) => [new RegExp(`^${p}$`), fn]);

let session = null;
let generation = 0;
let closeLive = null;

function current() {
  const raw = location.hash.slice(1) || '/services';
  const [path, qs] = raw.split('?');
  return { path, params: Object.fromEntries(new URLSearchParams(qs || '')) };
}

function showSession() {
  const signedIn = Boolean(session);
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('sign-out').hidden = !signedIn;
  const who = document.getElementById('who');
  who.textContent = signedIn
    ? `${session.tenant_id ? `tenant ${session.tenant_id.slice(0, 8)}` : 'platform'} · ${session.scopes.join(', ')}`
    : '';
}

export async function route() {
  if (location.hash && !location.hash.startsWith('#/')) return; // in-page anchors
  const gen = ++generation;
  if (closeLive) closeLive();
  closeLive = null;
  showSession();
  if (!session) return signInPage();
  const { path, params } = current();
  const found = ROUTES.map(([re, fn]) => [path.match(re), fn]).find(([m]) => m);
  if (!found) {
    page('Not found', h('p', {}, 'There is no such page. '), h('a', { href: '#/services' }, 'Go to services'));
    return;
  }
  const [m, fn] = found;
  const ctx = {
    id: m[1],
    params,
    session,
    stale: () => gen !== generation,
    page: (...args) => gen === generation && page(...args),
    // Pages with live updates hand over their closer here.
    live(close) {
      if (gen !== generation) close();
      else closeLive = close;
    },
    reload: () => gen === generation && route(),
  };
  try {
    clearFlash();
    await fn(ctx);
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 401) return;
    page('Error', h('p', { class: 'error' }, e.message || String(e)));
  }
}

function signInPage() {
  const key = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', id: 'sign-in' },
    h('p', {}, 'Sign in with an API key. The key is exchanged for a session and not kept by the browser.'),
    field('API key', key),
    error,
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      session = await signIn(key.value.trim());
      key.value = '';
      if (!location.hash.startsWith('#/')) location.hash = '#/services';
      else route();
    } catch (e) {
      error.textContent = e.status === 401 ? 'That key is not valid (or was revoked).' : e.message;
    }
  });
  page('Sign in', form);
  key.focus();
}

window.addEventListener('hashchange', route);
window.addEventListener('panel1:signed-out', () => {
  if (!session) return;
  session = null;
  route();
  flash('Your session has ended: sign in again.', 'error');
});

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await signOut();
  } finally {
    session = null;
    route();
  }
});

session = await currentSession().catch(() => null);
route();
