// A service's usage over the last day: one small chart per metric (an SVG
// built node by node, so the strict CSP needs no exception) with its last
// value, and the numbers as a table for keyboard and screen-reader users.
import { h, table, when, bytes } from './dom.js';
import { api } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 320;
const H = 64;

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function value(unit, v) {
  if (v === null || v === undefined) return '—';
  return unit === 'bytes' ? bytes(v) : `${Number(v).toLocaleString()} ${unit}`;
}

// A line of the averages (and the maxima lighter), scaled to the series.
function chart(series) {
  // One point (the first hour) is drawn as a level line across the chart.
  const pts = series.points.length > 1 ? series.points
    : [series.points[0], { ...series.points[0], at: new Date(Date.parse(series.points[0].at) + 3600e3).toISOString() }];
  const top = Math.max(...pts.map((p) => p.max), 1);
  const t0 = Date.parse(pts[0].at);
  const span = Math.max(Date.parse(pts[pts.length - 1].at) - t0, 1);
  const xy = (p, key) => `${((Date.parse(p.at) - t0) / span) * (W - 4) + 2},${H - 2 - (p[key] / top) * (H - 4)}`;
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'chart',
    'aria-label': `${series.metric}: ${pts.length} points, highest ${value(series.unit, top)}` });
  el.append(
    svg('line', { x1: 2, y1: H - 2, x2: W - 2, y2: H - 2, stroke: '#d9dde3', 'stroke-width': 1 }),
    svg('polyline', { points: pts.map((p) => xy(p, 'max')).join(' '), fill: 'none', stroke: '#9ab', 'stroke-width': 1 }),
    svg('polyline', { points: pts.map((p) => xy(p, 'avg')).join(' '), fill: 'none', stroke: '#246', 'stroke-width': 2 }));
  return el;
}

export async function usageSection(serviceId) {
  let u;
  try {
    u = await api.get(`/v1/services/${serviceId}/usage?step=hour`);
  } catch (e) {
    return h('p', { class: 'empty' }, `Usage is not available: ${e.message}`);
  }
  if (!u.series.length) return h('p', { class: 'empty', id: 'usage' }, 'No usage samples in the last 24 hours.');
  return h('div', { id: 'usage', class: 'usage' }, u.series.map((s) => {
    const last = s.points[s.points.length - 1];
    return h('figure', { class: 'series', 'data-metric': s.metric },
      h('figcaption', {}, `${s.metric}: ${value(s.unit, last.last)} (`, when(last.at), ')'),
      chart(s),
      h('details', {}, h('summary', {}, 'Numbers'), table([
        { title: 'Hour', cell: (p) => when(p.at) },
        { title: 'Average', cell: (p) => value(s.unit, p.avg) },
        { title: 'Highest', cell: (p) => value(s.unit, p.max) },
        { title: 'Samples', cell: (p) => String(p.samples) },
      ], s.points)));
  }));
}
