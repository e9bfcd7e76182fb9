// Small hand-written SVG charts: a value per month against a target, a rank per month, and
// the events accepted per day.

import { countText, svg, monthName } from './format.js';

const W = 320;
const H = 132;
const PAD = { left: 34, right: 10, top: 12, bottom: 22 };
const plotW = W - PAD.left - PAD.right;
const plotH = H - PAD.top - PAD.bottom;

const x = (month) => PAD.left + ((month - 0.5) / 12) * plotW;

/** An empty chart named `label` for screen readers and on hover. */
function canvas(label) {
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
  root.append(svg('title', {}, label));
  return root;
}

/** A chart with the twelve months along the bottom. */
function frame(label) {
  const root = canvas(label);
  for (let month = 1; month <= 12; month += 1) {
    root.append(svg('text', { x: x(month), y: H - 6, class: 'axis', 'text-anchor': 'middle' }, monthName(month).slice(0, 1)));
  }
  return root;
}

/** Segments of consecutive points, broken where a month has no value. */
function path(points) {
  let d = '';
  let open = false;
  for (const point of points) {
    if (!point) {
      open = false;
      continue;
    }
    d += `${open ? 'L' : 'M'}${point[0].toFixed(1)},${point[1].toFixed(1)}`;
    open = true;
  }
  return d;
}

/**
 * Percent per month (index 0 = January; null = no data) against `target` (percent or null),
 * months after `lastMonth` not reached yet.
 */
export function monthlyChart(label, values, target, lastMonth, year) {
  const y = (percent) => PAD.top + plotH - (Math.max(0, Math.min(100, percent)) / 100) * plotH;
  const root = frame(label);
  for (const level of [0, 50, 100]) {
    root.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(level), y2: y(level), class: 'grid' }));
    root.append(svg('text', { x: PAD.left - 4, y: y(level) + 3, class: 'axis', 'text-anchor': 'end' }, `${level}%`));
  }
  if (lastMonth < 12) {
    const from = PAD.left + (lastMonth / 12) * plotW;
    root.append(svg('rect', { x: from, y: PAD.top, width: W - PAD.right - from, height: plotH, class: 'future' }));
  }
  if (target !== null && target !== undefined) {
    root.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(target), y2: y(target), class: 'target-line' }));
    root.append(svg('text', { x: W - PAD.right, y: y(target) - 3, class: 'axis target-label', 'text-anchor': 'end' }, `target ${Number(target)}%`));
  }
  const points = values.map((v, i) => (v === null ? null : [x(i + 1), y(v)]));
  root.append(svg('path', { d: path(points), class: 'series' }));
  values.forEach((v, i) => {
    if (v === null) return;
    const met = target !== null && target !== undefined && v >= target;
    root.append(
      svg('circle', { cx: x(i + 1), cy: y(v), r: 3.2, class: met ? 'dot met' : 'dot' },
        svg('title', {}, `${monthName(i + 1)} ${year}: ${v.toFixed(2)}%`)),
    );
  });
  return root;
}

/** Rank per month (null = not ranked), 1 at the top, down to the most agencies ranked. */
export function rankChart(label, ranks, counts, year) {
  const worst = Math.max(2, ...counts.filter(Boolean), ...ranks.filter(Boolean));
  const y = (rank) => PAD.top + ((rank - 1) / (worst - 1)) * plotH;
  const root = frame(label);
  for (const level of [1, Math.ceil(worst / 2), worst]) {
    root.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(level), y2: y(level), class: 'grid' }));
    root.append(svg('text', { x: PAD.left - 4, y: y(level) + 3, class: 'axis', 'text-anchor': 'end' }, `#${level}`));
  }
  const points = ranks.map((r, i) => (r ? [x(i + 1), y(r)] : null));
  root.append(svg('path', { d: path(points), class: 'series rank' }));
  ranks.forEach((r, i) => {
    if (!r) return;
    root.append(
      svg('circle', { cx: x(i + 1), cy: y(r), r: 3.2, class: 'dot' },
        svg('title', {}, `${monthName(i + 1)} ${year}: #${r} of ${counts[i]}`)),
    );
    root.append(svg('text', { x: x(i + 1), y: y(r) - 6, class: 'axis point-label', 'text-anchor': 'middle' }, String(r)));
  });
  return root;
}

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/**
 * Events accepted per day (`[{ day: '2026-11-06', accepted: '6' }, ...]`, oldest first, today
 * last; a day with none has no `accepted`): a bar a day, so that a system fading away shows
 * before it stops. Every day gets a bar, a day with none a sliver, to be pointed at.
 */
export function arrivalsChart(label, days) {
  const counts = days.map((d) => Number(d.accepted ?? 0));
  const most = Math.max(1, ...counts);
  const slot = plotW / Math.max(1, days.length);
  const bottom = PAD.top + plotH;
  const y = (n) => bottom - (n / most) * plotH;
  const root = canvas(label);
  for (const level of [0, most]) {
    root.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(level), y2: y(level), class: 'grid' }));
    root.append(svg('text', { x: PAD.left - 4, y: y(level) + 3, class: 'axis', 'text-anchor': 'end' }, compact.format(level)));
  }
  days.forEach((d, i) => {
    const n = counts[i];
    const today = i === days.length - 1;
    const top = n > 0 ? Math.min(y(n), bottom - 1) : bottom - 1;
    const kind = ['arrival', n === 0 ? 'none' : '', today ? 'today' : ''].filter(Boolean).join(' ');
    root.append(
      svg('rect', { x: PAD.left + i * slot + slot * 0.15, y: top, width: slot * 0.7, height: bottom - top, class: kind },
        svg('title', {}, `${d.day}${today ? ' (today, so far)' : ''}: ${countText(n)} ${n === 1 ? 'event' : 'events'} accepted`)),
    );
  });
  if (days.length) {
    const short = (day) => `${day.slice(8, 10)}/${day.slice(5, 7)}`;
    root.append(svg('text', { x: PAD.left, y: H - 6, class: 'axis', 'text-anchor': 'start' }, short(days[0].day)));
    root.append(svg('text', { x: W - PAD.right, y: H - 6, class: 'axis', 'text-anchor': 'end' }, 'today'));
  }
  return root;
}
