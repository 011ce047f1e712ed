/**
 * Captioning in a real browser: the production Next build with the API and socket.io, the
 * bundled demo CLIP ranking, and a local OpenAI-compatible server as the configured LLM. Pick
 * an image, watch the rounds arrive, get a ranked list with score bars, supporting terms and
 * alt text; drop a second image; the API key never reaches the page.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { browserBinary, launchChromium } from '../helpers/browser';
import { buildIfStale } from '../../scripts/start.mjs';
import { encodePng, rasterizeSvg } from '../../engine/index';
import { loadConfig } from '../../server/config';
import { createStudioServer, type StudioServer } from '../../server/create';
import { REPO_ROOT } from '../helpers/fixtures';
import { chatAnswer, startLlmServer, type LlmServer } from '../helpers/llm-server';

const KEY = 'sk-e2e-never-in-the-browser';

describe('caption in a browser', { skip: browserBinary.skip }, () => {
  let studio: StudioServer;
  let llm: LlmServer;
  let url: string;
  let browser: Browser;
  let dataDir: string;
  let redCircle: string;
  let greenSquare: Buffer;

  before(async () => {
    buildIfStale({ log: (m: string) => console.log(`# ${m}`) });
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-e2e-caption-'));
    const svg = (bg: string, body: string) => `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128"><rect width="128" height="128" fill="${bg}"/>${body}</svg>`;
    redCircle = join(dataDir, 'red-circle.png');
    writeFileSync(redCircle, await encodePng((await rasterizeSvg(svg('#1e50dc', '<circle cx="64" cy="64" r="36" fill="#e01e1e"/>'), 128)).data, 128, 128));
    greenSquare = await encodePng((await rasterizeSvg(svg('#808080', '<rect x="30" y="30" width="68" height="68" fill="#1eaa32"/>'), 128)).data, 128, 128);
    // The LLM proposes four captions, then refines with one more each round.
    let round = 0;
    llm = await startLlmServer((req) => {
      const text = JSON.stringify(req.body.messages);
      if (/variations/.test(text)) return chatAnswer(JSON.stringify([`a red circle in the middle ${++round}`]));
      return chatAnswer(JSON.stringify(['a blue circle on a red background', 'a red circle on a blue background', 'a green square on a gray background', 'a drawing of a house']));
    });
    const config = loadConfig({ CLIP_STUDIO_DATA: dataDir, OPENAI_BASE_URL: llm.baseUrl, OPENAI_API_KEY: KEY, CAPTION_LLM_MODEL: 'e2e-llm' });
    studio = await createStudioServer({ config, dir: REPO_ROOT });
    url = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
    browser = await launchChromium();
  }, { timeout: 600_000 });

  after(async () => {
    await browser?.close();
    await studio?.close();
    await llm?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('uploads an image, streams rounds, shows ranked captions with terms and alt text; a dropped image too', { timeout: 180_000 }, async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const frames: string[] = [];
    page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
    await page.goto(`${url}/caption`);
    await page.getByTestId('caption-info').filter({ hasText: 'e2e-llm' }).waitFor({ timeout: 60_000 });
    assert.match((await page.getByTestId('caption-info').textContent()) ?? '', /demo-clip/);

    // Record when rounds and the final list appear, to see the rounds arrive first.
    await page.evaluate(() => {
      const w = window as unknown as { seen: { rounds: number[]; listAt: number } };
      w.seen = { rounds: [], listAt: -1 };
      new MutationObserver(() => {
        const n = document.querySelectorAll('[data-testid=caption-round]').length;
        if (n && w.seen.rounds.at(-1) !== n) w.seen.rounds.push(n);
        if (w.seen.listAt < 0 && document.querySelector('[data-testid=caption-list]')) w.seen.listAt = w.seen.rounds.length;
      }).observe(document.body, { subtree: true, childList: true });
    });
    await page.getByTestId('caption-rounds').fill('2');
    await page.getByTestId('caption-file').setInputFiles(redCircle);
    await page.getByTestId('caption-list').waitFor({ timeout: 120_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: { rounds: number[]; listAt: number } }).seen);
    assert.ok(seen.rounds.length >= 1 && seen.listAt >= 1, `rounds arrived before the ranked list: ${JSON.stringify(seen)}`);
    const rounds = await page.getByTestId('caption-round').count();
    assert.ok(rounds >= 2, `the proposal and at least one refinement round, saw ${rounds}`);
    const texts = await page.getByTestId('caption-text').allTextContents();
    assert.ok(texts.length >= 5, texts.join(' | '));
    assert.match(texts[0]!, /^a red circle/);
    const first = page.getByTestId('caption-item').first();
    assert.match((await first.textContent()) ?? '', /\d+\.\d%.*supported by .*red/);
    assert.match((await page.getByTestId('alt-text').textContent()) ?? '', /^A red circle.*\.$/);
    assert.match((await page.getByTestId('caption-terms').textContent()) ?? '', /red \d/);

    // Drop a second image on the drop zone.
    await page.evaluate(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'green-square.png', { type: 'image/png' }));
      document.querySelector('[data-testid=dropzone]')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, greenSquare.toString('base64'));
    await page.waitForFunction(() => document.querySelector('[data-testid=caption-text]')?.textContent === 'a green square on a gray background', undefined, { timeout: 120_000 });

    assert.ok(frames.length > 5);
    assert.ok(frames.every((f) => !f.includes(KEY)), 'the API key never reaches the browser');
    assert.ok(llm.requests.every((r) => r.headers.authorization === `Bearer ${KEY}`));
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
});
