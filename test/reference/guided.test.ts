/**
 * One step of CLIP-guided VQGAN optimisation against the reference notebooks' loss
 * (guided.safetensors): indices, the clamped image, image embeddings, the loss and d loss/d z,
 * over every fixture set. Fixtures are NCHW; our latent is NHWC, so z and grad_z are transposed
 * here. Also: the prompts in the file's metadata, tokenised and run through our text tower,
 * give the stored text embeddings; and 20 guided steps leave no tensors behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf, initBackend } from '../../engine/runtime/tf';
import { readSafetensors } from '../../engine/io/safetensors';
import type { HostTensor } from '../../engine/io/host-tensor';
import { loadVqgan, disposeVqgan, vqganQuantize, nchwToNhwc, nhwcToNchw } from '../../engine/models/vqgan';
import { loadClip, encodeImage, encodeText, normalizePixels } from '../../engine/models/clip';
import { ClipTokenizer } from '../../engine/models/tokenizer';
import { guidedLoss, synthesizeImage, parsePrompts } from '../../engine/guide/loss';
import { fixtureDirs, maxAbsDiff, maxAbs, activationTolerance, cosine } from '../helpers/fixtures';

const toTensor = (t: HostTensor) => tf.tensor(t.data, t.shape, t.dtype === 'int32' ? 'int32' : 'float32');

async function load(dir: string) {
  await initBackend();
  const vqgan = await loadVqgan({ configPath: join(dir, 'vqgan_config.json'), weightsPath: join(dir, 'vqgan.safetensors') });
  const clip = await loadClip({ configPath: join(dir, 'clip_config.json'), weightsPath: join(dir, 'clip.safetensors') });
  const { tensors, metadata } = readSafetensors(join(dir, 'guided.safetensors'));
  const prompts = JSON.parse(metadata.prompts!) as { text: string; weight: number }[];
  return { vqgan, clip, ref: (k: string) => tensors.get(k)!, prompts };
}

function assertClose(name: string, ours: ArrayLike<number>, ref: HostTensor): void {
  const err = maxAbsDiff(ours, ref.data);
  const tol = activationTolerance(ref.data);
  console.log(`  ${name}: max|ours − ref| = ${err.toExponential(2)} (tolerance ${tol.toExponential(2)})`);
  assert.ok(err <= tol, `${name}: max abs error ${err} exceeds ${tol}`);
}

for (const dir of fixtureDirs()) {
  test(`guided loss and gradient match the reference step (${dir})`, async () => {
    const { vqgan, clip, ref, prompts } = await load(dir);
    const weights = prompts.map((p) => p.weight);
    const textEmbeds = toTensor(ref('text_embeds')) as tf.Tensor2D;
    const z = tf.variable(tf.tidy(() => nchwToNhwc(toTensor(ref('z')) as tf.Tensor4D)));
    try {
      tf.tidy(() => {
        const { indices } = vqganQuantize(vqgan, z);
        const refIdx = ref('indices').data;
        const ours = indices.dataSync();
        const wrong = refIdx.findIndex((v, i) => v !== ours[i]);
        assert.equal(wrong, -1, `index ${wrong} differs: ours ${ours[wrong]}, reference ${refIdx[wrong]}`);

        const image = synthesizeImage(vqgan, z);
        assertClose('image', image.dataSync(), ref('image'));
        assertClose('image_embeds', encodeImage(clip, normalizePixels(clip.config, image)).dataSync(), ref('image_embeds'));

        const { value, grads } = tf.variableGrads(() => guidedLoss({ vqgan, clip, z, textEmbeds, weights }), [z]);
        const loss = value.dataSync()[0]!;
        const refLoss = ref('loss').data[0]!;
        const rel = Math.abs(loss - refLoss) / Math.abs(refLoss);
        console.log(`  loss: ours ${loss}, reference ${refLoss}, relative error ${rel.toExponential(2)}`);
        assert.ok(rel <= 1e-4, `loss relative error ${rel} exceeds 1e-4`);

        const grad = nhwcToNchw(grads[z.name]! as tf.Tensor4D).dataSync();
        const refGrad = ref('grad_z').data;
        const cos = cosine(grad, refGrad);
        const err = maxAbsDiff(grad, refGrad);
        const tol = 1e-3 * maxAbs(refGrad);
        console.log(`  grad_z: cosine ${cos.toFixed(7)}, max|ours − ref| = ${err.toExponential(2)} (tolerance ${tol.toExponential(2)})`);
        assert.ok(cos >= 0.9999, `grad_z cosine ${cos} below 0.9999`);
        assert.ok(err <= tol, `grad_z max abs error ${err} exceeds ${tol}`);
      });
    } finally {
      z.dispose();
      textEmbeds.dispose();
      disposeVqgan(vqgan);
      clip.dispose();
    }
  });

  test(`our tokenizer and text tower reproduce the guided prompts' embeddings (${dir})`, async () => {
    const { vqgan, clip, ref, prompts } = await load(dir);
    disposeVqgan(vqgan);
    const parsed = parsePrompts(prompts.map((p) => `${p.text}:${p.weight}`).join(' | '));
    assert.deepEqual(parsed, prompts);
    const tok = await ClipTokenizer.load();
    const { ids } = tok.tokenize(parsed.map((p) => p.text));
    const embeds = tf.tidy(() => encodeText(clip, tf.tensor2d(ids, [parsed.length, ids.length / parsed.length], 'int32')).dataSync());
    assertClose('text_embeds', embeds, ref('text_embeds'));
    clip.dispose();
  });

  test(`20 guided steps with gradients leave no tensors behind (${dir})`, async () => {
    const { vqgan, clip, ref, prompts } = await load(dir);
    const textEmbeds = toTensor(ref('text_embeds')) as tf.Tensor2D;
    // A corner of z keeps 21 steps fast; a bilinear resize (as cutouts would) brings its image to CLIP's size.
    const z = tf.variable(tf.tidy(() => tf.slice(nchwToNhwc(toTensor(ref('z')) as tf.Tensor4D), 0, [1, 4, 4, -1])));
    const size = clip.config.vision.imageSize;
    const cutouts = (image: tf.Tensor4D) =>
      nhwcToNchw(tf.image.resizeBilinear(nchwToNhwc(image), [size, size])); // NCHW -> NHWC -> resized -> NCHW
    const optimizer: tf.Optimizer = tf.train.adam(0.05);
    const weights = prompts.map((p) => p.weight);
    const step = () => tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => guidedLoss({ vqgan, clip, z, textEmbeds, weights, cutouts }), [z]);
      optimizer.applyGradients(grads);
      return value;
    });
    tf.dispose(step()); // the optimiser allocates its slots on the first step
    const before = tf.memory().numTensors;
    const stepAndRead = async () => { const v = step(); const loss = (await v.data())[0]!; v.dispose(); return loss; };
    const first = await stepAndRead();
    for (let i = 0; i < 18; i++) tf.dispose(step());
    const last = await stepAndRead();
    assert.ok(last < first, `20 Adam steps should lower the loss: ${first} → ${last}`);
    assert.equal(tf.memory().numTensors, before, 'guided steps leaked tensors');
    optimizer.dispose();
    tf.dispose([z, textEmbeds]);
    disposeVqgan(vqgan);
    clip.dispose();
  });
}
