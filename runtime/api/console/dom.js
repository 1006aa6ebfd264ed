// DOM helpers. Text always goes in as text nodes (never innerHTML): what
// the API returns cannot become markup or script.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replace the page's content; the heading gets focus so keyboard and
// screen-reader users land on the new page.
export function page(title, ...children) {
  const main = document.getElementById('main');
  main.replaceChildren();
  const h1 = h('h1', { tabindex: '-1' }, title);
  append(main, [h1, ...children]);
  document.title = `${title} · Panel1`;
  return h1;
}

export function flash(message, kind = 'info') {
  const el = document.getElementById('flash');
  el.className = `flash flash-${kind}`;
  el.textContent = message;
}

export function clearFlash() {
  flash('', 'none');
}

export function badge(state) {
  const s = String(state ?? 'unknown');
  return h('span', { class: `state state-${s.replace(/[^a-z_-]/g, '')}` }, s);
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleString());
}

export function link(href, text) {
  return h('a', { href }, text);
}

// A table from column definitions: [{ title, cell: row => node|text }].
export function table(columns, rows, empty = 'Nothing here yet.', attrs = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('table', attrs,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.title)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', {}, c.cell(r)))))));
}

// A definition list from [label, value] pairs.
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

// A labelled form control: the label wraps its input (no ids to manage).
export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), control, hint ? h('small', {}, hint) : null);
}

export function select(name, options, value) {
  return h('select', { name },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}
