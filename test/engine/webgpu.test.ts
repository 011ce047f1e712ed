/**
 * The GPU paths, on whatever WebGPU adapter this machine has (in CI Mesa's lavapipe, a software
 * Vulkan driver; on a GPU box the GPU): onnxruntime's WebGPU provider and tfjs's WebGPU backend,
 * each against the reference outputs of the parity suite's fixture sets, the guided step's
 * loss and gradient included. GPU data is read asynchronously only, as the engine does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf, initBackend } from '../../engine/runtime/tf';
import { readSafetensors } from '../../engine/io/safetensors';
import type { HostTensor } from '../../engine/io/host-tensor';
import { readClipConfig } from '../../engine/models/config';
import { loadClip, encodeImage, normalizePixels } from '../../engine/models/clip';
import { loadVqgan, disposeVqgan, nchwToNhwc, nhwcToNchw } from '../../engine/models/vqgan';
import { guidedLoss, synthesizeImage } from '../../engine/guide/loss';
import { OrtClipEmbedder } from '../../engine/onnx/embedder';
import { generate, loadGenerateModels, validateGenerateParams } from '../../engine/index';
import { FIXTURE_DIR } from '../helpers/generate-models';
import { activationTolerance, cosine, fixtureDirs, maxAbs, maxAbsDiff } from '../helpers/fixtures';
import { requireWebGpuAdapter } from '../helpers/system';
import { ClipTokenizer } from '../../engine/models/tokenizer';
import { parseClipConfig } from '../../engine/models/config';
import { clipWeightsFromStateDict, tokenRowTable, towerTensors, weightTensors } from '../../engine/models/clip-weights';
import { demoTokenIds } from '../../engine/demo/clip-data';
import { DEMO_CLIP_SIZES, demoClipConfigJson, demoPreprocessorJson, initClipStateDict } from '../../engine/demo/train-clip';
import { OrtClipTowers, patchRows, textInputs } from '../../engine/onnx/clip-train-onnx';

const gpu = await requireWebGpuAdapter();

function assertClose(name: string, ours: ArrayLike<number>, ref: ArrayLike<number>, log: (m: string) => void) {
  const err = maxAbsDiff(ours, ref);
  const tol = activationTolerance(ref);
  log(`${name}: max|ours − ref| = ${err.toExponential(2)} (tolerance ${tol.toExponential(2)})`);
  assert.ok(err <= tol, `${name}: max abs error ${err} exceeds ${tol}`);
}

for (const dir of fixtureDirs()) {
  test(`onnxruntime's WebGPU provider matches the reference (${dir})`, { skip: gpu.skip }, async (t) => {
    const config = readClipConfig(join(dir, 'clip_config.json'));
    const tensors = readSafetensors(join(dir, 'clip.safetensors')).tensors;
    const cases = readSafetensors(join(dir, 'cases.safetensors'), (k) => k.startsWith('clip.')).tensors;
    const get = (k: string) => cases.get(k)!.data;
    const [pixels, ids] = [cases.get('clip.pixel_values')!, cases.get('clip.input_ids')!];
    const ort = await OrtClipEmbedder.fromWeights({ config, tensors }, { provider: 'webgpu', textCacheSize: 0 });
    try {
      assert.equal(ort.runtime.provider, 'webgpu');
      t.diagnostic(`adapter: ${gpu.device}`);
      const image = await ort.embedImages(pixels.data as Float32Array, pixels.shape[0]!);
      const text = await ort.embedTexts(ids.data as Int32Array, ids.shape[0]!);
      assertClose('image_embeds', image, get('clip.image_embeds'), (m) => t.diagnostic(m));
      assertClose('text_embeds', text, get('clip.text_embeds'), (m) => t.diagnostic(m));
      assertClose('logits_per_image', ort.logits(image, pixels.shape[0]!, text, ids.shape[0]!), get('clip.logits_per_image'), (m) => t.diagnostic(m));
    } finally {
      await ort.close();
    }
  });

  test(`tfjs's WebGPU backend gives the reference guided step: image, embeddings, loss and d loss/d z (${dir})`, { skip: gpu.skip }, async (t) => {
    const report = await initBackend('webgpu');
    assert.equal(report.name, 'webgpu');
    assert.equal(tf.getBackend(), 'webgpu');
    t.diagnostic(`tfjs on ${report.device}`);
    const vqgan = await loadVqgan({ configPath: join(dir, 'vqgan_config.json'), weightsPath: join(dir, 'vqgan.safetensors') });
    const clip = await loadClip({ configPath: join(dir, 'clip_config.json'), weightsPath: join(dir, 'clip.safetensors') });
    const { tensors, metadata } = readSafetensors(join(dir, 'guided.safetensors'));
    const ref = (k: string): HostTensor => tensors.get(k)!;
    const weights = (JSON.parse(metadata.prompts!) as { weight: number }[]).map((p) => p.weight);
    const textEmbeds = tf.tensor2d(ref('text_embeds').data as Float32Array, ref('text_embeds').shape as [number, number]);
    const z = tf.variable(tf.tidy(() => nchwToNhwc(tf.tensor4d(ref('z').data as Float32Array, ref('z').shape as [number, number, number, number]))));
    const before = tf.memory().numTensors;
    try {
      const [image, embeds, loss, grad] = tf.tidy(() => {
        const img = synthesizeImage(vqgan, z);
        const { value, grads } = tf.variableGrads(() => guidedLoss({ vqgan, clip, z, textEmbeds, weights }), [z]);
        return [img, encodeImage(clip, normalizePixels(clip.config, img)), value, nhwcToNchw(grads[z.name]! as tf.Tensor4D)];
      });
      const [imageData, embedData, lossData, gradData] = await Promise.all([image!.data(), embeds!.data(), loss!.data(), grad!.data()]);
      tf.dispose([image!, embeds!, loss!, grad!]);
      assertClose('image', imageData, ref('image').data, (m) => t.diagnostic(m));
      assertClose('image_embeds', embedData, ref('image_embeds').data, (m) => t.diagnostic(m));
      const refLoss = ref('loss').data[0]!;
      const rel = Math.abs(lossData[0]! - refLoss) / Math.abs(refLoss);
      t.diagnostic(`loss: ours ${lossData[0]}, reference ${refLoss}, relative error ${rel.toExponential(2)}`);
      // 1e-3 here, not the CPU backends' 1e-4: WGSL's asin built-in is an approximation (on
      // lavapipe 1e-4–4e-4 relative against tfjs-cpu at 0.5–0.9; sqrt, exp and log are exact), and
      // the spherical distance is 2·asin(chord/2)². The embeddings it starts from match to ~1e-6.
      assert.ok(rel <= 1e-3, `loss relative error ${rel} exceeds 1e-3`);
      const refGrad = ref('grad_z').data;
      const cos = cosine(gradData, refGrad);
      const err = maxAbsDiff(gradData, refGrad);
      t.diagnostic(`grad_z: cosine ${cos.toFixed(7)}, max|ours − ref| = ${err.toExponential(2)}`);
      assert.ok(cos >= 0.9999, `grad_z cosine ${cos} below 0.9999`);
      assert.ok(err <= 1e-3 * maxAbs(refGrad), `grad_z max abs error ${err} exceeds 1e-3 · max|ref|`);
      assert.equal(tf.memory().numTensors, before, 'the guided step on webgpu leaked tensors');
    } finally {
      tf.dispose([z, textEmbeds]);
      disposeVqgan(vqgan);
      clip.dispose();
    }
  });
}

test('the generate loop runs on the WebGPU backend: previews, the image, the loss going down, no leaked tensors', { skip: gpu.skip }, async () => {
  await initBackend('webgpu');
  const models = await loadGenerateModels({ clip: FIXTURE_DIR, vqgan: FIXTURE_DIR });
  try {
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    let previews = 0;
    let done = false;
    for await (const e of generate(models, validateGenerateParams({ prompt: 'a red circle | blue:-0.5', size: 16, cutn: 2, steps: 6, seed: 5, lr: 0.3, augment: false, previewEvery: 2 }))) {
      if (e.type === 'done') {
        done = true;
        assert.equal(e.image.width, 16);
        assert.ok(e.image.rgb.some((v) => v !== e.image.rgb[0]), 'the image is not flat');
      } else {
        assert.ok(Number.isFinite(e.loss), `step ${e.step}: loss ${e.loss}`);
        losses.push(e.loss);
        if (e.preview) previews++;
      }
    }
    assert.ok(done, 'no done event');
    assert.equal(previews, 3, 'previews at steps 1, 3 and 5');
    assert.ok(losses.at(-1)! < losses[0]!, `loss ${losses[0]} → ${losses.at(-1)}`);
    assert.equal(tf.memory().numTensors, before, 'the generate loop on webgpu leaked tensors');
  } finally {
    models.dispose();
  }
});

test("the demo CLIP's training graphs give the same embeddings and gradients on onnxruntime's WebGPU provider as on the CPU", { skip: gpu.skip, timeout: 180_000 }, async (t) => {
  const tok = await ClipTokenizer.load();
  const tokenIds = demoTokenIds(tok);
  const config = parseClipConfig(demoClipConfigJson(DEMO_CLIP_SIZES, tokenIds.length), demoPreprocessorJson(DEMO_CLIP_SIZES));
  const state = initClipStateDict(config, 5, tokenIds);
  const w = clipWeightsFromStateDict(state, config, 'demo CLIP');
  const shapes = { vision: new Map([...towerTensors(w, 'vision')].map(([k, x]) => [k, x.shape])), text: new Map([...towerTensors(w, 'text')].map(([k, x]) => [k, x.shape])) };
  const values = (tower: 'vision' | 'text') => new Map([...towerTensors(w, tower)].map(([k, x]) => [k, x.dataSync() as Float32Array]));
  const [gpuTowers, cpuTowers] = [await OrtClipTowers.create(config, shapes, { provider: 'webgpu' }), await OrtClipTowers.create(config, shapes, { provider: 'cpu' })];
  try {
    assert.equal(gpuTowers.provider, 'webgpu');
    const N = 6;
    const S = config.vision.imageSize;
    const pixels = Float32Array.from({ length: N * 3 * S * S }, (_, i) => Math.sin(i * 0.37) * 1.5);
    const ids = new Int32Array(N * 8);
    for (let i = 0; i < N; i++) ids.set([49406, ...tok.encode(['a red circle', 'two small stars', 'a drawing of a cat', 'a', 'a blue heart', 'a moon'][i]!), 49407], i * 8);
    const inputs = {
      vision: { n: N, patches: patchRows(pixels, N, config.vision) },
      text: { n: N, t: 8, ...textInputs(ids, N, 8, tokenRowTable(tokenIds), config.text.vocabSize, config.text.maxPositionEmbeddings) },
    };
    const dEmbeds = Float32Array.from({ length: N * config.projectionDim }, (_, i) => Math.cos(i * 0.11));
    for (const tower of ['vision', 'text'] as const) {
      const e = maxAbsDiff(await gpuTowers.embed(tower, values(tower), inputs[tower]), await cpuTowers.embed(tower, values(tower), inputs[tower]));
      const [g, c] = [await gpuTowers.gradients(tower, values(tower), inputs[tower], dEmbeds), await cpuTowers.gradients(tower, values(tower), inputs[tower], dEmbeds)];
      let worst = 0;
      for (const [path, want] of c) {
        if (path.endsWith('qkv.b')) continue; // its k third has a true gradient of 0: both sides are rounding noise
        worst = Math.max(worst, maxAbsDiff(g.get(path)!, want) / maxAbs(want));
      }
      t.diagnostic(`${gpu.device} ${tower}: embeddings within ${e.toExponential(2)}, gradients within ${worst.toExponential(2)} (relative)`);
      assert.ok(e < 1e-4, `${tower} embeddings differ by ${e}`);
      assert.ok(worst < 1e-3, `${tower} gradients differ by ${worst} (relative)`);
    }
  } finally {
    await gpuTowers.release();
    await cpuTowers.release();
    tf.dispose(weightTensors(w));
  }
});
