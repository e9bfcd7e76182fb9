// The home page's alerts: every alert rule that holds for an agency (WatchAlerts, live),
// firing first (critical before warning), then pending; each with its agency (linked to its
// page), its rule, since when (Vietnam time) and what holds. When the service refused the
// latest version of its alert rules file, the panel says so: the previous rules stay in force.

import { ApiError, getAlerts } from './api.js';
import { countText, dayTimeText, el, momentText, parseMoment, secondsText } from './format.js';
import { LiveStream } from './live.js';

/** The states as the JSON names them (AlertState), as the panel says them. */
const STATES = { ALERT_STATE_FIRING: 'firing', ALERT_STATE_PENDING: 'pending' };

/** The severities, most urgent first. */
const SEVERITIES = ['critical', 'warning'];

/** `firing` or `pending`. */
export function stateOf(alert) {
  return STATES[alert.state] ?? 'pending';
}

function severityOf(alert) {
  return SEVERITIES.includes(alert.severity) ? alert.severity : 'warning';
}

/** One alert per rule and agency: the key a change names it by. */
const keyOf = (alert) => `${alert.rule}\n${alert.agencyId}`;

/** Firing before pending, critical before warning, then by agency name and rule. */
export function sortAlerts(alerts) {
  const state = (a) => (stateOf(a) === 'firing' ? 0 : 1);
  const severity = (a) => SEVERITIES.indexOf(severityOf(a));
  const name = (a) => a.agencyName || a.agencyId || '';
  return alerts.sort(
    (a, b) =>
      state(a) - state(b) ||
      severity(a) - severity(b) ||
      name(a).localeCompare(name(b), 'vi') ||
      (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0),
  );
}

/** The alerts in force, kept from the stream. */
export class LiveAlerts extends LiveStream {
  /**
   * @param onAlerts called with the alerts after every complete state ({ alerts, rules, ... })
   * The other options are LiveStream's.
   */
  constructor({ heartbeatMs, onAlerts, onState, onRefused }) {
    super('/api/v1/alerts/watch', {}, { heartbeatMs, onState, onRefused });
    this.onAlerts = onAlerts;
    this.alerts = new Map(); // rule and agency (keyOf) → Alert, the complete state shown
    this.rules = {}; // AlertRulesStatus: { count, refused }, default values left out
  }

  gather(building, snapshot) {
    const next = building ?? { alerts: new Map(), rules: {} };
    for (const alert of snapshot.alerts ?? []) next.alerts.set(keyOf(alert), alert);
    if (snapshot.rules) next.rules = snapshot.rules;
    return next;
  }

  settle(built) {
    this.alerts = built?.alerts ?? new Map();
    this.rules = built?.rules ?? {};
    this.emit(false);
  }

  change(changes) {
    for (const { alert, resolved } of changes.changes ?? []) {
      if (!alert) continue;
      if (resolved) this.alerts.delete(keyOf(alert));
      else this.alerts.set(keyOf(alert), alert);
    }
    // Sent only when they changed.
    if (changes.rules) this.rules = changes.rules;
    this.emit(false);
  }

  clear() {
    this.alerts = new Map();
    this.emit(true);
  }

  emit(reset) {
    this.onAlerts({
      alerts: sortAlerts([...this.alerts.values()]),
      rules: this.rules,
      reset,
      complete: this.complete,
      revision: this.revision,
    });
  }
}

// The summary writes its moments in RFC 3339 (with their offset); the page writes every moment as the rest of the page does.
const RFC3339 = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})/g;

function vietnamTimes(text) {
  return text.replace(RFC3339, (moment) => {
    const date = parseMoment(moment);
    return date ? momentText(date, { seconds: true }) : moment;
  });
}

/** What one alert's item shows, as plain values: compared to redraw only the items that changed. */
function viewOf(alert, href) {
  const state = stateOf(alert);
  const since = parseMoment(state === 'firing' ? alert.firingSince || alert.activeSince : alert.activeSince);
  return {
    state,
    severity: severityOf(alert),
    agency: alert.agencyId,
    name: alert.agencyName || alert.agencyId,
    href: href(alert.agencyId),
    rule: alert.rule,
    kind: alert.kind ?? '',
    since: since ? `${state} since ${momentText(since)}` : state,
    sinceTitle: since
      ? state === 'firing'
        ? `Firing since ${dayTimeText(since, { seconds: true })} (Vietnam time)`
        : `Holding since ${dayTimeText(since, { seconds: true })} (Vietnam time), not yet for as long as the rule asks before it fires`
      : '',
    summary: vietnamTimes(alert.summary ?? ''),
  };
}

function fill(item, view) {
  Object.assign(item.dataset, { rule: view.rule, agency: view.agency, state: view.state, severity: view.severity });
  item.replaceChildren(
    el('span', { class: 'alert-state', title: view.sinceTitle || undefined }, view.since),
    el(
      'span',
      { class: 'alert-what' },
      el('a', { class: 'name', href: view.href }, view.name),
      el('span', { class: 'alert-rule', title: view.kind ? `rule ${view.rule}, kind ${view.kind}` : undefined }, view.rule),
      el('span', { class: `tag severity-${view.severity}` }, view.severity),
    ),
    el('span', { class: 'alert-summary' }, view.summary),
  );
}

/**
 * Follows the alerts into the page's alerts panel (`#alerts` in index.html). `href(agencyId)`
 * links an agency to its page, as the ranking's rows do. Returns `{ redraw }`, to call when
 * those links change (another metric, period or block chosen).
 */
export function showAlerts({ heartbeatMs, href }) {
  const $ = (id) => document.getElementById(id);
  const items = new Map(); // keyOf → { item, shown: what it shows, as JSON }
  let last = null;

  function draw(update) {
    last = update;
    const { alerts, rules, reset, complete } = update;
    const list = $('alerts-list');
    const keep = new Set(alerts.map(keyOf));
    for (const [key, { item }] of items) {
      if (keep.has(key)) continue;
      item.remove();
      items.delete(key);
    }
    // Items are kept per alert and redrawn only when what they show changed: the list is a
    // live region, and a screen reader should hear what changed, not the whole list again.
    alerts.forEach((alert, position) => {
      const key = keyOf(alert);
      let entry = items.get(key);
      if (!entry) {
        entry = { item: el('li', { class: 'alert' }), shown: '' };
        items.set(key, entry);
      }
      const view = viewOf(alert, href);
      const shown = JSON.stringify(view);
      if (shown !== entry.shown) {
        fill(entry.item, view);
        entry.shown = shown;
      }
      if (list.children[position] !== entry.item) list.insertBefore(entry.item, list.children[position] ?? null);
    });

    const firing = alerts.filter((a) => stateOf(a) === 'firing').length;
    const count = $('alerts-count');
    count.textContent = complete ? countText(alerts.length) : '';
    count.classList.toggle('firing', firing > 0);
    const ruleCount = Number(rules.count ?? 0);
    const counts = alerts.length ? `${countText(firing)} firing · ${countText(alerts.length - firing)} pending · ` : '';
    const inForce = ruleCount ? `${countText(ruleCount)} ${ruleCount === 1 ? 'rule' : 'rules'} in force` : 'no alert rules in force';
    $('alerts-meta').textContent = complete ? `${counts}${inForce} · times in Vietnam time` : '';
    const empty = reset
      ? 'The server could not resume the alerts: rebuilding from a fresh snapshot…'
      : complete ? 'No alerts' : 'Waiting for the alerts…';
    $('alerts-empty').hidden = alerts.length > 0;
    setText($('alerts-empty'), empty);
    // Set only when it changes: the warning is an alert region, said again at every change.
    setText($('alerts-refused'), rules.refused ? `alert rules file refused: ${rules.refused} — the previous rules stay in force` : '');
  }

  function showState(state) {
    $('alerts').dataset.state = state;
    $('alerts-banner').textContent =
      state === 'stale'
        ? `Stale: nothing heard from the server for over ${secondsText(live.staleAfter)}. These alerts may be out of date.`
        : state === 'reconnecting'
          ? 'Reconnecting: these are the alerts as last received, not necessarily current; resuming from them.'
          : '';
  }

  /** The stream broke before its snapshot: ask once to show the server's reason. */
  async function explainRefusal() {
    try {
      await getAlerts();
    } catch (error) {
      if (live.complete || !(error instanceof ApiError) || error.status >= 500) return;
      $('alerts-empty').hidden = false;
      $('alerts-empty').textContent = `The server refused the alerts: ${error.message}`;
    }
  }

  const live = new LiveAlerts({ heartbeatMs, onAlerts: draw, onState: showState, onRefused: explainRefusal });
  live.start();
  return {
    redraw() {
      if (last) draw(last);
    },
  };
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
