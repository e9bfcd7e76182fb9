// The publications: figures frozen as they were published (RankingService.Publish, an act of
// a publisher through the API or `govpulse publish`, never of this page), a ranking or a
// block's metric for every agency (the monthly report's table). The list, newest first: each
// publication's title, what it holds and over which days, when (Vietnam time) and by whom it
// was published, and how many agencies. One publication: its figures exactly as published
// and, beside them, its revision log (GetRevisions): the figures computed again now for the
// same days, how many rows are unchanged, and each agency whose rank or value has moved since,
// from what to what, and why: the stretches of days whose counters changed, late data for
// days already over at publication told from days that were still running then.
//   #/publications              the list
//   #/publications/weekly-w49   one publication

import { apiUrl, getPublication, getRevisions, listPublications, publicationPath } from './api.js';
import { BLOCKS, countText, dateTimeText, el, metricLabel, metricTerm, ordinal, parseMoment } from './format.js';
import { renderRows } from './ranking.js';

/** How many publications one page of the list asks for. */
const PAGE = 50;

/** The blocks as the JSON names them (Block), as the dashboard's hash names them. */
const BLOCK_PARAM = { BLOCK_PROVINCE: 'provinces', BLOCK_MINISTRY: 'ministries' };

/**
 * Fills `root` with the list of publications (`id` empty) or with the publication `id`.
 * `links` builds hrefs: { publications(), publication(id), agency(id, state) }, `state` being
 * what the agency's page shows ({ block, metric, index, period }). Returns a function that
 * abandons it (its requests are cancelled, their answers dropped).
 */
export function showPublications(root, id, links) {
  const abort = new AbortController();
  if (id) showOne(root, id, links, abort.signal);
  else showList(root, links, abort.signal);
  return () => abort.abort();
}

/** Whom a query covers, in words: "Provinces", "Units of phu-tho", "The nation". */
function scopeText({ block, parentId, nation }) {
  if (parentId) return `Units of ${parentId}`;
  if (nation) return 'The nation (ministries and provinces)';
  const found = BLOCKS.find(([b]) => b === BLOCK_PARAM[block]);
  return found ? found[1] : 'Agencies';
}

/**
 * What a publication holds and over which days, as [what, days, by]: a ranking
 * (["Provinces by Online dossier rate", "2026-11 (2026-11-01 – 2026-11-30)", metric]) or a
 * block's metric for every agency (GetBlockMetrics: ["Provinces: Online dossier rate of every
 * agency and together", …]). `item` is a Publication or a PublicationSummary.
 */
function whatParts(item, period) {
  const figures = item.blockMetricsQuery;
  const query = figures ?? item.query ?? {};
  const by = query.index || query.metric || '';
  const days = period?.firstDay ? ` (${period.firstDay} – ${period.lastDay})` : '';
  const what = figures
    ? `${scopeText(query)}: ${metricLabel(by)} of every agency and together`
    : `${scopeText(query)} by ${metricLabel(by)}${query.criteria?.length ? ` (${query.criteria.join(', ')})` : ''}`;
  return [what, `${query.period ?? ''}${days}`, by];
}

/**
 * "Published on 06/12/2026 04:04 (Vietnam time) by anonymous" (lower case within a sentence):
 * when and by whom, from a Publication or a PublicationSummary.
 */
export function publishedText(publication, { capital = true } = {}) {
  const at = parseMoment(publication.publishedAt);
  const when = at ? `${dateTimeText(at)} (Vietnam time)` : 'an unknown date';
  return `${capital ? 'Published' : 'published'} on ${when} by ${publication.publishedBy || 'an unknown publisher'}`;
}

/** What an agency's page shows when opened from a publication: its metric and period. */
function agencyState(item) {
  const query = item.blockMetricsQuery ?? item.query ?? {};
  return {
    block: BLOCK_PARAM[query.block] ?? 'provinces',
    metric: query.metric || 'online-dossier-rate',
    index: query.index || '',
    period: query.period || 'ytd',
  };
}

// The list.

/** The publications, newest first, a page at a time; the status line says how many, none, or why not. */
function showList(root, links, signal) {
  document.title = 'Publications · govpulse';
  const status = el('p', { class: 'publications-status', id: 'publications-status', role: 'status', dataset: { state: 'loading' } },
    'Loading the publications…');
  const list = el('ol', { class: 'publication-list', id: 'publication-list' });
  const more = el('button', { type: 'button', class: 'button', id: 'publications-more', hidden: true }, 'Older publications');
  root.replaceChildren(
    el('div', { class: 'table-head' },
      el('div', {},
        el('h2', { id: 'publications-title' }, 'Publications ', el('span', { class: 'vi' }, 'kết quả đã công bố')),
        el('p', { class: 'meta' },
          'Rankings and figures frozen as they were published, newest first; each shows what has been revised since. Times in Vietnam time.')),
      el('a', { class: 'button', id: 'publications-csv', href: apiUrl('/api/v1/publications', { format: 'csv', limit: 500 }), download: 'publications.csv' }, 'CSV')),
    status,
    list,
    more,
  );

  let shown = 0;
  const load = () => {
    more.disabled = true;
    listPublications({ offset: shown, limit: PAGE }, { signal })
      .then((response) => {
        if (signal.aborted) return;
        const page = response.publications ?? [];
        const total = Number(response.total ?? 0);
        list.append(...page.map((p) => listItem(p, links)));
        shown += page.length;
        status.dataset.state = total ? 'loaded' : 'empty';
        status.textContent = total
          ? `${countText(total)} ${total === 1 ? 'publication' : 'publications'}${shown < total ? `, the newest ${countText(shown)} shown` : ''}`
          : 'No publication yet. A publisher publishes figures through the API (POST /api/v1/publications) or `govpulse publish`.';
        more.hidden = shown >= total || page.length === 0;
        more.disabled = false;
      })
      .catch((error) => {
        if (signal.aborted) return;
        status.dataset.state = 'error';
        status.textContent = `Could not load the publications: ${error.message}`;
        more.disabled = false;
      });
  };
  more.addEventListener('click', load);
  load();
}

/** One publication of the list: its title (linked), what it holds, when and by whom, how many agencies. */
function listItem(publication, links) {
  const count = Number(publication.rankedCount ?? 0);
  return el('li', { class: 'publication', dataset: { publication: publication.publicationId } },
    el('a', { class: 'name', href: links.publication(publication.publicationId) }, publication.title || publication.publicationId),
    el('span', { class: 'publication-what' }, whatParts(publication, publication.period).slice(0, 2).join(' · ')),
    el('span', { class: 'publication-when' }, publishedText(publication, { capital: false })),
    el('span', { class: 'publication-count' },
      publication.blockMetricsQuery ? `${countText(count)} ${count === 1 ? 'agency' : 'agencies'}` : `${countText(count)} ranked`),
  );
}

// One publication.

/**
 * The publication `id`: its figures as published (a ranking's rows, or a block's metric for
 * every agency with the pooled figure), and its revision log beside (or, narrow, below) them.
 */
function showOne(root, id, links, signal) {
  document.title = `${id} · publication · govpulse`;
  const title = el('h2', { class: 'publication-title', id: 'publication-title' }, id);
  const what = el('p', { class: 'publication-sub', id: 'publication-what' });
  const published = el('p', { class: 'published-line', id: 'published-line' });
  const provisional = el('p', { class: 'provisional-note', id: 'publication-provisional', hidden: true },
    'Published while its period was still running: days still to be counted then explain some revisions.');
  const status = el('p', { class: 'publications-status', id: 'publication-status', role: 'status', dataset: { state: 'loading' } },
    'Loading the publication…');
  const body = el('div', { class: 'publication-ranking' }, status);
  const revisions = el('section', { class: 'revisions', id: 'revisions', 'aria-labelledby': 'revisions-title', dataset: { state: 'loading' } });
  const revisionsSummary = el('p', { class: 'revisions-summary', id: 'revisions-summary', role: 'status' }, 'Computing the figures again…');
  const revisionsMeta = el('p', { class: 'meta', id: 'revisions-meta' });
  const revisionList = el('ol', { class: 'revision-list', id: 'revision-list' });
  revisions.append(
    el('div', { class: 'revisions-head' },
      el('h3', { id: 'revisions-title' }, 'Revision log ', el('span', { class: 'vi' }, 'điều chỉnh sau công bố')),
      el('a', { class: 'button small', id: 'revisions-csv', href: apiUrl(publicationPath(id, 'revisions'), { format: 'csv' }), download: `revisions-${id}.csv` }, 'CSV')),
    revisionsMeta,
    revisionsSummary,
    revisionList,
  );

  root.replaceChildren(
    el('p', { class: 'crumbs' }, el('a', { href: links.publications(), id: 'publications-back' }, '← All publications')),
    el('div', { class: 'table-head' },
      el('div', {}, title, what, published, provisional),
      el('div', { class: 'exports' },
        el('a', { class: 'button', id: 'publication-csv', href: apiUrl(publicationPath(id), { format: 'csv' }), download: `publication-${id}.csv` }, 'CSV'),
        el('a', { class: 'button', id: 'publication-json', href: publicationPath(id), download: `publication-${id}.json` }, 'JSON'))),
    el('div', { class: 'publication-layout' }, body, revisions),
  );

  // The agencies the revision log lists, marked where the figures are shown once both have
  // come; and the agencies together (a block's metric), when the log says they were revised.
  let revised = new Set();
  let pooledRevised = false;
  const markRevised = () => {
    const pooled = body.querySelector('#publication-figures tfoot tr');
    for (const item of [...body.querySelectorAll('[data-agency]'), ...(pooled ? [pooled] : [])]) {
      const moved = item === pooled ? pooledRevised : revised.has(item.dataset.agency);
      item.classList.toggle('revised', moved);
      if (moved) item.title = 'Revised since publication: see the revision log';
    }
  };

  getPublication(id, { signal })
    .then((response) => {
      if (signal.aborted) return;
      const publication = response.publication ?? {};
      const figures = publication.blockMetrics;
      const ranking = publication.ranking ?? {};
      const label = publication.title || id;
      title.replaceChildren(label, el('small', {}, ` ${publication.publicationId ?? id}`));
      document.title = `${label} · govpulse`;
      const [held, days, by] = whatParts(publication, (figures ?? ranking).period);
      what.replaceChildren(held, el('span', { class: 'vi' }, ` ${metricTerm(by)}`), ` · ${days}`);
      const count = figures
        ? `${countText((figures.agencies ?? []).length)} agencies`
        : `${countText(ranking.rankedCount)} ranked`;
      published.textContent = `${publishedText(publication)} · ${count}`;
      provisional.hidden = (figures ?? ranking).provisional !== true;
      const href = (agencyId) => links.agency(agencyId, agencyState(publication));
      const shown = figures ? showFigures(body, figures, href) : showRanking(body, ranking, href);
      markRevised();
      status.dataset.state = 'loaded';
      status.hidden = shown > 0;
      status.textContent = 'No agency in this publication.';
    })
    .catch((error) => {
      if (signal.aborted) return;
      status.dataset.state = 'error';
      status.hidden = false;
      status.textContent = `Could not load the publication: ${error.message}`;
      // Its revisions would only say the same.
      revisions.hidden = true;
    });

  getRevisions(id, { signal })
    .then((response) => {
      if (signal.aborted) return;
      const summary = response.publication ?? {};
      const state = agencyState(summary);
      const figures = response.blockMetricsNow;
      const moved = response.rows ?? [];
      const unchanged = Number(response.unchanged ?? 0);
      revised = new Set(moved.map((r) => r.agencyId));
      pooledRevised = Boolean(figures) && response.summaryRevised === true;
      markRevised();
      const revisedAt = parseMoment(response.revisedAt);
      const period = (figures ?? response.now)?.period;
      revisionsMeta.textContent = `The ${figures ? 'figures' : 'ranking'} computed again` +
        `${revisedAt ? ` on ${dateTimeText(revisedAt)} (Vietnam time)` : ''}` +
        `${period?.firstDay ? ` for the same days, ${period.firstDay} – ${period.lastDay}` : ''}.`;
      revisionsSummary.textContent = summaryText(moved, unchanged) + (figures
        ? ` The agencies together: ${response.summaryRevised === true ? 'revised' : 'as published'}, now ${valueText(figures.summary?.pooled)}.`
        : '');
      revisionList.replaceChildren(...moved.map((r) => revisionItem(r, { ranked: !figures, href: (agencyId) => links.agency(agencyId, state) })));
      revisions.dataset.state = 'loaded';
    })
    .catch((error) => {
      if (signal.aborted) return;
      revisions.dataset.state = 'error';
      revisionsSummary.className = 'revisions-summary error';
      revisionsSummary.textContent = `Could not compute the revisions: ${error.message}`;
    });
}

/**
 * A ranking's rows exactly as published, drawn into `body` as the live ranking draws its own
 * (rank, places gained against the period before, agency, value); returns how many rows.
 */
function showRanking(body, ranking, href) {
  const list = el('ol', { class: 'rows', id: 'publication-rows' });
  // As published: its agencies' freshness then is no concern of the reader now.
  const rows = (ranking.rows ?? []).map(({ freshness: _then, ...row }) => row);
  renderRows(list, rows, { animate: false, href });
  body.append(
    el('div', { class: 'table' },
      el('div', { class: 'rows-head', 'aria-hidden': 'true' },
        el('span', {}, '#'), el('span', {}, '±'), el('span', {}, 'Agency · cơ quan'), el('span', {}), el('span', {}, 'Value'), el('span', {})),
      list),
    el('p', { class: 'legend' },
      'The ranking exactly as published · ▲▼ places gained or lost against the previous period, as published · ',
      el('span', { class: 'revised-key' }, 'marked'), ': revised since, see the revision log'),
  );
  return rows.length;
}

/** A value as the page writes it: "25.00% (1/4)", a score, or "no data". */
function valueText(rate, score) {
  if (score) return score;
  if (!rate) return 'no data';
  return `${rate.percent}% (${countText(rate.numerator)}/${countText(rate.denominator)})`;
}

/**
 * A block's metric for every agency exactly as published (GetBlockMetricsResponse), in a
 * table with its target, and the agencies together (pooled) at its foot; returns how many
 * agencies.
 */
function showFigures(body, figures, href) {
  const agencies = figures.agencies ?? [];
  const rows = agencies.map((a) => el('tr', { dataset: { agency: a.agencyId, percent: a.rate?.percent ?? '' } },
    el('th', { scope: 'row' }, el('a', { class: 'name', href: href(a.agencyId) }, a.agencyName || a.agencyId)),
    el('td', { class: a.rate ? 'figure-value' : 'figure-value nodata' }, a.rate ? `${a.rate.percent}%` : 'no data'),
    el('td', { class: 'figure-count' }, a.rate ? `${countText(a.rate.numerator)} / ${countText(a.rate.denominator)}` : ''),
    el('td', { class: 'figure-target' }, a.target?.targetPercent
      ? `${a.target.targetPercent}%${a.target.met === true ? ', met' : a.target.met === false ? ', not met' : ''}`
      : ''),
  ));
  const pooled = figures.summary?.pooled;
  body.append(
    el('div', { class: 'figures-wrap' },
      el('table', { class: 'figures-table', id: 'publication-figures' },
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col' }, 'Agency ', el('span', { class: 'vi' }, 'cơ quan')),
          el('th', { scope: 'col', class: 'figure-value' }, 'Value'),
          el('th', { scope: 'col', class: 'figure-count' }, 'Count'),
          el('th', { scope: 'col', class: 'figure-target' }, 'Target'))),
        el('tbody', {}, rows),
        el('tfoot', {}, el('tr', {},
          el('th', { scope: 'row' }, 'Together (pooled) ', el('span', { class: 'vi' }, 'chung')),
          el('td', { class: 'figure-value' }, pooled ? `${pooled.percent}%` : 'no data'),
          el('td', { class: 'figure-count' }, pooled ? `${countText(pooled.numerator)} / ${countText(pooled.denominator)}` : ''),
          el('td', { class: 'figure-target' }))))),
    el('p', { class: 'legend' },
      'The figures exactly as published · ', el('span', { class: 'revised-key' }, 'marked'), ': revised since, see the revision log'),
  );
  return agencies.length;
}

/** "2 rows revised, 32 unchanged; counted since publication: 4 events of late data." */
function summaryText(moved, unchanged) {
  if (!moved.length) {
    return `Nothing revised: all ${countText(unchanged)} ${unchanged === 1 ? 'row is' : 'rows are'} as published.`;
  }
  let late = 0;
  let running = 0;
  for (const row of moved) {
    for (const cause of row.causes ?? []) {
      if (cause.late === true) late += Number(cause.events ?? 0);
      else running += Number(cause.events ?? 0);
    }
  }
  const counted = [
    late ? `${eventsText(late)} of late data` : '',
    running ? `${eventsText(running)} for days still running at publication` : '',
  ].filter(Boolean);
  return `${countText(moved.length)} ${moved.length === 1 ? 'row' : 'rows'} revised, ${countText(unchanged)} unchanged` +
    `${counted.length ? `; counted since publication: ${counted.join(' and ')}` : ''}.`;
}

/** "1 event", "4 events" (a count that went down is negative: "-2 events"). */
function eventsText(n) {
  return `${countText(n)} ${Math.abs(n) === 1 ? 'event' : 'events'}`;
}

/**
 * A row as the log says it: "3rd · 25.00% (1/4)", "unranked · no data"; without a place when
 * the publication is of figures, not a ranking ("25.00% (1/4)").
 */
function standing(row, ranked) {
  const value = valueText(row.rate, row.score);
  if (!ranked) return value;
  const rank = (row.rank ?? 0) > 0 ? ordinal(row.rank) : row.belowMinimumVolume ? 'below the minimum volume' : 'unranked';
  return `${rank} · ${value}`;
}

/** The value of a row as its data attribute carries it: the percent or score, empty without. */
const valueOf = (row) => row?.score || row?.rate?.percent || '';

/** Places gained since publication: ▲2, ▼1, or = (the value moved, not the rank). */
function gained(places) {
  if (places > 0) return el('span', { class: 'move up', title: `up ${places} since publication` }, `▲${places}`);
  if (places < 0) return el('span', { class: 'move down', title: `down ${-places} since publication` }, `▼${-places}`);
  return el('span', { class: 'move same', title: 'same rank as published' }, '=');
}

/**
 * One revised agency: published → now, places gained (in a ranking: `ranked`), and each
 * stretch of days behind it; `href(agencyId)` links to its page.
 */
function revisionItem(revision, { ranked, href }) {
  const places = Number(revision.placesGained ?? 0);
  const causes = revision.causes ?? [];
  return el('li', {
    class: 'revision',
    dataset: {
      agency: revision.agencyId,
      placesGained: String(places),
      publishedRank: String(revision.published?.rank ?? 0),
      publishedValue: valueOf(revision.published),
      nowRank: String(revision.now?.rank ?? 0),
      nowValue: valueOf(revision.now),
    },
  },
  el('div', { class: 'revision-head' },
    el('a', { class: 'name', href: href(revision.agencyId) }, revision.agencyName || revision.agencyId),
    ranked ? gained(places) : null),
  el('p', { class: 'revision-figures' },
    el('span', { class: 'rev-published' }, revision.published ? `published ${standing(revision.published, ranked)}` : 'not in the publication'),
    ' → ',
    el('span', { class: 'rev-now' }, revision.now ? `now ${standing(revision.now, ranked)}` : `no longer ${ranked ? 'ranked' : 'listed'}`)),
  causes.length
    ? el('ul', { class: 'causes' }, causes.map(causeItem))
    : el('p', { class: 'hint no-cause' }, ranked
      ? 'None of its own counters changed: it moved because other agencies’ figures did.'
      : 'None of its own counters changed.'),
  );
}

/** A counter's name as read: `received_online` → "received online". */
const counterName = (name) => String(name ?? '').replaceAll('_', ' ');

/** One stretch of days whose counters changed: late data, or days still running at publication. */
function causeItem(cause) {
  const late = cause.late === true;
  const days = cause.firstDay === cause.lastDay ? cause.firstDay : `${cause.firstDay} – ${cause.lastDay}`;
  const events = Number(cause.events ?? 0);
  return el('li', {
    class: 'cause',
    dataset: { late: String(late), firstDay: cause.firstDay, lastDay: cause.lastDay, events: String(events) },
  },
  el('span', { class: 'cause-days' }, days),
  el('span', {
    class: `tag ${late ? 'late-tag' : 'running-tag'}`,
    title: late
      ? 'These days were over when it was published: events sent late, re-synced or backfilled'
      : 'These days were still running (or to come) when it was published: their events were simply not in yet',
  }, late ? 'late data' : 'still running then'),
  el('span', { class: 'cause-events' },
    `${eventsText(events)} counted since publication, for ${late ? 'days already over then' : 'days still running then'}`),
  el('span', { class: 'cause-counters' },
    (cause.counters ?? []).map((c) => `${counterName(c.counter)} ${countText(c.published)} → ${countText(c.now)}`).join(' · ')),
  );
}
