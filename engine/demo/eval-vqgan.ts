/**
 * Evaluates a VQGAN on pictures of the synthetic world it never trained on: reconstruction
 * PSNR (8-bit, after clamping and rounding, as a saved picture would be), the share of the
 * codebook the held-out pictures use, and what one guided step costs — decoder forward +
 * backward w.r.t. the latent at the model's resolution, the VQGAN+CLIP inner loop.
 *
 * The training pictures come from (train seed, index); evaluation draws from another seed
 * (default 7777777), which `renderBatch` hashes with each index, so the sets do not overlap.
 *
 * CLI: `npx tsx engine/demo/eval-vqgan.ts [--model models/demo-vqgan] [--seed 7777777] [--count 512]
 *       [--out <model>/eval.json] [--samples <model>/samples.png]`
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf, initBackend, SYNC_READS_AVOID_WEBGPU } from '../runtime/tf';
import { encodePng } from '../io/images';
import { disposeVqgan, loadVqgan, vqganDecode, vqganEncode, vqganQuantize, type VqganWeights } from '../models/vqgan';
import { renderBatch, type WorldKind } from './world';

export interface VqganEvalOptions {
  /** World seed of the held-out pictures; must differ from the training seed. */
  seed?: number;
  /** Pictures to reconstruct (default 512). */
  count?: number;
  batchSize?: number;
  /** Timed repetitions of the guided-step decode (default 10; 0 skips the timing). */
  timingRuns?: number;
  /** Also return the first `samplePairs` originals and reconstructions as one PNG (default 0). */
  samplePairs?: number;
}

export interface VqganEvalReport {
  seed: number;
  count: number;
  resolution: number;
  /** PSNR of the pooled MSE over all pictures, 8-bit. */
  psnr: number;
  /** Mean of the per-picture PSNRs, and the worst one. */
  meanPicturePsnr: number;
  minPicturePsnr: number;
  byKind: Record<string, { count: number; psnr: number }>;
  /** Distinct codes used by the held-out pictures, and that share of `n_embed`. */
  codesUsed: number;
  codebookUsage: number;
  /** exp(entropy) of the code histogram: how many codes are effectively in use. */
  perplexity: number;
  /** Median ms of decode forward + backward w.r.t. z for one latent, and of the decode alone. */
  decodeForwardBackwardMs?: number;
  decodeForwardMs?: number;
  backend: string;
}

const psnrOf = (mse: number) => (mse > 0 ? 10 * Math.log10((255 * 255) / mse) : Infinity);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Reconstruct `count` held-out pictures and measure PSNR, codebook usage and decode cost.
 *
 * @example
 * const report = await evaluateVqgan(await loadVqgan('models/demo-vqgan'), { seed: 7777777, count: 256 });
 * console.log(report.psnr, report.codebookUsage);
 */
export async function evaluateVqgan(w: VqganWeights, opts: VqganEvalOptions = {}): Promise<VqganEvalReport & { samplesPng?: Buffer }> {
  const seed = opts.seed ?? 7777777;
  const count = opts.count ?? 512;
  const batchSize = opts.batchSize ?? 32;
  const size = w.config.ddconfig.resolution;
  const hist = new Float64Array(w.config.n_embed);
  let sqErr = 0;
  const pictureMse: number[] = [];
  const kinds: Record<string, { count: number; sq: number }> = {};
  const pairs = Math.min(opts.samplePairs ?? 0, count);
  const sheet = pairs ? new Uint8Array(2 * size * pairs * size * 3) : undefined; // 2 rows of `pairs` tiles

  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const samples = await renderBatch(seed, n, { size, start });
    const x = new Float32Array(n * size * size * 3);
    samples.forEach((s, i) => s.image.data.forEach((v, j) => { x[i * size * size * 3 + j] = v / 127.5 - 1; }));
    const { recon, indices } = tf.tidy(() => {
      const q = vqganQuantize(w, vqganEncode(w, tf.tensor4d(x, [n, size, size, 3])));
      const out = tf.round(tf.mul(tf.add(tf.clipByValue(vqganDecode(w, q.zq), -1, 1), 1), 127.5)); // as 8-bit pixels
      return { recon: out.dataSync() as Float32Array, indices: q.indices.dataSync() as Int32Array };
    });
    for (const k of indices) hist[k]!++;
    samples.forEach((s, i) => {
      const px = s.image.data;
      let e = 0;
      for (let j = 0; j < px.length; j++) { const d = recon[i * px.length + j]! - px[j]!; e += d * d; }
      const mse = e / px.length;
      pictureMse.push(mse);
      sqErr += e;
      const kind = s.labels.kind as WorldKind;
      kinds[kind] ??= { count: 0, sq: 0 };
      kinds[kind].count++;
      kinds[kind].sq += e;
      const p = start + i;
      if (sheet && p < pairs) {
        for (let y = 0; y < size; y++) {
          for (let xx = 0; xx < size; xx++) {
            for (let c = 0; c < 3; c++) {
              const src = (y * size + xx) * 3 + c;
              sheet[(y * pairs * size + p * size + xx) * 3 + c] = px[src]!;
              sheet[((y + size) * pairs * size + p * size + xx) * 3 + c] = recon[i * px.length + src]!;
            }
          }
        }
      }
    });
  }

  const used = hist.reduce((a, c) => a + (c > 0 ? 1 : 0), 0);
  const total = hist.reduce((a, c) => a + c, 0);
  const entropy = hist.reduce((a, c) => (c > 0 ? a - (c / total) * Math.log(c / total) : a), 0);
  const report: VqganEvalReport & { samplesPng?: Buffer } = {
    seed, count, resolution: size,
    psnr: psnrOf(sqErr / (count * size * size * 3)),
    meanPicturePsnr: pictureMse.reduce((a, m) => a + psnrOf(m), 0) / count,
    minPicturePsnr: Math.min(...pictureMse.map(psnrOf)),
    byKind: Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, { count: v.count, psnr: psnrOf(v.sq / (v.count * size * size * 3)) }])),
    codesUsed: used, codebookUsage: used / w.config.n_embed, perplexity: Math.exp(entropy),
    backend: tf.getBackend(),
  };

  const runs = opts.timingRuns ?? 10;
  if (runs > 0) {
    const f = 2 ** (w.config.ddconfig.ch_mult.length - 1);
    const z = tf.variable(tf.randomNormal([1, size / f, size / f, w.config.embed_dim], 0, 1, 'float32', 1));
    const grad = tf.grad((zz: tf.Tensor) => tf.mean(tf.square(vqganDecode(w, zz as tf.Tensor4D))));
    const time = (fn: () => void) => {
      fn(); // warm-up
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) { const t = performance.now(); fn(); ms.push(performance.now() - t); }
      return median(ms);
    };
    report.decodeForwardBackwardMs = time(() => tf.tidy(() => { grad(z).dataSync(); }));
    report.decodeForwardMs = time(() => tf.tidy(() => { vqganDecode(w, z as tf.Tensor4D).dataSync(); }));
    z.dispose();
  }
  if (sheet) report.samplesPng = await encodePng(sheet, pairs * size, 2 * size);
  return report;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
  const model = arg('model') ?? 'models/demo-vqgan';
  const backend = await initBackend(undefined, { avoid: [SYNC_READS_AVOID_WEBGPU] });
  const w = await loadVqgan(model);
  const report = await evaluateVqgan(w, {
    seed: Number(arg('seed') ?? 7777777), count: Number(arg('count') ?? 512), samplePairs: 16,
  });
  disposeVqgan(w);
  const { samplesPng, ...json } = report;
  const out = arg('out') ?? join(model, 'eval.json');
  writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  const samples = arg('samples') ?? join(model, 'samples.png');
  if (samplesPng) writeFileSync(samples, samplesPng);
  console.log(`VQGAN ${model} on ${report.count} held-out ${report.resolution}px pictures (world seed ${report.seed}), backend ${backend.name}`);
  console.log(`  PSNR ${report.psnr.toFixed(2)} dB (mean per picture ${report.meanPicturePsnr.toFixed(2)}, worst ${report.minPicturePsnr.toFixed(2)}); `
    + Object.entries(report.byKind).map(([k, v]) => `${k}s ${v.psnr.toFixed(2)} dB`).join(', '));
  console.log(`  codebook: ${report.codesUsed}/${w.config.n_embed} codes used (${(100 * report.codebookUsage).toFixed(1)}%), perplexity ${report.perplexity.toFixed(0)}`);
  if (report.decodeForwardBackwardMs !== undefined) {
    console.log(`  decode ${report.decodeForwardMs!.toFixed(1)} ms, decode forward+backward w.r.t. z ${report.decodeForwardBackwardMs.toFixed(1)} ms`);
  }
  console.log(`  wrote ${out}${samplesPng ? ` and ${samples}` : ''}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => { console.error(err); process.exit(1); });
}
