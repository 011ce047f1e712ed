/**
 * The demo CLIP's model card (models/demo-clip/README.md), written from what was measured:
 * training.json (train-clip.ts) and the evaluation JSON (eval-clip.ts).
 *
 *   npx tsx engine/demo/clip-card.ts [--model models/demo-clip] [--eval scratch/demo-clip-eval.json]
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readSafetensors } from '../io/safetensors';
import { TOKEN_IDS_KEY } from '../models/clip-weights';
import { ClipTokenizer } from '../models/tokenizer';
import type { DemoClipEvaluation } from './eval-clip';
import type { DemoClipSizes } from './train-clip';
import { PROXY_SUBJECTS } from './svg-proxy';
import { warmupCosine } from './train-common';
import { worldVocabulary } from './world';

interface TrainingRecord {
  seed: number; steps: number; batchSize: number; peakLr: number; warmup: number; weightDecay: number;
  sizes: DemoClipSizes; seconds: number; labelsFrom?: number; auxHeads?: boolean; auxFrom?: number; workers?: number; backgroundLabels?: boolean; visionLrScale?: number; contrastTwins?: boolean; twinCurriculum?: number; twinBlendStart?: number; secondsBeforeResume?: number; resumedAt?: number; engine?: 'tfjs' | 'onnx'; ortProvider?: string; backend: string; losses: { step: number; loss: number }[];
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

export async function writeClipCard(modelDir: string, evaluation: DemoClipEvaluation): Promise<string> {
  const t = JSON.parse(readFileSync(join(modelDir, 'training.json'), 'utf8')) as TrainingRecord;
  const weights = join(modelDir, 'model.safetensors');
  const tensors = readSafetensors(weights).tensors;
  let params = 0;
  for (const [k, x] of tensors) if (k !== TOKEN_IDS_KEY) params += x.data.length;
  const tok = await ClipTokenizer.load();
  const ids = [...(tensors.get(TOKEN_IDS_KEY)!.data as Int32Array)];
  const tokens = ids.map((id) => (id < 0 ? '(unknown)' : tok.tokenOf(id)!.replace('</w>', '·')));
  const v = worldVocabulary();
  const s = t.sizes;
  const loss = (i: number) => t.losses[i]!;
  const lastLosses = t.losses.slice(-5).map((l) => l.loss);
  const before = t.labelsFrom !== undefined ? [...t.losses].reverse().find((l) => l.step <= t.labelsFrom!) : t.losses.at(-1);
  const met = (f: DemoClipEvaluation['figures'][number]) => (f.target === undefined ? '' : f.accuracy >= f.target ? 'yes' : '**no**');
  const figures = evaluation.figures.map((f) => `| ${f.name} | ${pct(f.accuracy)} | ${f.correct}/${f.total} | ${f.target ? `≥ ${f.target * 100} %` : ''} | ${met(f)} |`);
  const failing = evaluation.figures.filter((f) => f.target !== undefined && f.accuracy < f.target);
  const status = failing.length
    ? `**Status: this model does not meet its targets** (${failing.map((f) => `${f.name}: ${pct(f.accuracy)}`).join('; ')}). It is bundled so the studio runs offline end to end; see "Limits".`
    : 'Status: every target below is met.';
  const mistakes = evaluation.figures.filter((f) => f.confusions.length).map((f) => `- ${f.name}: ${f.confusions.join('; ')}`);
  const size = statSync(weights).size;
  const card = `# demo-clip: a small CLIP trained on the demo world

The bundled CLIP the studio uses when no real CLIP model is installed. It has the real
architecture (clip.ts: a ViT image tower, a causal text transformer pooled at the end token,
projections into a shared space, a learned temperature), reads the real CLIP BPE tokenizer's
ids, and is stored like the released models (Hugging Face \`config.json\`,
\`preprocessor_config.json\`, \`model.safetensors\`). It knows only the synthetic world it was
trained on: coloured shapes and black line doodles.

Reproduce: \`npm run train:demo\` (seed ${t.seed}; engine/demo/train-clip.ts), then
\`npm run eval:demo\` for the figures below (engine/demo/eval-clip.ts).

## Model

| | image tower | text tower |
|---|---|---|
| input | ${s.imageSize}×${s.imageSize} RGB, patches ${s.patchSize}×${s.patchSize} (${(s.imageSize / s.patchSize) ** 2} + class token) | real CLIP BPE ids, context 77 |
| width × layers × heads | ${s.visionWidth} × ${s.visionLayers} × ${s.visionHeads} | ${s.textWidth} × ${s.textLayers} × ${s.textHeads} |
| MLP | ${4 * s.visionWidth}, quick_gelu | ${4 * s.textWidth}, quick_gelu |

Shared embedding width ${s.projection}; ${(params / 1e6).toFixed(2)} M parameters; \`model.safetensors\` is
${(size / 1e6).toFixed(2)} MB (float16). Preprocessing is OpenAI CLIP's (bicubic resize of the shorter side,
centre crop, OpenAI mean/std) at ${s.imageSize} px, so a 128×128 upload is shrunk to ${s.imageSize}×${s.imageSize}.

**Pruned vocabulary.** The token table has ${ids.length} rows instead of 49 408
(\`text_config.pruned_vocab\`; the tensor \`${TOKEN_IDS_KEY}\` lists the tokenizer id of each
row, -1 for the unknown row). Any other id reads the unknown row, which training taught to
carry no meaning (10 % of training captions had an out-of-vocabulary token inserted). The
kept tokens (· ends a word): ${tokens.join(' ')}

## The world (engine/demo/world.ts, prompts/demo/world.json)

- Scenes of 1–3 shapes — ${v.shapes.join(', ')} — coloured ${v.colors.join(', ')}, ${v.sizes.join(' or ')},
  in one of 9 places (${v.positions.join(', ')}), on a ${v.backgroundColors.join('/')} background.
- Doodles: black strokes on white paper, ${v.subjects.length} subjects: ${v.subjects.join(', ')}.
- Captions from templates ("a big red circle on a blue background", "two small yellow stars",
  "a green triangle in the top left", "a sketch of a fish"), plus, for training only,
  "a {color} shape" / "two {color} shapes" when every shape in a scene has that colour.
- Half the training pictures were drawn at ${2 * s.imageSize} px and shrunk like an upload, half drawn at ${s.imageSize} px.

## Training

Symmetric InfoNCE (CLIP's loss) in which every caption that fits a picture counts as a
positive (two doodles of a cat both fit "a sketch of a cat"); temperature learned, clamped at
100; AdamW (β2 0.98, weight decay ${t.weightDecay} on matrices), peak learning rate ${t.peakLr}, ${t.warmup} warmup
steps, cosine decay. ${t.steps} steps of ${t.batchSize} pictures = ${(t.steps * t.batchSize).toLocaleString('en')} pictures,
all fresh (no picture seen twice), none from the evaluation seeds.${t.labelsFrom !== undefined ? ` From step ${t.labelsFrom + 1} on, each
picture is also scored against every label caption of its kind — all shapes ("a circle", "a star",
…), all colours ("a red shape", …), all doodle subjects ("a drawing of a cat", …)${t.backgroundLabels ? `, all
backgrounds of a scene ("a shape on a gray background", …)` : ''} — in one more
image→text cross-entropy term, and batches draw scenes twice as often as doodles, half of them
with a single shape.` : ''}${t.auxHeads ? `

**Auxiliary heads.** The label term alone stalls: while the image tower has no shape features,
the loss is lowest when the text tower gives "a circle" and "a star" the same embedding, and then
it sends the image tower no shape gradient at all (seen in an earlier run: after 200 steps the two
captions had cosine 0.9995 and shape accuracy sat at chance). So ${t.backgroundLabels ? 'four linear heads (shape, colour, subject, background)' : 'three linear heads (shape, colour, subject)'} on the normalised image embedding add a cross-entropy term each from step 1, as
a supervised classifier would; they keep distinct class directions while the image tower learns
the features. They are used in training only and not saved: the bundled model is a plain CLIP.

**Why patch ${s.patchSize}.** Even with shape labels given directly, a vision transformer this small
sits at chance for its first ~15,000 pictures (measured: 8-way shape accuracy 13 % → 20 % only
around picture 14,000). On tfjs-wasm, whose batched attention matmuls run at ~1 GFLOPS, patch 16
trains about 4× more pictures per second than patch 8 (image tower alone: 58 vs 15 pictures/s),
so the same minutes buy far more of the pictures it needs. On the onnx engine the gap was 2.2×
(104 vs 47 pictures/s for this recipe, measured before batches drew faster), and patch 8 learns more per picture (shape 36 % against
24.5 % at step 1,000), but patch 16 reaches step 2,000 in the same 22 minutes and reads as well
or better there (shape 36.5 %, doodles 57 % against 37 %, recall@1 of a fitting picture 64 %
against 53 %).` : ''}${t.visionLrScale !== undefined && t.visionLrScale !== 1 ? `

**A slower image tower.** The image tower's learning rate is ${t.visionLrScale}× the text tower's (peak
${+(t.peakLr * t.visionLrScale).toPrecision(3)}). The same supervised shape probe at ${+(t.peakLr * t.visionLrScale).toPrecision(3)} reached 31 % after 54,000 pictures, where at
${t.peakLr} it was still at chance (13–15 %) after 26,000.` : ''}${t.contrastTwins ? `

**Contrast twins.** Colour, not shape, is what made shape slow: the same probe learned the eight
shapes from gray pictures in which each pixel is as dark as it is far from the background
(every shape black on white) to 68 % after 19,200 pictures, where on the coloured pictures it
was at 19 %. So every single-shape scene in a batch also goes through the image tower as such
a twin (engine/demo/clip-data.ts \`contrastTwin\`): the shape head learns from the twins, and
the picture's embedding, through a linear predictor (training only, like the heads), is pulled
toward its twin's, held fixed. In the probe with twins (peak learning rate 5e-4), shape on the
coloured pictures read 38–41 % at step 600 (19,200 coloured pictures and their twins); without
them (2e-4, the better of the rates tried) 27.5 % at step 590 (37,800 pictures).` : ''}${t.twinCurriculum ? `

**A twin curriculum.** Over the first ${t.twinCurriculum} steps every scene's picture is blended with its
contrast twin, the twin's weight falling linearly from ${t.twinBlendStart} to 0 (never 1: the captions name
colours from the first step). In the probe, a switch from twins to colour kept little of what
the twins taught (17.7 % just after it), while a blend fading out over 250 steps read 42 % at
step 160, half blended, and 30 % at step 300 on colour alone. In the 3,000-step recipe (curriculum
1,200 steps) that came before, against the same training without it, the evaluation moved from
33.5 % to 41 % on shapes and from 54.5 % to 71.5 % on SVG shapes, but from 70 % to 64.5 % on
doodles: early on, the blended scenes look like black-on-white drawings too.` : ''}${!t.resumedAt && (t.workers ?? 1) > 1 ? `

**Workers.** Trained with ${t.workers} data-parallel workers from step 1 (engine/demo/data-parallel.ts: each worker
thread trains on its share of every batch, ${t.batchSize / t.workers!} pictures that are also its contrastive batch, and every
step applies the mean of their gradients; ${(t.steps * t.batchSize / t.seconds).toFixed(1)} pictures/s), because tfjs-wasm computes on one
thread in Node.` : ''}${t.resumedAt && t.secondsBeforeResume ? `

**Phases** (engine/demo/train.ts): steps 1–${t.resumedAt} (${(t.resumedAt * t.batchSize / t.secondsBeforeResume).toFixed(1)} pictures/s, ${(t.secondsBeforeResume / 60).toFixed(1)} minutes); steps
${t.resumedAt + 1}–${t.steps} resumed from its checkpoint${(t.workers ?? 1) > 1 ? ` with ${t.workers} data-parallel workers (engine/demo/data-parallel.ts: each worker
thread trains on its share of every batch, ${t.batchSize / t.workers!} pictures that are also its contrastive batch, and every
step applies the mean of their gradients. Workers, because tfjs-wasm computes on one thread in Node)` : ''} (${((t.steps - t.resumedAt) * t.batchSize / (t.seconds - t.secondsBeforeResume)).toFixed(1)} pictures/s, ${((t.seconds - t.secondsBeforeResume) / 60).toFixed(1)} minutes). The schedule was lengthened to ${t.steps} steps at the resume, so the
learning rate rose from its floor again (to ${+warmupCosine(t.resumedAt, t.peakLr, t.warmup, t.steps).toPrecision(2)}) and decayed anew.` : ''}

${t.engine === 'onnx' ? `**Engine.** Both towers ran forward and backward on onnxruntime${t.ortProvider ? ` (${t.ortProvider} provider)` : ''} (engine/onnx/clip-train-onnx.ts:
ONNX graphs of the towers with their weights as inputs, and their backward passes built by
engine/onnx/autodiff.ts), the loss on the embeddings and AdamW in tfjs, and the next batch was
drawn in a worker thread meanwhile (engine/demo/batch-worker.ts); ${(t.steps * t.batchSize / t.seconds).toFixed(1)} pictures/s in one process. The
gradients are clip.ts's (to ~2e-6 relative; test/engine/onnx/clip-train-onnx.test.ts).

` : ''}Trained ${t.engine === 'onnx' ? `with onnxruntime and tfjs (${t.backend}) on` : `on the tfjs ${t.backend} backend of`} a 2-core machine in **${(t.seconds / 60).toFixed(1)} minutes**. ${t.labelsFrom === 0
  ? `The loss (contrastive and label terms from step 1${t.auxHeads ? (t.auxFrom ? `, auxiliary heads from step ${t.auxFrom}` : ' and auxiliary heads') : ''}) was ${loss(0).loss.toFixed(2)} at step ${loss(0).step} and ${(lastLosses.reduce((a, b) => a + b, 0) / lastLosses.length).toFixed(2)} over the last ${lastLosses.length} readings; at chance each label term alone is ln 8 + ln 8 + ln 28${t.backgroundLabels ? ' + ln 9' : ''} = ${(2 * Math.log(8) + Math.log(28) + (t.backgroundLabels ? Math.log(9) : 0)).toFixed(2)} and the contrastive term ln ${t.batchSize / (t.workers ?? 1)} = ${Math.log(t.batchSize / (t.workers ?? 1)).toFixed(2)}${(t.workers ?? 1) > 1 ? ' (the last readings are worker 0\'s loss on its share of the batch)' : ''}.`
  : `Contrastive loss ${loss(0).loss.toFixed(2)} at step ${loss(0).step}${before ? ` → ${before.loss.toFixed(2)} at step ${before.step} (chance is ln ${t.batchSize} = ${Math.log(t.batchSize).toFixed(2)})` : ''}; with the label term added${t.labelsFrom !== undefined ? ` (chance ln 8 + ln 8 + ln 28 = ${(2 * Math.log(8) + Math.log(28)).toFixed(2)} more)` : ''}, ${(lastLosses.reduce((a, b) => a + b, 0) / lastLosses.length).toFixed(2)} over the last ${lastLosses.length} readings.`}

## Evaluation (evaluation seed ${evaluation.seed}, never used in training)

Pictures are 128×128 and go through the model's own preprocessing. "svg" rows are flat shapes
and line doodles written as SVG from scratch and rasterised by librsvg (engine/demo/svg-proxy.ts),
a stand-in for pictures from another program; its doodles cover ${PROXY_SUBJECTS.length} of the subjects but are
scored among all ${v.subjects.length}.

${status}

| figure | accuracy | | target | met |
|---|---|---|---|---|
${figures.join('\n')}

"Own picture first" is the strict recall: when two pictures fit a caption equally (two doodles of
the same subject, "a red circle" on two backgrounds) only one can rank first. "A fitting picture
first" counts the top picture when the caption is one of its own captions.

Most frequent mistakes:
${mistakes.join('\n')}

## Limits

The training budget (${(t.seconds / 60).toFixed(0)} minutes of two shared CPU cores, ${(t.steps * t.batchSize).toLocaleString('en')} pictures) is small for a
vision transformer learned from scratch: colour is learned first, shape and doodle subject much
later. More steps are the first lever; on a GPU the same trainer runs unchanged
(\`CLIP_STUDIO_ORT_PROVIDER=webgpu\` or CUDA with \`--engine onnx\`).

It knows nothing outside this world: other words share the unknown row, and photographs,
other colours or other subjects get arbitrary scores. Use a real CLIP
(\`clip-studio models fetch clip-vit-base-patch32\`) for anything else.
`;
  writeFileSync(join(modelDir, 'README.md'), card);
  return card;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1]?.endsWith('clip-card.ts')) {
  const model = resolve(arg('model') ?? 'models/demo-clip');
  const evaluation = JSON.parse(readFileSync(arg('eval') ?? 'scratch/demo-clip-eval.json', 'utf8')) as DemoClipEvaluation;
  await writeClipCard(model, evaluation);
  console.log(`wrote ${join(model, 'README.md')}`);
}
