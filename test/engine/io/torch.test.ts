// The torch.save zip reader on hand-built checkpoints: views and strides, dtypes, Lightning
// layout, deflated entries, and pickles that must be refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTorchCheckpoint } from '../../../engine/io/torch';
import { ModelLoadError } from '../../../engine/errors';
import { PickleWriter, stateDictPickle, writeTensor, zipArchive, le, type FakeTensor, type ZipEntry } from './torch-zip';

const dir = mkdtempSync(join(tmpdir(), 'torch-test-'));
let n = 0;
function save(entries: ZipEntry[]): string {
  const path = join(dir, `ckpt-${n++}.pt`);
  writeFileSync(path, zipArchive(entries));
  return path;
}
const f32 = (key: string, storageNumel: number, offset: number, size: number[], stride: number[], name = key): FakeTensor =>
  ({ name, key, storage: 'FloatStorage', storageNumel, offset, size, stride });
const iota = (count: number) => Float32Array.from({ length: count }, (_, i) => i);

test('views into one shared storage honour their offsets (fused q/k/v)', async () => {
  const storage = iota(3 * 4); // three [2,2] matrices back to back
  const path = save([
    { name: 'archive/data.pkl', data: stateDictPickle([f32('0', 12, 0, [2, 2], [2, 1], 'q'), f32('0', 12, 4, [2, 2], [2, 1], 'k'), f32('0', 12, 8, [2, 2], [2, 1], 'v')]) },
    { name: 'archive/data/0', data: le(storage) },
  ]);
  const { tensors } = await readTorchCheckpoint(path);
  assert.deepEqual([...tensors.keys()], ['q', 'k', 'v']);
  assert.deepEqual([...tensors.get('q')!.data], [0, 1, 2, 3]);
  assert.deepEqual([...tensors.get('k')!.data], [4, 5, 6, 7]);
  assert.deepEqual([...tensors.get('v')!.data], [8, 9, 10, 11]);
  assert.deepEqual(tensors.get('v')!.shape, [2, 2]);
  assert.equal(tensors.get('q')!.storedAs, 'F32');
});

test('non-contiguous views are copied out in row-major order', async () => {
  // storage holds a [2,3,4] array a[i][j][k] = 12i + 4j + k
  const pkl = stateDictPickle([
    f32('0', 24, 0, [4, 3, 2], [1, 4, 12], 'permuted'), // a.permute(2, 1, 0)
    f32('0', 24, 1, [2, 3, 2], [12, 4, 1], 'sliced'), // a[:, :, 1:3] (inner stride 1, gaps between rows)
    f32('0', 24, 5, [2], [12], 'column'), // a[:, 1, 1]
  ]);
  const path = save([{ name: 'weird_top/data.pkl', data: pkl }, { name: 'weird_top/data/0', data: le(iota(24)) }]);
  const { tensors } = await readTorchCheckpoint(path);
  const a = (i: number, j: number, k: number) => 12 * i + 4 * j + k;
  const permuted: number[] = [];
  for (let k = 0; k < 4; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) permuted.push(a(i, j, k));
  assert.deepEqual([...tensors.get('permuted')!.data], permuted);
  assert.deepEqual(tensors.get('permuted')!.shape, [4, 3, 2]);
  const sliced: number[] = [];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 1; k < 3; k++) sliced.push(a(i, j, k));
  assert.deepEqual([...tensors.get('sliced')!.data], sliced);
  assert.deepEqual([...tensors.get('column')!.data], [a(0, 1, 1), a(1, 1, 1)]);
});

test('half, bfloat16 and int64 storages decode, also when named by dtype', async () => {
  const half = new Uint16Array([0x3c00, 0xc100, 0x3555]); // 1, -2.5, 0.333251953125
  const bf16 = new Uint16Array([0x3f80, 0xc020, 0x4049]); // 1, -2.5, 3.140625
  const longs = new BigInt64Array([49406n, -7n, 0n]);
  const t = (name: string, storage: string, key: string): FakeTensor => ({ name, key, storage, storageNumel: 3, offset: 0, size: [3], stride: [1] });
  const path = save([
    { name: 'archive/data.pkl', data: stateDictPickle([t('h', 'HalfStorage', '0'), t('b', 'BFloat16Storage', '1'), t('l', 'LongStorage', '2'), t('h2', 'float16', '0')]) },
    { name: 'archive/data/0', data: le(half) },
    { name: 'archive/data/1', data: le(bf16) },
    { name: 'archive/data/2', data: le(longs) },
  ]);
  const { tensors } = await readTorchCheckpoint(path);
  assert.deepEqual([...tensors.get('h')!.data], [1, -2.5, 0.333251953125]);
  assert.equal(tensors.get('h')!.storedAs, 'F16');
  assert.deepEqual([...tensors.get('h2')!.data], [1, -2.5, 0.333251953125]);
  assert.deepEqual([...tensors.get('b')!.data], [1, -2.5, 3.140625]);
  assert.equal(tensors.get('l')!.dtype, 'int32');
  assert.deepEqual([...tensors.get('l')!.data], [49406, -7, 0]);
});

test('a Lightning checkpoint yields its state_dict, scalars in extra, the rest ignored', async () => {
  const p = new PickleWriter().proto().emptyDict().mark();
  p.str('epoch').int(7).str('global_step').int(123456).str('pytorch-lightning_version').str('1.0.8');
  p.str('callbacks').emptyDict().global('pytorch_lightning.callbacks.model_checkpoint', 'ModelCheckpoint');
  p.emptyDict().str('best_model_score').float(0.25).setitem().setitem();
  // hyper_parameters: an AttributeDict (a dict subclass) built by NEWOBJ and filled by SETITEMS
  p.str('hyper_parameters').global('pytorch_lightning.utilities.parsing', 'AttributeDict').emptyTuple().newobj();
  p.mark().str('embed_dim').int(256).str('n_embed').int(1024).setitems();
  p.str('optimizer_states').emptyList().mark();
  writeTensor(p.emptyDict().str('exp_avg'), f32('9', 1, 0, [1], [1])).setitem();
  p.appends();
  p.str('state_dict').global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  writeTensor(p.str('encoder.conv.weight'), f32('0', 6, 0, [2, 3], [3, 1]));
  writeTensor(p.str('loss.logvar'), f32('1', 1, 0, [], []));
  p.setitems();
  // state_dict()._metadata rides along as the OrderedDict's instance state
  p.emptyDict().str('_metadata').emptyDict().setitem().build();
  p.setitems().stop();
  const path = save([
    { name: 'last/data.pkl', data: p.bytes() },
    { name: 'last/data/0', data: le(iota(6)), deflate: true },
    { name: 'last/data/1', data: le(new Float32Array([-1.5])) },
    // no entry for storage 9: optimizer state must never be read
  ]);
  const { tensors, ignored, extra } = await readTorchCheckpoint(path);
  assert.deepEqual([...tensors.keys()], ['encoder.conv.weight', 'loss.logvar']);
  assert.deepEqual([...tensors.get('encoder.conv.weight')!.data], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(tensors.get('loss.logvar')!.shape, []);
  assert.deepEqual([...tensors.get('loss.logvar')!.data], [-1.5]);
  assert.deepEqual(extra, { epoch: 7, global_step: 123456, 'pytorch-lightning_version': '1.0.8' });
  assert.deepEqual(ignored.sort(), ['callbacks', 'hyper_parameters', 'optimizer_states']);
});

test('the filter skips tensors without reading their storage', async () => {
  const path = save([
    { name: 'archive/data.pkl', data: stateDictPickle([f32('0', 2, 0, [2], [1], 'kept'), f32('1', 2, 0, [2], [1], 'skipped')]) },
    { name: 'archive/data/0', data: le(iota(2)) },
  ]);
  const { tensors } = await readTorchCheckpoint(path, { filter: (name) => name !== 'skipped' });
  assert.deepEqual([...tensors.keys()], ['kept']);
  await assert.rejects(readTorchCheckpoint(path), (err: Error) => err instanceof ModelLoadError && /skipped.*archive\/data\/1/.test(err.message));
});

test('a pickle naming os.system is refused, naming it', async () => {
  const evil = new PickleWriter().proto().global('os', 'system').mark().str('touch /tmp/pwned').tuple().reduce().stop().bytes();
  const path = save([{ name: 'archive/data.pkl', data: evil }]);
  await assert.rejects(readTorchCheckpoint(path), (err: Error) => err instanceof ModelLoadError && /os\.system/.test(err.message) && /not allowed/.test(err.message));
  const viaStack = new PickleWriter().proto().stackGlobal('builtins', 'eval').mark().str('1+1').tuple().reduce().stop().bytes();
  await assert.rejects(readTorchCheckpoint(save([{ name: 'archive/data.pkl', data: viaStack }])), /builtins\.eval/);
});

test('a pickled whole module (not a state dict) is refused', async () => {
  const model = new PickleWriter().proto().global('__main__', 'Net').emptyTuple().reduce().stop().bytes();
  await assert.rejects(readTorchCheckpoint(save([{ name: 'archive/data.pkl', data: model }])), /__main__\.Net/);
});

test('a view reaching past its storage is an error naming the tensor', async () => {
  const path = save([
    { name: 'archive/data.pkl', data: stateDictPickle([f32('0', 4, 2, [2, 2], [2, 1], 'overrun')]) },
    { name: 'archive/data/0', data: le(iota(4)) },
  ]);
  await assert.rejects(readTorchCheckpoint(path), (err: Error) => err instanceof ModelLoadError && /overrun/.test(err.message));
});

test('truncated archives and truncated pickles are ModelLoadErrors', async () => {
  const whole = zipArchive([
    { name: 'archive/data.pkl', data: stateDictPickle([f32('0', 4, 0, [4], [1], 'w')]) },
    { name: 'archive/data/0', data: le(iota(4)) },
  ]);
  const cut = join(dir, 'cut.pt');
  writeFileSync(cut, whole.subarray(0, whole.length - 30));
  await assert.rejects(readTorchCheckpoint(cut), (err: Error) => err instanceof ModelLoadError && /not a readable torch\.save zip/.test(err.message));
  const pkl = stateDictPickle([f32('0', 4, 0, [4], [1], 'w')]);
  const half = save([{ name: 'archive/data.pkl', data: pkl.subarray(0, pkl.length >> 1) }]);
  await assert.rejects(readTorchCheckpoint(half), (err: Error) => err instanceof ModelLoadError && /truncated|underflow|MARK/.test(err.message));
  await assert.rejects(readTorchCheckpoint(join(dir, 'missing.pt')), /Cannot open/);
});
