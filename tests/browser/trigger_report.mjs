#!/usr/bin/env node
// Ask for a borough report the way a person does: through the Airflow 3 UI, in headless Chromium.
//
//   node trigger_report.mjs --base-url http://127.0.0.1:8080 --user admin --screenshots /tmp/shots
//   (password from --password or $AIRFLOW_UI_PASSWORD)
//
// Logs in on SimpleAuthManager's page, opens borough_report's trigger form, checks that the borough
// is a dropdown of the five boroughs and the dates are date pickers, shows that the form refuses a
// garbage date and a path-like output name, triggers a Queens report for 2024-01-08..2024-01-15 and
// waits on the run page until the run succeeds or fails. Progress goes to stderr; the last line on
// stdout is one JSON object with what was seen (the pytest side asserts on it). Exit 0 only when
// the run succeeded.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    'base-url': { type: 'string', default: process.env.AIRFLOW_BASE_URL ?? 'http://127.0.0.1:8080' },
    user: { type: 'string', default: process.env.AIRFLOW_UI_USER ?? 'admin' },
    password: { type: 'string', default: process.env.AIRFLOW_UI_PASSWORD ?? 'admin' },
    screenshots: { type: 'string', default: process.env.SCREENSHOT_DIR ?? 'screenshots' },
    dag: { type: 'string', default: 'borough_report' },
    borough: { type: 'string', default: 'Queens' },
    start: { type: 'string', default: '2024-01-08' },
    end: { type: 'string', default: '2024-01-15' },
    timeout: { type: 'string', default: '240' }, // seconds to wait for the run to finish
    chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
    'report-tab': { type: 'boolean', default: false }, // then open the Report tab, the Reports and Data quality pages
  },
});

const baseUrl = opts['base-url'].replace(/\/$/, '');
const shotDir = path.resolve(opts.screenshots);
fs.mkdirSync(shotDir, { recursive: true });
const log = (...args) => console.error('[ui]', ...args);
const result = { run_id: null, state: null, screenshots: [], refused: {} };

async function shot(page, name, target = page) {
  const file = path.join(shotDir, `${name}.png`);
  await target.screenshot({ path: file });
  result.screenshots.push(file);
  log('screenshot', file);
}

// A fresh profile each time: no cookies, cache or saved state from an earlier run.
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'taxiflow-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: opts.chromium,
  headless: true,
  viewport: { width: 1400, height: 1400 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
context.setDefaultTimeout(30_000);

try {
  const page = await context.newPage();

  // 1. SimpleAuthManager's login page: the DAG URL redirects there and back.
  await page.goto(`${baseUrl}/dags/${opts.dag}`);
  await page.locator('input[name=username]').fill(opts.user);
  await page.locator('input[name=password]').fill(opts.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname === `/dags/${opts.dag}`);
  log('logged in as', opts.user);

  // 2. The trigger form.
  await page.getByTestId('trigger-dag-button').click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText(`Trigger Dag - ${opts.dag}`, { exact: false }).waitFor();

  // Borough and dates have no default: the form opens with them empty and Trigger disabled.
  result.opens_empty = {
    borough: await page.locator('input[name=element_borough]').inputValue(),
    start: await page.locator('#element_start_date').inputValue(),
    end: await page.locator('#element_end_date').inputValue(),
    trigger_disabled: await page.getByTestId('trigger-dag-submit').isDisabled(),
  };
  await shot(page, 'form-opens-empty');

  const borough = page.locator('#element_borough');
  result.borough_is_dropdown = (await borough.getByRole('combobox').count()) === 1;
  await borough.click();
  result.borough_options = await page.getByRole('option').allInnerTexts();
  await page.getByRole('option', { name: opts.borough, exact: true }).click();
  result.borough_chosen = await page.locator('input[name=element_borough]').inputValue();

  const start = page.locator('#element_start_date');
  const end = page.locator('#element_end_date');
  result.date_input_types = [await start.getAttribute('type'), await end.getAttribute('type')];
  await start.fill(opts.start);
  await end.fill(opts.end);
  await shot(page, 'form');

  // 3a. A garbage end date: the date picker takes no letters, and an impossible day empties it,
  //     which the form flags as required and answers by disabling Trigger.
  const submit = page.getByTestId('trigger-dag-submit');
  await end.click();
  await page.keyboard.type('garbage');
  result.refused.typed_letters_kept_value = await end.inputValue();
  await end.fill('2024-13-45');
  await dialog.getByText('This field is required').waitFor();
  result.refused.impossible_date = {
    value: await end.inputValue(),
    message: 'This field is required',
    trigger_disabled: await submit.isDisabled(),
  };
  await shot(page, 'form-refuses-bad-date');
  await end.fill(opts.end);

  // 3b. A path-like output name: the form sends it, Airflow refuses it (400) and the form shows why.
  await page.locator('#element_name').fill('../../etc/passwd');
  const refusal = page.waitForResponse(
    (r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v2/dags/${opts.dag}/dagRuns`),
  );
  await submit.click();
  const refused = await refusal;
  const banner = dialog.getByText(/Invalid input for param name/);
  await banner.waitFor();
  result.refused.bad_name = { status: refused.status(), message: (await banner.innerText()).split('\n')[0] };
  await page.mouse.move(5, 5); // a hovered toast never times out, and it covers the Trigger button
  await shot(page, 'form-refuses-bad-name');
  await page.locator('[data-scope=toast][data-part=root]').first().waitFor({ state: 'hidden', timeout: 20_000 });
  await page.locator('#element_name').fill('');

  // 4. The real request, with the output name left empty (the default name).
  const accepted = page.waitForResponse(
    (r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v2/dags/${opts.dag}/dagRuns`),
  );
  await submit.click();
  const response = await accepted;
  result.trigger_status = response.status();
  result.trigger_body = response.request().postDataJSON();
  await page.waitForURL(/\/runs\//);
  result.run_id = decodeURIComponent(new URL(page.url()).pathname.split('/runs/')[1]);
  log('triggered run', result.run_id);

  // 5. Wait on the run page until its state badge shows a finished state.
  const badge = page.getByTestId('header-card').getByTestId('state-badge');
  const deadline = Date.now() + Number(opts.timeout) * 1000;
  let lastReload = Date.now();
  while (Date.now() < deadline) {
    const state = (await badge.innerText().catch(() => '')).trim().toLowerCase();
    if (state !== result.state) log('run state', state || '(none yet)');
    result.state = state;
    if (state === 'success' || state === 'failed') break;
    if (Date.now() - lastReload > 20_000) { // the page refreshes itself; this only guards a stall
      await page.reload();
      lastReload = Date.now();
    }
    await page.waitForTimeout(2_000);
  }
  await page.getByRole('row', { name: /render_report/ }).waitFor().catch(() => {});
  await shot(page, result.state === 'success' ? 'success' : 'run-finished');

  if (opts['report-tab'] && result.state === 'success') {
    // 6. The run's Report tab (the plugin's external view, an iframe inside the UI).
    await page.getByRole('link', { name: 'Report', exact: true }).click();
    await page.waitForURL(/\/plugin\/report$/);
    const frame = page.frameLocator('iframe[title="Report"]');
    const chart = frame.locator('#chart');
    await chart.waitFor();
    await chart.evaluate((img) => img.complete || new Promise((ok) => img.addEventListener('load', ok, { once: true })));
    const tab = { url: page.url() };
    tab.natural_width = await chart.evaluate((img) => img.naturalWidth);
    tab.natural_height = await chart.evaluate((img) => img.naturalHeight);
    tab.total = await frame.locator('#total').innerText();
    tab.state = await frame.locator('#state').innerText();
    tab.request = await frame.locator('dl').innerText();
    tab.cells = await frame.locator('#numbers td[data-hour]').evaluateAll(
      (tds) => tds.map((td) => [Number(td.dataset.hour), td.dataset.day, Number(td.textContent)]),
    );
    const download = page.waitForEvent('download');
    await frame.locator('#csv').click();
    const file = await download;
    const csvPath = path.join(shotDir, 'downloaded-report.csv');
    await file.saveAs(csvPath);
    tab.csv_download = { suggested: file.suggestedFilename(), path: csvPath };
    await shot(page, 'report-tab');
    result.report_tab = tab;

    // 7. The Reports page in the navigation: this run listed, its thumbnail loaded.
    await page.goto(`${baseUrl}/plugin/reports`);
    const list = page.frameLocator('iframe[title="Reports"]');
    const card = list.locator(`li.report[data-run-id="${result.run_id}"]`);
    await card.waitFor();
    const thumb = card.locator('img');
    await thumb.evaluate((img) => img.complete || new Promise((ok) => img.addEventListener('load', ok, { once: true })));
    result.reports_page = {
      natural_width: await thumb.evaluate((img) => img.naturalWidth),
      text: await card.innerText(),
      first_run_id: await list.locator('li.report').first().getAttribute('data-run-id'),
    };
    await shot(page, 'reports-page');

    // 8. The Data quality page beside it: the month this report counted, with its figures.
    const [year, month] = opts.start.split('-');
    await page.goto(`${baseUrl}/plugin/data-quality`);
    const quality = page.frameLocator('iframe[title="Data quality"]');
    const row = quality.locator(`tr[data-source="green"][data-month="${year}-${month}"]`);
    await row.waitFor();
    const cell = async (field) => (await row.locator(`td[data-field="${field}"]`).innerText()).trim();
    result.quality_page = {
      rows_read: await cell('rows_read'), rows_written: await cell('rows_written'),
      ingested_at: await cell('ingested_at'), text: await row.innerText(),
      json_link: await quality.locator('#json').getAttribute('href'),
    };
    await shot(page, 'quality-page');
  }
} catch (err) {
  result.error = String(err?.stack ?? err);
  log('error', result.error);
  const page = context.pages()[0];
  if (page) await shot(page, 'error').catch(() => {});
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

console.log(JSON.stringify(result));
process.exit(result.state === 'success' && !result.error ? 0 : 1);
