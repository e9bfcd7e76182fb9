// The JSON API on this same origin (docs/INTEGRATION.md): URLs and GETs. Field names follow
// the protobuf JSON mapping (lowerCamelCase, int64 as strings, default values left out).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `/api/v1/x?a=1&m=a&m=b` from a path and parameters; empty values are left out. */
export function apiUrl(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, String(one));
  }
  const query = search.toString();
  return query ? `${path}?${query}` : path;
}

export async function getJSON(path, params = {}, { signal } = {}) {
  const response = await fetch(apiUrl(path, params), {
    headers: { accept: 'application/json' },
    signal,
  });
  if (!response.ok) {
    let message = response.statusText;
    try {
      const body = await response.json();
      message = body.message || body.error || JSON.stringify(body);
    } catch {
      // Not JSON: the status text says enough.
    }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

/** The query parameters of a ranking: a metric or an index, a block or a parent, a period. */
export function rankingParams({ metric, index, block, parentId, period }) {
  return {
    metric: index ? '' : metric,
    index: index || '',
    block: parentId ? '' : block,
    parent_id: parentId || '',
    period,
  };
}

export const getRanking = (query, options) =>
  getJSON('/api/v1/ranking', rankingParams(query), options);

/** One metric over a block, an agency's children (`parentId`) or the nation (`nation: true`). */
export const getBlockMetrics = ({ metric, block, parentId, nation, period }, options) =>
  getJSON('/api/v1/block-metrics', {
    metric,
    block: parentId || nation ? '' : block,
    parent_id: parentId || '',
    nation: nation ? 'true' : '',
    period,
  }, options);

export const getMetrics = (agencyId, period, options) =>
  getJSON('/api/v1/metrics', { agency_id: agencyId, period }, options);

/**
 * One agency's metric per procedure (`top` best and worst, every procedure with a value, and
 * those without); `format: 'csv'` gives the URL of the same as CSV rather than fetching it.
 */
export const procedureMetricsParams = ({ agencyId, period, metric, top, format }) => ({
  agency_id: agencyId,
  period,
  metric,
  top: top || '',
  format: format || '',
});

export const getProcedureMetrics = (query, options) =>
  getJSON('/api/v1/procedure-metrics', procedureMetricsParams(query), options);

export const getAgencies = (block, options) => getJSON('/api/v1/agencies', { block }, options);

/** The alerts in force (GetAlerts); the dashboard follows them live (alerts.js). */
export const getAlerts = (options) => getJSON('/api/v1/alerts', {}, options);

/**
 * The path of one publication (`/api/v1/publications/{id}`), or of what hangs under it
 * (`rest`: `revisions`); the id is encoded as one path segment.
 */
export function publicationPath(id, rest = '') {
  const path = `/api/v1/publications/${encodeURIComponent(id)}`;
  return rest ? `${path}/${rest}` : path;
}

/** A page of the publications, newest first (ListPublications): `{ publications, total }`. */
export const listPublications = ({ offset = 0, limit = 0 } = {}, options) =>
  getJSON('/api/v1/publications', { offset: offset || '', limit: limit || '' }, options);

/** One publication exactly as published (GetPublication): `{ publication }`. */
export const getPublication = (id, options) => getJSON(publicationPath(id), {}, options);

/** A publication's revision log (GetRevisions): its ranking computed again now, and what moved. */
export const getRevisions = (id, options) => getJSON(publicationPath(id, 'revisions'), {}, options);
