import { randomUUID } from 'node:crypto';
import { test, expect, signIn, waitForHydration, sendCallback, markAllViewed, uniqueJob } from './fixtures';
import { BASE_URL } from '../playwright.config';

test('an admin creates a claude-code source, sees its secret once, and its hook events are filtered by source', async ({
  page,
  context,
  request,
  problems,
}) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page, '/admin/settings');
  const section = page.getByRole('region', { name: 'Sources' });
  await expect(section.locator('li[data-source="llm-callback"]')).toBeVisible();

  // Create it from the form; the preset's hint follows the choice.
  const name = `cc-${randomUUID().slice(0, 8)}`;
  await section.getByLabel('Name', { exact: true }).fill(name);
  await section.getByLabel('Preset').selectOption('claude-code');
  await expect(section.locator('#source-preset-hint')).toContainText('bearer token');
  await section.getByRole('button', { name: 'Create source' }).click();

  // The secret is shown once, with a Copy button and the hooks block, which
  // names the variable and never the secret itself.
  const created = page.getByTestId('created-source');
  await expect(created).toContainText(`Source ${name} created`);
  await expect(created).toContainText(`${BASE_URL}/api/webhooks/${name}`);
  const secret = (await page.getByTestId('created-secret').textContent())!.trim();
  expect(secret.length).toBeGreaterThanOrEqual(16);
  await created.getByRole('button', { name: `Copy the secret of ${name}` }).click();
  await expect(created.locator('.invite-password .copy-status')).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
  const example = page.getByTestId('created-example');
  await expect(example).toContainText('"Authorization": "Bearer $CALLBACK_INBOX_TOKEN"');
  await expect(example).toContainText(`/api/webhooks/${name}`);
  await expect(example).not.toContainText(secret);
  await expect(section.getByLabel('Name', { exact: true })).toHaveValue('');

  // Listed with its URL and the secret masked; Reveal shows the same one.
  const card = section.locator(`li[data-source="${name}"]`);
  await expect(card.getByTestId('source-url')).toHaveText(`${BASE_URL}/api/webhooks/${name}`);
  await expect(card.locator('.badge', { hasText: 'claude-code' })).toBeVisible();
  const masked = card.getByTestId('source-secret-value');
  await expect(masked).not.toContainText(secret);
  await card.getByRole('button', { name: /^Reveal the secret / }).click();
  await expect(masked).toHaveText(secret);
  await card.getByRole('button', { name: /^Hide the secret / }).click();
  await expect(masked).not.toContainText(secret);
  await expect(card.locator('dl.mapping-grid')).toContainText('json:/session_id');

  await created.getByRole('button', { name: 'Done' }).click();
  await expect(page.getByTestId('created-source')).toHaveCount(0);

  // One Claude Code hook event, as its HTTP hook sends it; and one callback
  // of the built-in source, which the source filter must leave out.
  const session = randomUUID();
  const hook = await request.post(`/api/webhooks/${name}`, {
    data: JSON.stringify({
      session_id: session,
      hook_event_name: 'Stop',
      cwd: '/home/dev/project',
      transcript_path: '/home/dev/.claude/projects/project/transcript.jsonl',
    }),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
  });
  expect(hook.status()).toBe(204);
  expect(hook.headers()['x-callback-inbox-id']).toMatch(/^[0-9a-f-]{36}$/);
  const job = uniqueJob('src');
  await sendCallback(request, { job_id: job, event: 'workflow.completed', workflow_name: 'sources-wf' });
  await markAllViewed(page);

  await page.goto('/admin/callbacks');
  await waitForHydration(page);
  const rows = page.locator('table.history-table tbody tr');
  const hookRow = rows.filter({ hasText: session });
  await expect(hookRow.getByTestId('row-source')).toHaveText(name);
  await expect(hookRow).toContainText('Stop');
  await expect(rows.filter({ hasText: job }).getByTestId('row-source')).toHaveText('llm-callback');

  // The source filter narrows the list to that one event.
  const filter = page.getByRole('combobox', { name: 'Source' });
  await filter.selectOption(name);
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(new RegExp(`[?&]source=${name}(&|$)`));
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText(session);
  await expect(filter).toHaveValue(name);

  // Its session links to every callback of that session from that source.
  await rows.first().getByRole('link', { name: `Every callback of ${session} from ${name}` }).click();
  await expect(page).toHaveURL(`${BASE_URL}/admin/callbacks?group=${session}&source=${name}`);
  await expect(page.getByLabel('Job or session')).toHaveValue(session);
  await expect(rows).toHaveCount(1);
  await expect(rows.first().getByTestId('row-source')).toHaveText(name);

  // The deliveries page filters by source too.
  await page.goto('/admin/deliveries');
  await waitForHydration(page);
  await page.getByRole('combobox', { name: 'Source' }).selectOption(name);
  await expect(page).toHaveURL(new RegExp(`[?&]source=${name}(&|$)`));
  const requests = page.locator('table.deliveries-table tbody tr');
  await expect(requests).toHaveCount(1);
  await expect(requests.first().locator('.source-tag')).toHaveText(name);
  await expect(requests.first().locator('.badge').first()).toHaveText('accepted');
  expect(problems).toEqual([]);
});
