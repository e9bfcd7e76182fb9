// The dashboard: reads what to show from the URL hash, keeps one live ranking and the live
// alerts open, and draws the ranking view (the alerts above it), one agency's page, or the
// publications (rankings frozen as published, each with its revision log). Every view's hash
// keeps the ranking's choices, so that going back finds the ranking as it was left.
//   #/?block=provinces&metric=online-dossier-rate&period=ytd     the live ranking
//   #/agency/phu-tho?metric=on-time-rate&period=2026-Q3            one agency
//   #/publications?block=provinces&metric=…&period=ytd             the publications
//   #/publications/weekly-w49?block=provinces&metric=…&period=ytd   one publication

import { ApiError, apiUrl, getBlockMetrics, getRanking, rankingParams } from './api.js';
import { showAgency } from './agency.js';
import { showAlerts } from './alerts.js';
import { publishedText, showPublications } from './publications.js';
import {
  BLOCKS, INDEXES, METRICS, clockText, countText, el, metricLabel, metricTerm, percentText,
  periodChoices, ratioText, secondsText,
} from './format.js';
import { LiveRanking } from './live.js';
import { renderRows } from './ranking.js';

const DEFAULTS = { block: 'provinces', metric: 'online-dossier-rate', index: '', period: 'ytd' };
const heartbeatMs =
  Number(document.querySelector('meta[name="govpulse-heartbeat-ms"]')?.content) || 5000;

const $ = (id) => document.getElementById(id);

/**
 * What the hash asks for: { view: 'ranking' | 'agency' | 'publications' | 'publication',
 * agencyId, publicationId, state }.
 */
function readHash() {
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(search);
  const parts = path.split('/').filter(Boolean);
  const state = {
    block: BLOCKS.some(([b]) => b === params.get('block')) ? params.get('block') : DEFAULTS.block,
    metric: params.get('metric') || DEFAULTS.metric,
    index: params.get('index') || '',
    period: params.get('period') || DEFAULTS.period,
  };
  if (parts[0] === 'agency' && parts[1]) {
    return { view: 'agency', agencyId: decodeURIComponent(parts[1]), state };
  }
  if (parts[0] === 'publications') {
    return parts[1]
      ? { view: 'publication', publicationId: decodeURIComponent(parts[1]), state }
      : { view: 'publications', state };
  }
  return { view: 'ranking', state };
}

/** The hash of `view` with the ranking's choices `state`; `id` names the agency or publication. */
function hashFor(view, state, id) {
  const params = new URLSearchParams({ block: state.block, period: state.period });
  if (state.index) params.set('index', state.index);
  else params.set('metric', state.metric);
  const path = {
    agency: `/agency/${encodeURIComponent(id)}`,
    publications: '/publications',
    publication: `/publications/${encodeURIComponent(id)}`,
  }[view] ?? '/';
  return `#${path}?${params}`;
}

const links = (state) => ({
  // An agency's page for the ranking's choices, or for others (a publication's metric and period).
  agency: (id, other) => hashFor('agency', other ?? state, id),
  ranking: () => hashFor('ranking', state),
  publications: () => hashFor('publications', state),
  publication: (id) => hashFor('publication', state, id),
});

/** The views of the publications, which the ranking's controls do not steer. */
const PUBLICATION_VIEWS = new Set(['publications', 'publication']);

// Controls.

function fillControls() {
  $('metric').replaceChildren(
    el('optgroup', { label: 'Metrics · chỉ số' },
      METRICS.map(([id, label, term]) => el('option', { value: `metric:${id}` }, `${label} · ${term}`))),
    el('optgroup', { label: 'Composite indexes · bộ chỉ số' },
      INDEXES.map(([id, label]) => el('option', { value: `index:${id}` }, label))),
  );
  $('period').replaceChildren(
    ...periodChoices().map(([group, choices]) =>
      el('optgroup', { label: group }, choices.map(([value, label]) => el('option', { value }, label)))),
  );
  const go = (change) => {
    const { view, agencyId, state } = readHash();
    location.hash = hashFor(view, { ...state, ...change }, agencyId);
  };
  $('metric').addEventListener('change', (event) => {
    const [kind, id] = event.target.value.split(':');
    go(kind === 'index' ? { index: id } : { metric: id, index: '' });
  });
  $('period').addEventListener('change', (event) => go({ period: event.target.value }));
  for (const button of $('block').querySelectorAll('button')) {
    button.addEventListener('click', () => go({ block: button.dataset.block }));
  }
}

function syncControls(view, state) {
  $('controls').hidden = PUBLICATION_VIEWS.has(view);
  $('metric').value = state.index ? `index:${state.index}` : `metric:${state.metric}`;
  if (![...$('period').options].some((o) => o.value === state.period)) {
    $('period').append(el('option', { value: state.period }, state.period));
  }
  $('period').value = state.period;
  for (const button of $('block').querySelectorAll('button')) {
    button.setAttribute('aria-pressed', String(button.dataset.block === state.block));
  }
  $('block').hidden = view === 'agency';
}

// The live ranking.

let live = null;
let liveKey = '';
let targets = new Map();
let summaryTimer = null;
let summaryAt = 0;
// When the ranking shown was last updated, as people read a clock (not its revision number).
let updatedAt = '';
let current = readHash();

function queryOf(state) {
  return { metric: state.metric, index: state.index, block: state.block, period: state.period };
}

function startLive(state) {
  const key = JSON.stringify(queryOf(state));
  if (key === liveKey) return;
  liveKey = key;
  live?.stop();
  clearTimeout(redrawTimer);
  redrawTimer = null;
  pendingRows = null;
  redrawnAt = 0;
  targets = new Map();
  renderRows($('rows'), [], { animate: false });
  $('rows-empty').hidden = false;
  $('rows-empty').textContent = 'Waiting for the live ranking…';
  $('ranking-meta').textContent = '';
  $('ranking-provisional').hidden = true;
  showPublication(null, [], state);
  const blockLabel = BLOCKS.find(([b]) => b === state.block);
  const by = state.index || state.metric;
  $('ranking-title').replaceChildren(
    `${blockLabel[1]} by ${metricLabel(by)}`,
    el('span', { class: 'vi' }, ` ${metricTerm(by)}`),
  );
  const params = rankingParams(queryOf(state));
  $('export-csv').href = apiUrl('/api/v1/ranking', { ...params, format: 'csv' });
  $('export-csv').setAttribute('download', `ranking-${state.block}-${by}-${state.period}.csv`);
  $('export-json').href = apiUrl('/api/v1/ranking', params);
  $('export-json').setAttribute('download', `ranking-${state.block}-${by}-${state.period}.json`);
  live = new LiveRanking(queryOf(state), {
    heartbeatMs,
    onRows: showRows,
    onState: showState,
    onRefused: () => explainRefusal(key, state),
  });
  live.start();
  refreshSummary(state);
}

// Messages can come every 100 ms; the table is redrawn at most every REDRAW_MS, with every row
// that changed meanwhile, so that rows have time to slide to their places and be read.
const REDRAW_MS = 800;
let pendingRows = null;
let redrawTimer = null;
let redrawnAt = 0;

function showRows(update) {
  if (pendingRows && !update.reset) {
    update = { ...update, changed: new Set([...pendingRows.changed, ...update.changed]) };
  }
  pendingRows = update;
  if (redrawTimer) return;
  const wait = update.reset || !redrawnAt ? 0 : Math.max(0, redrawnAt + REDRAW_MS - performance.now());
  redrawTimer = setTimeout(() => {
    redrawTimer = null;
    const next = pendingRows;
    pendingRows = null;
    redrawnAt = performance.now();
    if (next) drawRows(next);
  }, wait);
}

function drawRows(update) {
  const { view, state } = current;
  renderRows($('rows'), update.rows, {
    targets,
    changed: update.changed,
    animate: view === 'ranking' && !document.hidden && !update.reset,
    href: links(state).agency,
    // Rows that differ from the ranking's latest publication are marked revised.
    publication: update.publication ?? null,
  });
  $('rows-empty').hidden = update.rows.length > 0;
  $('rows-empty').textContent = update.reset
    ? 'The server could not resume this stream: rebuilding from a fresh snapshot…'
    : 'No agency in this ranking.';
  const range = update.period ? `${update.period.firstDay} – ${update.period.lastDay}` : '';
  updatedAt = clockText();
  // The revision stays for whoever debugs a stream: on hover, and in the table's data.
  $('ranking-meta').replaceChildren(
    `${countText(update.rankedCount)} ranked · ${range} · `,
    el('span', { id: 'updated', title: `revision ${update.revision}` }, `updated ${updatedAt}`),
    ' (Vietnam time)',
  );
  $('table').dataset.revision = update.revision;
  // A period that includes today is still being counted: its ranks can move by tonight.
  $('ranking-provisional').hidden = !update.provisional;
  showPublication(update.publication, update.rows, state);
  if (update.changed.size > 0) scheduleSummary();
}

/**
 * The ranking's latest publication, when it has one: "Published on 06/12/2026 04:04 (Vietnam
 * time) by anonymous — <title>", linked to the publication and its revision log, and how many
 * rows shown are revised since (marked in the table).
 */
function showPublication(publication, rows, state) {
  const line = $('ranking-publication');
  line.hidden = !publication;
  if (!publication) {
    line.replaceChildren();
    delete line.dataset.publication;
    return;
  }
  const id = publication.publicationId ?? '';
  const revised = rows.filter((row) => row.revised === true).length;
  line.dataset.publication = id;
  line.replaceChildren(
    el('a', { id: 'ranking-publication-link', href: links(state).publication(id), title: 'The ranking as published, and its revision log' },
      `${publishedText(publication)} — ${publication.title || id}`),
    el('span', { class: 'revised-count', id: 'ranking-revised-count' },
      revised
        ? ` · ${countText(revised)} ${revised === 1 ? 'row' : 'rows'} revised since, marked “revised”`
        : ' · nothing revised since'),
  );
}

/** The stream broke before its snapshot: ask the same ranking once to show the server's reason. */
async function explainRefusal(key, state) {
  try {
    await getRanking(queryOf(state));
  } catch (error) {
    if (key !== liveKey || !(error instanceof ApiError) || error.status >= 500) return;
    $('rows-empty').hidden = false;
    $('rows-empty').textContent = `The server refused this ranking: ${error.message}`;
  }
}

const STATE_TEXT = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  stale: 'stale',
};

function showState(state) {
  $('connection').dataset.state = state;
  $('connection-text').textContent = STATE_TEXT[state] ?? state;
  $('table').dataset.state = state;
  const revision = updatedAt ? ` (updated ${updatedAt})` : '';
  $('table-banner').textContent =
    state === 'stale'
      ? `Stale: nothing heard from the server for over ${secondsText(live?.staleAfter ?? heartbeatMs * 2.5)}. This ranking may be out of date${revision}.`
      : state === 'reconnecting'
        ? `Reconnecting: this is the ranking as last received${revision}, not necessarily current; resuming from it.`
        : '';
}

// The block's figure: pooled value, last year, agencies meeting their target.

function scheduleSummary() {
  if (summaryTimer) return;
  const wait = Math.max(0, summaryAt + 3000 - performance.now());
  summaryTimer = setTimeout(() => {
    summaryTimer = null;
    refreshSummary(current.state);
  }, wait);
}

async function refreshSummary(state) {
  summaryAt = performance.now();
  const key = liveKey;
  const box = $('summary');
  if (state.index) {
    const profile = INDEXES.find(([id]) => id === state.index);
    box.replaceChildren(card('Composite index', profile ? profile[1] : state.index, 'score out of 100 · điểm trên 100', 'index'));
    return;
  }
  try {
    // The nation (every ministry and province) for the national figure; the block for its
    // own pooled and mean figures and the agencies meeting their targets.
    const [nation, response] = await Promise.all([
      getBlockMetrics({ metric: state.metric, nation: true, period: state.period }),
      getBlockMetrics(queryOf(state)),
    ]);
    if (key !== liveKey) return;
    targets = new Map(
      (response.agencies ?? [])
        .filter((a) => a.target?.targetPercent)
        .map((a) => [a.agencyId, a.target.targetPercent]),
    );
    const n = nation.summary ?? {};
    const last = nation.summarySamePeriodLastYear ?? {};
    const change = nation.pooledChangeFromLastYear;
    const s = response.summary ?? {};
    const blockName = state.block === 'ministries' ? 'Ministries' : 'Provinces';
    box.replaceChildren(
      card('National figure · cả nước', percentText(n.pooled?.percent),
        n.pooled
          ? `${countText(n.pooled.numerator)} of ${countText(n.pooled.denominator)}, ministries and provinces pooled`
          : 'no data yet', 'pooled'),
      card('Same period last year · cùng kỳ', change?.ratio ? ratioText(change.ratio) : '–',
        last.pooled ? `national ${last.pooled.percent}% then (${change?.points ?? ''} points)` : 'no data last year', 'last-year'),
      card(`${blockName} meeting the target · đạt chỉ tiêu`,
        s.agenciesWithTarget ? `${s.agenciesMeetingTarget ?? 0} of ${s.agenciesWithTarget}` : '–',
        s.agenciesWithTarget ? 'of those with a target reach it' : 'no target applies this year', 'targets'),
      card(`${blockName} together`, percentText(s.pooled?.percent),
        `pooled · mean of ${blockName.toLowerCase()} ${percentText(s.meanPercent)} · ${countText((s.agencies ?? 0) - (s.agenciesWithoutData ?? 0))} of ${countText(s.agencies)} with data`, 'block'),
    );
    if (live) live.emit(new Set(), false);
  } catch (error) {
    if (key !== liveKey) return;
    box.replaceChildren(card('National figure', '–', `could not load: ${error.message}`, 'pooled'));
  }
}

function card(label, value, note, name) {
  return el('div', { class: 'card', dataset: { card: name } },
    el('span', { class: 'card-label' }, label),
    el('span', { class: 'card-value' }, value),
    el('span', { class: 'card-note' }, note));
}

// Views.

// The page shown other than the ranking (an agency's, the publications), and how to leave it.
let leaveView = null;

/** The navigation: its links keep the ranking's choices; the current one is marked. */
function syncNavigation(view, state) {
  const here = PUBLICATION_VIEWS.has(view) ? 'publications' : 'ranking';
  $('nav-ranking').href = links(state).ranking();
  $('nav-publications').href = links(state).publications();
  for (const [id, name] of [['nav-ranking', 'ranking'], ['nav-publications', 'publications']]) {
    if (name === here) $(id).setAttribute('aria-current', 'page');
    else $(id).removeAttribute('aria-current');
  }
}

function render() {
  current = readHash();
  const { view, agencyId, publicationId, state } = current;
  syncControls(view, state);
  syncNavigation(view, state);
  startLive(state);
  leaveView?.();
  leaveView = null;
  $('alerts').hidden = view !== 'ranking';
  // Their agencies link to the agency's page for the metric and period chosen.
  alerts.redraw();
  $('ranking-view').hidden = view !== 'ranking';
  $('agency-view').hidden = view !== 'agency';
  $('publications-view').hidden = !PUBLICATION_VIEWS.has(view);
  if (view === 'agency') {
    leaveView = showAgency($('agency-view'), agencyId, state, links(state));
    window.scrollTo(0, 0);
  } else if (PUBLICATION_VIEWS.has(view)) {
    leaveView = showPublications($('publications-view'), publicationId ?? '', links(state));
    window.scrollTo(0, 0);
  } else {
    document.title = 'govpulse · online public services';
  }
}

fillControls();
const alerts = showAlerts({ heartbeatMs, href: (id) => links(current.state).agency(id) });
window.addEventListener('hashchange', render);
render();
