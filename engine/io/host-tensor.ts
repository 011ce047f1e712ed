/**
 * Tensors as read from disk, before they reach a tensor library: a dtype, a shape and a
 * typed array in row-major order. Floating types (F64/F32/F16/BF16) are widened or
 * narrowed to float32 on read; integer types to int32 (int64 values are range-checked).
 */
import { ShapeError } from '../errors';

export type HostDType = 'float32' | 'int32' | 'uint8' | 'bool';

export interface HostTensor {
  /** The dtype of `data` (not of the file: an F16 tensor is read as float32). */
  dtype: HostDType;
  /** The dtype as stored in the file, e.g. `F16`, `BF16`, `I64`; kept for reports. */
  storedAs: string;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

/** A state dict: parameter name → tensor, in file order. */
export type StateDict = Map<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** IEEE half → float32, for a whole buffer. */
export function halfToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24; // subnormal (or zero)
    else if (exp === 0x1f) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** float32 → IEEE half (round to nearest even), for storing small models. */
export function float32ToHalf(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i]!;
    const x = u[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) { out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); continue; }
    let e = exp - 127 + 15;
    if (e >= 0x1f) { out[i] = sign | 0x7c00; continue; }
    if (e <= 0) {
      if (e < -10) { out[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mant >> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
    out[i] = sign | half;
  }
  return out;
}

/** bfloat16 → float32: the upper half of a float32. */
export function bf16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return new Float32Array(out.buffer);
}

/**
 * Decode `count` little-endian elements of a stored dtype into a HostTensor's data.
 * `bytes` must hold exactly `count * size` bytes; it is copied, so callers may reuse it.
 * Accepts safetensors names (F32, F16, BF16, I64 …) and torch storage names (FloatStorage …).
 */
export function decodeElements(storedAs: string, bytes: Uint8Array, count: number, what: string): Pick<HostTensor, 'dtype' | 'data'> {
  const kind = STORED_KINDS[storedAs];
  if (!kind) throw new ShapeError(`${what}: unsupported dtype ${storedAs}`);
  if (bytes.byteLength !== count * kind.size) {
    throw new ShapeError(`${what}: expected ${count * kind.size} bytes for ${count} × ${storedAs}, found ${bytes.byteLength}`);
  }
  // Copy into an aligned buffer: file offsets need not be aligned to the element size.
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  const buf = aligned.buffer;
  switch (kind.kind) {
    case 'F32': return { dtype: 'float32', data: new Float32Array(buf) };
    case 'F64': return { dtype: 'float32', data: Float32Array.from(new Float64Array(buf)) };
    case 'F16': return { dtype: 'float32', data: halfToFloat32(new Uint16Array(buf)) };
    case 'BF16': return { dtype: 'float32', data: bf16ToFloat32(new Uint16Array(buf)) };
    case 'I64': {
      const src = new BigInt64Array(buf);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = src[i]!;
        if (v > 2147483647n || v < -2147483648n) throw new ShapeError(`${what}: int64 value ${v} does not fit in int32`);
        out[i] = Number(v);
      }
      return { dtype: 'int32', data: out };
    }
    case 'I32': return { dtype: 'int32', data: new Int32Array(buf) };
    case 'I16': return { dtype: 'int32', data: Int32Array.from(new Int16Array(buf)) };
    case 'I8': return { dtype: 'int32', data: Int32Array.from(new Int8Array(buf)) };
    case 'U8': return { dtype: 'uint8', data: aligned };
    case 'BOOL': return { dtype: 'bool', data: aligned };
  }
}

type Kind = 'F32' | 'F64' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
const K = (kind: Kind, size: number) => ({ kind, size });
const STORED_KINDS: Record<string, { kind: Kind; size: number }> = {
  F32: K('F32', 4), F64: K('F64', 8), F16: K('F16', 2), BF16: K('BF16', 2),
  I64: K('I64', 8), I32: K('I32', 4), I16: K('I16', 2), I8: K('I8', 1), U8: K('U8', 1), BOOL: K('BOOL', 1),
  FloatStorage: K('F32', 4), DoubleStorage: K('F64', 8), HalfStorage: K('F16', 2), BFloat16Storage: K('BF16', 2),
  LongStorage: K('I64', 8), IntStorage: K('I32', 4), ShortStorage: K('I16', 2), CharStorage: K('I8', 1),
  ByteStorage: K('U8', 1), BoolStorage: K('BOOL', 1),
};

/** Bytes per element of a stored dtype name (safetensors or torch storage). */
export function storedElementSize(storedAs: string): number | undefined {
  return STORED_KINDS[storedAs]?.size;
}
