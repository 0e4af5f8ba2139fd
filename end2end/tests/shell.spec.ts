import { test, expect, waitForHydration, signIn } from './fixtures';

test('admin pages send visitors without a session to the sign-in page', async ({ page, problems }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login\?next=%2Fadmin%2Fcallbacks$|\/login\?next=\/admin\/callbacks$/);
  await expect(page.getByLabel('Email')).toBeVisible();
  await expect(page.getByLabel('Password')).toBeVisible();
  await page.screenshot({ path: 'screenshots/login.png' });
  expect(problems).toEqual([]);
});

test('a wrong password shows a generic error and keeps the visitor on the form', async ({ page, problems }) => {
  await page.goto('/login');
  await waitForHydration(page);
  await page.getByLabel('Email').fill('e2e-admin@example.com');
  await page.getByLabel('Password').fill('not the right password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
  await expect(page).toHaveURL(/\/login/);
  // The failed request's 401 is expected; nothing else may be logged.
  const unexpected = problems.filter((p) => !p.includes('401'));
  problems.length = 0;
  expect(unexpected).toEqual([]);
});

test('sign in, land on the admin shell, sign out, and be sent back to sign in', async ({ page, problems }) => {
  await signIn(page);
  await expect(page).toHaveURL(/\/admin\/callbacks$/);
  await expect(page.getByRole('link', { name: 'Callbacks' })).toHaveAttribute('aria-current', 'page');
  await expect(page.getByText('e2e-admin@example.com')).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto('/admin/callbacks');
  await expect(page).toHaveURL(/\/login\?next=/);
  expect(problems).toEqual([]);
});

test('the footer shows version and uptime from a server function after hydration', async ({ page, problems }) => {
  await signIn(page);
  await expect(page.getByTestId('server-info')).toHaveText(/callback-inbox v\d+\.\d+\.\d+ · up \d+/);
  expect(problems).toEqual([]);
});

test('the theme toggle switches light and dark and survives a reload', async ({ page, problems }) => {
  await page.emulateMedia({ colorScheme: 'light' });
  await signIn(page);
  const html = page.locator('html');
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const lightBackground = await background();

  await page.getByRole('button', { name: 'Switch between light and dark theme' }).click();
  await expect(html).toHaveAttribute('data-theme', 'dark');
  expect(await background()).not.toEqual(lightBackground);

  await page.reload();
  await waitForHydration(page);
  await expect(html).toHaveAttribute('data-theme', 'dark');

  await page.getByRole('button', { name: 'Switch between light and dark theme' }).click();
  await expect(html).toHaveAttribute('data-theme', 'light');
  expect(await background()).toEqual(lightBackground);
  expect(problems).toEqual([]);
});

test('the shell is usable at 320 px wide', async ({ page, problems }) => {
  await page.setViewportSize({ width: 320, height: 640 });
  await signIn(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: 'screenshots/callbacks-320.png', fullPage: true });
  expect(problems).toEqual([]);
});
