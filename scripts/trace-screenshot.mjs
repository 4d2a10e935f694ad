// Screenshots one trace in Arize Phoenix: the span tree with `warden.guard prompt` selected and
// its events (`warden.rule`, `gen_ai.evaluation.result`) open. Run by scripts/trace-screenshot.sh:
//   PLAYWRIGHT_DIR=DIR node scripts/trace-screenshot.mjs TRACE_URL OUT.png
// PLAYWRIGHT_DIR holds node_modules/playwright-core; CHROMIUM is the browser (/usr/bin/chromium).
import { createRequire } from 'node:module';

const [url, out] = process.argv.slice(2);
if (!url || !out || !process.env.PLAYWRIGHT_DIR) {
  console.error('usage: PLAYWRIGHT_DIR=DIR node trace-screenshot.mjs TRACE_URL OUT.png');
  process.exit(2);
}
const { chromium } = createRequire(`${process.env.PLAYWRIGHT_DIR}/`)('playwright-core');

// 1600x1000 pixels of a 2000x1250 CSS-pixel page: both events fit, and the text stays legible.
const scale = 0.8;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const context = await browser.newContext({
    viewport: { width: Math.round(1600 / scale), height: Math.round(1000 / scale) },
    deviceScaleFactor: scale,
  });
  // Phoenix asks for web fonts and its latest version; nothing leaves this machine.
  await context.route((u) => u.hostname !== '127.0.0.1' && u.hostname !== 'localhost', (r) => r.abort());
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(url, { waitUntil: 'load' });
  const guard = page.getByText('warden.guard prompt', { exact: true }).first();
  await guard.waitFor();
  // More room for the trace: the side navigation folded to its icons.
  const collapse = page.getByRole('button', { name: 'Collapse side navigation' });
  if (await collapse.isVisible()) await collapse.click();
  await guard.click();
  await page.getByRole('tab', { name: /Events/ }).click();
  for (const name of ['warden.rule', 'gen_ai.evaluation.result']) {
    await page.getByText(name, { exact: true }).first().click();
  }
  await page.getByText('warden.rule.id', { exact: true }).first().waitFor();
  await page.waitForTimeout(1000);
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
