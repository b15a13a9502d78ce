// A person voting in a browser, without JavaScript on the pages: headless Chromium (driven by
// playwright-core) signs in with an issued code, chooses on the ballot form, sees the receipt
// and the results page counting the vote. Prints one JSON line of what it saw.
// Usage: node vote.mjs <base-url> <voter-id> <code> <profile-dir>
import { chromium } from 'playwright-core';

const [base, voter, code, profile] = process.argv.slice(2);
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  javaScriptEnabled: false,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update',
    '--disable-sync'],
});
const seen = {};
try {
  const page = await browser.newPage();
  await page.goto(`${base}/login`);
  await page.fill('input[name=voter_id]', voter);
  await page.fill('input[name=code]', 'ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-Z');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  seen.wrong_code = await page.textContent('#error');
  await page.fill('input[name=voter_id]', voter);
  await page.fill('input[name=code]', code);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  seen.after_login = new URL(page.url()).pathname;
  await page.check('input[name=option_id][value="2"]');
  await Promise.all([page.waitForNavigation(), page.click('#ballot button[type=submit]')]);
  seen.after_vote = new URL(page.url()).pathname;
  seen.choice = await page.textContent('#choice');
  seen.receipt = await page.textContent('#receipt');
  await page.goto(`${base}/elections/1/results`);
  for (let i = 0; i < 40 && !/1 vote counted/.test(await page.textContent('#total')); i++) {
    await page.waitForTimeout(500);
    await page.reload();
  }
  seen.total = await page.textContent('#total');
  seen.refresh = await page.getAttribute('meta[http-equiv=refresh]', 'content');
} catch (e) {
  seen.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
