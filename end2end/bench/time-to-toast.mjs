// Time to toast: from the webhook's 200 to the toast being in the page, for
// the live stream and for polling alone (the stream blocked), in one run.
//
//   cd end2end && node bench/time-to-toast.mjs [count]
//
// It starts the server binary itself (E2E_BINARY, default the debug build,
// with the site in ../target/site) on a fresh database with the default
// 10 s poll interval, signs in with Chromium and sends `count` signed
// callbacks with the stream on, 300 ms apart, and count / 5 with polling
// alone, 2 s apart (so one poll brings no more toasts than the stack shows). A MutationObserver in the page stamps
// each toast as it is added; both clocks are this machine's.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from '@playwright/test';

const COUNT = Number(process.argv[2] ?? 200);
const PORT = 3900;
const BASE = `http://127.0.0.1:${PORT}`;
const SECRET = 'bench-secret-0123456789';
const EMAIL = 'bench@example.com';
const PASSWORD = 'bench password 1234';
const binary = process.env.E2E_BINARY ?? '../target/debug/callback-inbox';

const dir = mkdtempSync(join(tmpdir(), 'toast-bench-'));
const server = spawn(binary, [], {
  env: {
    ...process.env,
    DATABASE_URL: `sqlite://${dir}/bench.db`,
    LEPTOS_SITE_ADDR: `127.0.0.1:${PORT}`,
    LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? '../target/site',
    LLM_WEBHOOK_SECRET: SECRET,
    INBOX_ADMIN_EMAIL: EMAIL,
    INBOX_ADMIN_PASSWORD: PASSWORD,
    RUST_LOG: 'warn',
  },
  stdio: 'ignore',
});
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
for (let i = 0; i < 200; i++) {
  try { if ((await fetch(`${BASE}/healthz`)).ok) break; } catch { /* not up yet */ }
  await sleep(50);
}

async function send(job) {
  const body = JSON.stringify({ job_id: job, event: 'workflow.completed', workflow_name: job });
  const signature = createHmac('sha256', SECRET).update(body).digest('hex');
  const response = await fetch(`${BASE}/api/webhooks/llm-callback`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', 'x-webhook-signature': `sha256=${signature}` },
  });
  if (response.status !== 200) throw new Error(`webhook answered ${response.status}`);
  return Date.now();
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function measure(browser, mode) {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (mode === 'poll only') {
    await page.route('**/api/callbacks/stream**', (route) => route.abort());
  }
  await page.addInitScript(() => {
    window.__toasts = {};
    new MutationObserver((records) => {
      const now = performance.timeOrigin + performance.now();
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (!(node instanceof HTMLElement)) continue;
          // Only toasts count, not the history table refreshing beside them.
          const toasts = node.matches('.toast') ? [node] : [...node.querySelectorAll('.toast')];
          if (toasts.length === 0 && !node.closest('.toast')) continue;
          const text = toasts.length ? toasts.map((t) => t.textContent).join(' ') : node.textContent ?? '';
          for (const match of text.matchAll(/ttt_[a-z]+_\d+/g)) {
            window.__toasts[match[0]] ??= now;
          }
        }
      }
    }).observe(document, { childList: true, subtree: true });
  });
  await page.goto(`${BASE}/login`);
  await page.waitForSelector('body[data-hydrated="true"]');
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname.startsWith('/admin/'));
  await page.waitForSelector('body[data-hydrated="true"]');
  await sleep(3000); // the feed is connected (or, for polling, the first poll is done)

  const tag = mode === 'push' ? 'push' : 'poll';
  const count = mode === 'push' ? COUNT : Math.ceil(COUNT / 5);
  const sent = {};
  for (let i = 0; i < count; i++) {
    const job = `ttt_${tag}_${i}`;
    sent[job] = await send(job);
    await sleep(mode === 'push' ? 300 : 2000);
  }
  await sleep(mode === 'push' ? 3000 : 12000);
  const seen = await page.evaluate(() => window.__toasts);
  const delays = Object.entries(sent)
    .filter(([job]) => seen[job] !== undefined)
    .map(([job, at]) => seen[job] - at)
    .sort((a, b) => a - b);
  await context.close();
  return { mode, count, toasted: delays.length, p50: percentile(delays, 50), p99: percentile(delays, 99) };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
try {
  for (const mode of ['push', 'poll only']) {
    const result = await measure(browser, mode);
    console.log(
      `${result.mode.padEnd(9)}  ${result.toasted}/${result.count} toasted  ` +
      `p50 ${result.p50?.toFixed(0)} ms  p99 ${result.p99?.toFixed(0)} ms`,
    );
  }
} finally {
  await browser.close();
  server.kill();
}
