// What the dashboard names and how it writes numbers, periods and DOM nodes. Every piece of
// data reaches the page through textContent or a text node, never through HTML parsing.

/** The published metrics, in the API's order (govpulse_core::Metric::ALL): name, English
 *  label, Vietnamese term. */
export const METRICS = [
  ['online-dossier-rate', 'Online dossier rate', 'Tỷ lệ hồ sơ trực tuyến'],
  ['full-online-dossier-rate', 'Full-process online dossier rate', 'Hồ sơ trực tuyến toàn trình'],
  ['services-with-online-dossiers', 'Services with online dossiers', 'DVCTT có phát sinh hồ sơ'],
  ['full-online-provision', 'Full-process online provision', 'Cung cấp DVCTT toàn trình'],
  ['online-provision-rate', 'Online provision (full or partial)', 'Cung cấp DVCTT toàn trình và một phần'],
  ['on-time-rate', 'On-time resolution', 'Giải quyết đúng hạn'],
  ['digitized-reception-rate', 'Digitized at reception', 'Số hóa hồ sơ'],
  ['electronic-result-rate', 'Electronic results', 'Kết quả điện tử'],
  ['satisfaction-rate', 'Satisfaction', 'Mức độ hài lòng'],
  ['online-payment-rate', 'Online payment', 'Thanh toán trực tuyến'],
];

/** The composite index profiles shipped by default (deploy/config/indexes.toml). */
export const INDEXES = [
  ['service-index-766', 'Service index (Decision 766)', 'Bộ chỉ số phục vụ người dân, doanh nghiệp'],
  ['system-quality-2024', 'Information system quality 2024, graded A–E', 'Chất lượng hệ thống thông tin'],
];

export const BLOCKS = [
  ['provinces', 'Provinces', 'Tỉnh, thành phố'],
  ['ministries', 'Ministries', 'Bộ, ngành'],
];

export function metricLabel(name) {
  const found = [...METRICS, ...INDEXES].find(([id]) => id === name);
  return found ? found[1] : name;
}

export function metricTerm(name) {
  const found = [...METRICS, ...INDEXES].find(([id]) => id === name);
  return found ? found[2] : '';
}

/** Today in Vietnam time (UTC+7, no daylight saving): { year, month (1-12), day }. */
export function vietnamToday(now = Date.now()) {
  const d = new Date(now + 7 * 3600 * 1000);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function monthName(month) {
  return MONTHS[month - 1];
}

/** The ISO week (Monday to Sunday) of a day: { year, week }, the year being the ISO week's. */
export function isoWeek({ year, month, day }) {
  const d = new Date(Date.UTC(year, month - 1, day));
  const weekday = d.getUTCDay() || 7;
  // The week's Thursday decides its year.
  d.setUTCDate(d.getUTCDate() + 4 - weekday);
  const weekYear = d.getUTCFullYear();
  const week = Math.ceil(((d - Date.UTC(weekYear, 0, 1)) / 86400000 + 1) / 7);
  return { year: weekYear, week };
}

/** The periods offered, newest first, grouped: [group label, [[expression, label], ...]]. */
export function periodChoices(today = vietnamToday()) {
  const { year, month } = today;
  const quarter = Math.ceil(month / 3);
  const pad = (n) => String(n).padStart(2, '0');
  const months = [];
  for (let y = year, m = month; y >= year - 1; m -= 1) {
    if (m === 0) { y -= 1; m = 12; if (y < year - 1) break; }
    months.push([`${y}-${pad(m)}`, `${monthName(m)} ${y} · tháng ${m}/${y}`]);
  }
  const quarters = [];
  for (let y = year, q = quarter; y >= year - 1; q -= 1) {
    if (q === 0) { y -= 1; q = 4; if (y < year - 1) break; }
    quarters.push([`${y}-Q${q}`, `Q${q} ${y} · quý ${q}/${y}`]);
  }
  // This ISO week and the seven before it.
  const weeks = [];
  for (let back = 0; back < 8; back += 1) {
    const d = new Date(Date.UTC(year, month - 1, today.day - 7 * back));
    const w = isoWeek({ year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() });
    weeks.push([`${w.year}-W${pad(w.week)}`, `Week ${w.week} ${w.year} · tuần ${w.week}/${w.year}`]);
  }
  return [
    ['Year to date', [['ytd', `Year to date ${year} · từ đầu năm`]]],
    ['Year', [[`${year}`, `${year} · năm ${year}`], [`${year - 1}`, `${year - 1} · năm ${year - 1}`]]],
    ['Quarter', quarters],
    ['Month', months],
    ['Week', weeks],
  ];
}

/** The calendar year a period expression falls in (`ytd` is this year). */
export function periodYear(expression, today = vietnamToday()) {
  const match = /^(\d{4})/.exec(expression);
  return match ? Number(match[1]) : today.year;
}

/** A percentage with two decimals as the API gives it ("87.02") → "87.02%". */
export function percentText(percent) {
  return percent === undefined || percent === null || percent === '' ? 'no data' : `${percent}%`;
}

/** "1.60" → "1.6×". */
export function ratioText(ratio) {
  if (!ratio) return '';
  return `${Number(ratio).toLocaleString('en-US', { maximumFractionDigits: 2 })}×`;
}

export function countText(n) {
  return Number(n ?? 0).toLocaleString('en-US');
}

export function ordinal(n) {
  const s = ['th', 'st', 'nd', 'rd'];
  const v = n % 100;
  return `${n}${s[(v - 20) % 10] || s[v] || s[0]}`;
}

/** A duration to the tenth of a second: 1250 → "1.3 s". */
export function secondsText(ms) {
  return `${(ms / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 })} s`;
}

/** A moment as a time of day in Vietnam ("10:59:49"), like every date on the page, whatever the reader's time zone. */
export function clockText(date = new Date()) {
  const d = new Date(date.getTime() + 7 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** A moment the API gives (RFC 3339, "2026-12-05T07:15:17.589Z") as a Date; null when absent. */
export function parseMoment(text) {
  if (!text) return null;
  // Protobuf's JSON may write up to nine fractional digits; Date is only sure to read three.
  const date = new Date(String(text).replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * A moment as a day and time in Vietnam ("05/12 14:15", with seconds "05/12 14:15:17"), the
 * year added when it is not this year's, whatever the reader's time zone.
 */
export function dayTimeText(date, { seconds = false } = {}) {
  const d = new Date(date.getTime() + 7 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  const year = d.getUTCFullYear() === vietnamToday().year ? '' : `/${d.getUTCFullYear()}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds ? `:${pad(d.getUTCSeconds())}` : ''}`;
  return `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}${year} ${time}`;
}

/**
 * A moment as a full date and time in Vietnam ("06/12/2026 04:04"), the year always written:
 * what a publication says it was published on, read long after.
 */
export function dateTimeText(date) {
  const d = new Date(date.getTime() + 7 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}/${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/**
 * A recent moment in Vietnam time: the time of day when it is today ("10:42", with seconds
 * "10:42:05"), else with its day as dayTimeText writes it ("05/12 10:42").
 */
export function momentText(date, { seconds = false } = {}) {
  const day = vietnamToday(date.getTime());
  const today = vietnamToday();
  if (day.year !== today.year || day.month !== today.month || day.day !== today.day) {
    return dayTimeText(date, { seconds });
  }
  const d = new Date(date.getTime() + 7 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds ? `:${pad(d.getUTCSeconds())}` : ''}`;
}

/**
 * Whether an agency has gone silent (Freshness.stale): its value may be frozen. A row or a
 * response without freshness (an older server) is not called stale.
 */
export function isStale(freshness) {
  return freshness?.stale === true;
}

/** What a stale agency's tag says: "no data since 05/12 14:15", or "never reported". */
export function staleText(freshness) {
  const since = parseMoment(freshness?.lastAcceptedAt);
  return since ? `no data since ${dayTimeText(since)}` : 'never reported';
}

/** Why the tag is there, for its title. */
export function staleTitle(freshness) {
  const since = parseMoment(freshness?.lastAcceptedAt);
  return since
    ? `Nothing has been accepted from this agency or its units since ${dayTimeText(since, { seconds: true })} (Vietnam time), ` +
      'longer than the service allows: its value may be frozen rather than current.'
    : 'No event has ever been accepted from this agency or its units: it has no figures of its own.';
}

/** An element: `el('a', { class: 'x', href: '#/' }, 'text', child)`. Strings become text nodes. */
export function el(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element, same calling convention as `el`. */
export function svg(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

function build(node, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
