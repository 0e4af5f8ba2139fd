import { spawn, ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, waitForHydration, toasts, feedMode } from './fixtures';

// A server of this test's own (the shared one must not restart under the
// other tests): same port and database before and after a restart.
const PORT = Number(process.env.E2E_RESTART_PORT ?? 3180);
const BASE = `http://127.0.0.1:${PORT}`;
const SECRET = 'restart-secret-0123456789';
const EMAIL = 'restart@example.com';
const PASSWORD = 'restart password 123';
const binary = process.env.E2E_BINARY ?? '../target/debug/callback-inbox';
const database = join(mkdtempSync(join(tmpdir(), 'restart-e2e-')), 'inbox.db');

async function startServer(): Promise<ChildProcess> {
  const server = spawn(binary, [], {
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${database}`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${PORT}`,
      LEPTOS_SITE_ROOT: '../target/site',
      LLM_WEBHOOK_SECRET: SECRET,
      INBOX_ADMIN_EMAIL: EMAIL,
      INBOX_ADMIN_PASSWORD: PASSWORD,
      INBOX_POLL_INTERVAL_SECS: '2',
      RUST_LOG: 'warn',
    },
    stdio: 'ignore',
  });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${BASE}/healthz`)).ok) return server;
    } catch { /* not up yet */ }
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error('the server did not start');
}

async function stopServer(server: ChildProcess) {
  const exited = new Promise((done) => server.once('exit', done));
  server.kill('SIGKILL');
  await exited;
}

async function send(workflow: string) {
  const body = JSON.stringify({ job_id: workflow, event: 'workflow.completed', workflow_name: workflow });
  const signature = createHmac('sha256', SECRET).update(body).digest('hex');
  const response = await fetch(`${BASE}/api/webhooks/llm-callback`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', 'x-webhook-signature': `sha256=${signature}` },
  });
  expect(response.status).toBe(200);
}

test('after a server restart the feed resumes without missing or repeating a toast', async ({ page, problems }) => {
  test.setTimeout(120_000);
  let server = await startServer();
  // Counts every toast as it is added, so one shown twice is caught even
  // after toasts dismiss themselves.
  await page.addInitScript(() => {
    const seen: Record<string, number> = {};
    (window as unknown as { __toastsSeen: Record<string, number> }).__toastsSeen = seen;
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node instanceof HTMLElement && node.matches('.toast')) {
            const name = node.querySelector('.toast-workflow')?.textContent ?? '';
            seen[name] = (seen[name] ?? 0) + 1;
          }
        }
      }
    }).observe(document, { childList: true, subtree: true });
  });
  try {
    await page.goto(`${BASE}/login`);
    await waitForHydration(page);
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.pathname === '/admin/callbacks');
    await waitForHydration(page);
    await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');

    await send('before-restart');
    await expect(toasts(page, 'before-restart')).toHaveCount(1, { timeout: 5_000 });

    // The server dies and comes back on the same port and database.
    await stopServer(server);
    server = await startServer();
    await send('right-after-restart');
    await expect(toasts(page, 'right-after-restart')).toHaveCount(1, { timeout: 15_000 });
    // The reader goes back to the stream, which resumes after its last id.
    await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream', { timeout: 45_000 });
    await send('on-the-stream-again');
    await expect(toasts(page, 'on-the-stream-again')).toHaveCount(1, { timeout: 5_000 });

    // Nothing came twice.
    await page.waitForTimeout(3_000);
    const seen = await page.evaluate(() => (window as unknown as { __toastsSeen: Record<string, number> }).__toastsSeen);
    expect(seen).toEqual({ 'before-restart': 1, 'right-after-restart': 1, 'on-the-stream-again': 1 });
  } finally {
    await stopServer(server);
    // While the server was down the browser logged failed requests; those
    // are the point of this test, not problems.
    problems.splice(0, problems.length, ...problems.filter((p) => !p.includes('Failed to load resource')));
  }
});
