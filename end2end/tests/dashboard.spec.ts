import { test, expect, waitForHydration, signIn, signInQuietly, markAllViewed, sendCallback, uniqueJob, feedMode } from './fixtures';
import type { Page } from '@playwright/test';

/**
 * Start each test from "everything viewed" before the page opens, so no
 * summary of earlier tests' callbacks shows and only the test's own toast.
 */
async function freshInbox(page: Page) {
  await signInQuietly(page);
  await markAllViewed(page);
  await page.goto('/admin/callbacks');
  await waitForHydration(page);
  await expect(feedMode(page)).toHaveAttribute('data-feed', 'stream');
}

test('a new callback raises a toast whose window shows, moves, resizes and copies it', async ({ page, request, problems, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await freshInbox(page);
  const job = uniqueJob();
  const payload = {
    job_id: job,
    event: 'workflow.failed',
    workflow_name: 'summarize-pdf',
    status: 'failed',
    error_message: 'context length exceeded',
    result: { pages: 12, tokens: [1, 2, 3], ok: false, note: null },
  };
  const id = await sendCallback(request, payload);

  const toast = page.locator('.toast').filter({ hasText: 'summarize-pdf' });
  await expect(toast).toContainText('New LLM callback received');
  await expect(toast.locator('.toast-event')).toHaveText('workflow.failed');
  await expect(toast.locator('.toast-event')).toHaveClass(/failed/);
  await expect(page.locator('.toast-stack')).toHaveAttribute('aria-live', 'polite');
  await expect(page).toHaveTitle(/^\(\d+\) callback-inbox$/);
  await page.screenshot({ path: 'screenshots/toast.png' });

  await toast.getByRole('button', { name: 'View details' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toHaveAttribute('aria-modal', 'true');
  await expect(dialog).toHaveAccessibleName('summarize-pdf · workflow.failed');
  await expect(page.getByTestId('meta-job-id')).toHaveText(job);
  await expect(page.getByTestId('meta-event')).toHaveText('workflow.failed');
  await expect(page.getByTestId('meta-workflow')).toHaveText('summarize-pdf');
  await expect(page.getByTestId('meta-deliveries')).toHaveText('1');
  await expect(page.getByTestId('window-titlebar')).toHaveClass(/sig-valid/);
  await expect(page).toHaveURL(new RegExp(`callback=${id}`));
  await expect(page.getByRole('button', { name: 'Close window' })).toBeFocused();

  // The JSON viewer: keys, typed values, counts.
  await expect(dialog.locator('.json-key', { hasText: '"error_message"' })).toBeVisible();
  await expect(dialog.locator('.json-number', { hasText: '12' })).toBeVisible();
  await expect(dialog.locator('.json-bool', { hasText: 'false' })).toBeVisible();
  await expect(dialog.locator('.json-null')).toBeVisible();
  await expect(dialog.locator('.json-count').first()).toHaveText('6 keys');
  await page.screenshot({ path: 'screenshots/window-light.png' });

  // Drag by the title bar.
  const before = (await dialog.boundingBox())!;
  const bar = (await page.getByTestId('window-titlebar').boundingBox())!;
  await page.mouse.move(bar.x + 60, bar.y + 20);
  await page.mouse.down();
  await page.mouse.move(bar.x + 60 - 120, bar.y + 20 + 60, { steps: 6 });
  await page.mouse.up();
  const moved = (await dialog.boundingBox())!;
  expect(Math.round(moved.x - before.x)).toBe(-120);
  expect(Math.round(moved.y - before.y)).toBe(60);

  // The title bar cannot be dragged off the top of the screen.
  const bar2 = (await page.getByTestId('window-titlebar').boundingBox())!;
  await page.mouse.move(bar2.x + 60, bar2.y + 20);
  await page.mouse.down();
  await page.mouse.move(bar2.x + 60, bar2.y - 2000, { steps: 4 });
  await page.mouse.up();
  expect((await dialog.boundingBox())!.y).toBe(0);

  // Resize from the corner.
  const handle = (await page.getByTestId('window-resize').boundingBox())!;
  await page.mouse.move(handle.x + 8, handle.y + 8);
  await page.mouse.down();
  await page.mouse.move(handle.x + 8 - 100, handle.y + 8 - 50, { steps: 5 });
  await page.mouse.up();
  const resized = (await dialog.boundingBox())!;
  expect(Math.round(resized.width - moved.width)).toBe(-100);

  // Collapse and expand.
  await dialog.getByRole('button', { name: 'Collapse all' }).click();
  await expect(dialog.locator('.json-key', { hasText: '"error_message"' })).toHaveCount(0);
  await dialog.getByRole('button', { name: 'Expand all' }).click();
  await expect(dialog.locator('.json-key', { hasText: '"error_message"' })).toBeVisible();
  const resultToggle = dialog.locator('.json-row', { has: page.locator('.json-key', { hasText: '"result"' }) }).getByRole('button', { name: 'Collapse' });
  await resultToggle.click();
  await expect(dialog.locator('.json-key', { hasText: '"pages"' })).toHaveCount(0);
  await dialog.locator('.json-row', { has: page.locator('.json-key', { hasText: '"result"' }) }).getByRole('button', { name: 'Expand' }).click();
  await expect(dialog.locator('.json-key', { hasText: '"pages"' })).toBeVisible();

  // Copy the whole payload.
  await dialog.getByRole('button', { name: 'Copy JSON' }).click();
  await expect(dialog.getByRole('button', { name: 'Copied' })).toBeVisible();
  // The payload's text exactly as it was sent.
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toBe(JSON.stringify(payload));

  // Maximize, restore, minimize, restore.
  await page.getByRole('button', { name: 'Maximize window' }).click();
  const max = (await dialog.boundingBox())!;
  expect(Math.round(max.width)).toBe(page.viewportSize()!.width);
  await page.getByRole('button', { name: 'Restore window size' }).click();
  await page.getByRole('button', { name: 'Minimize window' }).click();
  await expect(dialog.locator('.window-body')).toHaveCount(0);
  await page.getByRole('button', { name: 'Restore window' }).click();
  await expect(page.getByTestId('meta-job-id')).toHaveText(job);

  // Escape closes it, wherever focus is, and the URL forgets it.
  await dialog.locator('.json-tree').click();
  await page.keyboard.press('Escape');
  await expect(page.getByRole('dialog')).toHaveCount(0);
  await expect(page).not.toHaveURL(/callback=/);
  expect(problems).toEqual([]);
});

test('a callback toasts once: not again after a reload, not in a second tab', async ({ page, context, request, problems }) => {
  await freshInbox(page);
  const second = await context.newPage();
  await second.goto('/admin/callbacks');
  await waitForHydration(second);
  // One tab reads the feed, the other hears from it.
  await expect(feedMode(second)).toHaveAttribute('data-feed', 'follower');
  const job = uniqueJob('once');
  await sendCallback(request, { job_id: job, event: 'workflow.completed', workflow_name: 'once-wf' });

  const toasts = (p: Page) => p.locator('.toast', { hasText: 'once-wf' });
  await expect.poll(async () => (await toasts(page).count()) + (await toasts(second).count()), { timeout: 10_000 }).toBe(1);
  await page.waitForTimeout(3000);
  expect((await toasts(page).count()) + (await toasts(second).count())).toBe(1);

  await page.reload();
  await waitForHydration(page);
  await page.waitForTimeout(3000);
  await expect(toasts(page)).toHaveCount(0);
  await second.close();
  expect(problems).toEqual([]);
});

test('history lists, filters and opens callbacks, and focus returns to the row', async ({ page, request, problems }) => {
  await freshInbox(page);
  const job = uniqueJob('hist');
  await sendCallback(request, { job_id: job, event: 'workflow.completed', workflow_name: 'history-wf' });
  await sendCallback(request, { job_id: uniqueJob('other'), event: 'llm.step.completed', workflow_name: 'history-wf', step_id: 's1' });

  await page.goto('/admin/callbacks');
  await waitForHydration(page);
  await expect(page.locator('table.history-table tbody tr').first()).toBeVisible();
  await page.getByLabel('Search').fill(job);
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(new RegExp(`q=${job}`));
  const rows = page.locator('table.history-table tbody tr');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText(job);
  await expect(rows.first().locator('.badge')).toHaveText('valid');

  const view = rows.first().getByRole('button', { name: 'View' });
  await view.click();
  await expect(page.getByTestId('meta-job-id')).toHaveText(job);
  await page.keyboard.press('Escape');
  await expect(page.getByRole('dialog')).toHaveCount(0);
  await expect(view).toBeFocused();
  await expect(rows.first()).toContainText('viewed');

  await page.getByRole('link', { name: 'Clear' }).click();
  await expect(page).toHaveURL(/\/admin\/callbacks$/);
  await expect(page.locator('table.history-table tbody tr')).not.toHaveCount(1);
  expect(problems).toEqual([]);
});

test('a deep link opens the window, and hostile payload text stays text', async ({ page, request, problems }) => {
  await signIn(page);
  const hostile = '</script><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
  const job = uniqueJob('xss');
  const id = await sendCallback(request, {
    job_id: job,
    event: 'workflow.failed',
    workflow_name: '<b>bold</b>',
    error_message: hostile,
    [hostile]: hostile,
  });
  await page.goto(`/admin/callbacks?callback=${id}`);
  await waitForHydration(page);
  const dialog = page.getByRole('dialog');
  await expect(page.getByTestId('meta-job-id')).toHaveText(job);
  await expect(page.getByTestId('meta-workflow')).toHaveText('<b>bold</b>');
  await expect(dialog.locator('.error-text')).toHaveText(hostile);
  await expect(dialog.locator('img')).toHaveCount(0);
  await expect(page.locator('b', { hasText: 'bold' })).toHaveCount(0);
  await page.waitForTimeout(500);
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
  expect(problems).toEqual([]);
});

test('dark mode and a 360 px screen: the window becomes a sheet', async ({ page, request, problems }) => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 360, height: 720 });
  await signIn(page);
  const id = await sendCallback(request, {
    job_id: uniqueJob('mobile'),
    event: 'workflow.completed',
    workflow_name: 'mobile-wf',
    result: { summary: 'A short summary of the document.', tokens: 1234 },
  });
  await page.goto('/admin/callbacks');
  await waitForHydration(page);
  await page.screenshot({ path: 'screenshots/history-dark-360.png', fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.goto(`/admin/callbacks?callback=${id}`);
  await waitForHydration(page);
  const dialog = page.getByRole('dialog');
  await expect(page.getByTestId('meta-workflow')).toHaveText('mobile-wf');
  const box = (await dialog.boundingBox())!;
  expect(Math.round(box.width)).toBe(360);
  await page.screenshot({ path: 'screenshots/window-dark-360.png' });
  expect(problems).toEqual([]);
});

test('a large payload opens at its first level and expands on demand', async ({ page, request, problems }) => {
  await signIn(page);
  const items = Array.from({ length: 3000 }, (_, n) => ({ n, text: `line ${n} `.repeat(8) }));
  const id = await sendCallback(request, { job_id: uniqueJob('big'), event: 'workflow.completed', workflow_name: 'big-wf', items });
  await page.goto(`/admin/callbacks?callback=${id}`);
  await waitForHydration(page);
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByText('large payload: nested levels start collapsed')).toBeVisible();
  const itemsRow = dialog.locator('.json-row', { has: page.locator('.json-key', { hasText: '"items"' }) });
  await expect(itemsRow.locator('.json-count')).toHaveText('3000 items');
  await expect(dialog.locator('.json-key', { hasText: '"text"' })).toHaveCount(0);
  await itemsRow.getByRole('button', { name: 'Expand' }).click();
  await expect(dialog.locator('.json-children .json-children .json-count').first()).toHaveText('2 keys');
  await expect(dialog.locator('.json-key', { hasText: '"text"' })).toHaveCount(0);
  expect(problems).toEqual([]);
});
