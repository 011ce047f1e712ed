/**
 * CLIP Studio's benchmarks: `npm run bench` prints a table, `npm run bench -- --json` prints
 * one JSON object on the last line of stdout. Every figure is measured here, on this machine,
 * with random weights at the real sizes; a figure that cannot be measured is null, with the
 * reason in the table (and on stderr with --json). Progress goes to stderr.
 *
 *   npm run bench [-- --json] [-- --quick] [-- --provider webgpu]
 *
 * --quick skips the minutes-long tfjs figures. --provider sets onnxruntime's execution provider
 * for every ORT figure (`CLIP_STUDIO_ORT_PROVIDER`; default auto: CUDA when installed, else CPU);
 * the one that ran is reported as `machine.ort_provider`, and on a provider other than the CPU the
 * CPU's own SGEMM peak is measured too (`machine.cpu_peak_gflops`).
 *
 * Throughput figures are the best of several runs, the matmul peak too, so a figure and the
 * peak it is compared with are measured the same way on a machine that may be shared.
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { defaultThreads, findClipFiles, initBackend, providerChoice, PROVIDER_CHOICES, readClipStateDict } from '../engine/index';
import { gameScoring } from './game';
import { generateStepMs } from './generate';
import { trainThroughput, vqganTrainThroughput } from './train';
import { DEMO_VQGAN_BATCH } from '../engine/demo/train-vqgan';
import { ortInference, randomIds, sgemmPeak, tfInference } from './inference';
import { int8AgreementDemo, int8AgreementRandom, int8Speed } from './quantize';
import { progress, round } from './measure';
import { clipConfigFor, demoClipConfig, demoVqganConfig, randomClipStateDict, VITB32, VQGAN_F16_16384 } from './weights';

type Figure = number | null;

interface Results {
  /** peak_gflops: SGEMM on the provider the ORT figures ran on; cpu_peak_gflops: on the CPU, when that provider is another. */
  machine: { peak_gflops: Figure; cpu_peak_gflops: Figure; ort_provider: string | null; tfjs_backend: string | null };
  inference: {
    vitb32: {
      image: { ort: { images_per_s: Figure; gflops: Figure }; tfjs: { images_per_s: Figure; gflops: Figure } };
      text: { ort: { texts_per_s: Figure }; tfjs: { texts_per_s: Figure } };
    };
  };
  generate: { demo: { ms_per_step: Figure }; vitb32_f16: { ms_per_step: Figure } };
  /** vitb32: with the int8 vision tower (the path large models score drawings on); vitb32_fp32: the same with fp32. */
  game: { scoring: { demo: { p50_ms: Figure; p95_ms: Figure }; vitb32: { p50_ms: Figure; p95_ms: Figure }; vitb32_fp32: { p50_ms: Figure; p95_ms: Figure } } };
  /** The int8 vision tower against fp32 (bench/quantize.ts): beyond the issue's list, what the int8 game figure rests on. */
  int8: {
    vitb32: { fp32_ms: Figure; int8_ms: Figure; speedup: Figure; cosine_min: Figure; top1_agreement: Figure };
    demo: { cosine_min: Figure; top1_agreement: Figure };
  };
  /** The demo CLIP's trainer (engine/demo/train-clip.ts), the bundled recipe, one process per engine. */
  train: { demo_clip: { onnx: { pictures_per_s: Figure }; tfjs: { pictures_per_s: Figure } }; demo_vqgan: { onnx: { pictures_per_s: Figure }; tfjs: { pictures_per_s: Figure } } };
}

const argv = process.argv.slice(2);
const args = new Set(argv);
const json = args.has('--json');
const quick = args.has('--quick');
const providerAt = argv.indexOf('--provider');
if (providerAt >= 0) {
  const p = argv[providerAt + 1];
  if (!p || !(PROVIDER_CHOICES as readonly string[]).includes(p)) {
    process.stderr.write(`--provider must be one of ${PROVIDER_CHOICES.join(', ')}, got ${p === undefined ? 'nothing' : JSON.stringify(p)}\n`);
    process.exit(2);
  }
  process.env.CLIP_STUDIO_ORT_PROVIDER = p;
}
const provider = providerChoice();

const results: Results = {
  machine: { peak_gflops: null, cpu_peak_gflops: null, ort_provider: null, tfjs_backend: null },
  inference: { vitb32: { image: { ort: { images_per_s: null, gflops: null }, tfjs: { images_per_s: null, gflops: null } }, text: { ort: { texts_per_s: null }, tfjs: { texts_per_s: null } } } },
  generate: { demo: { ms_per_step: null }, vitb32_f16: { ms_per_step: null } },
  game: { scoring: { demo: { p50_ms: null, p95_ms: null }, vitb32: { p50_ms: null, p95_ms: null }, vitb32_fp32: { p50_ms: null, p95_ms: null } } },
  int8: {
    vitb32: { fp32_ms: null, int8_ms: null, speedup: null, cosine_min: null, top1_agreement: null },
    demo: { cosine_min: null, top1_agreement: null },
  },
  train: { demo_clip: { onnx: { pictures_per_s: null }, tfjs: { pictures_per_s: null } }, demo_vqgan: { onnx: { pictures_per_s: null }, tfjs: { pictures_per_s: null } } },
};
/** Why a figure is null, or how it was measured: dotted path → note. */
const notes = new Map<string, string>();

/** A figure by its dotted path. */
function figureAt(path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), results);
}

async function section(name: string, paths: string[], fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
    // each figure as soon as it is measured, so a run cut short still reports what it had
    progress(`${name}: ${paths.map((p) => `${p} = ${String(figureAt(p))}`).join(', ')}`);
  } catch (err) {
    const message = (err as Error).message.split('\n')[0]!;
    // wasm32 gives tfjs-wasm one heap of at most 4 GB; say so rather than print the trap's text
    // alone. Its out-of-heap shows as a trap or as emscripten's bare "Aborted()" (at 256 px the
    // f16 VQGAN generate aborts even with one cutout, where 128 px runs).
    const heap = /memory access out of bounds|out of memory|^Aborted\(/i.test(message);
    const why = `failed: ${message}${heap ? ` (the ${backend.name} backend ran out of heap)` : ''}`;
    progress(`${name} ${why}`);
    for (const p of paths) notes.set(p, why);
  }
}

const started = performance.now();
const load = loadavg()[0]!;
const backend = await initBackend();
results.machine.tfjs_backend = backend.name;
progress(`${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, load ${load.toFixed(2)}; tfjs backend ${backend.name}; ORT provider ${provider}, threads ${defaultThreads()}`);

const vitb32 = clipConfigFor(VITB32);
const demo = demoClipConfig();
progress('random weights: ViT-B/32 and demo sizes');
const vitb32Weights = randomClipStateDict(vitb32);
const demoWeights = randomClipStateDict(demo);

// The peak is measured at the start and again after the ORT figures, and the better one kept:
// on a shared machine one burst of other work would otherwise set the yardstick.
let peak = 0;
const measurePeak = (when: string) => section('peak', ['machine.peak_gflops'], async () => {
  progress(`SGEMM peak (${when}): ORT MatMul 2048³`);
  const r = await sgemmPeak();
  peak = Math.max(peak, r.gflops);
  results.machine.peak_gflops = round(peak);
  results.machine.ort_provider = r.provider;
  notes.set('machine.peak_gflops', `ORT MatMul 2048³ on ${r.provider}, best of 8, measured before and after the ORT figures${r.provider === 'cpu' ? '' : '; each run copies A in and C out'}`);
});
await measurePeak('before');
if (results.machine.ort_provider !== null && results.machine.ort_provider !== 'cpu') {
  await section('CPU peak', ['machine.cpu_peak_gflops'], async () => {
    progress('SGEMM peak on the CPU provider, for comparison');
    results.machine.cpu_peak_gflops = round((await sgemmPeak(2048, 8, 'cpu')).gflops);
    notes.set('machine.cpu_peak_gflops', 'ORT MatMul 2048³ on the CPU provider, best of 8');
  });
} else {
  notes.set('machine.cpu_peak_gflops', 'the ORT figures ran on the CPU: see peak_gflops');
}

await section('ORT inference', ['inference.vitb32.image.ort.images_per_s', 'inference.vitb32.image.ort.gflops', 'inference.vitb32.text.ort.texts_per_s'], async () => {
  const r = await ortInference(vitb32, vitb32Weights);
  results.inference.vitb32.image.ort = { images_per_s: round(r.images_per_s, 2), gflops: round(r.gflops) };
  results.inference.vitb32.text.ort.texts_per_s = round(r.texts_per_s, 2);
  notes.set('inference.vitb32.image.ort.images_per_s', 'batch 8, best of 5');
  notes.set('inference.vitb32.text.ort.texts_per_s', 'batch 8 × 77 tokens, best of 5');
});

await measurePeak('after');

const gameNote = (r: { samples: number; runs: number; prompts: number; preprocess_ms: number }, precision: string) =>
  `8 concurrent scorers through ClipScorer (${precision} vision tower), ${r.samples} drawings in ${r.runs} ORT runs; embed + softmax over ${r.prompts} cached prompts; ` +
  `canvas preprocessing (512² → model size, toClipPixels) not included: ${round(r.preprocess_ms, 1)} ms per drawing on the caller's thread`;

await section('game scoring (demo)', ['game.scoring.demo.p50_ms', 'game.scoring.demo.p95_ms'], async () => {
  const r = await gameScoring(demo, demoWeights, { rounds: 25 });
  results.game.scoring.demo = { p50_ms: round(r.p50_ms, 2), p95_ms: round(r.p95_ms, 2) };
  notes.set('game.scoring.demo.p95_ms', gameNote(r, 'fp32'));
});

await section('game scoring (ViT-B/32, int8)', ['game.scoring.vitb32.p50_ms', 'game.scoring.vitb32.p95_ms'], async () => {
  const r = await gameScoring(vitb32, vitb32Weights, { rounds: 8, visionPrecision: 'int8' });
  results.game.scoring.vitb32 = { p50_ms: round(r.p50_ms, 1), p95_ms: round(r.p95_ms, 1) };
  notes.set('game.scoring.vitb32.p50_ms', 'int8 vision tower (visionPrecision: int8; agreement with fp32 under int8.*)');
  notes.set('game.scoring.vitb32.p95_ms', gameNote(r, 'int8'));
});

await section('game scoring (ViT-B/32, fp32)', ['game.scoring.vitb32_fp32.p50_ms', 'game.scoring.vitb32_fp32.p95_ms'], async () => {
  const r = await gameScoring(vitb32, vitb32Weights, { rounds: 5 });
  results.game.scoring.vitb32_fp32 = { p50_ms: round(r.p50_ms, 1), p95_ms: round(r.p95_ms, 1) };
  notes.set('game.scoring.vitb32_fp32.p95_ms', gameNote(r, 'fp32'));
});

await section('int8 vs fp32 (ViT-B/32)', ['int8.vitb32.fp32_ms', 'int8.vitb32.int8_ms', 'int8.vitb32.speedup'], async () => {
  const r = await int8Speed(vitb32, vitb32Weights, 8, 5);
  Object.assign(results.int8.vitb32, { fp32_ms: round(r.fp32_ms), int8_ms: round(r.int8_ms), speedup: round(r.speedup, 2) });
  notes.set('int8.vitb32.fp32_ms', `image encode, batch ${r.batch}, best of 5, the two precisions interleaved`);
});

await section('int8 agreement (ViT-B/32, random weights)', ['int8.vitb32.cosine_min', 'int8.vitb32.top1_agreement'], async () => {
  const r = await int8AgreementRandom(vitb32, vitb32Weights, randomIds(28, vitb32, 5), 28, 16);
  Object.assign(results.int8.vitb32, { cosine_min: round(r.cosine_min, 5), top1_agreement: round(r.top1_agreement, 3) });
  notes.set('int8.vitb32.cosine_min', `random weights: ${r.images} images, cosine of int8 vs fp32 image embeddings (mean ${round(r.cosine_mean, 5)})`);
  notes.set('int8.vitb32.top1_agreement', `same best text of ${r.labels} for int8 and fp32; random weights (no trained ViT-B/32 here)`);
});

await section('int8 agreement (demo CLIP, trained weights)', ['int8.demo.cosine_min', 'int8.demo.top1_agreement'], async () => {
  const files = findClipFiles(new URL('../models/demo-clip/', import.meta.url).pathname);
  const r = await int8AgreementDemo(demo, await readClipStateDict(files.weightsPaths));
  results.int8.demo = { cosine_min: round(r.cosine_min, 5), top1_agreement: round(r.top1_agreement, 3) };
  notes.set('int8.demo.cosine_min', `the bundled demo CLIP's weights, ${r.images} world pictures (mean ${round(r.cosine_mean, 5)})`);
  notes.set('int8.demo.top1_agreement', `same best label of ${r.labels} (shapes, colours, doodle subjects) for int8 and fp32`);
});

await section('generate (demo)', ['generate.demo.ms_per_step'], async () => {
  const g = await generateStepMs(demo, demoWeights, demoVqganConfig(), { params: { steps: 6 } });
  results.generate.demo.ms_per_step = round(g.msPerStep);
  notes.set('generate.demo.ms_per_step', `${backend.name}; engine/guide generate, default settings (cutn ${g.cutn}, ${g.size} px), random demo-size CLIP + VQGAN, mean over ${g.steps} steps`);
});

await section('train (demo CLIP, onnx engine)', ['train.demo_clip.onnx.pictures_per_s'], async () => {
  const r = await trainThroughput('onnx', 20);
  results.train.demo_clip.onnx.pictures_per_s = round(r.pictures_per_s);
  notes.set('train.demo_clip.onnx.pictures_per_s', `towers forward and backward on ORT (${provider}), loss and AdamW on tfjs ${backend.name}; the bundled recipe, batch ${r.batch}, ${r.timed_steps} steps after 2 of warm-up`);
});

await section('train (demo VQGAN, onnx engine)', ['train.demo_vqgan.onnx.pictures_per_s'], async () => {
  const r = await vqganTrainThroughput('onnx', 10, DEMO_VQGAN_BATCH);
  results.train.demo_vqgan.onnx.pictures_per_s = round(r.pictures_per_s);
  notes.set('train.demo_vqgan.onnx.pictures_per_s', `encoder and decoder forward and backward on ORT (${provider}), quantiser, EMA codebook and Adam on the host/tfjs ${backend.name}; batch ${r.batch}, ${r.timed_steps} steps after 2 of warm-up`);
});

if (quick) {
  notes.set('train.demo_clip.tfjs.pictures_per_s', 'skipped (--quick)');
  notes.set('train.demo_vqgan.tfjs.pictures_per_s', 'skipped (--quick)');
  for (const p of ['inference.vitb32.image.tfjs.images_per_s', 'inference.vitb32.image.tfjs.gflops', 'inference.vitb32.text.tfjs.texts_per_s', 'generate.vitb32_f16.ms_per_step']) notes.set(p, 'skipped (--quick)');
} else {
  await section('tfjs inference', ['inference.vitb32.image.tfjs.images_per_s', 'inference.vitb32.image.tfjs.gflops', 'inference.vitb32.text.tfjs.texts_per_s'], async () => {
    const r = await tfInference(vitb32, vitb32Weights);
    results.inference.vitb32.image.tfjs = { images_per_s: round(r.images_per_s, 3), gflops: round(r.gflops, 2) };
    results.inference.vitb32.text.tfjs.texts_per_s = round(r.texts_per_s, 3);
    notes.set('inference.vitb32.image.tfjs.images_per_s', `${r.backend}, batch 8, one timed run after a batch-1 warm-up`);
    notes.set('inference.vitb32.text.tfjs.texts_per_s', `${r.backend}, batch 8 × 77 tokens, one timed run after a batch-1 warm-up`);
  });
  await section('train (demo CLIP, tfjs engine)', ['train.demo_clip.tfjs.pictures_per_s'], async () => {
    const r = await trainThroughput('tfjs', 6);
    results.train.demo_clip.tfjs.pictures_per_s = round(r.pictures_per_s);
    notes.set('train.demo_clip.tfjs.pictures_per_s', `${backend.name}, one process (the recipe's two worker threads would add a second core); batch ${r.batch}, ${r.timed_steps} steps after 2 of warm-up`);
  });
  await section('train (demo VQGAN, tfjs engine)', ['train.demo_vqgan.tfjs.pictures_per_s'], async () => {
    const r = await vqganTrainThroughput('tfjs', 3, DEMO_VQGAN_BATCH);
    results.train.demo_vqgan.tfjs.pictures_per_s = round(r.pictures_per_s);
    notes.set('train.demo_vqgan.tfjs.pictures_per_s', `${backend.name}, one process; batch ${r.batch}, ${r.timed_steps} steps after 2 of warm-up`);
  });
  await section('generate (ViT-B/32 + f16)', ['generate.vitb32_f16.ms_per_step'], async () => {
    const g = await generateStepMs(vitb32, vitb32Weights, VQGAN_F16_16384, { params: { size: 256, cutn: 32, steps: 2 } });
    results.generate.vitb32_f16.ms_per_step = round(g.msPerStep, 0);
    notes.set('generate.vitb32_f16.ms_per_step', `${backend.name}; engine/guide generate at ${g.size} px, cutn ${g.cutn}, random ViT-B/32 + f16-16384 VQGAN, mean over ${g.steps} steps`);
  });
}

// ---- report ---------------------------------------------------------------------------------

function flatten(o: object, prefix = ''): [string, Figure][] {
  return Object.entries(o).flatMap(([k, v]) => (v !== null && typeof v === 'object' ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v as Figure]]));
}

const r = results;
const ortG = r.inference.vitb32.image.ort.gflops;
const tfG = r.inference.vitb32.image.tfjs.gflops;
const derived: string[] = [];
if (ortG !== null && r.machine.peak_gflops) derived.push(`ORT (${r.machine.ort_provider}) ViT-B/32 image encode: ${round((100 * ortG) / r.machine.peak_gflops)} % of the measured peak${r.machine.ort_provider === 'cpu' ? ' (acceptance ≥ 80 %)' : ' on that provider'}`);
if (ortG !== null && tfG) derived.push(`ORT vs tfjs-${backend.name} image encode: ${round(ortG / tfG)}× (acceptance ≥ 8×)`);
if (r.game.scoring.demo.p95_ms !== null) derived.push(`game scoring p95, demo: ${r.game.scoring.demo.p95_ms} ms (acceptance ≤ 50 ms)`);
if (r.game.scoring.vitb32.p95_ms !== null) derived.push(`game scoring p95, ViT-B/32 (int8 vision tower): ${r.game.scoring.vitb32.p95_ms} ms (acceptance ≤ 150 ms)`);
if (r.game.scoring.vitb32_fp32.p95_ms !== null) derived.push(`game scoring p95, ViT-B/32 (fp32): ${r.game.scoring.vitb32_fp32.p95_ms} ms`);
if (r.int8.vitb32.speedup !== null) derived.push(`int8 vision tower: ${r.int8.vitb32.speedup}× fp32 at batch 8; cosine ≥ ${r.int8.vitb32.cosine_min} (random ViT-B/32), ≥ ${r.int8.demo.cosine_min} (demo); top-1 agreement ${r.int8.vitb32.top1_agreement} / ${r.int8.demo.top1_agreement}`);
const footer = `ORT on ${r.machine.ort_provider ?? provider}, tfjs on ${backend.name}; ${availableParallelism()} cores, load average ${load.toFixed(2)} at start and ${loadavg()[0]!.toFixed(2)} at the end; ${round((performance.now() - started) / 1000, 0)} s`;

if (json) {
  for (const [p, n] of notes) if (flatten(results).some(([q, v]) => q === p && v === null)) progress(`${p} is null: ${n}`);
  for (const d of derived) progress(d);
  progress(footer);
  process.stdout.write(`${JSON.stringify(results)}\n`);
} else {
  const rows = flatten(results).map(([p, v]) => [p, v === null ? 'null' : String(v), notes.get(p) ?? ''] as const);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  console.log(`${'figure'.padEnd(w0)}  ${'value'.padStart(w1)}  note`);
  for (const [p, v, n] of rows) console.log(`${p.padEnd(w0)}  ${v.padStart(w1)}  ${n}`);
  console.log('');
  for (const d of derived) console.log(d);
  console.log(footer);
}
