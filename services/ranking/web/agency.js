// One agency's page: when it last reported, its figures for the chosen period, the procedures
// that pull the chosen metric down, the events accepted from it each day, each metric over the
// months of that period's year against its target, its rank per month, and its own units
// ranked.

import {
  apiUrl, getBlockMetrics, getMetrics, getProcedureMetrics, getRanking, procedureMetricsParams,
} from './api.js';
import { arrivalsChart, monthlyChart, rankChart } from './charts.js';
import {
  METRICS, countText, dayTimeText, el, isStale, metricLabel, metricTerm, monthName, parseMoment,
  percentText, periodYear, ratioText, staleText, staleTitle, vietnamToday, clockText, ordinal,
} from './format.js';
import { renderRows } from './ranking.js';
import { sortRows } from './live.js';

const BLOCK_PARAM = { BLOCK_PROVINCE: 'provinces', BLOCK_MINISTRY: 'ministries' };

/** How many of its worst procedures the page lists. */
const WORST = 5;

/** The metric procedures are shown by when a composite index is chosen (it has no value per procedure). */
const PROCEDURE_FALLBACK = 'online-dossier-rate';

/**
 * The metrics that count an agency's procedures: no procedure has a value of its own. The
 * service refuses them (`govpulse_core::procedures::per_procedure`); the page says so without
 * asking, so that the browser logs no failed request.
 */
const COUNTS_PROCEDURES = new Set(['services-with-online-dossiers', 'full-online-provision', 'online-provision-rate']);

/** What a procedure's numerator and denominator count, per metric (MetricReport in the proto). */
const PARTS = {
  'online-dossier-rate': ['online', 'received'],
  'full-online-dossier-rate': ['online', 'received'],
  'on-time-rate': ['on time', 'resolved or overdue'],
  'digitized-reception-rate': ['digitized', 'received'],
  'electronic-result-rate': ['electronic', 'resolved'],
  'satisfaction-rate': ['satisfied', 'feedback'],
  'online-payment-rate': ['paid online', 'fees paid'],
};

/**
 * Fills `root` with the page of `agencyId` for `state` ({ metric, index, period }).
 * `links` builds hrefs: { agency(id), ranking() }. Returns a function that abandons it.
 */
export function showAgency(root, agencyId, state, links) {
  const abort = new AbortController();
  const options = { signal: abort.signal };
  const today = vietnamToday();
  const year = periodYear(state.period, today);
  const lastMonth = year < today.year ? 12 : year > today.year ? 0 : today.month;
  const months = Array.from({ length: lastMonth }, (_, i) => i + 1);
  const monthPeriod = (m) => `${year}-${String(m).padStart(2, '0')}`;
  const rankedBy = state.index || state.metric;
  const byProcedure = state.index ? PROCEDURE_FALLBACK : state.metric;

  const title = el('h2', { class: 'agency-title' }, agencyId);
  const subtitle = el('p', { class: 'agency-sub' });
  const freshness = el('p', { class: 'freshness', id: 'freshness', hidden: true });
  const provisional = el('p', { class: 'provisional-note', id: 'provisional', hidden: true },
    'Provisional: the period includes today; its figures will still change.');
  const procedures = el('div', { class: 'procedures', id: 'procedures' }, el('p', { class: 'loading' }, 'Loading procedures…'));
  const arrivals = el('div', { class: 'arrivals', id: 'arrivals' }, el('p', { class: 'loading' }, 'Loading arrivals…'));
  const cards = el('div', { class: 'cards metric-cards' }, el('p', { class: 'loading' }, 'Loading figures…'));
  const charts = el('div', { class: 'charts', id: 'metric-charts' }, el('p', { class: 'loading' }, 'Loading months…'));
  const rankFigure = el('div', { class: 'rank-history', id: 'rank-history' }, el('p', { class: 'loading' }, 'Loading ranks…'));
  const children = el('ol', { class: 'rows children', id: 'children' });
  const childrenNote = el('p', { class: 'loading' }, 'Loading units…');
  const asOf = el('p', { class: 'as-of' });

  root.replaceChildren(
    el('p', { class: 'crumbs' }, el('a', { href: links.ranking(), id: 'back' }, '← Back to the ranking')),
    title,
    subtitle,
    freshness,
    el('h3', {}, `Figures for ${state.period === 'ytd' ? `year to date ${today.year}` : state.period}`),
    provisional,
    cards,
    el('section', { class: 'procedures-section', 'aria-labelledby': 'procedures-title' },
      el('h3', { id: 'procedures-title' }, 'Procedures to fix · thủ tục cần cải thiện'),
      procedures),
    el('h3', {}, 'Events accepted per day, the last 30 days · theo ngày'),
    arrivals,
    el('h3', {}, `Each metric, month by month in ${year} · theo tháng`),
    el('p', { class: 'hint' }, 'The line is the agency’s value each month; the dashed line its target; green dots meet it.'),
    charts,
    el('h3', {}, `Rank per month by ${metricLabel(rankedBy)} · thứ hạng`),
    rankFigure,
    el('h3', {}, `Its units ranked by ${metricLabel(rankedBy)} · đơn vị trực thuộc`),
    childrenNote,
    children,
    asOf,
  );

  const failed = (node, error) => {
    if (abort.signal.aborted) return;
    node.replaceChildren(el('p', { class: 'error' }, `Could not load: ${error.message}`));
  };

  // The chosen period: who the agency is, and its figures.
  const current = getMetrics(agencyId, state.period, options);
  current
    .then((response) => {
      const agency = response.agency ?? { id: agencyId, name: agencyId };
      title.replaceChildren(agency.name || agency.id, el('small', {}, ` ${agency.id}`));
      document.title = `${agency.name || agency.id} · govpulse`;
      const parent = agency.parentId
        ? el('a', { href: links.agency(agency.parentId) }, `part of ${agency.parentId}`)
        : null;
      const block = agency.block === 'BLOCK_MINISTRY' ? 'Ministry · Bộ, ngành' : 'Province · Tỉnh, thành phố';
      subtitle.replaceChildren(
        agency.parentId ? 'Unit · đơn vị ' : block,
        parent ? ' · ' : '',
        parent ?? '',
        (response.mergedFrom ?? []).length ? ` · includes ${response.mergedFrom.join(', ')} (merged)` : '',
      );
      showFreshness(freshness, response.freshness);
      provisional.hidden = response.provisional !== true;
      cards.replaceChildren(...(response.metrics ?? []).map(metricCard));
      showArrivals(arrivals, agency.name || agency.id, response.acceptedPerDay ?? []);
      asOf.textContent = `Figures as of ${clockText()} (Vietnam time) · period ${response.period?.firstDay ?? ''} – ${response.period?.lastDay ?? ''}`;
      return agency;
    })
    .then((agency) => rankHistory(agency))
    .catch((error) => {
      failed(cards, error);
      failed(arrivals, error);
      failed(rankFigure, error);
    });

  // Its worst procedures by the chosen metric (by the online dossier rate under an index).
  const indexNote = state.index
    ? `${metricLabel(state.index)} is a composite index, with no value per procedure: procedures are shown by ${metricLabel(byProcedure)}.`
    : null;
  if (COUNTS_PROCEDURES.has(byProcedure)) {
    procedures.replaceChildren(el('p', { class: 'hint', id: 'procedures-unavailable' },
      `${metricLabel(byProcedure)} counts the agency’s procedures, so no procedure has a value of its own. ` +
      'Choose a dossier metric (the online dossier rate, on-time resolution, …) to see which procedures pull it down.'));
  } else {
    const query = { agencyId, period: state.period, metric: byProcedure, top: WORST };
    Promise.all([getProcedureMetrics(query, options), current.catch(() => null)])
      .then(([response, figures]) => {
        if (abort.signal.aborted) return;
        const overall = figures?.metrics?.find((r) => r.metric === byProcedure)?.rate?.percent;
        const csv = apiUrl('/api/v1/procedure-metrics', procedureMetricsParams({ ...query, top: 0, format: 'csv' }));
        showProcedures(procedures, response, { metric: byProcedure, overall, note: indexNote, csv });
      })
      .catch((error) => {
        if (abort.signal.aborted) return;
        // The service refuses a metric without a value per procedure with 400, and says why.
        if (error.status === 400) {
          procedures.replaceChildren(el('p', { class: 'hint', id: 'procedures-unavailable' },
            `No value per procedure for ${metricLabel(byProcedure)}: ${error.message}`));
        } else {
          failed(procedures, error);
        }
      });
  }

  // Every metric per month.
  Promise.all(months.map((m) => getMetrics(agencyId, monthPeriod(m), options).catch(() => null)))
    .then((responses) => {
      if (abort.signal.aborted) return;
      if (!months.length) {
        charts.replaceChildren(el('p', { class: 'hint' }, `${year} has not begun.`));
        return;
      }
      const figures = METRICS.map(([name]) => {
        const values = Array(12).fill(null);
        let target = null;
        responses.forEach((response, i) => {
          const report = response?.metrics?.find((r) => r.metric === name);
          if (report?.rate) values[i] = Number(report.rate.percent);
          if (report?.target?.targetPercent) target = Number(report.target.targetPercent);
        });
        const last = values.filter((v) => v !== null).at(-1);
        return el(
          'figure',
          { class: 'chart-card', dataset: { metric: name } },
          el('figcaption', {}, el('strong', {}, metricLabel(name)), el('span', { class: 'term' }, metricTerm(name)),
            el('span', { class: 'latest' }, last === undefined ? 'no data' : `${last.toFixed(2)}%`)),
          monthlyChart(`${metricLabel(name)} per month in ${year}`, values, target, lastMonth, year),
        );
      });
      charts.replaceChildren(...figures);
    })
    .catch((error) => failed(charts, error));

  // Its rank among its peers, each month.
  function rankHistory(agency) {
    const peers = agency.parentId
      ? { parentId: agency.parentId }
      : { block: BLOCK_PARAM[agency.block] ?? 'provinces' };
    return Promise.all(
      months.map((m) =>
        getRanking({ metric: state.metric, index: state.index, period: monthPeriod(m), ...peers }, options).catch(() => null),
      ),
    ).then((responses) => {
      if (abort.signal.aborted) return;
      const ranks = Array(12).fill(null);
      const counts = Array(12).fill(0);
      responses.forEach((response, i) => {
        const row = response?.rows?.find((r) => r.agencyId === agency.id);
        ranks[i] = row && row.rank > 0 ? row.rank : null;
        counts[i] = response?.rankedCount ?? 0;
      });
      const known = ranks.map((r, i) => [r, i]).filter(([r]) => r);
      const latest = known.at(-1);
      rankFigure.replaceChildren(
        el('p', { class: 'hint' }, latest
          ? `${monthName(latest[1] + 1)} ${year}: ${ordinal(latest[0])} of ${counts[latest[1]]}`
          : `Not ranked in any month of ${year} yet.`),
        rankChart(`Rank per month in ${year}`, ranks, counts, year),
      );
    });
  }

  // Its units, ranked for the chosen period, against their targets (metrics only).
  const unitTargets = state.index
    ? Promise.resolve(new Map())
    : getBlockMetrics({ metric: state.metric, parentId: agencyId, period: state.period }, options)
      .then((response) => new Map((response.agencies ?? [])
        .filter((a) => a.target?.targetPercent)
        .map((a) => [a.agencyId, a.target.targetPercent])))
      .catch(() => new Map());
  Promise.all([
    getRanking({ metric: state.metric, index: state.index, period: state.period, parentId: agencyId }, options),
    unitTargets,
  ])
    .then(([response, targets]) => {
      if (abort.signal.aborted) return;
      const rows = sortRows(response.rows ?? []);
      childrenNote.textContent = rows.length
        ? `${rows.length} units, ${response.rankedCount ?? 0} ranked`
        : 'No units under this agency in this period.';
      renderRows(children, rows, { targets, animate: false, href: links.agency });
    })
    .catch((error) => failed(childrenNote, error));

  return () => abort.abort();
}

/**
 * When the agency last reported, and a badge when it has gone silent: its figures may then be
 * frozen rather than current, however good they look.
 */
function showFreshness(node, freshness) {
  if (!freshness) return;
  const accepted = parseMoment(freshness.lastAcceptedAt);
  const occurred = parseMoment(freshness.lastOccurredAt);
  const when = (date) => dayTimeText(date, { seconds: true });
  const text = accepted
    ? `Last event accepted ${when(accepted)}${occurred ? ` · latest event time ${when(occurred)}` : ''} (Vietnam time)`
    : 'No event accepted yet';
  const stale = isStale(freshness);
  // The space keeps the badge a word of its own for screen readers; the flex gap shows it.
  node.replaceChildren(
    ...[text, stale && ' ', stale && el('span', { class: 'badge stale-badge', title: staleTitle(freshness) }, `stale · ${staleText(freshness)}`)]
      .filter(Boolean),
  );
  node.classList.toggle('stale', stale);
  node.hidden = false;
}

/**
 * The agency's worst procedures by `metric`, worst first, in a table: name and id, rank among
 * the procedures with a value, value, numerator / denominator; then how many have no value.
 */
function showProcedures(node, response, { metric, overall, note, csv }) {
  const worst = response.worst ?? [];
  const ranked = (response.procedures ?? []).length;
  const missing = (response.noData ?? []).length;
  const label = metricLabel(metric);
  const [numerator, denominator] = PARTS[metric] ?? ['numerator', 'denominator'];
  const parts = [];
  if (note) parts.push(el('p', { class: 'hint index-note' }, note));
  if (!worst.length) {
    parts.push(el('p', { class: 'hint', id: 'procedures-empty' }, `No procedure has data in this period for ${label}.`));
  } else {
    parts.push(el('p', { class: 'hint procedures-summary' },
      `The ${worst.length === ranked ? (ranked === 1 ? 'only procedure' : `${ranked} procedures`) : `${worst.length} worst of ${ranked} procedures`} ` +
      `with a value, worst first${overall ? `; the agency as a whole: ${overall}%` : ''}.`,
      ' ', el('a', { class: 'button small', href: csv, download: true, id: 'procedures-csv' }, 'All procedures (CSV)')));
    const rows = worst.map((p) => {
      const percent = p.rate?.percent ?? '';
      const fill = el('span', { class: 'pm-fill' });
      fill.style.width = `${Math.max(0, Math.min(100, Number(percent) || 0))}%`;
      return el('tr', { dataset: { procedure: p.procedureId, percent, rank: String(p.rank ?? '') } },
        el('td', { class: 'pm-rank' }, p.rank ? `${p.rank}` : '–'),
        el('th', { scope: 'row', class: 'pm-name' },
          el('span', {}, p.procedureName || p.procedureId), ' ', el('small', {}, p.procedureId)),
        el('td', { class: 'pm-value' }, percentText(percent),
          el('span', { class: 'pm-bar', 'aria-hidden': 'true' }, fill)),
        el('td', { class: 'pm-count' }, `${countText(p.numerator)} / ${countText(p.denominator)}`),
      );
    });
    parts.push(el('div', { class: 'procedure-table-wrap' },
      el('table', { class: 'procedure-table', id: 'procedure-table' },
        el('caption', { class: 'visually-hidden' }, `The ${worst.length} procedures with the lowest ${label}, worst first`),
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col', class: 'pm-rank', title: `Rank among the ${ranked} procedures with a value, 1 the best` }, 'Rank'),
          el('th', { scope: 'col', class: 'pm-name' }, 'Procedure ', el('span', { class: 'vi' }, 'thủ tục')),
          el('th', { scope: 'col', class: 'pm-value' }, label),
          el('th', { scope: 'col', class: 'pm-count' }, `${numerator} / ${denominator}`),
        )),
        el('tbody', {}, rows),
      )));
  }
  if (missing) {
    parts.push(el('p', { class: 'hint', id: 'procedures-no-data' },
      `${countText(missing)} more ${missing === 1 ? 'procedure' : 'procedures'} without data for this metric`));
  }
  node.replaceChildren(...parts);
}

/** The events accepted each of the last 30 days, with their total and today's so far. */
function showArrivals(node, name, days) {
  if (!days.length) {
    node.replaceChildren(el('p', { class: 'hint' }, 'No arrivals recorded.'));
    return;
  }
  const counts = days.map((d) => Number(d.accepted ?? 0));
  const total = counts.reduce((a, b) => a + b, 0);
  node.replaceChildren(
    el('p', { class: 'hint' }, `${countText(total)} ${total === 1 ? 'event' : 'events'} accepted in ${days.length} days · ${countText(counts.at(-1))} today so far`),
    arrivalsChart(`Events accepted per day from ${name}, ${days[0].day} to ${days.at(-1).day}`, days),
  );
}

function metricCard(report) {
  const target = report.target;
  const verdict = !target
    ? el('span', { class: 'verdict none' }, 'no target')
    : target.met === true
      ? el('span', { class: 'verdict met' }, `meets ${target.targetPercent}% (${target.gapPoints})`)
      : target.met === false
        ? el('span', { class: 'verdict missed' }, `below ${target.targetPercent}% (${target.gapPoints})`)
        : el('span', { class: 'verdict none' }, `target ${target.targetPercent}%`);
  const ratio = report.changeFromLastYear?.ratio;
  return el(
    'div',
    { class: 'card', dataset: { metric: report.metric } },
    el('span', { class: 'card-label' }, metricLabel(report.metric)),
    el('span', { class: 'card-value' }, percentText(report.rate?.percent)),
    el('span', { class: 'card-note' },
      ratio ? `${ratioText(ratio)} same period last year (${report.samePeriodLastYear?.percent}%)` : 'no data last year'),
    verdict,
  );
}
