import { defineConfig } from '@playwright/test';

// The server under test: the real binary (built by `cargo leptos build`) on a
// port of its own, with a fresh SQLite file, a known secret and a short poll.
export const PORT = Number(process.env.E2E_PORT ?? 3100);
export const BASE_URL = `http://127.0.0.1:${PORT}`;
export const WEBHOOK_SECRET = 'e2e-secret-for-tests-only';
export const ADMIN_EMAIL = 'e2e-admin@example.com';
export const ADMIN_PASSWORD = 'e2e admin password 123';
const binary = process.env.E2E_BINARY ?? '../target/debug/callback-inbox';
// The server's files and the test output; separate runs (other ports) can
// point these elsewhere so they do not delete each other's database.
export const TMP_DIR = process.env.E2E_TMP ?? '.tmp';
const outputDir = process.env.E2E_OUTPUT ?? './test-results';
const reportDir = process.env.E2E_REPORT ?? './playwright-report';

export default defineConfig({
  testDir: './tests',
  globalTeardown: './global-teardown.ts',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  // No retries: a test that passes only the second time is a failing test.
  retries: 0,
  reporter: process.env.CI ? 'list' : [['list'], ['html', { open: 'never', outputFolder: reportDir }]],
  outputDir,
  use: {
    baseURL: BASE_URL,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      // Without the network flags Chromium keeps calling hosts this machine cannot reach.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
  webServer: {
    // stderr (where panics go) is kept in a file that global-teardown checks.
    command: `rm -rf ${TMP_DIR} && mkdir -p ${TMP_DIR} && exec ${binary} 2>${TMP_DIR}/server-stderr.log`,
    url: `${BASE_URL}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      DATABASE_URL: `sqlite://${TMP_DIR}/e2e.db`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${PORT}`,
      LEPTOS_SITE_ROOT: '../target/site',
      LLM_WEBHOOK_SECRET: WEBHOOK_SECRET,
      INBOX_POLL_INTERVAL_SECS: '1',
      INBOX_ADMIN_EMAIL: ADMIN_EMAIL,
      INBOX_ADMIN_PASSWORD: ADMIN_PASSWORD,
      INBOX_LOGIN_DELAY_MS: '0',
      RUST_LOG: 'info',
    },
  },
});
