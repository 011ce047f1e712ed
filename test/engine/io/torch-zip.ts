/**
 * Builds small `torch.save`-style zip checkpoints for the reader's tests: a protocol-2 pickle
 * writer emitting the opcodes `torch.save` emits (compare `pickletools.dis` of a real
 * `data.pkl`), and a minimal zip writer (stored or deflated entries). yauzl only reads zips and
 * we add no dependencies, hence this. Test-only code.
 */
import { crc32, deflateRawSync } from 'node:zlib';

/** A protocol-2 pickle, written opcode by opcode. */
export class PickleWriter {
  private parts: number[] = [];
  private op(...b: number[]) { this.parts.push(...b); return this; }
  proto() { return this.op(0x80, 2); }
  mark() { return this.op(0x28); }
  stop() { return this.op(0x2e); }
  none() { return this.op(0x4e); }
  bool(v: boolean) { return this.op(v ? 0x88 : 0x89); }
  emptyDict() { return this.op(0x7d); }
  emptyList() { return this.op(0x5d); }
  emptyTuple() { return this.op(0x29); }
  tuple() { return this.op(0x74); }
  setitem() { return this.op(0x73); }
  setitems() { return this.op(0x75); }
  appends() { return this.op(0x65); }
  reduce() { return this.op(0x52); }
  newobj() { return this.op(0x81); }
  build() { return this.op(0x62); }
  binpersid() { return this.op(0x51); }
  binput(i: number) { return this.op(0x71, i); }
  binget(i: number) { return this.op(0x68, i); }
  int(n: number) {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8);
    const b = Buffer.alloc(4); b.writeInt32LE(n); return this.op(0x4a, ...b);
  }
  float(x: number) { const b = Buffer.alloc(8); b.writeDoubleBE(x); return this.op(0x47, ...b); }
  str(s: string) { const b = Buffer.from(s, 'utf8'); const n = Buffer.alloc(4); n.writeUInt32LE(b.length); return this.op(0x58, ...n, ...b); }
  global(module: string, name: string) { return this.op(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1')); }
  stackGlobal(module: string, name: string) { return this.str(module).str(name).op(0x93); }
  ints(xs: number[]) { this.mark(); for (const x of xs) this.int(x); return this.tuple(); }
  bytes(): Uint8Array { return Uint8Array.from(this.parts); }
}

export interface FakeTensor {
  name: string;
  /** Storage key (the zip entry `<top>/data/<key>`). */
  key: string;
  /** Torch storage class, e.g. `FloatStorage`, or a dtype such as `float16` (newer pickles). */
  storage: string;
  storageNumel: number;
  offset: number;
  size: number[];
  stride: number[];
}

/** Write `_rebuild_tensor_v2(('storage', torch.<storage>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`. */
export function writeTensor(p: PickleWriter, t: FakeTensor): PickleWriter {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', t.storage).str(t.key).str('cpu').int(t.storageNumel).tuple().binpersid();
  p.int(t.offset).ints(t.size).ints(t.stride).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce();
  return p.tuple().reduce();
}

/** A pickle of `{name: tensor, …}` as `torch.save(state_dict)` writes it. */
export function stateDictPickle(tensors: FakeTensor[]): Uint8Array {
  const p = new PickleWriter().proto().emptyDict().mark();
  for (const t of tensors) writeTensor(p.str(t.name), t);
  return p.setitems().stop().bytes();
}

export interface ZipEntry { name: string; data: Uint8Array; deflate?: boolean }

/** A zip archive with the given entries (no zip64; fine for test-sized files). */
export function zipArchive(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const body = e.deflate ? deflateRawSync(e.data) : Buffer.from(e.data);
    const crc = crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(e.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(e.deflate ? 8 : 0, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(e.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** Little-endian bytes of a typed array, for storage entries. */
export function le(a: Float32Array | Uint16Array | BigInt64Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
