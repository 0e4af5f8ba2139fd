import { test as base, expect, Page, APIRequestContext } from '@playwright/test';
import { createHmac, randomUUID } from 'node:crypto';
import { ADMIN_EMAIL, ADMIN_PASSWORD, WEBHOOK_SECRET } from '../playwright.config';

/** Collects console errors and CSP violations; every test asserts there are none. */
export const test = base.extend<{ problems: string[] }>({
  problems: async ({ page }, use) => {
    const problems: string[] = [];
    await watchProblems(page, problems);
    await use(problems);
    expect(problems, 'console errors or CSP violations').toEqual([]);
  },
});

/** Collects `page`'s console errors, page errors and CSP violations into `problems`. */
export async function watchProblems(page: Page, problems: string[]) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
}

export { expect };

/** Waits until the WASM app has hydrated the page, so clicks reach Rust handlers. */
export async function waitForHydration(page: Page) {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30_000 });
}

export async function signIn(page: Page, next = '/admin/callbacks') {
  await signInAs(page, ADMIN_EMAIL, ADMIN_PASSWORD, next);
}

/** Signs in through the form, as a person would. */
export async function signInAs(page: Page, email: string, password: string, next = '/admin/callbacks') {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await waitForHydration(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname.startsWith('/admin/'));
  await waitForHydration(page);
}

/**
 * Signs in without opening a dashboard page (the session cookie lands in the
 * page's context), so no live feed starts before the test wants one.
 */
export async function signInQuietly(page: Page, email = ADMIN_EMAIL, password = ADMIN_PASSWORD) {
  const response = await page.request.post('/api/auth/login', {
    form: { email, password, next: '/admin/callbacks' },
    maxRedirects: 0,
  });
  expect([200, 302, 303]).toContain(response.status());
  const cookies = await page.context().cookies();
  expect(cookies.map((c) => c.name)).toContain('inbox_session');
}

/** Marks everything viewed for the signed-in user, so only new callbacks count. */
export async function markAllViewed(page: Page) {
  const response = await page.request.post('/api/callbacks/mark-all-viewed');
  expect(response.status()).toBe(200);
}

/** The page's toasts, or those mentioning `text`. */
export function toasts(page: Page, text?: string) {
  const all = page.locator('.toast-stack .toast');
  return text === undefined ? all : all.filter({ hasText: text });
}

/** How this tab hears of callbacks: starting, follower, stream, polling or stopped. */
export function feedMode(page: Page) {
  return page.locator('.toast-stack');
}

/**
 * Makes the page report itself hidden or visible, as when the admin switches
 * tabs: headless Chromium reports every page visible, whatever is in front.
 */
export async function setVisibility(page: Page, state: 'visible' | 'hidden') {
  await page.evaluate((state) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  }, state);
  expect(await page.evaluate(() => document.visibilityState)).toBe(state);
}

/** Sends a signed callback like the LLM service would; returns the stored id. */
export async function sendCallback(request: APIRequestContext, payload: Record<string, unknown>): Promise<string> {
  const body = JSON.stringify(payload);
  const signature = createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex');
  const response = await request.post('/api/webhooks/llm-callback', {
    data: body,
    headers: { 'content-type': 'application/json', 'x-webhook-signature': `sha256=${signature}` },
  });
  expect(response.status()).toBe(200);
  const answer = await response.json();
  return answer.id as string;
}

/** Sends a body as it is (JSON that JavaScript could not round-trip, say), signed. */
export async function sendRawCallback(request: APIRequestContext, body: string): Promise<string> {
  const signature = createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex');
  const response = await request.post('/api/webhooks/llm-callback', {
    data: Buffer.from(body, 'utf8'),
    headers: { 'content-type': 'application/json', 'x-webhook-signature': `sha256=${signature}` },
  });
  expect(response.status()).toBe(200);
  return (await response.json()).id as string;
}

export function uniqueJob(prefix = 'job'): string {
  return `${prefix}_${randomUUID().slice(0, 8)}`;
}
