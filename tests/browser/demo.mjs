// The demo's dashboard in a real browser: headless Chromium (Debian's package) driven by
// Playwright, as a new user sees it after `govpulse demo`.
//
//   node tests/browser/demo.mjs <dashboard url> <screenshot dir> [<demo start, ms since 1970> <seconds>]
//
// Checks that the history the demo reports shows: a same-period-last-year figure (not
// "no data last year"), movement arrows in the ranking, agencies meeting or missing this
// year's example targets, and a composite index ranking with its scores; and that the
// update is shown as a time of day, not a revision number. Saves a screenshot of each view
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

  // 1. The same period last year, from the history.
  const lastYear = await page.waitForFunction(() => {
    const card = document.querySelector('[data-card="last-year"]');
    const value = card?.querySelector('.card-value')?.textContent ?? '–';
    const note = card?.querySelector('.card-note')?.textContent ?? '';
    return value !== '–' && !note.includes('no data') ? `${value} (${note})` : false;
  }, null, wait());
  ok(`same period last year: ${await lastYear.jsonValue()}`);

  // 2. This year's example targets: some provinces meet them, some do not.
  const targets = await page.waitForFunction(() => {
    const card = document.querySelector('[data-card="targets"]');
    const value = card?.querySelector('.card-value')?.textContent ?? '–';
    const [meeting, of] = value.split(' of ').map(Number);
    return of > 0 && meeting > 0 && meeting < of ? value : false;
  }, null, wait());
  // The bars get their target lines at the table's next redraw (at most every 800 ms).
  const lines = await page.waitForFunction(() => {
    const drawn = document.querySelectorAll('#rows .bar .target').length;
    return drawn > 0 ? drawn : false;
  }, null, wait());
  ok(`targets: ${await targets.jsonValue()} provinces meet this year's, ${await lines.jsonValue()} target lines drawn`);
  await shot(page, 'demo-ranking.png');

  // 3. Movement: this month against the month before, both in the history.
  const month = await page.evaluate(() => {
    const now = new Date(Date.now() + 7 * 3600_000);
    return `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  });
  const previous = await page.evaluate((m) => {
    const [y, mo] = m.split('-').map(Number);
    return mo === 1 ? `${y - 1}-12` : `${y}-${String(mo - 1).padStart(2, '0')}`;
  }, month);
  // The previous month is complete whatever today's date: rank it against the one before.
  await page.goto(`${url}#/?block=provinces&period=${previous}&metric=online-dossier-rate`);
  const arrows = await page.waitForFunction(() => {
    const moved = [...document.querySelectorAll('#rows .move.up, #rows .move.down')];
    return moved.length > 0 ? moved.map((m) => m.textContent).join(' ') : false;
  }, null, wait());
  ok(`movement arrows over ${previous}: ${await arrows.jsonValue()}`);
  await shot(page, 'demo-movement.png');

  // 4. A composite index over this calendar year (assessors score calendar periods): scores
  // out of 100, transparency assessed, the rest computed (this profile has no letter grades).
  const year = month.slice(0, 4);
  await page.goto(`${url}#/?block=provinces&period=${year}&index=service-index-766`);
  const scored = await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#rows li.row')];
    const scores = rows.map((r) => r.querySelector('.value')?.textContent ?? '').filter((v) => /^\d+(\.\d+)?$/.test(v));
    return scores.length >= 10 ? `${scores.length} scores, first ${scores[0]} of 100` : false;
  }, null, wait());
  ok(`composite index service-index-766: ${await scored.jsonValue()}`);
  await shot(page, 'demo-index.png');

  console.log(`demo: all checks passed, ${since()}`);
} finally {
  await browser.close();
}
