// safetensors round trips (F32, F16, integers), a hand-written BF16 file, and damaged files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../../engine/io/safetensors';
import { ModelLoadError } from '../../../engine/errors';
import type { HostTensor } from '../../../engine/io/host-tensor';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));

/** A safetensors file from a header object and a data section, byte by byte. */
function handWritten(name: string, header: Record<string, unknown>, data: Uint8Array): string {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

test('float32, int32 and uint8 tensors round-trip exactly, with metadata', () => {
  const tensors: [string, HostTensor][] = [
    ['w', { dtype: 'float32', storedAs: 'F32', shape: [2, 3], data: Float32Array.from([0.1, -2, 3.5e-20, 1e30, -0, Math.PI]) }],
    ['ids', { dtype: 'int32', storedAs: 'I32', shape: [3], data: Int32Array.from([49406, -1, 0]) }],
    ['mask', { dtype: 'uint8', storedAs: 'U8', shape: [1, 2], data: Uint8Array.from([0, 255]) }],
  ];
  const path = join(dir, 'round.safetensors');
  writeSafetensors(path, tensors, { metadata: { format: 'pt' } });
  const { tensors: back, metadata } = readSafetensors(path);
  assert.deepEqual(metadata, { format: 'pt' });
  assert.deepEqual([...back.keys()], ['w', 'ids', 'mask']);
  for (const [name, t] of tensors) {
    const b = back.get(name)!;
    assert.equal(b.dtype, t.dtype, name);
    assert.deepEqual(b.shape, t.shape, name);
    assert.deepEqual(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), name);
  }
});

test('float16 storage keeps values representable in half precision and rounds the rest', () => {
  const exact = Float32Array.from([1, -2.5, 0.333251953125, 65504, 2 ** -24, 0]);
  const path = join(dir, 'half.safetensors');
  writeSafetensors(path, [['x', { dtype: 'float32', storedAs: 'F32', shape: [6], data: exact }], ['y', { dtype: 'float32', storedAs: 'F32', shape: [1], data: Float32Array.from([0.1]) }]], { float16: true });
  const back = readSafetensors(path).tensors;
  assert.equal(back.get('x')!.storedAs, 'F16');
  assert.deepEqual([...back.get('x')!.data], [...exact]);
  const y = back.get('y')!.data[0]!;
  assert.notEqual(y, Math.fround(0.1));
  assert.ok(Math.abs(y - 0.1) < 0.1 * 2 ** -11, `0.1 as half read back as ${y}`);
  assert.ok(readFileSync(path).length < 8 + 200 + 7 * 4, 'half storage should be two bytes an element');
});

test('a hand-written BF16 file reads as float32', () => {
  const bits = new Uint16Array([0x3f80, 0xc020, 0x4049, 0x0000, 0xff80]); // 1, -2.5, 3.140625, 0, -inf
  const path = handWritten('bf16.safetensors', { b: { dtype: 'BF16', shape: [5], data_offsets: [0, 10] } }, new Uint8Array(bits.buffer));
  const t = readSafetensors(path).tensors.get('b')!;
  assert.equal(t.dtype, 'float32');
  assert.equal(t.storedAs, 'BF16');
  assert.deepEqual([...t.data], [1, -2.5, 3.140625, 0, -Infinity]);
});

test('a truncated file is a ModelLoadError', () => {
  const path = join(dir, 'whole.safetensors');
  writeSafetensors(path, [['w', { dtype: 'float32', storedAs: 'F32', shape: [64], data: new Float32Array(64) }]]);
  const bytes = readFileSync(path);
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 16));
  assert.throws(() => readSafetensors(cut), (err: Error) => err instanceof ModelLoadError && /w points outside the file/.test(err.message));
  writeFileSync(cut, bytes.subarray(0, 20));
  assert.throws(() => readSafetensors(cut), (err: Error) => err instanceof ModelLoadError && /header length/.test(err.message));
  writeFileSync(cut, bytes.subarray(0, 5));
  assert.throws(() => readSafetensors(cut), ModelLoadError);
});

test('a header pointing outside the file is refused, naming the tensor', () => {
  const path = handWritten('outside.safetensors', { far: { dtype: 'F32', shape: [4], data_offsets: [1000, 1016] } }, new Uint8Array(16));
  assert.throws(() => readSafetensors(path), (err: Error) => err instanceof ModelLoadError && /far/.test(err.message));
  const backwards = handWritten('backwards.safetensors', { rev: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, new Uint8Array(16));
  assert.throws(() => readSafetensors(backwards), (err: Error) => err instanceof ModelLoadError && /rev/.test(err.message));
});

test('a header whose byte range disagrees with the shape is refused', () => {
  const path = handWritten('short.safetensors', { s: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }, new Uint8Array(16));
  assert.throws(() => readSafetensors(path), /s: expected 16 bytes/);
});
