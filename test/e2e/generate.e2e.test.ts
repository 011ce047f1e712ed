/**
 * Generation in a real browser: the production Next build with the API, socket.io and an engine
 * worker, on the reference fixture models (installed under test ids, so the test does not
 * wait for the demo models and stays quick). Type a prompt, watch the preview update and the
 * progress bar advance, get the image; reload and find it in the gallery; cancel a long job;
 * a bad value is named in the form.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { browserBinary, launchChromium } from '../helpers/browser';
import { buildIfStale } from '../../scripts/start.mjs';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { REPO_ROOT } from '../helpers/fixtures';
import { fixtureManifests } from '../helpers/generate-models';


const form = (page: Page) => page.getByRole('region', { name: 'Prompt' });

async function setAdvanced(page: Page, values: Record<string, string>): Promise<void> {
  if (!(await page.locator('details').first().evaluate((d) => (d as HTMLDetailsElement).open))) await page.getByText('Advanced').click();
  for (const [k, v] of Object.entries(values)) await page.getByTestId(`param-${k}`).fill(v);
}

describe('generate in a browser', { skip: browserBinary.skip }, () => {
  let studio: StudioServer;
  let url: string;
  let browser: Browser;
  let dataDir: string;
  let manifests: string;

  before(async () => {
    buildIfStale({ log: (m: string) => console.log(`# ${m}`) });
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-e2e-gen-'));
    manifests = fixtureManifests();
    studio = await createStudioServer({ config: loadConfig({ CLIP_STUDIO_DATA: dataDir }), dir: REPO_ROOT, manifestsDir: manifests });
    url = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
    browser = await launchChromium();
  }, { timeout: 400_000 });

  after(async () => {
    await browser?.close();
    await studio?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (manifests) rmSync(manifests, { recursive: true, force: true });
  });

  it('streams previews and progress, shows the image, keeps it in the gallery, cancels, and names bad fields', { timeout: 240_000 }, async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(url);
    await page.getByTestId('active-model').filter({ hasText: 'fixture-clip' }).waitFor({ timeout: 60_000 });

    // Record every preview image and progress value the page shows.
    await page.evaluate(() => {
      const w = window as unknown as { seen: { previews: string[]; progress: number[] } };
      w.seen = { previews: [], progress: [] };
      new MutationObserver(() => {
        const img = document.querySelector('[data-testid=preview]') as HTMLImageElement | null;
        if (img && w.seen.previews.at(-1) !== img.src) w.seen.previews.push(img.src);
        const bar = document.querySelector('[data-testid=progress]') as HTMLProgressElement | null;
        if (bar && w.seen.progress.at(-1) !== bar.value) w.seen.progress.push(bar.value);
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    await page.getByTestId('prompt').fill('a red circle on a blue background');
    await setAdvanced(page, { steps: '10', previewEvery: '2', size: '16', cutn: '1', seed: '3' });
    await form(page).getByRole('button', { name: 'Generate' }).click();
    const result = page.getByTestId('result');
    await result.waitFor({ timeout: 180_000 });
    await page.waitForFunction(() => (document.querySelector('[data-testid=result]') as HTMLImageElement | null)?.naturalWidth === 16);
    const seen = await page.evaluate(() => (window as unknown as { seen: { previews: string[]; progress: number[] } }).seen);
    assert.ok(new Set(seen.previews).size >= 3, `at least three preview updates, saw ${seen.previews.length}`);
    assert.ok(seen.progress.length >= 3, `the progress bar moved: ${seen.progress.join(', ')}`);
    for (let i = 1; i < seen.progress.length; i++) assert.ok(seen.progress[i]! > seen.progress[i - 1]!, `progress advances: ${seen.progress.join(', ')}`);
    const src = await result.getAttribute('src');

    await page.reload();
    const item = page.getByTestId('gallery-item').first();
    await item.waitFor({ timeout: 30_000 });
    assert.match((await item.textContent()) ?? '', /a red circle on a blue background/);
    assert.equal(await item.locator('img').getAttribute('src'), src);
    await item.getByRole('button', { name: 'Use this recipe' }).click();
    assert.equal(await page.getByTestId('prompt').inputValue(), 'a red circle on a blue background');
    assert.equal(await page.getByTestId('param-seed').inputValue(), '3');

    // Cancel a long job.
    await setAdvanced(page, { steps: '1000', previewEvery: '0' });
    await form(page).getByRole('button', { name: 'Generate' }).click();
    await page.getByTestId('progress').waitFor({ timeout: 60_000 });
    await form(page).getByRole('button', { name: 'Cancel' }).click();
    await page.getByTestId('cancelled').waitFor({ timeout: 30_000 });

    // A bad value is named.
    await setAdvanced(page, { steps: '0' });
    await form(page).getByRole('button', { name: 'Generate' }).click();
    await page.getByTestId('form-error').filter({ hasText: 'steps' }).waitFor({ timeout: 10_000 });
    assert.match((await page.getByTestId('form-error').textContent()) ?? '', /between 1 and 2000/);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
});
