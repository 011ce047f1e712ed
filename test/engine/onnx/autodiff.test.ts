/**
 * Every differentiable operation of autodiff.ts against tfjs's own gradients: a small graph
 * per operation, run on onnxruntime, compared with tf.grads of Σ dy · f(x) on the same values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tape } from '../../../engine/onnx/autodiff';
import { OnnxGraph } from '../../../engine/onnx/graph';
import { createOrtSession } from '../../../engine/runtime/onnx';
import { initBackend, tf } from '../../../engine/runtime/tf';
import { maxAbsDiff } from '../../helpers/fixtures';

await initBackend();

interface Arg { name: string; shape: number[]; param: boolean }

/**
 * Build `y = build(tape, ...args)`, its backward from a random dy, run both on ORT and compare
 * y and every parameter's gradient with tfjs's `reference`.
 */
async function check(name: string, args: Arg[], outShape: number[],
  build: (t: Tape, g: OnnxGraph, xs: string[]) => string,
  reference: (xs: tf.Tensor[]) => tf.Tensor) {
  const g = new OnnxGraph(name);
  const t = new Tape(g);
  const xs = args.map((a) => (a.param ? t.param(g.input(a.name, 'float32', a.shape), a.shape) : g.input(a.name, 'float32', a.shape)));
  const y = build(t, g, xs);
  t.backward(y, g.input('dy', 'float32', outShape));
  g.output(y, 'y', 'float32', outShape);
  const params = args.filter((a) => a.param);
  params.forEach((a) => g.output(t.gradient(a.name)!, `d_${a.name}`, 'float32', a.shape));
  const session = await createOrtSession(g.toModel(), { provider: 'cpu', threads: 1 });
  const values = args.map((a) => tf.randomNormal(a.shape, 0, 1, 'float32', 7));
  const dy = tf.randomNormal(outShape, 0, 1, 'float32', 11);
  const feeds = Object.fromEntries(args.map((a, i) => [a.name, { type: 'float32' as const, data: values[i]!.dataSync() as Float32Array, dims: a.shape }]));
  const out = await session.run({ ...feeds, dy: { type: 'float32', data: dy.dataSync() as Float32Array, dims: outShape } });
  await session.release();
  const ref = tf.tidy(() => reference(values));
  const scale = Math.max(1, ...Array.from(ref.dataSync(), Math.abs));
  assert.ok(maxAbsDiff(out.y!.data as Float32Array, ref.dataSync()) < 1e-5 * scale, `${name}: forward differs`);
  const paramIdx = args.flatMap((a, i) => (a.param ? [i] : []));
  const grads = tf.grads((...p: tf.Tensor[]) => tf.sum(tf.mul(reference(args.map((_, i) => p[paramIdx.indexOf(i)] ?? values[i]!)), dy)))(paramIdx.map((i) => values[i]!));
  params.forEach((a, k) => {
    const want = grads[k]!.dataSync();
    const gscale = Math.max(1, ...Array.from(want, Math.abs));
    const err = maxAbsDiff(out[`d_${a.name}`]!.data as Float32Array, want);
    assert.ok(err < 1e-4 * gscale, `${name}: d${a.name} off by ${err} (scale ${gscale})`);
  });
  tf.dispose([...values, dy, ref, ...grads]);
}

test('linear: y = x·w + b, gradients for x, w and b', async () => {
  await check('linear', [{ name: 'x', shape: [2, 3, 4], param: true }, { name: 'w', shape: [4, 5], param: true }, { name: 'b', shape: [5], param: true }], [2, 3, 5],
    (t, _g, [x, w, b]) => t.linear(x!, w!, b!),
    ([x, w, b]) => tf.add(tf.matMul(tf.reshape(x!, [6, 4]), w!).reshape([2, 3, 5]), b!));
});

test('batched matmul, and a constant selector broadcast over the batch', async () => {
  await check('matmul', [{ name: 'a', shape: [2, 3, 4, 5], param: true }, { name: 'b', shape: [2, 3, 5, 2], param: true }], [2, 3, 4, 2],
    (t, _g, [a, b]) => t.matmul(a!, b!, 4),
    ([a, b]) => tf.matMul(a!.reshape([6, 4, 5]), b!.reshape([6, 5, 2])).reshape([2, 3, 4, 2]));
  await check('select', [{ name: 's', shape: [3, 1, 4], param: false }, { name: 'x', shape: [3, 4, 5], param: true }], [3, 1, 5],
    (t, _g, [s, x]) => t.matmul(s!, x!, 3),
    ([s, x]) => tf.matMul(s!, x!));
});

test('layer norm: gradients for x, gain and bias', async () => {
  await check('layernorm', [{ name: 'x', shape: [3, 4, 8], param: true }, { name: 'gamma', shape: [8], param: true }, { name: 'beta', shape: [8], param: true }], [3, 4, 8],
    (t, _g, [x, gm, bt]) => t.layerNorm(x!, gm!, bt!, 8, 1e-5),
    ([x, gm, bt]) => {
      const mean = tf.mean(x!, -1, true);
      const c = tf.sub(x!, mean);
      return tf.add(tf.mul(tf.mul(c, tf.rsqrt(tf.add(tf.mean(tf.square(c), -1, true), 1e-5))), gm!), bt!);
    });
});

test('softmax, quick_gelu, a constant mask, reshape and transpose', async () => {
  await check('softmax', [{ name: 'x', shape: [2, 3, 5], param: true }, { name: 'm', shape: [3, 5], param: false }], [2, 3, 5],
    (t, _g, [x, m]) => t.softmax(t.addConstant(x!, m!)),
    ([x, m]) => tf.softmax(tf.add(x!, m!)));
  await check('gelu', [{ name: 'x', shape: [4, 6], param: true }], [4, 6],
    (t, _g, [x]) => t.quickGelu(x!),
    ([x]) => tf.mul(x!, tf.sigmoid(tf.mul(x!, 1.702))));
  await check('reshape', [{ name: 'x', shape: [2, 6, 4], param: true }], [2, 4, 2, 3],
    (t, _g, [x]) => t.transpose(t.reshape(x!, [0, 2, 3, 4]), [0, 3, 1, 2]),
    ([x]) => tf.transpose(tf.reshape(x!, [2, 2, 3, 4]), [0, 3, 1, 2]));
});

test('split and concat of parameters, and a broadcast add, route each gradient to its piece', async () => {
  await check('split', [{ name: 'w', shape: [3, 6], param: true }, { name: 'x', shape: [2, 3], param: false }], [2, 2],
    (t, _g, [w, x]) => {
      const [a, , c] = t.split(w!, 1, [2, 2, 2]);
      return t.add(t.linear(x!, a!), t.linear(x!, c!));
    },
    ([w, x]) => tf.add(tf.matMul(x!, tf.slice(w!, [0, 0], [3, 2])), tf.matMul(x!, tf.slice(w!, [0, 4], [3, 2]))));
  await check('concat', [{ name: 'p', shape: [2, 2], param: true }, { name: 'q', shape: [1, 2], param: true }, { name: 'pos', shape: [4, 2], param: true }, { name: 'x', shape: [5, 4, 3], param: false }], [5, 4, 2],
    (t, _g, [p, q, pos, x]) => t.addBroadcast(t.linear(x!, t.concat([p!, q!], 0)), pos!, [0]),
    ([p, q, pos, x]) => tf.add(tf.matMul(x!.reshape([20, 3]), tf.concat([p!, q!], 0)).reshape([5, 4, 2]), pos!));
});

/** NCHW conv with [top, left, bottom, right] pads, on tfjs (NHWC, HWIO): the reference for Tape.conv. */
function refConv(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, stride: number, pads: number[]): tf.Tensor {
  const xp = tf.pad(tf.transpose(x, [0, 2, 3, 1]), [[0, 0], [pads[0]!, pads[2]!], [pads[1]!, pads[3]!], [0, 0]]) as tf.Tensor4D;
  const y = tf.conv2d(xp, tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, stride, 'valid');
  return tf.transpose(tf.add(y, b), [0, 3, 1, 2]);
}

test("conv: stride 1 padded, stride 2 padded right and bottom only (taming's downsample), 1×1; gradients for x, w and b", async () => {
  // tfjs-wasm has no conv backprop kernels; the cpu backend's are the reference.
  const before = tf.getBackend();
  await tf.setBackend('cpu');
  try {
    const cases: { name: string; k: number; stride: number; pads: [number, number, number, number]; size: number; out: number }[] = [
      { name: 'conv3', k: 3, stride: 1, pads: [1, 1, 1, 1], size: 6, out: 6 },
      { name: 'down', k: 3, stride: 2, pads: [0, 0, 1, 1], size: 8, out: 4 },
      { name: 'odd', k: 3, stride: 2, pads: [1, 1, 1, 1], size: 6, out: 3 }, // the conv never reads the last row: output padding
      { name: 'conv1', k: 1, stride: 1, pads: [0, 0, 0, 0], size: 5, out: 5 },
    ];
    for (const c of cases) {
      await check(c.name, [{ name: 'x', shape: [2, 3, c.size, c.size], param: true }, { name: 'w', shape: [4, 3, c.k, c.k], param: true }, { name: 'b', shape: [4], param: true }], [2, 4, c.out, c.out],
        (t, _g, [x, w, b]) => t.conv(x!, w!, b!, { stride: c.stride, pads: c.pads, size: [c.size, c.size] }),
        ([x, w, b]) => refConv(x!, w!, b!, c.stride, c.pads));
    }
  } finally {
    await tf.setBackend(before);
  }
});

test('group norm (8 channels in 2 groups), swish, scale and nearest ×2 upsampling', async () => {
  await check('groupnorm', [{ name: 'x', shape: [2, 8, 3, 3], param: true }, { name: 'gamma', shape: [8], param: true }, { name: 'beta', shape: [8], param: true }], [2, 8, 3, 3],
    (t, _g, [x, gm, bt]) => t.groupNorm(x!, gm!, bt!, { channels: 8, size: [3, 3], groups: 2, eps: 1e-6 }),
    ([x, gm, bt]) => {
      const g = tf.reshape(x!, [2, 2, 36]);
      const c = tf.sub(g, tf.mean(g, -1, true));
      const normed = tf.reshape(tf.mul(c, tf.rsqrt(tf.add(tf.mean(tf.square(c), -1, true), 1e-6))), [2, 8, 3, 3]);
      return tf.add(tf.mul(normed, tf.reshape(gm!, [8, 1, 1])), tf.reshape(bt!, [8, 1, 1]));
    });
  await check('swish', [{ name: 'x', shape: [4, 6], param: true }], [4, 6],
    (t, _g, [x]) => t.scale(t.swish(x!), 0.5),
    ([x]) => tf.mul(tf.mul(x!, tf.sigmoid(x!)), 0.5));
  await check('upsample', [{ name: 'x', shape: [2, 3, 2, 3], param: true }], [2, 3, 4, 6],
    (t, _g, [x]) => t.upsample2x(x!, [2, 3]),
    ([x]) => tf.transpose(tf.image.resizeNearestNeighbor(tf.transpose(x!, [0, 2, 3, 1]) as tf.Tensor4D, [4, 6]), [0, 3, 1, 2]));
});

test('a value that depends on no parameter gets no backward nodes, and a tape runs backward once', () => {
  const g = new OnnxGraph('once');
  const t = new Tape(g);
  const w = t.param(g.input('w', 'float32', [2, 2]), [2, 2]);
  const x = g.input('x', 'float32', [1, 2]);
  const y = t.linear(x, w);
  t.backward(y, g.input('dy', 'float32', [1, 2]));
  assert.equal(t.gradient(x), undefined, 'an input is not differentiated');
  assert.ok(t.gradient(w));
  assert.throws(() => t.backward(y, 'dy'), /already run/);
});
