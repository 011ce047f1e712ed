/**
 * Play in a real browser (Debian's chromium): the production Next build with socket.io and the
 * demo CLIP judging. One page creates a room, a second opens the share link and watches; the
 * host starts a one-round game and draws strokes with the mouse; both pages see CLIP's live
 * guesses, then the scores, the leaderboard and the podium; a reload keeps the host's seat.
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

/** Draw a polyline on the canvas with the mouse; points in 0–1 canvas coordinates. */
async function stroke(page: Page, points: [number, number][]): Promise<void> {
  const box = (await page.getByTestId('play-canvas').boundingBox())!;
  const at = ([x, y]: [number, number]) => [box.x + x * box.width, box.y + y * box.height] as const;
  await page.mouse.move(...at(points[0]!));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps: 8 });
  await page.mouse.up();
}

describe('play in a browser', { skip: browserBinary.skip }, () => {
  let studio: StudioServer;
  let url: string;
  let browser: Browser;
  let dataDir: string;

  before(async () => {
    buildIfStale({ log: (m: string) => console.log(`# ${m}`) });
    dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-e2e-play-'));
    studio = await createStudioServer({
      config: loadConfig({ CLIP_STUDIO_DATA: dataDir }), dir: REPO_ROOT,
      game: { timing: { revealMs: 4_000, collectGraceMs: 3_000 } },
    });
    url = `http://127.0.0.1:${(await studio.listen(0, '127.0.0.1')).port}`;
    browser = await launchChromium();
  }, { timeout: 400_000 });

  after(async () => {
    await browser?.close();
    await studio?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('two pages join one room; the host draws with the mouse; both see live guesses, scores, the leaderboard and the podium', { timeout: 180_000 }, async () => {
    const host = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const watcher = await browser.newPage({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true }); // a phone
    const pageErrors: string[] = [];
    for (const p of [host, watcher]) p.on('pageerror', (e) => pageErrors.push(e.message));

    await host.goto(`${url}/play`);
    // Enabled once the page is live (hydrated and connected); typing before that could be lost.
    await host.waitForSelector('[data-testid=create-room]:not([disabled])', { timeout: 30_000 });
    await host.getByTestId('nickname').fill('<Ada>');
    await host.getByTestId('create-room').click();
    await host.getByTestId('play-error').filter({ hasText: 'nickname' }).waitFor({ timeout: 30_000 });
    assert.match((await host.getByTestId('play-error').textContent()) ?? '', /markup/);
    await host.getByTestId('nickname').fill('Ada');
    await host.getByTestId('create-room').click();
    const code = (await host.getByTestId('room-code').textContent({ timeout: 60_000 }))!;
    assert.match(code, /^[2-9A-Z]{10}$/);
    const share = (await host.getByTestId('share-link').getAttribute('href'))!;
    assert.equal(share, `${url}/play?room=${code}`);

    await watcher.goto(share);
    await watcher.waitForSelector('[data-testid=create-room]:not([disabled])', { timeout: 30_000 });
    await watcher.waitForFunction((c) => (document.querySelector('[data-testid=room-code-input]') as HTMLInputElement | null)?.value === c, code, { timeout: 10_000 });
    assert.equal(await watcher.getByTestId('room-code-input').inputValue(), code, 'the share link fills in the code');
    await watcher.getByTestId('nickname').fill('Bo');
    await watcher.getByTestId('spectator').check();
    await watcher.getByTestId('join-room').click();
    await watcher.getByTestId('my-role').filter({ hasText: 'watching' }).waitFor({ timeout: 30_000 });
    await host.getByTestId('players').filter({ hasText: 'Bo' }).waitFor();

    await host.getByTestId('setting-rounds').selectOption('1');
    await host.getByTestId('setting-seconds').selectOption('15');
    await watcher.getByTestId('lobby').filter({ hasText: '1 round of 15 s' }).waitFor({ timeout: 10_000 });
    await host.getByTestId('start').click();

    const prompt = (await host.getByTestId('prompt').textContent({ timeout: 10_000 }))!;
    assert.equal(await watcher.getByTestId('prompt').textContent(), prompt, 'the watcher sees the same prompt');
    // A house-ish doodle: walls, roof, door.
    await stroke(host, [[0.25, 0.45], [0.75, 0.45], [0.75, 0.85], [0.25, 0.85], [0.25, 0.45]]);
    await stroke(host, [[0.2, 0.47], [0.5, 0.2], [0.8, 0.47]]);
    await stroke(host, [[0.45, 0.85], [0.45, 0.65], [0.55, 0.65], [0.55, 0.85]]);

    // Live guesses: the drawer's own, and the watcher's view of the drawer.
    await host.getByTestId('live-guesses').getByTestId('guess').nth(4).waitFor({ timeout: 10_000 });
    assert.equal(await host.getByTestId('live-guesses').getByTestId('guess').count(), 5);
    const watched = watcher.getByTestId('watched-player').filter({ hasText: 'Ada' });
    await watched.getByTestId('guess').nth(4).waitFor({ timeout: 10_000 });
    assert.equal(await watched.locator('img').count(), 1, 'the watcher sees the drawing');
    await host.waitForFunction(() => {
      // The guesses update as the picture grows: draw more and see a new set arrive.
      const w = window as unknown as { firstGuesses?: string };
      const text = document.querySelector('[data-testid=live-guesses]')?.textContent ?? '';
      if (!w.firstGuesses) w.firstGuesses = text;
      return true;
    });
    await stroke(host, [[0.1, 0.1], [0.9, 0.9]]);
    await stroke(host, [[0.9, 0.1], [0.1, 0.9]]);
    await host.waitForFunction(() => {
      const w = window as unknown as { firstGuesses?: string };
      return (document.querySelector('[data-testid=live-guesses]')?.textContent ?? '') !== w.firstGuesses;
    }, undefined, { timeout: 10_000 });

    // The bell, the judge, the reveal: both pages show the score and the leaderboard.
    for (const p of [host, watcher]) {
      const entry = p.getByTestId('reveal-entry').filter({ hasText: 'Ada' });
      await entry.waitFor({ timeout: 40_000 });
      assert.match((await entry.getByTestId('points').textContent()) ?? '', /^\d+ points \(CLIP \d+\.\d/);
      assert.equal(await entry.locator('img').count(), 1);
      await p.getByTestId('leaderboard').getByTestId('leaderboard-row').filter({ hasText: 'Ada' }).waitFor();
    }
    const points = Number(/^(\d+)/.exec((await host.getByTestId('reveal-entry').first().getByTestId('points').textContent())!)![1]);
    const row = (await watcher.getByTestId('leaderboard-row').filter({ hasText: 'Ada' }).textContent())!;
    assert.match(row, new RegExp(`Ada\\s*${points}$`), `the leaderboard has Ada's ${points} points: ${row}`);

    // The podium, and the hall of fame on it.
    for (const p of [host, watcher]) await p.getByTestId('podium').filter({ hasText: 'Ada' }).waitFor({ timeout: 20_000 });
    await host.getByTestId('hall-of-fame').waitFor({ timeout: 10_000 });

    // A reload keeps the seat (the token is in localStorage): still in the room, still the host.
    await host.reload();
    await host.getByTestId('room-code').filter({ hasText: code }).waitFor({ timeout: 30_000 });
    await host.getByTestId('my-role').filter({ hasText: 'host' }).waitFor({ timeout: 10_000 });
    assert.equal(await host.getByTestId('players').locator('li').filter({ hasText: 'Ada' }).count(), 1, 'the same seat, not a second Ada');

    assert.deepEqual(pageErrors, []);
  });
});
