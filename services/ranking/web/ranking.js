// A ranking as a list of rows: rank, movement, agency, value bar with its target line, value,
// grade. Rows are kept per agency and moved, not redrawn, so that a change of rank slides the
// row to its new place (FLIP: measure, move, invert, play). A row whose agency has gone silent
// (stale) keeps its place but is greyed and says since when, as its value may be frozen. In a
// ranking that was published, a row whose rank or value differs from the publication is marked
// revised: a mark on its edge and a "revised" tag saying which publication it differs from.

import {
  countText, dateTimeText, el, isStale, parseMoment, percentText, ordinal, staleText, staleTitle,
} from './format.js';

const rowsOf = new WeakMap(); // list element → Map(agency id → li)

/**
 * Shows `rows` in `list`.
 * options: { targets: Map(agency id → target percent), changed: Set of agency ids to flash,
 *            animate: boolean, href: (agencyId) → link,
 *            publication: the ranking's latest publication (PublicationSummary) or null, when
 *              rows flagged `revised` are to be marked (left out: rows are never marked) }
 */
export function renderRows(list, rows, { targets = new Map(), changed = new Set(), animate = true, href, publication } = {}) {
  let items = rowsOf.get(list);
  if (!items) {
    items = new Map();
    rowsOf.set(list, items);
  }
  if (window.matchMedia('(prefers-reduced-motion: reduce)').matches) animate = false;
  const before = new Map();
  if (animate) {
    for (const [id, item] of items) before.set(id, item.getBoundingClientRect().top);
  }

  const keep = new Set(rows.map((row) => row.agencyId));
  for (const [id, item] of items) {
    if (!keep.has(id)) {
      item.remove();
      items.delete(id);
    }
  }
  rows.forEach((row, position) => {
    let item = items.get(row.agencyId);
    if (!item) {
      item = el('li', { class: 'row', dataset: { agency: row.agencyId } });
      items.set(row.agencyId, item);
    }
    const revised = publication !== undefined && row.revised === true;
    item.replaceChildren(...cells(row, targets.get(row.agencyId), href, revised ? publication : undefined));
    item.classList.toggle('unranked', !(row.rank > 0));
    // Set on every render: a change on the stream flips it either way.
    item.classList.toggle('stale', isStale(row.freshness));
    // Only where marks are asked for: a publication's own page marks its rows itself.
    if (publication !== undefined) item.classList.toggle('revised', revised);
    item.dataset.rank = String(row.rank ?? 0);
    if (list.children[position] !== item) list.insertBefore(item, list.children[position] ?? null);
  });

  if (!animate) return;
  for (const [id, item] of items) {
    const top = before.get(id);
    const flash = changed.has(id);
    if (top === undefined) {
      if (flash) pulse(item, 'entered');
      continue;
    }
    const delta = top - item.getBoundingClientRect().top;
    if (delta !== 0) {
      // Invert: put it back where it was, then let the transition play it to its place.
      item.style.transition = 'none';
      item.style.transform = `translateY(${delta}px)`;
      item.getBoundingClientRect();
      item.style.transition = '';
      item.style.transform = '';
    }
    if (flash) pulse(item, delta > 0 ? 'rose' : delta < 0 ? 'fell' : 'changed');
  }
}

function pulse(item, kind) {
  item.classList.remove('rose', 'fell', 'changed', 'entered');
  // Restart the animation even when the same class comes back.
  void item.offsetWidth;
  item.classList.add(kind);
}

/** `revisedSince`: the publication the row differs from, when it is marked revised. */
function cells(row, target, href, revisedSince) {
  const rank = row.rank ?? 0;
  return [
    el('span', { class: 'rank', title: rankTitle(row) }, rank > 0 ? String(rank) : '–'),
    movement(row),
    el(
      'span',
      { class: 'agency' },
      el('a', { href: href ? href(row.agencyId) : undefined, class: 'name' }, row.agencyName || row.agencyId),
      row.belowMinimumVolume ? el('span', { class: 'tag', title: 'Listed, not ranked: too few dossiers' }, 'below minimum volume') : null,
      row.incomplete ? el('span', { class: 'tag', title: 'Some indicator has no value and counts 0 points' }, 'incomplete') : null,
      isStale(row.freshness) ? el('span', { class: 'tag stale-tag', title: staleTitle(row.freshness) }, staleText(row.freshness)) : null,
      revisedSince !== undefined ? el('span', { class: 'tag revised-tag', title: revisedTitle(revisedSince) }, 'revised') : null,
    ),
    bar(row, target),
    value(row),
    row.grade ? el('span', { class: `grade grade-${row.grade.toLowerCase()}`, title: `Grade ${row.grade}` }, row.grade) : el('span', { class: 'grade none' }),
  ];
}

/** "Differs from the publication of 06/12/2026 04:04 (Vietnam time): its revision log says why". */
function revisedTitle(publication) {
  const at = parseMoment(publication?.publishedAt);
  const of = at ? `the publication of ${dateTimeText(at)} (Vietnam time)` : 'the latest publication of this ranking';
  return `Differs from ${of}: its rank or value was revised since; the publication's revision log says why`;
}

function rankTitle(row) {
  if ((row.rank ?? 0) > 0) return `${ordinal(row.rank)}`;
  return row.belowMinimumVolume ? 'Not ranked: below the minimum volume' : 'No data for this period';
}

function movement(row) {
  const rank = row.rank ?? 0;
  const previous = row.previousPeriodRank ?? 0;
  const gained = row.placesGained ?? 0;
  const was = previous > 0 ? `was ${ordinal(previous)} in the previous period` : 'not ranked in the previous period';
  if (rank === 0) return el('span', { class: 'move' });
  if (previous === 0) return el('span', { class: 'move new', title: was }, 'new');
  if (gained > 0) return el('span', { class: 'move up', title: `up ${gained} · ${was}` }, `▲${gained}`);
  if (gained < 0) return el('span', { class: 'move down', title: `down ${-gained} · ${was}` }, `▼${-gained}`);
  return el('span', { class: 'move same', title: `unchanged · ${was}` }, '=');
}

/** The bar: the value as a share of 100 (percent or score), the target as a line on it. */
function bar(row, target) {
  const amount = row.score ? Number(row.score) : row.rate ? Number(row.rate.percent) : null;
  const track = el('span', { class: 'bar', 'aria-hidden': 'true' });
  if (amount !== null) {
    const fill = el('span', { class: 'fill' });
    fill.style.width = `${Math.max(0, Math.min(100, amount))}%`;
    if (target !== undefined && amount >= Number(target)) fill.classList.add('met');
    track.append(fill);
  }
  if (target !== undefined && target !== '') {
    const line = el('span', { class: 'target', title: `target ${target}%` });
    line.style.left = `${Math.max(0, Math.min(100, Number(target)))}%`;
    track.append(line);
  }
  return track;
}

function value(row) {
  if (row.score) return el('span', { class: 'value' }, row.score);
  if (!row.rate) return el('span', { class: 'value nodata' }, 'no data');
  return el(
    'span',
    { class: 'value', title: `${countText(row.rate.numerator)} of ${countText(row.rate.denominator)}` },
    percentText(row.rate.percent),
    el('small', {}, `${countText(row.rate.numerator)}/${countText(row.rate.denominator)}`),
  );
}
