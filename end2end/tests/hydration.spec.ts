import { test, expect, waitForHydration, signIn, sendCallback, uniqueJob } from './fixtures';

// Every admin page, loaded whole (and loaded again, as a reload does), must
// hydrate without a mismatch: the server's HTML and the browser's first
// render agree, no hydration error reaches the console (the `problems`
// fixture fails the test on any console error), and the page answers a
// click afterwards. A page that rendered one branch on the server and
// another in the browser goes dead silently; this is the guard.
const PAGES = ['/admin/callbacks', '/admin/deliveries', '/admin/settings', '/admin/users'];

test('every admin page hydrates cleanly on load and on reload, and answers afterwards', async ({
  page,
  request,
  problems,
}) => {
  // Something in every list, so the pages render their full branches.
  await sendCallback(request, { job_id: uniqueJob('hydrate'), event: 'workflow.completed' });
  await signIn(page, PAGES[0]);
  for (const path of PAGES) {
    for (const load of ['load', 'reload']) {
      if (load === 'load') {
        await page.goto(path);
      } else {
        await page.reload();
      }
      await waitForHydration(page);
      const toggle = page.getByRole('button', { name: 'Switch between light and dark theme' });
      const before = await page.locator('html').getAttribute('data-theme');
      await toggle.click();
      await expect(page.locator('html'), `${path} (${load}) answers a click`).not.toHaveAttribute(
        'data-theme',
        before ?? '',
      );
      // And again, back the other way.
      const first = await page.locator('html').getAttribute('data-theme');
      await toggle.click();
      await expect(page.locator('html')).not.toHaveAttribute('data-theme', first ?? '');
      expect(problems, `${path} (${load})`).toEqual([]);
    }
  }
});
