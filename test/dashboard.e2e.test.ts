import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFederation } from '../apps/demo/src/local-federation';
import { startTestCoordinator, tinyFederation } from './tiny-federation';

/**
 * The dashboard in headless Chromium against a real coordinator running a short federation of three
 * agent processes. Screenshots go to test/artifacts/ (git-ignored).
 */
const ARTIFACTS = join(__dirname, 'artifacts');
const CHROMIUM = '/usr/bin/chromium';
let dir: string;
let drop: () => Promise<void>;
let fed: LocalFederation;
let federationId: string;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: run 'node scripts/ensure-test-tools.mjs' (apt-get install chromium)`,
    );
  mkdirSync(ARTIFACTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-dash-'));
  ({ fed, drop } = await startTestCoordinator(dir));
  const f = await fed.createFederation('dashboard', tinyFederation());
  federationId = f.id;
  await fed.addPhantomSites(federationId, ['hospital-1', 'hospital-2', 'hospital-3'], {
    dataRoot: join(dir, 'data'),
    seed: 50,
  });
  await fed.api('POST', `/api/federations/${federationId}/start`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  fed?.killAll();
  await drop?.();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dashboard in headless Chromium', () => {
  it('an admin signs in, sees the sites online and the charts follow the rounds live', async () => {
    await fed.waitForRounds(federationId, 1, { timeoutMs: 180_000, maxFailures: 0 });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1500 } });
    // The dashboard runs under its Content-Security-Policy without tripping it.
    const violations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text());
    });
    page.on('pageerror', (e) => violations.push(e.message));
    await page.goto(`${fed.url}/`);
    await page.fill('#token', fed.adminToken);
    await page.click('#signin-form button');
    await page.waitForSelector('text=signed in as admin');
    // The three agents, online, with the backend they reported.
    await page.waitForFunction(
      () => document.querySelectorAll('#sites tr[data-site] .dot.online').length === 3,
      null,
      {
        timeout: 30_000,
      },
    );
    const sites = await page.$$eval('#sites tr[data-site]', (rows) =>
      rows.map((r) => [r.getAttribute('data-site'), r.children[4].textContent]),
    );
    expect(sites.map((s) => s[0]).sort()).toEqual(['hospital-1', 'hospital-2', 'hospital-3']);
    for (const s of sites) expect(s[1]).toBe('wasm');
    const before = Number(await page.getAttribute('.chart[data-metric="mae"]', 'data-points'));
    expect(before).toBeGreaterThanOrEqual(1);
    // Without a reload, the next completed round reaches the charts and the rounds table.
    await page.waitForFunction(
      (n) => Number(document.querySelector('.chart[data-metric="mae"]')?.getAttribute('data-points')) > n,
      before,
      { timeout: 180_000, polling: 500 },
    );
    const completedRows = await page.$$eval('#rounds tr[data-round] .status.completed', (x) => x.length);
    expect(completedRows).toBeGreaterThanOrEqual(2);
    // Global line plus one line per site on each chart (uPlot draws a legend entry per series).
    const legend = await page.$$eval('.chart[data-metric="mae"] .u-legend .u-series', (x) => x.length);
    expect(legend).toBe(1 + 1 + 3);
    // The sample panel: a PNG rendered at the coordinator from its own phantom.
    await page.waitForFunction(
      () => (document.querySelector('#sample-img') as HTMLImageElement)?.naturalWidth > 0,
      null,
      {
        timeout: 60_000,
      },
    );
    const width = await page.$eval('#sample-img', (img) => (img as HTMLImageElement).naturalWidth);
    expect(width).toBe(3 * 16 * 4 + 16);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-admin.png'), fullPage: true });

    // API tokens and the audit log: the federation's start is in the log.
    expect(await page.isVisible('#tokens')).toBe(true);
    expect(await page.isVisible('#audit')).toBe(true);
    await page.waitForSelector('#audit tr[data-action="federation.start"]', { timeout: 10_000 });
    await page.selectOption('#token-role', 'researcher');
    await page.fill('#token-label', 'made in the dashboard');
    await page.fill('#token-hours', '24');
    await page.check(`#token-federations input[value="${federationId}"]`);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#new-token:not([hidden])');
    const made = await page.inputValue('#new-token-value');
    expect(made).toMatch(/^fsk_[\w-]{40,}$/);
    const row = await page.waitForSelector('#tokens tr[data-token]:has-text("made in the dashboard")');
    expect(await row.textContent()).toMatch(/researcher.*active.*dashboard/);
    // Shown once: nowhere else on the page, and gone when dismissed.
    expect(await page.textContent('body')).not.toContain(made);
    await page.click('#dismiss-token');
    expect(await page.isVisible('#new-token')).toBe(false);
    expect(await page.inputValue('#new-token-value')).toBe('');
    const scoped = await fetch(`${fed.url}/api/federations`, {
      headers: { authorization: `Bearer ${made}` },
    });
    expect(((await scoped.json()) as { name: string }[]).map((f) => f.name)).toEqual(['dashboard']);
    await page.waitForSelector('#audit tr[data-action="token.create"]', { timeout: 10_000 });
    // Revoking asks first; the token is refused afterwards.
    page.once('dialog', (d) => void d.accept());
    await row.$eval('button', (b) => (b as HTMLButtonElement).click());
    await page.waitForSelector('#tokens tr[data-token]:has-text("made in the dashboard") .state.revoked');
    const refused = await fetch(`${fed.url}/api/federations`, {
      headers: { authorization: `Bearer ${made}` },
    });
    expect(refused.status).toBe(401);
    expect(violations).toEqual([]);
    await page.close();
  }, 300_000);

  it('a researcher sees the global curves and rounds, not the sites or the controls', async () => {
    const { token } = await fed.api<{ token: string }>('POST', '/api/tokens', {
      role: 'researcher',
      label: 'browser test',
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    await page.goto(`${fed.url}/`);
    await page.fill('#token', token);
    await page.click('#signin-form button');
    await page.waitForSelector('text=signed in as researcher');
    await page.waitForFunction(
      () => Number(document.querySelector('.chart[data-metric="mae"]')?.getAttribute('data-points')) >= 2,
      null,
      {
        timeout: 30_000,
      },
    );
    expect(await page.isVisible('#sites')).toBe(false);
    expect(await page.isVisible('#tokens')).toBe(false);
    expect(await page.isVisible('#audit')).toBe(false);
    expect(
      await page.$$eval(
        '#federations button',
        (b) => b.filter((x) => (x as HTMLElement).offsetParent).length,
      ),
    ).toBe(0);
    const legend = await page.$$eval('.chart[data-metric="mae"] .u-legend .u-series', (x) => x.length);
    expect(legend).toBe(2); // the x series and the global line only
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-researcher.png'), fullPage: true });
    // A wrong token is refused with a message.
    await page.click('#signout');
    await page.fill('#token', 'fsk_wrong');
    await page.click('#signin-form button');
    await page.waitForSelector('text=sign-in failed');
    await page.close();
  }, 120_000);
});
