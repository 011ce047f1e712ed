/**
 * Inference figures: the machine's SGEMM peak through ORT, and CLIP image/text throughput on
 * ORT and on tfjs (the active backend), with random weights at a given size.
 */
import {
  OnnxGraph, OrtClipEmbedder, clipVisionFlops, createOrtSession, encodeImage, encodeText, initBackend, loadClip, tf,
  type ClipConfig, type ExecutionProvider, type StateDict,
} from '../engine/index';
import { bestMs, progress } from './measure';

/**
 * Matmul peak in GFLOP/s: ORT MatMul of [n, n]·[n, n] (B an initializer, as the model weights
 * are), on `provider` (default: the one sessions get, CLIP_STUDIO_ORT_PROVIDER), which is returned.
 */
export async function sgemmPeak(n = 2048, runs = 8, provider?: ExecutionProvider): Promise<{ gflops: number; provider: ExecutionProvider }> {
  const g = new OnnxGraph('sgemm');
  const a = g.input('a', 'float32', [n, n]);
  g.output(g.op('MatMul', [a, g.init('b', new Float32Array(n * n).fill(1 / n), [n, n])]), 'c', 'float32', [n, n]);
  const s = await createOrtSession(g.toModel(), provider ? { provider } : {});
  const data = new Float32Array(n * n).map((_, i) => (i % 13) / 13);
  try {
    const ms = await bestMs(() => s.run({ a: { type: 'float32', data, dims: [n, n] } }), runs, 2);
    return { gflops: (2 * n ** 3) / ms / 1e6, provider: s.provider };
  } finally {
    await s.release();
  }
}

function randomPixels(n: number, c: ClipConfig): Float32Array {
  const R = c.vision.imageSize;
  return new Float32Array(n * c.vision.numChannels * R * R).map((_, i) => Math.sin(i * 0.37) * 1.5);
}

/** Token rows like the tokenizer's: start, a few words, end, zero padding. */
export function randomIds(n: number, c: ClipConfig, seed = 1): Int32Array {
  const T = c.text.maxPositionEmbeddings;
  const ids = new Int32Array(n * T);
  for (let r = 0; r < n; r++) {
    const words = 5 + ((r * 7 + seed) % 10);
    ids[r * T] = 49406;
    for (let i = 1; i <= words; i++) ids[r * T + i] = 300 + ((r * 131 + i * 17 + seed * 7919) % 40000);
    ids[r * T + words + 1] = 49407;
  }
  return ids;
}

export interface OrtInference { images_per_s: number; gflops: number; texts_per_s: number }

/** ORT throughput at batch `batch` (best of `runs`), through OrtClipEmbedder as the studio uses it. */
export async function ortInference(config: ClipConfig, tensors: StateDict, batch = 8, runs = 5): Promise<OrtInference> {
  progress(`ORT: building the graphs (width ${config.vision.hiddenSize}, ${config.vision.numHiddenLayers} layers)`);
  // maxBatch = batch, so a batch-sized request runs at once (no micro-batching window)
  const e = await OrtClipEmbedder.fromWeights({ config, tensors }, { maxBatch: batch, textCacheSize: 0 });
  try {
    const px = randomPixels(batch, config);
    progress(`ORT: image encode, batch ${batch}`);
    const imageMs = await bestMs(() => e.embedImages(px, batch), runs);
    let seed = 0;
    progress(`ORT: text encode, batch ${batch}`);
    const textMs = await bestMs(() => e.embedTexts(randomIds(batch, config, ++seed), batch), runs);
    const images_per_s = (batch / imageMs) * 1000;
    return { images_per_s, gflops: (clipVisionFlops(config) * images_per_s) / 1e9, texts_per_s: (batch / textMs) * 1000 };
  } finally {
    await e.close();
  }
}

export interface TfInference { images_per_s: number; gflops: number; texts_per_s: number; backend: string }

/** tfjs throughput (encodeImage/encodeText) at batch `batch`: one warm-up at batch 1, best of `runs`. */
export async function tfInference(config: ClipConfig, tensors: StateDict, batch = 8, runs = 1): Promise<TfInference> {
  const backend = await initBackend();
  const clip = await loadClip({ config, tensors });
  try {
    const R = config.vision.imageSize;
    const C = config.vision.numChannels;
    const T = config.text.maxPositionEmbeddings;
    const image = (n: number) => async () => {
      const x = tf.tensor4d(randomPixels(n, config), [n, C, R, R]);
      const y = encodeImage(clip, x);
      await y.data();
      tf.dispose([x, y]);
    };
    const text = (n: number) => async () => {
      const x = tf.tensor2d(randomIds(n, config), [n, T], 'int32');
      const y = encodeText(clip, x);
      await y.data();
      tf.dispose([x, y]);
    };
    progress(`tfjs (${backend.name}): image encode, batch ${batch}`);
    await image(1)();
    const imageMs = await bestMs(image(batch), runs, 0);
    progress(`tfjs (${backend.name}): text encode, batch ${batch}`);
    await text(1)();
    const textMs = await bestMs(text(batch), runs, 0);
    const images_per_s = (batch / imageMs) * 1000;
    return { images_per_s, gflops: (clipVisionFlops(config) * images_per_s) / 1e9, texts_per_s: (batch / textMs) * 1000, backend: backend.name };
  } finally {
    clip.dispose();
  }
}
