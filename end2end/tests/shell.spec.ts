import { test, expect, waitForHydration } from './fixtures';

test('root redirects to the callbacks tab', async ({ page, problems }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/admin\/callbacks$/);
  await expect(page.getByRole('link', { name: 'Callbacks' })).toHaveAttribute('aria-current', 'page');
  expect(problems).toEqual([]);
});

test('the footer shows version and uptime from a server function after hydration', async ({ page, problems }) => {
  await page.goto('/admin/callbacks');
  await waitForHydration(page);
  await expect(page.getByTestId('server-info')).toHaveText(/callback-inbox v\d+\.\d+\.\d+ · up \d+/);
  expect(problems).toEqual([]);
});

test('the theme toggle switches light and dark and survives a reload', async ({ page, problems }) => {
  await page.emulateMedia({ colorScheme: 'light' });
  await page.goto('/admin/callbacks');
  await waitForHydration(page);
  const html = page.locator('html');
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const lightBackground = await background();

  await page.getByRole('button', { name: 'Switch between light and dark theme' }).click();
  await expect(html).toHaveAttribute('data-theme', 'dark');
  expect(await background()).not.toEqual(lightBackground);

  await page.reload();
  await waitForHydration(page);
  await expect(html).toHaveAttribute('data-theme', 'dark');
  await page.screenshot({ path: 'screenshots/callbacks-dark.png', fullPage: true });

  await page.getByRole('button', { name: 'Switch between light and dark theme' }).click();
  await expect(html).toHaveAttribute('data-theme', 'light');
  expect(await background()).toEqual(lightBackground);
  expect(problems).toEqual([]);
});

test('the shell is usable at 320 px wide', async ({ page, problems }) => {
  await page.setViewportSize({ width: 320, height: 640 });
  await page.goto('/admin/callbacks');
  await waitForHydration(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: 'screenshots/callbacks-320.png', fullPage: true });
  expect(problems).toEqual([]);
});
