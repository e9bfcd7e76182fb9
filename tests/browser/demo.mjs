// The demo's dashboard in a real browser: headless Chromium (Debian's package) driven by
// Playwright, as a new user sees it after `govpulse demo`.
//
//   node tests/browser/demo.mjs <dashboard url> <screenshot dir> [<demo start, ms since 1970> <seconds>]
//
// Checks that the history the demo reports shows, over the previous month: a
// same-period-last-year figure (not "no data last year"), movement arrows in the ranking,
// agencies meeting or missing the year's targets, and a composite index ranking with its
// scores; and, on the first view, that the update is shown as a time of day, not a revision
// number. Saves a screenshot of each view
// and prints its path. Given the moment the demo started, each check says how long after it
// passed, and every wait ends that many seconds after it (60 by default: the demo promises
// everything within a minute of its start). Exits 1 on the first failed check.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumPath } from './chromium.mjs';

const [url, screenshots = '.', startArg, budgetArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node demo.mjs <dashboard url> <screenshot dir> [<demo start ms> <seconds>]');
  process.exit(2);
}
const dir = resolve(screenshots);
mkdirSync(dir, { recursive: true });

const started = Number(startArg) || Date.now();
const deadline = started + (Number(budgetArg) || 60) * 1000;
const since = () => `${((Date.now() - started) / 1000).toFixed(1)} s after the demo started`;
const ok = (what) => console.log(`ok: ${what} (${since()})`);
// The history arrives in the first seconds of the demo: each figure is waited for, all of
// them within the budget from the demo's start.
const wait = () => ({ timeout: Math.max(1, deadline - Date.now()) });

async function shot(page, name) {
  const path = join(dir, name);
  await page.emulateMedia({ reducedMotion: 'reduce' });
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

const browser = await chromium.launch({
  executablePath: chromiumPath(),
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

  // Provinces by online dossier rate, year to date (the dashboard's default).
  await page.goto(url);
  await page.waitForSelector('#connection[data-state="live"]', wait());
  await page.waitForFunction(() => document.querySelectorAll('#rows li.row').length > 0, null, wait());
  ok(`live ranking: ${await page.$$eval('#rows li.row', (r) => r.length)} rows`);

  // The update as a time of day, not the revision's number (kept in the table's data).
  const updated = (await page.textContent('#updated')) ?? '';
  if (!/^updated \d\d:\d\d:\d\d$/.test(updated)) throw new Error(`update shown as "${updated}"`);
  if (!(await page.getAttribute('#table', 'data-revision'))) throw new Error('no revision in the table data');
  ok(`${updated} (${(await page.textContent('#ranking-meta')).trim()})`);
  await shot(page, 'demo-ranking.png');

  // The other checks look at the previous month: complete whatever the day (on 1 January
  // year to date is a few minutes old), with its month before and its same month last year
  // in the history (13 months at least). Each view is a fresh page load, so that no card or
  // row of the view before can pass a check.
  const previous = await page.evaluate(() => {
    const now = new Date(Date.now() + 7 * 3600_000);
    const [y, m] = [now.getUTCFullYear(), now.getUTCMonth() + 1];
    return m === 1 ? `${y - 1}-12` : `${y}-${String(m - 1).padStart(2, '0')}`;
  });
  const view = async (hash) => {
    await page.goto('about:blank');
    await page.goto(`${url}#/?${hash}`);
    await page.waitForFunction((p) => document.querySelector('#ranking-meta')?.textContent.includes(`${p}-01 – `), previous, wait());
  };
  await view(`block=provinces&period=${previous}&metric=online-dossier-rate`);

  // 1. The same period last year, from the history.
  const lastYear = await page.waitForFunction(() => {
    const card = document.querySelector('[data-card="last-year"]');
    const value = card?.querySelector('.card-value')?.textContent ?? '–';
    const note = card?.querySelector('.card-note')?.textContent ?? '';
    return value !== '–' && !note.includes('no data') ? `${value} (${note})` : false;
  }, null, wait());
  ok(`same period last year: ${previous}, ${await lastYear.jsonValue()}`);

  // 2. The year's targets (deploy/config/targets.toml): some provinces meet them, some do not.
  const targets = await page.waitForFunction(() => {
    const card = document.querySelector('[data-card="targets"]');
    const value = card?.querySelector('.card-value')?.textContent ?? '–';
    if (card?.querySelector('.card-note')?.textContent.includes('no target applies')) return 'none';
    const [meeting, of] = value.split(' of ').map(Number);
    return of > 0 && meeting > 0 && meeting < of ? value : false;
  }, null, wait());
  if ((await targets.jsonValue()) === 'none') {
    throw new Error(`no target for ${previous.slice(0, 4)}: the demo carries the latest examples of deploy/config/targets.toml to every later year (targets_file::built_in_carried_to)`);
  }
  // The bars get their target lines at the table's next redraw (at most every 800 ms).
  const lines = await page.waitForFunction(() => {
    const drawn = document.querySelectorAll('#rows .bar .target').length;
    return drawn > 0 ? drawn : false;
  }, null, wait());
  ok(`targets: ${await targets.jsonValue()} provinces meet ${previous.slice(0, 4)}'s, ${await lines.jsonValue()} target lines drawn`);

  // 3. Movement: the month against the month before, both in the history.
  const arrows = await page.waitForFunction(() => {
    const moved = [...document.querySelectorAll('#rows .move.up, #rows .move.down')];
    return moved.length > 0 ? moved.map((m) => m.textContent).join(' ') : false;
  }, null, wait());
  ok(`movement arrows over ${previous}: ${await arrows.jsonValue()}`);
  await shot(page, 'demo-month.png');

  // 4. A composite index over the month (assessors score calendar periods; the demo scores
  // every month): scores out of 100, transparency assessed, the rest computed (this profile
  // has no letter grades). Complete scores (no indicator without a value) need the assessed
  // points and the history's resolutions and feedback, which come after its receptions; a
  // small province may have had no feedback that month, so not every row need be complete.
  await view(`block=provinces&period=${previous}&index=service-index-766`);
  const scored = await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#rows li.row')];
    const complete = rows
      .filter((r) => ![...r.querySelectorAll('.tag')].some((t) => t.textContent === 'incomplete'))
      .map((r) => r.querySelector('.value')?.textContent ?? '')
      .filter((v) => /^\d+(\.\d+)?$/.test(v));
    return complete.length >= 10 ? `${complete.length} of ${rows.length} scores complete, first ${complete[0]} of 100` : false;
  }, null, wait());
  ok(`composite index service-index-766 over ${previous}: ${await scored.jsonValue()}`);
  await shot(page, 'demo-index.png');

  console.log(`demo: all checks passed, ${since()}`);
} finally {
  await browser.close();
}
