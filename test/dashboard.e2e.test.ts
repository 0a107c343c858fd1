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
    const page = await browser.newPage({
      viewport: { width: 1400, height: 1500 },
      // The copy buttons use navigator.clipboard; the test reads back what they copied.
      permissions: ['clipboard-read', 'clipboard-write'],
    });
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
    // Three 16-px slices at 16x (at least 256 px a panel), two 8-px gaps, then the HU bar: an 8-px
    // gap, 16 px of bar, 4 px, and labels of up to 5 characters at 4 font pixels of 2 px, plus 4.
    expect(width).toBe(3 * 256 + 2 * 8 + (8 + 16 + 4 + (5 * 4 * 2 + 4)));
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

    // Each round names the configuration version it ran with.
    await page.waitForSelector('#rounds tr[data-round] td[data-config-version="1"] button');
    expect(await page.textContent('#rounds tr[data-round] td[data-config-version="1"]')).toBe('v1');

    // A federation from the form built from the configuration's JSON Schema: every field starts at
    // its default, a union's kind chooses its fields, and the coordinator's problems land next to
    // the fields they name.
    const defaults = (
      await fed.api<{ defaults: { plan: Record<string, unknown> } }>('GET', '/api/federation-config')
    ).defaults;
    await page.click('#new-federation');
    const form = '#create-form';
    const field = (f: string, path: string, control = 'input') => `${f} [data-field="${path}"] ${control}`;
    await page.waitForSelector(field(form, 'plan.lr'));
    expect(await page.inputValue(field(form, 'plan.localSteps'))).toBe(String(defaults.plan.localSteps));
    expect(Number(await page.inputValue(field(form, 'plan.lr')))).toBe(defaults.plan.lr);
    expect(await page.inputValue(field(form, 'plan.rounds'))).toBe(''); // null: empty
    expect(await page.inputValue(field(form, 'plan.schedule', 'select'))).toBe(defaults.plan.schedule);
    expect(await page.inputValue(field(form, 'model.channels'))).toBe('32, 64, 80');
    expect(await page.isChecked(field(form, 'privacy.perSiteMetrics'))).toBe(true);
    // Folded sections: strategy shows FedAvg's fields until FedAdam is chosen.
    expect(await page.isVisible(field(form, 'strategy.kind', 'select'))).toBe(false);
    await page.click(`${form} details[data-section="strategy"] > summary`);
    expect(await page.inputValue(field(form, 'strategy.kind', 'select'))).toBe('fedavg');
    expect(await page.$(field(form, 'strategy.beta2'))).toBeNull();
    await page.selectOption(field(form, 'strategy.kind', 'select'), 'fedadam');
    expect(Number(await page.inputValue(field(form, 'strategy.beta2')))).toBe(0.99);
    await page.fill(field(form, 'strategy.lr'), '0.02');
    // Two mistakes: a learning rate out of range, a Harary graph without its degree.
    await page.fill('#create-name', 'from-the-form');
    await page.fill(field(form, 'plan.lr'), '2');
    await page.click(`${form} details[data-section="secagg"] > summary`);
    await page.selectOption(field(form, 'secagg.graph.kind', 'select'), 'harary');
    await page.click(`${form} button[type="submit"]`);
    await page.waitForSelector(`${form} [data-field="plan.lr"].invalid .field-error`);
    expect(await page.textContent(`${form} [data-field="plan.lr"] .field-error`)).toBe(
      'lr must be in (0, 1)',
    );
    expect(await page.textContent(`${form} [data-field="secagg.graph.neighbours"] .field-error`)).toMatch(
      /expected number/,
    );
    expect(await page.textContent(`${form} .form-error`)).toBe(''); // nothing unclaimed
    expect(await page.$('#federations tr[data-federation="from-the-form"]')).toBeNull();
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-create-invalid.png'), fullPage: true });
    await page.fill(field(form, 'plan.lr'), '0.001');
    await page.fill(field(form, 'secagg.graph.neighbours'), '4');
    await page.click(`${form} button[type="submit"]`);
    await page.waitForSelector('#federations tr[data-federation="from-the-form"]');
    expect(await page.isVisible(form)).toBe(false);
    type Config = {
      plan: { lr: number; localSteps: number };
      strategy: Record<string, unknown>;
      secagg: { graph: Record<string, unknown> };
    };
    const made2 = await fed.api<{ id: string; config: Config; configVersion: number }>(
      'GET',
      '/api/federations/from-the-form',
    );
    expect(made2.configVersion).toBe(1);
    expect(made2.config.plan.lr).toBe(0.001);
    expect(made2.config.strategy).toEqual({
      kind: 'fedadam',
      lr: 0.02,
      beta1: 0.9,
      beta2: 0.99,
      tau: 1e-3,
      proxMu: 0,
      serverEma: 0,
    });
    expect(made2.config.secagg.graph).toEqual({ kind: 'harary', neighbours: 4 });

    // The new federation is selected; its configuration is edited between rounds, the form filled
    // with the current values and only what changed sent.
    await page.waitForSelector('#fed-title:has-text("from-the-form")');
    await page.click('#edit-config');
    const edit = '#edit-form';
    await page.waitForSelector(field(edit, 'plan.localSteps'));
    expect(Number(await page.inputValue(field(edit, 'plan.lr')))).toBe(0.001);
    await page.fill(field(edit, 'plan.localSteps'), '25');
    const patch = page.waitForRequest((r) => r.method() === 'PATCH');
    await page.click(`${edit} button[type="submit"]`);
    expect((await patch).postDataJSON()).toEqual({ plan: { localSteps: 25 } });
    const v2 = await page.waitForSelector('#config-versions tr[data-version="2"]');
    expect(await v2.textContent()).toMatch(/v2 \(current\).*you.*plan\.localSteps: 50 → 25/);
    expect(await page.textContent('#config-current')).toBe('version 2');
    expect(await page.isVisible(edit)).toBe(false);
    await v2.$eval('summary', (s) => (s as HTMLElement).click());
    expect(await v2.$eval('pre', (p) => JSON.parse(p.textContent || '').plan.localSteps)).toBe(25);
    expect(
      (await fed.api<{ configVersion: number }>('GET', '/api/federations/from-the-form')).configVersion,
    ).toBe(2);
    // While a round runs the coordinator refuses (409); the form says so and keeps what was entered.
    // The refusal is staged here: a real one depends on hitting a round.
    await page.route(`**/api/federations/${made2.id}`, (route) =>
      route.request().method() === 'PATCH'
        ? route.fulfill({
            status: 409,
            contentType: 'application/json',
            body: JSON.stringify({
              code: 'ILLEGAL_TRANSITION',
              message:
                'federation "from-the-form" has a round running; change its configuration between rounds',
            }),
          })
        : route.continue(),
    );
    await page.click('#edit-config');
    await page.fill(field(edit, 'plan.batchSize'), '4');
    await page.click(`${edit} button[type="submit"]`);
    await page.waitForSelector(`${edit} .form-error:has-text("a round is running; try between rounds")`);
    expect(await page.isVisible(edit)).toBe(true);
    expect(await page.inputValue(field(edit, 'plan.batchSize'))).toBe('4');
    await page.locator('#configuration').screenshot({ path: join(ARTIFACTS, 'dashboard-edit-refused.png') });
    await page.unroute(`**/api/federations/${made2.id}`);
    await page.click(`${edit} .cancel`);
    expect(await page.$('#config-versions tr[data-version="3"]')).toBeNull();

    // An enrollment token for a site of the selected federation: shown once, copied, then gone.
    await page.fill('#enroll-site', 'hospital-9');
    await page.click('#enroll-form button[type="submit"]');
    await page.waitForSelector('#new-enroll:not([hidden])');
    const enrollment = await page.inputValue('#enroll-token-value');
    expect(enrollment).toMatch(/^fse_[\w-]{20,}$/);
    expect(await page.textContent('#new-enroll')).toContain('site "hospital-9" of from-the-form');
    expect(Date.parse(String(await page.textContent('#enroll-expiry')))).not.toBeNaN();
    expect(await page.textContent('body')).not.toContain(enrollment);
    await page.locator('#enrollment').screenshot({ path: join(ARTIFACTS, 'dashboard-enrollment.png') });
    await page.click('#copy-enroll');
    await page.waitForSelector('#enroll-copy-state:has-text("copied")');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(enrollment);
    await page.click('#dismiss-enroll');
    expect(await page.isVisible('#new-enroll')).toBe(false);
    expect(await page.inputValue('#enroll-token-value')).toBe('');
    await page.waitForSelector('#audit tr[data-action="enrollment-token.create"]', { timeout: 10_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-config.png'), fullPage: true });
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
    // Nor the configuration's controls: no create form, no edit form, versions or enrollment tokens.
    for (const sel of [
      '#new-federation',
      '#create-form',
      '#configuration',
      '#edit-config',
      '#enrollment',
      '#enroll-form',
      '#rounds td[data-config-version]',
    ])
      expect(await page.isVisible(sel), sel).toBe(false);
    expect(
      await page.$$eval(
        '#federations button',
        (b) => b.filter((x) => (x as HTMLElement).offsetParent).length,
      ),
    ).toBe(0);
    const legend = await page.$$eval('.chart[data-metric="mae"] .u-legend .u-series', (x) => x.length);
    expect(legend).toBe(2); // the x series and the global line only
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-researcher.png'), fullPage: true });
    // A wrong token is refused with a message, also while an update of the earlier session is
    // still on its way: held here for 1.5 s, it must not act on the new session (its later calls
    // would carry the wrong token, and their refusal replaced the message with "sign in again").
    await page.route('**/api/federations', async (route) => {
      await new Promise((r) => setTimeout(r, 1500));
      // Requests still held when the route is removed are let through by Playwright itself.
      await route.continue().catch(() => {});
    });
    await page.waitForRequest('**/api/federations');
    await page.click('#signout');
    await page.fill('#token', 'fsk_wrong');
    await page.click('#signin-form button');
    await page.waitForSelector('text=sign-in failed');
    await page.unroute('**/api/federations');
    await new Promise((r) => setTimeout(r, 2500));
    expect(await page.textContent('#signin-error')).toMatch(/^sign-in failed: UNAUTHENTICATED/);
    expect(await page.isVisible('#app')).toBe(false);
    await page.close();
  }, 120_000);
});
