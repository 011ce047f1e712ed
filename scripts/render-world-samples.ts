/**
 * Render a contact sheet of demo-world samples, and optionally time the renderer.
 *   npx tsx scripts/render-world-samples.ts out.png [--n 64] [--size 128] [--seed 1] [--kind scene|doodle] [--bench]
 * Captions go to stdout in sheet order (left to right, top to bottom).
 */
import { writeFile } from 'node:fs/promises';
import { encodePng } from '../engine/io/images';
import { createRng, sampleSeed } from '../engine/demo/rng';
import { renderBatch, renderSampleSync, type WorldKind } from '../engine/demo/world';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const out = process.argv[2];
if (!out || out.startsWith('--')) {
  console.error('usage: npx tsx scripts/render-world-samples.ts out.png [--n 64] [--size 128] [--seed 1] [--kind scene|doodle] [--bench]');
  process.exit(2);
}
const n = Number(arg('n', '64')), size = Number(arg('size', '128')), seed = Number(arg('seed', '1'));
const kindArg = arg('kind', '');
const kind = kindArg === 'scene' || kindArg === 'doodle' ? (kindArg as WorldKind) : undefined;

const samples = await renderBatch(seed, n, { size, kind });
const cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols), gap = 2;
const W = cols * (size + gap) + gap, H = rows * (size + gap) + gap;
const sheet = new Uint8Array(W * H * 3).fill(255);
samples.forEach((s, i) => {
  const ox = gap + (i % cols) * (size + gap), oy = gap + Math.floor(i / cols) * (size + gap);
  for (let y = 0; y < size; y++) sheet.set(s.image.data.subarray(y * size * 3, (y + 1) * size * 3), ((oy + y) * W + ox) * 3);
  console.log(`${i}\t${s.caption}`);
});
await writeFile(out, await encodePng(sheet, W, H));
console.error(`wrote ${out}: ${n} samples at ${size} px`);

if (process.argv.includes('--bench')) {
  for (const px of [64, 128]) {
    for (const k of ['scene', 'doodle'] as const) {
      const count = 1000, t = performance.now();
      for (let i = 0; i < count; i++) renderSampleSync(createRng(sampleSeed(seed, i)), { size: px, kind: k });
      console.error(`${k} ${px} px: ${(count / ((performance.now() - t) / 1000)).toFixed(0)} images/s (one thread)`);
    }
  }
}
