/**
 * The one decoder for images from strangers (engine/io/images.ts `decodeImage`) against hostile
 * files built in code: a PNG decompression bomb, a truncated PNG, an SVG carrying a script, a
 * 6-channel TIFF, a 5,000-frame GIF. Each must be refused with an InputError that names the
 * file, within the 2 s, and the process's peak memory must stay under 1.5 GB. The same
 * decoder serves the CLI, so `clip-studio classify` is checked with the same files.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { decodeImage, InputError, unloadGenerateModels } from '../../engine/index';
import { registerClassifyCommand } from '../../cli/commands/classify';
import { registerGenerateCommand } from '../../cli/commands/generate';
import { fixtureManifests } from '../helpers/generate-models';
import { animatedGif, pngBomb, sixChannelTiff, solidPng, svgWithScript, truncatedPng } from '../helpers/hostile-images';

const PEAK_LIMIT_BYTES = 1.5 * 2 ** 30;
const TIME_LIMIT_MS = 2000;

/** Hostile file, the name it is uploaded under (deliberately misleading extensions), what the error must say. */
const HOSTILE: { what: string; name: string; make: () => Buffer; says: RegExp }[] = [
  { what: 'a 20000×20000 PNG decompression bomb', name: 'bomb.png', make: () => pngBomb(20_000, 20_000), says: /20000×20000 is over the limit/ },
  { what: 'a truncated PNG', name: 'cut-short.png', make: truncatedPng, says: /could not be decoded, it may be truncated or corrupt/ },
  { what: 'an SVG with a script, named .png', name: 'innocent.png', make: svgWithScript, says: /SVG images are refused/ },
  { what: 'a 6-channel TIFF, named .jpg', name: 'six-channels.jpg', make: () => sixChannelTiff(), says: /TIFF images are refused/ },
  { what: 'a 5,000-frame GIF', name: 'flipbook.gif', make: () => animatedGif(5000), says: /5000 frames, over the limit of 1000/ },
];

describe('decodeImage refuses hostile files', () => {
  for (const h of HOSTILE) {
    it(`${h.what}: a clear error naming the file, in under 2 s`, async () => {
      const bytes = h.make();
      const t0 = performance.now();
      await assert.rejects(decodeImage(bytes, { name: h.name }), (err: unknown) => {
        assert.ok(err instanceof InputError, `an InputError, got ${String(err)}`);
        assert.equal(err.field, 'image');
        assert.ok(err.message.startsWith(`${h.name}: `), `names the file: ${err.message}`);
        assert.match(err.message, h.says);
        return true;
      });
      const ms = performance.now() - t0;
      assert.ok(ms < TIME_LIMIT_MS, `${h.name} took ${ms.toFixed(0)} ms`);
      console.log(`# ${h.name} (${bytes.length} bytes) refused in ${ms.toFixed(1)} ms`);
    });
  }

  it('the same files from disk are refused with the file name, whatever their extension', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clip-studio-hostile-'));
    try {
      for (const h of HOSTILE) {
        const path = join(dir, h.name);
        writeFileSync(path, h.make());
        await assert.rejects(decodeImage(path), (err: unknown) => err instanceof InputError && err.message.startsWith(`${h.name}: `) && h.says.test(err.message));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a short animation decodes to its first frame only', async () => {
    const img = await decodeImage(animatedGif(3, 16), { name: 'three.gif' });
    assert.equal(img.width, 16);
    assert.equal(img.height, 16, 'one frame, not three stacked');
    assert.deepEqual([...img.data.subarray(0, 3)], [255, 0, 0], 'frame 1 is red (frame 2 is green)');
  });

  it('a pixel limit below the default is honoured, and a good PNG still decodes', async () => {
    const png = solidPng(64, 64, [10, 200, 30]);
    const img = await decodeImage(png, { name: 'ok.png' });
    assert.equal(img.data.length, 64 * 64 * 3);
    await assert.rejects(decodeImage(png, { name: 'ok.png', maxPixels: 32 * 32 }), /ok\.png: 64×64 is over the limit of 1024 pixels/);
  });

  it('peak memory stays under 1.5 GB after every hostile file (and a bomb 16× larger)', async () => {
    await assert.rejects(decodeImage(pngBomb(80_000, 80_000), { name: 'huge-bomb.png', maxBytes: 128 * 2 ** 20 }), /huge-bomb\.png: 80000×80000 is over the limit/);
    const peak = process.resourceUsage().maxRSS * 1024;
    console.log(`# peak RSS of this test process: ${(peak / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(peak < PEAK_LIMIT_BYTES, `peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
  });
});

describe('the CLI uses the same decoder', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'clip-studio-hostile-cli-'));
  });
  after(() => {
    unloadGenerateModels();
    rmSync(dir, { recursive: true, force: true });
  });

  it('clip-studio classify refuses each hostile file, naming it', async () => {
    for (const h of HOSTILE) {
      const path = join(dir, h.name);
      writeFileSync(path, h.make());
      let out = '', err = '';
      const program = new Command('clip-studio').exitOverride().configureOutput({ writeErr: (s) => { err += s; }, writeOut: (s) => { out += s; } });
      registerClassifyCommand(program, {
        stdout: { write: (s: string) => { out += s; } }, stderr: { write: (s: string) => { err += s; } },
        env: { CLIP_STUDIO_DATA: join(dir, 'data') },
      });
      const failure = await program.parseAsync(['node', 'clip-studio', 'classify', path, '--labels', 'a red circle,a blue star']).then(() => undefined, (e: unknown) => e);
      const said = `${err}${failure instanceof Error ? failure.message : ''}`;
      assert.ok(failure || process.exitCode, `${h.name}: the command failed`);
      assert.ok(said.includes(h.name), `${h.name}: the error names the file: ${said}`);
      assert.match(said, h.says);
      assert.equal(out, '', 'no result printed');
      process.exitCode = 0;
    }
  });

  it('clip-studio generate --init and --image-prompt refuse them too, naming the file and the option', async () => {
    const manifests = fixtureManifests();
    try {
      for (const [flag, h] of [['--init', HOSTILE[0]!], ['--image-prompt', HOSTILE[2]!], ['--init', HOSTILE[4]!]] as const) {
        const path = join(dir, h.name);
        writeFileSync(path, h.make());
        let out = '';
        const program = new Command('clip-studio').exitOverride();
        registerGenerateCommand(program, {
          stdout: { write: (s: string) => (out += s) }, stderr: { write: () => true },
          env: { CLIP_STUDIO_DATA: join(dir, 'data') }, manifestsDir: manifests,
        });
        const args = ['a red circle', '-o', join(dir, 'out.png'), '--steps', '1', '--size', '16', '--cutn', '1', '--model', 'fixture-clip', '--vqgan', 'fixture-vqgan', flag, path];
        const failure = await program.parseAsync(['node', 'clip-studio', 'generate', ...args]).then(() => undefined, (e: unknown) => e as Error);
        assert.ok(failure, `${flag} ${h.name}: refused`);
        assert.ok(failure.message.includes(h.name), `${flag} ${h.name}: names the file: ${failure.message}`);
        assert.match(failure.message, h.says);
        assert.match(failure.message, flag === '--init' ? /--init|init image/ : /--image-prompt|imagePrompts/);
        assert.equal(out, '');
      }
    } finally {
      rmSync(manifests, { recursive: true, force: true });
    }
  });
});
