import {
  test,
  expect,
  waitForHydration,
  signIn,
  signInAs,
  signInQuietly,
  markAllViewed,
  sendCallback,
  sendRawCallback,
  uniqueJob,
  toasts,
  feedMode,
  setVisibility,
  watchProblems,
} from './fixtures';
import type { APIRequestContext, Page } from '@playwright/test';
import { ADMIN_EMAIL } from '../playwright.config';

const cursorKey = (email: string) => `callback-inbox:feed-cursor:${email}`;

/** Failed requests the test itself caused (blocked routes) are expected; nothing else is. */
function expectOnlyBlockedRequests(problems: string[]) {
  const unexpected = problems.filter((p) => !/ERR_FAILED|Failed to load resource/.test(p));
  problems.length = 0;
  expect(unexpected).toEqual([]);
}

async function openLive(page: Page, path = '/admin/callbacks') {
  await page.goto(path);
  await waitForHydration(page);
}

function callback(workflow: string, prefix = 'live') {
  return { job_id: uniqueJob(prefix), event: 'workflow.completed', workflow_name: workflow };
}

/** `count` callbacks, a few at a time. */
async function sendMany(request: APIRequestContext, count: number, workflow: string) {
  const job = uniqueJob('many');
  for (let start = 0; start < count; start += 25) {
    const batch = Array.from({ length: Math.min(25, count - start) }, (_, n) =>
      sendCallback(request, { job_id: `${job}_${start + n}`, event: 'workflow.completed', workflow_name: workflow }),
    );
    await Promise.all(batch);
  }
}

test('a fresh client shows one summary of its 300 unviewed callbacks, then toasts only what arrives', async ({ page, request, problems }) => {
  await signInQuietly(page);
  await markAllViewed(page);
  await sendMany(request, 300, 'backlog-wf');

  // An older client's cursor (the retired `(created_at,id)` format) is dropped, not sent.
  await page.goto('/login');
  await page.evaluate((key) => {
    localStorage.setItem(key, '1763700000000000.0190a1b2c3d4e5f60718293a4b5c6d7e');
    localStorage.setItem('callback-inbox:poll-cursor', '1763700000000000.0190a1b2c3d4e5f60718293a4b5c6d7e');
  }, cursorKey(ADMIN_EMAIL));

  await openLive(page);
  const summary = toasts(page, '300 unviewed callbacks');
  await expect(summary).toHaveCount(1);
  await expect(summary.getByRole('link', { name: 'Show unviewed' })).toHaveAttribute('href', '/admin/callbacks?viewed=false');
  await expect(toasts(page)).toHaveCount(1);
  // The count is in the title and on the favicon.
  await expect(page).toHaveTitle('(300) callback-inbox');
  const icon = (await page.locator('link[rel~="icon"]').getAttribute('href'))!;
  expect(icon.startsWith('data:image/svg+xml,')).toBe(true);
  expect(decodeURIComponent(icon.slice('data:image/svg+xml,'.length))).toContain('>9+</text>');
  await page.screenshot({ path: 'screenshots/summary-toast.png' });

  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
  expect(await page.evaluate((key) => localStorage.getItem(key), cursorKey(ADMIN_EMAIL))).toMatch(/^feed-\d+$/);
  expect(await page.evaluate(() => localStorage.getItem('callback-inbox:poll-cursor'))).toBeNull();
  await page.waitForTimeout(2500);
  await expect(toasts(page)).toHaveCount(1);

  await sendCallback(request, callback('after-backlog-wf'));
  await expect(toasts(page, 'after-backlog-wf')).toHaveCount(1);
  await expect(toasts(page)).toHaveCount(2);
  await expect(page).toHaveTitle('(301) callback-inbox');

  // A reload continues where the cursor is: no summary, nothing again.
  await page.reload();
  await waitForHydration(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
  await page.waitForTimeout(1500);
  await expect(toasts(page)).toHaveCount(0);
  await expect(page).toHaveTitle('(301) callback-inbox');

  // Viewing everything clears the count and the badge.
  await page.getByRole('button', { name: 'Mark all viewed' }).click();
  await expect(page).toHaveTitle('callback-inbox');
  await expect(page.locator('link[rel~="icon"]')).toHaveAttribute('href', '/favicon.svg');
  expect(problems).toEqual([]);
});

test('two tabs of one admin: one toast in all, in the tab the admin is looking at', async ({ page, context, request, problems }) => {
  await signInQuietly(page);
  await markAllViewed(page);
  await openLive(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
  const second = await context.newPage();
  await watchProblems(second, problems);
  await openLive(second);
  // One tab reads the feed; the other follows it.
  await expect(feedMode(second)).toHaveAttribute('data-feed', 'follower');
  const counts = async (text: string) => [await toasts(page, text).count(), await toasts(second, text).count()];

  // The reading tab is hidden, the other one in front: the toast shows there.
  await second.bringToFront();
  await setVisibility(page, 'hidden');
  expect(await second.evaluate(() => document.visibilityState)).toBe('visible');
  await sendCallback(request, callback('seen-in-follower'));
  await expect(toasts(second, 'seen-in-follower')).toHaveCount(1);
  await page.waitForTimeout(2000);
  expect(await counts('seen-in-follower')).toEqual([0, 1]);
  // Every tab counts it.
  await expect(page).toHaveTitle('(1) callback-inbox');
  await expect(second).toHaveTitle('(1) callback-inbox');

  // Back to the reading tab: it shows the next one itself.
  await page.bringToFront();
  await setVisibility(second, 'hidden');
  await setVisibility(page, 'visible');
  await sendCallback(request, callback('seen-in-reader'));
  await expect(toasts(page, 'seen-in-reader')).toHaveCount(1);
  await page.waitForTimeout(2000);
  expect(await counts('seen-in-reader')).toEqual([1, 0]);
  await expect(page).toHaveTitle('(2) callback-inbox');
  await expect(second).toHaveTitle('(2) callback-inbox');

  // Viewing in one tab updates the other's count.
  await toasts(page, 'seen-in-reader').getByRole('button', { name: 'View details' }).click();
  await expect(page.getByRole('dialog')).toBeVisible();
  await expect(second).toHaveTitle('(1) callback-inbox');

  // The reading tab closes: the other takes over from the stored cursor.
  await page.close();
  await setVisibility(second, 'visible');
  await expect(feedMode(second)).toHaveAttribute('data-feed', 'stream');
  await sendCallback(request, callback('after-handover'));
  await expect(toasts(second, 'after-handover')).toHaveCount(1);
  await expect(toasts(second, 'seen-in-reader')).toHaveCount(0);
  expect(problems).toEqual([]);
});

test('another admin signing in in the same browser starts fresh and gets their own toasts', async ({ page, request, problems }) => {
  await signIn(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
  expect(await page.evaluate((key) => localStorage.getItem(key), cursorKey(ADMIN_EMAIL))).toMatch(/^feed-\d+$/);
  const email = `${uniqueJob('second')}@example.com`;
  const invite = await page.request.post('/api/admin/users/invite', { form: { email, role: 'admin' } });
  expect(invite.status()).toBe(200);
  const { password } = await invite.json();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);
  await signInAs(page, email, password);
  await expect(page.getByText(email)).toBeVisible();
  // They have viewed nothing: one summary, under a cursor of their own.
  await expect(toasts(page, 'unviewed callback')).toHaveCount(1);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
  expect(await page.evaluate((key) => localStorage.getItem(key), cursorKey(email))).toMatch(/^feed-\d+$/);

  await sendCallback(request, callback('for-the-second-admin'));
  await expect(toasts(page, 'for-the-second-admin')).toHaveCount(1);
  expect(problems).toEqual([]);
});

test('new callbacks come through the stream at once, without polling', async ({ page, request, problems }) => {
  await signInQuietly(page);
  await markAllViewed(page);
  // Polls fail: only the stream can deliver.
  await page.route(/\/api\/callbacks\/poll$/, (route) => route.abort());
  await openLive(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
  await sendCallback(request, callback('pushed-wf'));
  await expect(toasts(page, 'pushed-wf')).toHaveCount(1, { timeout: 2000 });
  expectOnlyBlockedRequests(problems);
});

test('with the stream blocked, polling delivers', async ({ page, request, problems }) => {
  await signInQuietly(page);
  await markAllViewed(page);
  await page.route(/\/api\/callbacks\/stream/, (route) => route.abort());
  await openLive(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'polling');
  await sendCallback(request, callback('polled-wf'));
  await expect(toasts(page, 'polled-wf')).toHaveCount(1, { timeout: 5000 });
  expectOnlyBlockedRequests(problems);
});

test('after a stream failure the reader polls, and goes back to the stream later', async ({ page, request, problems }) => {
  test.setTimeout(90_000);
  await signInQuietly(page);
  await markAllViewed(page);
  await page.route(/\/api\/callbacks\/stream/, (route) => route.abort());
  await openLive(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'polling');
  // The stream works again: within its retry time (30 s) the reader is back on it.
  await page.unroute(/\/api\/callbacks\/stream/);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream', { timeout: 40_000 });
  await page.route(/\/api\/callbacks\/poll$/, (route) => route.abort());
  await sendCallback(request, callback('back-on-stream-wf'));
  await expect(toasts(page, 'back-on-stream-wf')).toHaveCount(1, { timeout: 2000 });
  expectOnlyBlockedRequests(problems);
});

test('without Web Locks (plain HTTP on a LAN) every tab polls, and still one toast in all', async ({ page, context, request, problems }) => {
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'locks', { configurable: true, get: () => undefined });
  });
  await signInQuietly(page);
  await markAllViewed(page);
  await openLive(page);
  const second = await context.newPage();
  await watchProblems(second, problems);
  await openLive(second);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'polling');
  await expect(feedMode(second)).toHaveAttribute('data-feed', 'polling');
  await setVisibility(page, 'hidden');
  for (const workflow of ['shared-1', 'shared-2', 'shared-3']) {
    await sendCallback(request, callback(workflow));
    await expect(toasts(second, workflow)).toHaveCount(1);
  }
  await page.waitForTimeout(2500);
  for (const workflow of ['shared-1', 'shared-2', 'shared-3']) {
    expect([await toasts(page, workflow).count(), await toasts(second, workflow).count()]).toEqual([0, 1]);
  }
  await expect(page).toHaveTitle('(3) callback-inbox');
  await expect(second).toHaveTitle('(3) callback-inbox');
  expect(problems).toEqual([]);
});

/** A legal 1 MiB body: ~68,000 top-level keys and a number no f64 can hold. */
function hugePayload(job: string): string {
  const parts = [
    `"job_id":"${job}"`,
    '"event":"workflow.completed"',
    '"workflow_name":"huge-wf"',
    '"precise":12345678901234567890123',
  ];
  for (let n = 0; n < 68_000; n += 1) parts.push(`"k${String(n).padStart(5, '0')}":${n}`);
  const body = `{${parts.join(',')}}`;
  expect(Buffer.byteLength(body)).toBeLessThanOrEqual(1024 * 1024);
  return body;
}

test('a 1 MiB callback with 68,000 keys opens at once, pages its keys and copies its exact text', async ({ page, context, request, problems }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signInQuietly(page);
  await markAllViewed(page);
  const job = uniqueJob('huge');
  const body = hugePayload(job);
  await sendRawCallback(request, body);
  await openLive(page, `/admin/callbacks?q=${job}`);
  await expect(page.locator('table.history-table tbody tr')).toHaveCount(1);

  // From the click to the first keys and the pager on screen, measured in the page.
  const openMs = await page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        const view = document.querySelector<HTMLButtonElement>('table.history-table tbody tr button')!;
        const started = performance.now();
        const observer = new MutationObserver(() => {
          const dialog = document.querySelector('[role="dialog"]');
          if (dialog?.querySelector('.json-key') && dialog.querySelector('.json-more button')) {
            observer.disconnect();
            requestAnimationFrame(() => resolve(performance.now() - started));
          }
        });
        observer.observe(document.body, { childList: true, subtree: true });
        view.click();
      }),
  );
  console.log(`1 MiB / 68,004-key window usable after ${Math.round(openMs)} ms`);
  test.info().annotations.push({ type: 'open-ms', description: String(Math.round(openMs)) });
  // It took 21.8 s before paging; the target is 1 s in a release build (this
  // may be the debug build on a shared machine, hence the margin).
  expect(openMs).toBeLessThan(5000);

  const dialog = page.getByRole('dialog');
  await expect(dialog.locator('.json-count').first()).toHaveText('68004 keys');
  await expect(dialog.locator('.json-key', { hasText: '"k00000"' })).toBeVisible();
  await expect(dialog.locator('.json-number', { hasText: '12345678901234567890123' })).toHaveText('12345678901234567890123');
  await expect(dialog.locator('.json-key')).toHaveCount(100);
  await page.screenshot({ path: 'screenshots/window-huge-light.png' });

  await dialog.getByRole('button', { name: 'Show 100 more' }).click();
  await expect(dialog.locator('.json-key')).toHaveCount(200);
  await expect(dialog.locator('.json-more .json-count')).toHaveText('200 of 68004 shown');
  await expect(dialog.locator('.json-key', { hasText: '"k00195"' })).toBeVisible();

  await dialog.getByRole('button', { name: 'Copy JSON' }).click();
  await expect(dialog.getByRole('button', { name: 'Copied' })).toBeVisible();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied.length).toBe(body.length);
  expect(copied === body).toBe(true);
  expect(problems).toEqual([]);
});

test("history date filters are days in the admin's time zone", async ({ browser, request }) => {
  // A zone whose date differs from UTC's right now, so UTC days would miss.
  const timezoneId = new Date().getUTCHours() >= 11 ? 'Pacific/Kiritimati' : 'Etc/GMT+12';
  const context = await browser.newContext({ timezoneId });
  const page = await context.newPage();
  const problems: string[] = [];
  await watchProblems(page, problems);
  const job = uniqueJob('tz');
  await sendCallback(request, { job_id: job, event: 'workflow.completed', workflow_name: 'tz-wf' });
  await signIn(page);

  const localDay = (offsetDays: number) =>
    page.evaluate((offsetDays) => {
      const d = new Date();
      d.setDate(d.getDate() + offsetDays);
      return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    }, offsetDays);
  const today = await localDay(0);
  expect(today, `in ${timezoneId} the date differs from UTC's`).not.toBe(new Date().toISOString().slice(0, 10));

  const rows = page.locator('table.history-table tbody tr');
  const filter = async (from: string, to: string) => {
    await page.getByLabel('Search').fill(job);
    await page.getByLabel('From', { exact: true }).fill(from);
    await page.getByLabel('To', { exact: true }).fill(to);
    await page.getByRole('button', { name: 'Apply' }).click();
  };
  await filter(today, today);
  // The URL holds local midnight as an instant, and the inputs still show the day.
  await expect(page).toHaveURL(new RegExp(`from=${today}T00%3A00%3A00`));
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText(job);
  await expect(page.getByLabel('From', { exact: true })).toHaveValue(today);

  const yesterday = await localDay(-1);
  await filter(yesterday, yesterday);
  await expect(page.getByText('No callbacks match these filters.')).toBeVisible();
  await context.close();
  expect(problems).toEqual([]);
});

test('the callback window stays inside a shrinking viewport', async ({ page, request, problems }) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await signIn(page);
  const id = await sendCallback(request, callback('resize-wf'));
  await openLive(page, `/admin/callbacks?callback=${id}`);
  await expect(page.getByTestId('meta-workflow')).toHaveText('resize-wf');
  const dialog = page.getByRole('dialog');
  // Move it towards the lower right first.
  const bar = (await page.getByTestId('window-titlebar').boundingBox())!;
  await page.mouse.move(bar.x + 60, bar.y + 20);
  await page.mouse.down();
  await page.mouse.move(bar.x + 260, bar.y + 80, { steps: 5 });
  await page.mouse.up();

  await page.setViewportSize({ width: 800, height: 560 });
  await expect
    .poll(async () => {
      const box = (await dialog.boundingBox())!;
      return box.x >= 0 && box.y >= 0 && box.x + box.width <= 800.5 && box.y + box.height <= 560.5;
    })
    .toBe(true);
  expect(problems).toEqual([]);
});

test('Copy says so when the browser offers no clipboard (plain HTTP on a LAN)', async ({ page, request, problems }) => {
  await page.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'clipboard', { configurable: true, get: () => undefined });
  });
  await signIn(page);
  const id = await sendCallback(request, callback('no-clipboard-wf'));
  await openLive(page, `/admin/callbacks?callback=${id}`);
  const dialog = page.getByRole('dialog');
  await expect(page.getByTestId('meta-workflow')).toHaveText('no-clipboard-wf');
  await dialog.getByRole('button', { name: 'Copy JSON' }).click();
  await expect(dialog.locator('.json-status')).toContainText('No clipboard here');
  await expect(dialog.getByRole('button', { name: 'Copy JSON' })).toBeVisible();
  expect(problems).toEqual([]);
});

test('desktop notifications are asked for only after a click, and remembered per user', async ({ page, request, problems }) => {
  // A stand-in Notification API that records what the page does with it.
  await page.addInitScript(() => {
    const log = { asked: 0, shown: [] as { title: string; body: string }[] };
    class FakeNotification {
      onclick: unknown = null;
      static get permission() {
        return localStorage.getItem('fake-notification-permission') ?? 'default';
      }
      static requestPermission() {
        log.asked += 1;
        localStorage.setItem('fake-notification-permission', 'granted');
        return Promise.resolve('granted');
      }
      constructor(title: string, options?: { body?: string }) {
        log.shown.push({ title, body: options?.body ?? '' });
      }
      close() {}
    }
    Object.defineProperty(window, 'Notification', { configurable: true, writable: true, value: FakeNotification });
    (window as unknown as { __notifications: typeof log }).__notifications = log;
  });
  const log = () => page.evaluate(() => (window as unknown as { __notifications: { asked: number; shown: { title: string; body: string }[] } }).__notifications);
  await signIn(page);
  const enable = page.getByRole('button', { name: 'Enable desktop notifications' });
  await expect(enable).toBeVisible();
  expect((await log()).asked).toBe(0);

  await enable.click();
  const disable = page.getByRole('button', { name: 'Disable desktop notifications' });
  await expect(disable).toHaveAttribute('aria-pressed', 'true');
  expect((await log()).asked).toBe(1);
  expect(await page.evaluate((email) => localStorage.getItem(`callback-inbox:notifications:${email}`), ADMIN_EMAIL)).toBe('on');
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');

  // Looking elsewhere: a desktop notification as well as the toast.
  await setVisibility(page, 'hidden');
  await sendCallback(request, callback('desktop-wf'));
  await expect.poll(async () => (await log()).shown).toContainEqual({ title: 'New LLM callback received', body: 'desktop-wf · workflow.completed' });
  // Looking at the page: the toast is enough.
  await setVisibility(page, 'visible');
  await sendCallback(request, callback('in-view-wf'));
  await expect(toasts(page, 'in-view-wf')).toHaveCount(1);
  expect((await log()).shown.map((n) => n.body)).not.toContain('in-view-wf · workflow.completed');

  await page.reload();
  await waitForHydration(page);
  await expect(page.getByRole('button', { name: 'Disable desktop notifications' })).toBeVisible();
  expect((await log()).asked).toBe(0);
  await page.getByRole('button', { name: 'Disable desktop notifications' }).click();
  await expect(page.getByRole('button', { name: 'Enable desktop notifications' })).toHaveAttribute('aria-pressed', 'false');
  expect(problems).toEqual([]);
});

test('a toast waits while the page is hidden, and goes 15 s after the admin could see it', async ({ page, request, problems }) => {
  test.setTimeout(90_000);
  await signInQuietly(page);
  await markAllViewed(page);
  await openLive(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
  await setVisibility(page, 'hidden');
  await sendCallback(request, callback('patient-wf'));
  const toast = toasts(page, 'patient-wf');
  await expect(toast).toHaveCount(1);
  await page.waitForTimeout(17_000);
  await expect(toast).toHaveCount(1);
  await setVisibility(page, 'visible');
  await page.waitForTimeout(12_000);
  await expect(toast).toHaveCount(1);
  await expect(toast).toHaveCount(0, { timeout: 6000 });
  expect(problems).toEqual([]);
});

test('toasts and the 1 MiB window in light, dark and at 360 px', async ({ browser, request }) => {
  test.setTimeout(120_000);
  const job = uniqueJob('shot');
  const id = await sendRawCallback(request, hugePayload(job));
  const variants = [
    { name: 'light', colorScheme: 'light' as const, viewport: { width: 1280, height: 800 } },
    { name: 'dark', colorScheme: 'dark' as const, viewport: { width: 1280, height: 800 } },
    { name: '360', colorScheme: 'light' as const, viewport: { width: 360, height: 740 } },
  ];
  for (const variant of variants) {
    const context = await browser.newContext({ colorScheme: variant.colorScheme, viewport: variant.viewport });
    const page = await context.newPage();
    const problems: string[] = [];
    await watchProblems(page, problems);
    await signInQuietly(page);
    await markAllViewed(page);
    await sendMany(request, 3, 'waiting-wf');
    await openLive(page);
    await expect(toasts(page, '3 unviewed callbacks')).toHaveCount(1);
    await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
    await sendCallback(request, { job_id: uniqueJob('shot'), event: 'workflow.failed', workflow_name: 'summarize-pdf' });
    await expect(toasts(page, 'summarize-pdf')).toHaveCount(1);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `screenshots/toasts-${variant.name}.png` });

    await openLive(page, `/admin/callbacks?callback=${id}`);
    await expect(page.getByRole('dialog').locator('.json-key', { hasText: '"k00000"' })).toBeVisible();
    await page.screenshot({ path: `screenshots/window-huge-${variant.name}.png` });
    await context.close();
    expect(problems).toEqual([]);
  }
});
