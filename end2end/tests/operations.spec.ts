import { test, expect, waitForHydration, signIn, sendCallback, uniqueJob } from './fixtures';
import type { APIRequestContext, Page } from '@playwright/test';
import { ADMIN_EMAIL, BASE_URL, WEBHOOK_SECRET } from '../playwright.config';

const WEBHOOK = '/api/webhooks/llm-callback';

type Summary = { total: number; by_outcome: Record<string, number>; invalid_signature: number };

/** The summary as the server function answers it (the page must show the same). */
async function summary(request: APIRequestContext): Promise<Summary> {
  const response = await request.post('/api/deliveries/summary', { form: { window: '24h' } });
  expect(response.status()).toBe(200);
  return response.json();
}

/** How many requests of one outcome a summary counts. */
function outcomeOf(s: Summary, name: string): number {
  return s.by_outcome[name] ?? 0;
}

/** A request without any signature header: refused before its body is read. */
async function sendUnsigned(request: APIRequestContext) {
  const response = await request.post(WEBHOOK, {
    data: JSON.stringify({ job_id: uniqueJob('unsigned'), event: 'workflow.completed' }),
    headers: { 'content-type': 'application/json' },
  });
  expect(response.status()).toBe(401);
}

/** Start from "everything viewed", so no backlog toast covers the page. */
async function markAllViewed(page: Page) {
  const response = await page.request.post('/api/callbacks/mark-all-viewed');
  expect(response.status()).toBe(200);
}

async function switchToDark(page: Page) {
  await page.getByRole('button', { name: 'Switch between light and dark theme' }).click();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
}

async function expectNoHorizontalOverflow(page: Page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
}

test('the banner says when no sender has used the secret, and goes once one has', async ({ page, request, problems }) => {
  await signIn(page, '/admin/deliveries');
  await expect(page.getByRole('link', { name: 'Deliveries' })).toHaveAttribute('aria-current', 'page');
  // Tests share one server: whether a signed callback came before depends on
  // what ran first, so the page must agree with the server's own answer.
  const warnings = await (await page.request.post('/api/inbox/warnings')).json();
  expect(warnings.flag_mode).toBe(false);
  const banner = page.getByTestId('warning-secret-unused');
  await expect(banner).toHaveCount(warnings.secret_unused ? 1 : 0);
  // It comes with the server's HTML: no flash, nothing for hydration to add.
  const html = await (await page.request.get('/admin/deliveries')).text();
  expect(html.includes('data-testid="warning-secret-unused"')).toBe(warnings.secret_unused);
  await expect(page.getByTestId('warning-flag-mode')).toHaveCount(0);
  if (warnings.secret_unused) {
    await expect(banner).toHaveText(
      'No sender has used the webhook secret yet. See Settings for the URL and a signed example.',
    );
    await banner.getByRole('link', { name: 'Settings' }).click();
    await expect(page).toHaveURL(/\/admin\/settings$/);
    // Every admin page carries it.
    await expect(page.getByTestId('warning-secret-unused')).toBeVisible();
  }

  await sendCallback(request, { job_id: uniqueJob('first'), event: 'workflow.completed', workflow_name: 'banner-wf' });
  // The server shares the banner's answer for up to 5 s: reload until it is fresh.
  await expect(async () => {
    await page.reload();
    await waitForHydration(page);
    await expect(page.getByRole('heading', { name: /Deliveries|Settings/, level: 1 })).toBeVisible();
    await expect(page.getByTestId('warning-secret-unused')).toHaveCount(0, { timeout: 1_000 });
  }).toPass({ intervals: [1_000], timeout: 15_000 });
  expect(problems).toEqual([]);
});

test('deliveries list accepted and refused requests, summarise them, filter, and open callbacks', async ({ page, request, problems }) => {
  await signIn(page);
  await markAllViewed(page);
  // The server shares a summary for up to 5 s, so the first answer may be
  // older than the last test's requests: start from one that counts a
  // marker request sent now.
  const stale = await summary(page.request);
  await sendUnsigned(request);
  let before = stale;
  await expect
    .poll(async () => outcomeOf((before = await summary(page.request)), 'missing_signature'), { timeout: 15_000 })
    .toBeGreaterThan(outcomeOf(stale, 'missing_signature'));
  const jobs = [uniqueJob('ops'), uniqueJob('ops'), uniqueJob('ops')];
  const ids: string[] = [];
  for (const job of jobs) {
    ids.push(await sendCallback(request, { job_id: job, event: 'workflow.completed', workflow_name: 'ops-wf' }));
  }
  await sendUnsigned(request);
  await sendUnsigned(request);

  // Refused requests are audited off the request path: wait until all five count.
  await expect
    .poll(async () => (await summary(page.request)).total, { timeout: 10_000 })
    .toBe(before.total + 5);
  const after = await summary(page.request);
  const outcome = outcomeOf;
  expect(outcome(after, 'accepted')).toBe(outcome(before, 'accepted') + 3);
  expect(outcome(after, 'missing_signature')).toBe(outcome(before, 'missing_signature') + 2);
  expect(after.invalid_signature).toBe(before.invalid_signature + 2);

  await page.goto('/admin/deliveries');
  await waitForHydration(page);

  // The summary strip shows what the server counted.
  await expect(page.getByRole('heading', { name: 'Last 24 hours' })).toBeVisible();
  await expect(page.getByTestId('summary-total')).toHaveText(String(after.total));
  const invalid = page.getByTestId('summary-invalid');
  await expect(invalid).toContainText(String(after.invalid_signature));
  await expect(invalid).toHaveClass(/warn/);
  await expect(page.getByTestId('outcome-count-accepted')).toContainText(String(outcome(after, 'accepted')));
  await expect(page.getByTestId('outcome-count-missing_signature')).toContainText(
    String(outcome(after, 'missing_signature')),
  );
  await expect(page.getByTestId('summary-p50')).toHaveText(/ms$/);
  const chart = page.getByTestId('delivery-chart');
  await expect(chart).toHaveAttribute('role', 'img');
  await expect(chart).toHaveAttribute('aria-label', /^Requests per 30 min over the last 24 hours: .*accepted.*rejected/);
  await expect(chart.locator('.chart-bar')).toHaveCount(49);
  await expect(chart.locator('.chart-bar title', { hasText: /\d+ accepted/ }).first()).toBeAttached();
  await expect(chart.locator('rect.chart-rejected').first()).toBeAttached();

  // The table: accepted and refused rows, badges, counts.
  const rows = page.locator('table.deliveries-table tbody tr');
  await expect(rows.first()).toBeVisible();
  await expect(page.locator('tr[data-outcome="accepted"]').first()).toBeVisible();
  const refused = page.locator('tr[data-outcome="missing_signature"]').first();
  await expect(refused).toBeVisible();
  await expect(refused.locator('.badge')).toHaveText('missing signature');
  await expect(refused).toContainText('401');
  await expect(refused.getByRole('link')).toHaveCount(0);

  // The window: one hour has a bar per minute.
  await page.getByRole('link', { name: '1 h' }).click();
  await expect(page).toHaveURL(/window=1h/);
  await expect(page.getByRole('heading', { name: 'Last hour' })).toBeVisible();
  await expect(page.getByRole('link', { name: '1 h' })).toHaveAttribute('aria-current', 'true');
  await expect(chart.locator('.chart-bar')).toHaveCount(61);
  await expect(page.getByTestId('summary-total')).toHaveText(/^\d+$/);

  // The outcome filter narrows the table at once.
  await page.getByRole('combobox', { name: /^Outcome/ }).selectOption('missing_signature');
  await expect(page).toHaveURL(/outcome=missing_signature/);
  await expect(page).toHaveURL(/window=1h/);
  await expect(rows.first()).toHaveAttribute('data-outcome', 'missing_signature');
  await expect(page.locator('table.deliveries-table tbody tr:not([data-outcome="missing_signature"])')).toHaveCount(0);
  await page.getByRole('combobox', { name: /^Outcome/ }).selectOption('accepted');
  await expect(rows.first()).toHaveAttribute('data-outcome', 'accepted');
  await expect(page.locator('table.deliveries-table tbody tr:not([data-outcome="accepted"])')).toHaveCount(0);

  // Dates: nothing was received before 2000.
  const to = page.getByLabel('To', { exact: true });
  await to.fill('2000-01-01');
  await expect(page).toHaveURL(/to=2000-01-01/);
  await expect(page.getByText('No requests match these filters.')).toBeVisible();
  await expect(to).toHaveValue('2000-01-01');
  await page.getByRole('link', { name: 'Clear the filters' }).click();
  await expect(page).toHaveURL(/\/admin\/deliveries\?window=1h$/);
  await expect(to).toHaveValue('');
  await expect(page.getByRole('combobox', { name: /^Outcome/ })).toHaveValue('');
  await expect(page.locator('tr[data-outcome="missing_signature"]').first()).toBeVisible();

  // A stored callback's row opens its window.
  const link = page.locator(`a[href="/admin/callbacks?callback=${ids[2]}"]`);
  await expect(link).toHaveText('Open callback');
  await link.click();
  await expect(page).toHaveURL(new RegExp(`/admin/callbacks\\?callback=${ids[2]}`));
  await expect(page.getByRole('dialog')).toBeVisible();
  await expect(page.getByTestId('meta-job-id')).toHaveText(jobs[2]);
  expect(problems).toEqual([]);
});

test('deliveries page through older and newer requests', async ({ page, request, problems }) => {
  await signIn(page);
  // More than a page (20) of accepted requests.
  for (let n = 0; n < 25; n++) {
    await sendCallback(request, { job_id: uniqueJob('page'), event: 'workflow.completed', workflow_name: 'paging-wf' });
  }
  await markAllViewed(page);
  await page.goto('/admin/deliveries?outcome=accepted');
  await waitForHydration(page);
  const first = await page.locator('table.deliveries-table tbody tr time').first().getAttribute('datetime');
  await page.getByRole('link', { name: 'Older →' }).click();
  await expect(page).toHaveURL(/before=/);
  await expect(page).toHaveURL(/outcome=accepted/);
  await expect(page.locator('table.deliveries-table tbody tr time').first()).not.toHaveAttribute('datetime', first!);
  await page.getByRole('link', { name: '← Newer' }).click();
  await expect(page).toHaveURL(/after=/);
  await expect(page.locator('table.deliveries-table tbody tr time').first()).toHaveAttribute('datetime', first!);
  expect(problems).toEqual([]);
});

test('settings show the URL, masked secrets revealed on request, and examples without the secret', async ({ page, context, problems }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page, '/admin/settings');
  await expect(page.getByRole('link', { name: 'Settings', exact: true }).first()).toHaveAttribute('aria-current', 'page');
  await expect(page.getByTestId('webhook-url')).toHaveText(`${BASE_URL}${WEBHOOK}`);
  await page.getByRole('button', { name: 'Copy the webhook URL' }).click();
  await expect(page.locator('.settings-value .copy-status')).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(`${BASE_URL}${WEBHOOK}`);

  // The secret is masked; earlier tests' signed callbacks used it.
  const secret = page.getByTestId('secret-value').first();
  await expect(secret).toContainText('••••');
  await expect(secret).not.toContainText(WEBHOOK_SECRET);
  const item = page.locator('.secret-item').first();
  await expect(item).toContainText(/Last used: \S/);
  await expect(item).not.toContainText('Last used: never');
  await expect(item).toContainText(/[1-9]\d* uses? in the last 24 h/);

  // Copy before reveal says what to do; Reveal shows it in place; Hide masks it again.
  const copySecret = item.getByRole('button', { name: /^Copy the secret / });
  await copySecret.click();
  await expect(item.locator('.copy-status')).toHaveText('Reveal the secret first, then copy it.');
  await item.getByRole('button', { name: /^Reveal the secret / }).click();
  await expect(secret).toHaveText(WEBHOOK_SECRET);
  const hide = item.getByRole('button', { name: /^Hide the secret / });
  await expect(hide).toBeFocused();
  await copySecret.click();
  await expect(item.locator('.copy-status')).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(WEBHOOK_SECRET);
  await page.keyboard.press('Shift+Tab');
  await expect(hide).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(secret).toContainText('••••');
  await expect(secret).not.toContainText(WEBHOOK_SECRET);

  // Limits and the examples, which read the secret from the environment.
  await expect(page.getByTestId('signature-mode')).toHaveText('enforce');
  await expect(page.getByText('1 MiB')).toBeVisible();
  await expect(page.getByTestId('retention')).toHaveText('30 days');
  for (const id of ['curl-example', 'send-example']) {
    const example = page.getByTestId(id);
    await expect(example).toContainText('$LLM_WEBHOOK_SECRET');
    await expect(example).toContainText(WEBHOOK);
    await expect(example).not.toContainText(WEBHOOK_SECRET);
  }
  await page.getByRole('button', { name: 'Copy the example with curl and openssl' }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toContain('$LLM_WEBHOOK_SECRET');
  expect(problems).toEqual([]);
});

test('a copy button says so when the browser has no clipboard', async ({ page, problems }) => {
  await page.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined, configurable: true });
  });
  await signIn(page, '/admin/settings');
  await page.getByRole('button', { name: 'Copy the webhook URL' }).click();
  await expect(page.locator('.settings-value .copy-status')).toHaveText(/No clipboard here/);
  await expect(page.locator('.settings-value .copy-status')).toHaveClass(/error-text/);
  expect(problems).toEqual([]);
});

test('viewers read deliveries but not the settings', async ({ page, browser, problems }) => {
  await signIn(page);
  const email = `viewer-${uniqueJob('ops')}@example.com`;
  const invited = await page.request.post('/api/admin/users/invite', { form: { email, role: 'viewer' } });
  expect(invited.status()).toBe(200);
  const { password } = await invited.json();

  const context = await browser.newContext();
  const viewer = await context.newPage();
  await viewer.goto('/login?next=%2Fadmin%2Fsettings');
  await waitForHydration(viewer);
  await viewer.getByLabel('Email').fill(email);
  await viewer.getByLabel('Password').fill(password);
  await viewer.getByRole('button', { name: 'Sign in' }).click();
  await viewer.waitForURL(/\/admin\/settings$/);
  await expect(viewer.getByRole('alert')).toContainText('Only admins can see the settings.');
  await expect(viewer.getByTestId('webhook-url')).toHaveCount(0);
  await viewer.goto('/admin/deliveries');
  await expect(viewer.getByTestId('summary-total')).toHaveText(/^\d+$/);
  await expect(viewer.locator('table.deliveries-table tbody tr').first()).toBeVisible();
  await context.close();
  expect(problems).toEqual([]);
});

test('screenshots: both pages in light, and dark at 360 px', async ({ page, request, problems }) => {
  await page.emulateMedia({ colorScheme: 'light' });
  await signIn(page);
  await sendUnsigned(request);
  await sendCallback(request, { job_id: uniqueJob('shot'), event: 'workflow.completed', workflow_name: 'shot-wf' });
  await markAllViewed(page);

  await page.goto('/admin/deliveries');
  await waitForHydration(page);
  await expect(page.locator('table.deliveries-table tbody tr').first()).toBeVisible();
  await page.screenshot({ path: 'screenshots/deliveries-light.png', fullPage: true });
  await page.goto('/admin/settings');
  await waitForHydration(page);
  await expect(page.getByTestId('webhook-url')).toBeVisible();
  await page.screenshot({ path: 'screenshots/settings-light.png', fullPage: true });

  await page.setViewportSize({ width: 360, height: 760 });
  await switchToDark(page);
  await page.goto('/admin/deliveries');
  await waitForHydration(page);
  await expect(page.locator('table.deliveries-table tbody tr').first()).toBeVisible();
  await expectNoHorizontalOverflow(page);
  // The table scrolls inside its own box, not the page.
  const scroll = page.locator('.table-scroll');
  expect(await scroll.evaluate((el) => el.scrollWidth > el.clientWidth)).toBe(true);
  await page.screenshot({ path: 'screenshots/deliveries-dark-360.png', fullPage: true });
  await page.goto('/admin/settings');
  await waitForHydration(page);
  await expect(page.getByTestId('webhook-url')).toBeVisible();
  await expectNoHorizontalOverflow(page);
  await page.screenshot({ path: 'screenshots/settings-dark-360.png', fullPage: true });
  expect(problems).toEqual([]);
});

test('an admin creates an API token on the settings page, sees it once, and revokes it', async ({ page, context, request, problems }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page, '/admin/settings');
  const section = page.getByRole('region', { name: 'API tokens' });
  await expect(section).toContainText('Authorization: Bearer');
  const name = uniqueJob('token');
  await section.getByLabel('Token name').fill(name);
  await section.getByRole('button', { name: 'Create token' }).click();

  // Shown once, with a Copy button and a warning.
  const shown = page.getByTestId('new-token');
  await expect(shown).toHaveText(/^cbi_[A-Za-z0-9_-]{43}$/);
  const token = (await shown.textContent())!;
  await expect(section).toContainText('it will not be shown again');
  await section.getByRole('button', { name: 'Copy the new token' }).click();
  await expect(section.locator('.token-result .copy-status')).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);
  await expect(section.getByLabel('Token name')).toHaveValue('');

  // Listed, active, never used; it reads as a Bearer token (from a context
  // without the session cookie).
  const row = section.locator(`tr[data-token="${name}"]`);
  await expect(row).toContainText(ADMIN_EMAIL);
  await expect(row.locator('td').nth(3)).toHaveText('never');
  await expect(row.locator('.badge')).toHaveText('active');
  const read = () =>
    request.post('/api/callbacks/history', {
      form: { q: '' },
      headers: { authorization: `Bearer ${token}` },
    });
  expect((await read()).status()).toBe(200);

  // After a reload the token is gone from the page for good.
  await page.reload();
  await waitForHydration(page);
  await expect(page.getByTestId('new-token')).toHaveCount(0);
  expect(await page.content()).not.toContain(token);
  await expect(row.locator('time').nth(1)).toBeVisible();

  await row.getByRole('button', { name: `Revoke the token ${name} of ${ADMIN_EMAIL}` }).click();
  await expect(row.locator('.badge')).toHaveText('revoked');
  await expect(row.getByRole('button', { name: /^Revoke/ })).toHaveCount(0);
  await expect(section.getByRole('status').filter({ hasText: `The token ${name}` })).toBeVisible();
  expect((await read()).status()).toBe(401);
  expect(problems).toEqual([]);
});

test('the history exports what its filters select as a CSV download', async ({ page, request, problems }) => {
  const workflow = uniqueJob('export-wf');
  await sendCallback(request, { job_id: uniqueJob('exp'), event: 'workflow.failed', workflow_name: workflow, error: '=1+1' });
  await sendCallback(request, { job_id: uniqueJob('other'), event: 'workflow.completed', workflow_name: 'another-wf' });
  await signIn(page, `/admin/callbacks?workflow_name=${workflow}`);
  const link = page.getByRole('group', { name: 'Export the callbacks the filters select' }).getByRole('link', { name: 'CSV' });
  await expect(link).toHaveAttribute('href', new RegExp(`workflow_name=${workflow}.*format=csv`));
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  expect(download.suggestedFilename()).toMatch(/^callbacks-\d+\.csv$/);
  const text = await (await import('node:fs/promises')).readFile(await download.path(), 'utf8');
  const lines = text.trim().split('\r\n');
  expect(lines[0]).toContain('external_job_id');
  expect(lines).toHaveLength(2); // the header and the one callback of that workflow
  expect(lines[1]).toContain(workflow);
  expect(lines[1]).not.toContain('another-wf');
  expect(problems).toEqual([]);
});
