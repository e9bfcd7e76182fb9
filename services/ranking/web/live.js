// The live streams over Server-Sent Events (WatchRanking, WatchAlerts): a snapshot, its
// SnapshotComplete, then changes and heartbeats; resuming from the last revision after a break,
// and rebuilding from a fresh snapshot after a reset. LiveStream keeps the connection and the
// protocol, once for every stream; LiveRanking (here) and LiveAlerts (alerts.js) keep what
// they show. It also decides what a connection indicator says:
//   connecting    nothing shown yet
//   live          the stream is open and messages (changes or heartbeats) keep arriving
//   reconnecting  the stream broke; it is being resumed from the last revision shown
//   stale         no message for longer than 2.5 heartbeat intervals: what is shown may be old

import { apiUrl, rankingParams } from './api.js';

// Unnamed events are `message`; the names cover a server that names its events.
const EVENT_NAMES = ['message', 'snapshot', 'snapshot_complete', 'snapshotComplete', 'changes', 'heartbeat', 'reset'];

/**
 * One stream. A subclass keeps what it shows, told in the stream's order by:
 *   gather(building, snapshot) → building   a snapshot message added to what is being built
 *                                           (null at the snapshot's first message)
 *   settle(building)   the snapshot is complete: what was built (null for a snapshot without
 *                      a message) is now what is shown
 *   change(changes)    a `changes` message applied to what is shown
 *   clear()            a reset: drop everything shown, a fresh snapshot follows
 * When settle, change or clear is called, `complete` and `revision` already say what follows.
 */
export class LiveStream {
  /**
   * @param path the stream's path, e.g. `/api/v1/ranking/watch`
   * @param params its query parameters (see api.apiUrl)
   * @param heartbeatMs the server's heartbeat interval
   * @param onState called with the connection state when it changes
   * @param onRefused called when a stream broke before its snapshot was complete (the server
   *   may have refused the query: EventSource does not say why)
   */
  constructor(path, params, { heartbeatMs, onState, onRefused }) {
    this.path = path;
    this.params = params;
    this.staleAfter = Math.max(1000, heartbeatMs * 2.5);
    this.onState = onState;
    this.onRefused = onRefused;
    this.building = null; // a snapshot still arriving, as gather() builds it
    this.complete = false;
    this.revision = '';
    this.state = '';
    this.failures = 0;
    this.lastMessageAt = 0;
    this.reopenedAt = 0;
    this.resets = 0;
  }

  start() {
    this.setState('connecting');
    this.open(false);
    this.watchdog = setInterval(() => this.checkStale(), 250);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retry);
    this.source?.close();
  }

  open(resume) {
    if (this.stopped) return;
    clearTimeout(this.retry);
    const params = { ...this.params };
    // A half-received snapshot cannot be resumed: start again from a fresh one.
    if (resume && this.complete && this.revision) params.resume_revision = this.revision;
    const source = new EventSource(apiUrl(this.path, params));
    this.source = source;
    this.reopenedAt = performance.now();
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, (event) => this.receive(source, event));
    }
    source.addEventListener('error', () => this.broken(source));
    // The server ends a stream (shutting down, or a client too slow to keep up) with a `status`
    // event, then closes it: the browser reconnects with Last-Event-ID and resumes.
    source.addEventListener('status', () => {
      if (source === this.source && this.complete && this.state !== 'stale') this.setState('reconnecting');
    });
  }

  receive(source, event) {
    if (source !== this.source || this.stopped) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    this.lastMessageAt = performance.now();
    this.failures = 0;
    this.apply(message);
    this.setState(this.complete ? 'live' : 'connecting');
  }

  apply(message) {
    const revision = message.revision ?? '0';
    if (message.reset) {
      // The server cannot resume: drop everything shown, a fresh snapshot follows.
      this.building = null;
      this.complete = false;
      this.resets += 1;
      this.revision = revision;
      this.clear();
      return;
    }
    if (message.snapshot) {
      this.building = this.gather(this.building, message.snapshot);
    } else if (message.snapshotComplete) {
      const built = this.building;
      this.building = null;
      this.complete = true;
      this.revision = revision;
      this.settle(built);
      return;
    } else if (message.changes) {
      if (!this.complete) return;
      this.revision = revision;
      this.change(message.changes);
      return;
    }
    if (this.complete || message.snapshot) this.revision = revision;
  }

  broken(source) {
    if (source !== this.source || this.stopped) return;
    if (this.complete && this.state !== 'stale') this.setState('reconnecting');
    // While the snapshot is incomplete, or when the browser gave up (an error status), open a
    // new stream ourselves; otherwise the browser reconnects by itself with Last-Event-ID.
    if (this.building || source.readyState === EventSource.CLOSED) {
      if (!this.complete) this.onRefused?.();
      source.close();
      this.building = null;
      this.reopenLater();
    }
  }

  reopenLater() {
    clearTimeout(this.retry);
    const delay = Math.min(500 * 2 ** this.failures, 10000);
    this.failures += 1;
    this.retry = setTimeout(() => this.open(true), delay);
  }

  checkStale() {
    if (!this.complete) return;
    const now = performance.now();
    if (now - this.lastMessageAt <= this.staleAfter) return;
    // Silent for too long: show it, and try a new stream (resuming) once per interval.
    this.setState('stale');
    if (now - this.reopenedAt > this.staleAfter) {
      this.source?.close();
      this.building = null;
      this.open(true);
    }
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }
}

/** One live ranking: its rows by agency, in rank order. */
export class LiveRanking extends LiveStream {
  /**
   * @param query what to rank (see api.rankingParams)
   * @param onRows called with the rows after every complete state ({ rows, changed, ...,
   *   publication: the latest publication or null })
   * The other options are LiveStream's.
   */
  constructor(query, { heartbeatMs, onRows, onState, onRefused }) {
    super('/api/v1/ranking/watch', rankingParams(query), { heartbeatMs, onState, onRefused });
    this.query = query;
    this.onRows = onRows;
    this.rows = new Map(); // agency id → RankingRow, the complete state shown
    this.rankedCount = 0;
    this.period = null;
    this.provisional = false; // the period includes today: its figures will still change
    // The latest publication of this ranking (PublicationSummary), which the rows' `revised`
    // flags compare with; null when it was never published.
    this.publication = null;
  }

  gather(building, snapshot) {
    const rows = building ?? new Map();
    for (const row of snapshot.rows ?? []) rows.set(row.agencyId, row);
    this.rankedCount = snapshot.rankedCount ?? 0;
    this.period = snapshot.period ?? this.period;
    this.provisional = snapshot.provisional === true;
    // Every message of a snapshot names it; a snapshot without one: never published.
    this.publication = snapshot.publication ?? null;
    return rows;
  }

  settle(built) {
    const changed = new Set();
    const next = built ?? new Map();
    for (const [id, row] of next) {
      if (!sameRow(this.rows.get(id), row)) changed.add(id);
    }
    this.rows = next;
    this.emit(changed, false);
  }

  change(changes) {
    const changed = new Set();
    for (const change of changes.changes ?? []) {
      const row = change.row;
      if (!row) continue;
      if (change.left) this.rows.delete(row.agencyId);
      else {
        this.rows.set(row.agencyId, row);
        changed.add(row.agencyId);
      }
    }
    this.rankedCount = changes.rankedCount ?? 0;
    // Published (again): the rows whose `revised` flag that changed are among the changes.
    if (changes.publication) this.publication = changes.publication;
    this.emit(changed, false);
  }

  clear() {
    this.rows = new Map();
    this.publication = null;
    this.emit(new Set(), true);
  }

  emit(changed, reset) {
    this.onRows({
      rows: sortRows([...this.rows.values()]),
      changed,
      reset,
      complete: this.complete,
      revision: this.revision,
      rankedCount: this.rankedCount,
      period: this.period,
      provisional: this.provisional,
      publication: this.publication,
      resets: this.resets,
    });
  }
}

function value(row) {
  if (row.score) return Number(row.score);
  // Default values are left out of the JSON: a zero numerator is absent.
  if (row.rate) return Number(row.rate.numerator ?? 0) / Number(row.rate.denominator ?? 1);
  return -1;
}

function hasData(row) {
  return Boolean(row.rate || row.score);
}

/** Ranked rows by rank, then the agencies below the minimum by value, then those without data. */
export function sortRows(rows) {
  const group = (row) => ((row.rank ?? 0) > 0 ? 0 : hasData(row) ? 1 : 2);
  return rows.sort(
    (a, b) =>
      group(a) - group(b) ||
      (a.rank ?? 0) - (b.rank ?? 0) ||
      value(b) - value(a) ||
      (a.agencyId < b.agencyId ? -1 : a.agencyId > b.agencyId ? 1 : 0),
  );
}

function sameRow(a, b) {
  return Boolean(a) && JSON.stringify(a) === JSON.stringify(b);
}
