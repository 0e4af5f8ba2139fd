import { test as base, expect, Page, APIRequestContext } from '@playwright/test';
import { createHmac, randomUUID } from 'node:crypto';
import { ADMIN_EMAIL, ADMIN_PASSWORD, WEBHOOK_SECRET } from '../playwright.config';

/** Collects console errors and CSP violations; every test asserts there are none. */
export const test = base.extend<{ problems: string[] }>({
  problems: async ({ page }, use) => {
    const problems: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    await use(problems);
    expect(problems, 'console errors or CSP violations').toEqual([]);
  },
});

export { expect };

/** Waits until the WASM app has hydrated the page, so clicks reach Rust handlers. */
export async function waitForHydration(page: Page) {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30_000 });
}

export async function signIn(page: Page, next = '/admin/callbacks') {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await waitForHydration(page);
  await page.getByLabel('Email').fill(ADMIN_EMAIL);
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname.startsWith('/admin/'));
  await waitForHydration(page);
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

export function uniqueJob(prefix = 'job'): string {
  return `${prefix}_${randomUUID().slice(0, 8)}`;
}
