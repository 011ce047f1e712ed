/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
 * an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 * then the raw little-endian bytes. F32/F16/BF16 read as float32, integers as int32.
 *
 * Reading uses positional reads on a file descriptor, so a multi-gigabyte file is never held
 * in memory twice and tensors not asked for are never read.
 */
import { openSync, readSync, closeSync, fstatSync, writeFileSync, renameSync } from 'node:fs';
import { ModelLoadError } from '../errors';
import { decodeElements, float32ToHalf, numel, type HostTensor, type StateDict } from './host-tensor';

export interface SafetensorsFile {
  tensors: StateDict;
  /** The optional `__metadata__` string map. */
  metadata: Record<string, string>;
}

interface HeaderEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * Read every tensor (or only those `filter` accepts) of a `.safetensors` file.
 *
 * @example
 * const { tensors } = readSafetensors('models/demo-clip/model.safetensors');
 * tensors.get('logit_scale')?.data[0];
 */
export function readSafetensors(path: string, filter?: (name: string) => boolean): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new ModelLoadError(`Cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new ModelLoadError(`${path} is not a safetensors file: only ${size} bytes`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw new ModelLoadError(`${path} is not a safetensors file: header length ${headerLen} exceeds the file (${size} bytes)`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, HeaderEntry | Record<string, string>>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (err) {
      throw new ModelLoadError(`${path} has an unreadable safetensors header: ${(err as Error).message}`, { cause: err });
    }
    const dataStart = 8 + headerLen;
    const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
    const tensors: StateDict = new Map();
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      if (filter && !filter(name)) continue;
      const entry = raw as HeaderEntry;
      const [begin, end] = entry.data_offsets;
      if (!(begin >= 0 && end >= begin && dataStart + end <= size)) {
        throw new ModelLoadError(`${path}: tensor ${name} points outside the file (offsets ${begin}..${end})`);
      }
      const bytes = Buffer.alloc(end - begin);
      readSync(fd, bytes, 0, end - begin, dataStart + begin);
      const count = numel(entry.shape);
      let decoded: ReturnType<typeof decodeElements>;
      try {
        decoded = decodeElements(entry.dtype, bytes, count, `${path}: ${name}`);
      } catch (err) {
        // A header whose byte range disagrees with its shape is a broken file, not a caller's shape bug.
        throw new ModelLoadError((err as Error).message, { cause: err });
      }
      tensors.set(name, { ...decoded, storedAs: entry.dtype, shape: [...entry.shape] });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

export interface WriteOptions {
  metadata?: Record<string, string>;
  /** Store float tensors as F16 (halves the file; used for the bundled demo models). */
  float16?: boolean;
}

/** Write tensors to a `.safetensors` file atomically (temp file + rename). */
export function writeSafetensors(path: string, tensors: Iterable<[string, HostTensor]>, options: WriteOptions = {}): void {
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    let bytes: Uint8Array;
    let dtype: string;
    if (t.dtype === 'float32') {
      const src = t.data as Float32Array;
      if (options.float16) {
        const h = float32ToHalf(src);
        bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
        dtype = 'F16';
      } else {
        bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
        dtype = 'F32';
      }
    } else if (t.dtype === 'int32') {
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      dtype = 'I32';
    } else {
      bytes = t.data as Uint8Array;
      dtype = t.dtype === 'bool' ? 'BOOL' : 'U8';
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let headerJson = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (headerJson.length % 8)) % 8; // keep the data 8-byte aligned, as the reference writer does
  if (pad) headerJson = Buffer.concat([headerJson, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerJson.length));
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, Buffer.concat([len, headerJson, ...chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))]));
  renameSync(tmp, path);
}
