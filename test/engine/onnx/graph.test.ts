/** The ONNX graph builder: what it writes decodes back, and onnxruntime runs it with the right numbers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OnnxGraph, decodeModel, floatAttr, OPSET } from '../../../engine/onnx/graph';
import { createOrtSession } from '../../../engine/runtime/onnx';

function tinyModel(): Uint8Array {
  const g = new OnnxGraph('tiny');
  const x = g.input('x', 'float32', ['batch', 3]);
  // y = LayerNorm(x·w + b) scaled by a whole-number float attribute (LeakyRelu alpha 1 = identity),
  // then Gather of column 1 via an int64 scalar initializer.
  const w = g.init('w', Float32Array.from([1, 2, 0, -1, 3, 1]), [3, 2]);
  const b = g.init('b', Float32Array.from([0.5, -0.5]), [2]);
  const h = g.op('Add', [g.op('MatMul', [x, w]), b]);
  const alpha = g.op('LeakyRelu', [h], { alpha: floatAttr(1) });
  const col = g.op('Gather', [alpha, g.ints('col', [1], true)], { axis: 1 });
  g.output(alpha, 'h', 'float32', ['batch', 2]);
  g.output(col, 'col1', 'float32', ['batch']);
  return g.toModel({ metadata: { purpose: 'test' } });
}

test('a built model decodes back to what was added', () => {
  const m = decodeModel(tinyModel());
  assert.equal(m.opset, OPSET);
  assert.equal(m.irVersion, 8);
  assert.deepEqual(m.metadata, { purpose: 'test' });
  assert.deepEqual(m.graph.inputs, ['x']);
  assert.deepEqual(m.graph.outputs, ['h', 'col1']);
  assert.deepEqual(m.graph.nodes.map((n) => n.opType), ['MatMul', 'Add', 'LeakyRelu', 'Gather', 'Identity', 'Identity']);
  const w = m.graph.initializers.find((i) => i.name === 'w')!;
  assert.deepEqual(w.dims, [3, 2]);
  assert.equal(w.bytes, 24);
  assert.equal(m.graph.initializers.find((i) => i.name === 'col')!.dataType, 7); // int64
});

test('onnxruntime runs a built model with a dynamic batch and gives the right values', async () => {
  const s = await createOrtSession(tinyModel());
  assert.deepEqual(s.inputs.map((i) => i.name), ['x']);
  assert.deepEqual(s.inputs[0]!.shape, ['batch', 3]);
  const x = Float32Array.from([1, 0, 0, 0, 1, 2, 1, 1, 1]);
  const out = await s.run({ x: { type: 'float32', data: x, dims: [3, 3] } });
  // rows of x·w + b: [1,2]+b, [0·1+1·0+2·3, 0·2+1·(-1)+2·1]+b = [6,1]+b, [4,2]+b
  assert.deepEqual([...out.h!.data as Float32Array], [1.5, 1.5, 6.5, 0.5, 4.5, 1.5]);
  assert.deepEqual(out.h!.dims, [3, 2]);
  assert.deepEqual([...out.col1!.data as Float32Array], [1.5, 0.5, 1.5]);
  await s.release();
});

test('an initializer whose data does not fill its shape is refused', () => {
  const g = new OnnxGraph('bad');
  assert.throws(() => g.init('w', new Float32Array(5), [2, 3]), /5 values for shape \[2, 3\]/);
});

test('unloadable bytes are a ModelLoadError naming the source', async () => {
  await assert.rejects(createOrtSession(new Uint8Array([1, 2, 3]), { source: 'junk.onnx' }), (err: Error) => {
    assert.equal(err.name, 'ModelLoadError');
    assert.match(err.message, /junk\.onnx/);
    return true;
  });
});
