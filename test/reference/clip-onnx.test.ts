/**
 * CLIP on onnxruntime against the reference outputs and against the tfjs implementation, over
 * every fixture set in CLIP_STUDIO_FIXTURES: image and text embeddings and the logits, each
 * within the README's 1e-4 · max(1, max|ref|).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf, initBackend } from '../../engine/runtime/tf';
import { readSafetensors } from '../../engine/io/safetensors';
import { readClipConfig } from '../../engine/models/config';
import { encodeImage, encodeText, loadClip } from '../../engine/models/clip';
import { OrtClipEmbedder } from '../../engine/onnx/embedder';
import { activationTolerance, fixtureDirs, maxAbs, maxAbsDiff } from '../helpers/fixtures';

function expectClose(name: string, ours: ArrayLike<number>, ref: ArrayLike<number>, diagnostic: (m: string) => void) {
  const err = maxAbsDiff(ours, ref);
  const tol = activationTolerance(ref);
  diagnostic(`${name}: max|ort - ref| = ${err.toExponential(2)} (tolerance ${tol.toExponential(2)}, max|ref| = ${maxAbs(ref).toFixed(3)})`);
  assert.ok(err <= tol, `${name}: max|ort - ref| = ${err} exceeds ${tol}`);
}

for (const dir of fixtureDirs()) {
  test(`CLIP on onnxruntime matches the reference and tfjs (${dir})`, async (t) => {
    const config = readClipConfig(join(dir, 'clip_config.json'));
    const tensors = readSafetensors(join(dir, 'clip.safetensors')).tensors;
    const cases = readSafetensors(join(dir, 'cases.safetensors'), (k) => k.startsWith('clip.')).tensors;
    const get = (k: string) => {
      const v = cases.get(k);
      assert.ok(v, `${dir}/cases.safetensors lacks ${k}`);
      return v;
    };
    const pixels = get('clip.pixel_values');
    const ids = get('clip.input_ids');
    const [nImages, nTexts] = [pixels.shape[0]!, ids.shape[0]!];

    const ort = await OrtClipEmbedder.fromWeights({ config, tensors }, { textCacheSize: 0 });
    t.diagnostic(`onnxruntime on ${ort.runtime.provider}, ${ort.runtime.threads} threads`);
    let image: Float32Array, text: Float32Array, logits: Float32Array;
    try {
      image = await ort.embedImages(pixels.data as Float32Array, nImages);
      text = await ort.embedTexts(ids.data as Int32Array, nTexts);
      logits = ort.logits(image, nImages, text, nTexts);
    } finally {
      await ort.close();
    }
    expectClose('image_embeds', image, get('clip.image_embeds').data, (m) => t.diagnostic(m));
    expectClose('text_embeds', text, get('clip.text_embeds').data, (m) => t.diagnostic(m));
    expectClose('logits_per_image', logits, get('clip.logits_per_image').data, (m) => t.diagnostic(m));

    // The same inputs through tfjs: the two runtimes must agree as closely as each agrees with the reference.
    await initBackend();
    const clip = await loadClip({ config, tensors });
    try {
      const [tfImage, tfText] = tf.tidy(() => [
        encodeImage(clip, tf.tensor4d(pixels.data as Float32Array, pixels.shape as [number, number, number, number])),
        encodeText(clip, tf.tensor2d(ids.data as Int32Array, ids.shape as [number, number], 'int32')),
      ]);
      const [ti, tt] = [await tfImage!.data(), await tfText!.data()];
      tf.dispose([tfImage!, tfText!]);
      const vsTf = (name: string, ours: Float32Array, theirs: ArrayLike<number>, ref: ArrayLike<number>) => {
        const err = maxAbsDiff(ours, theirs);
        const tol = activationTolerance(ref);
        t.diagnostic(`${name}: max|ort - tfjs (${tf.getBackend()})| = ${err.toExponential(2)} (tolerance ${tol.toExponential(2)})`);
        assert.ok(err <= tol, `${name}: onnxruntime and tfjs differ by ${err}, more than ${tol}`);
      };
      vsTf('image_embeds', image, ti, get('clip.image_embeds').data);
      vsTf('text_embeds', text, tt, get('clip.text_embeds').data);
    } finally {
      clip.dispose();
    }
  });
}
