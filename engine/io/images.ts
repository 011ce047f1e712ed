/**
 * Image I/O: decoding untrusted uploads, CLIP's preprocessing, and encoding results.
 * The only file that imports sharp.
 *
 * Preprocessing matches OpenAI CLIP's `_transform` (`clip/clip.py`): torchvision
 * `Resize(n_px, BICUBIC)` on a PIL image, `CenterCrop(n_px)`, `ToTensor()`, `Normalize`.
 * The resize is a port of Pillow's `ImagingResample` (bicubic a = −0.5, support widened
 * when shrinking, 8-bit fixed-point, horizontal pass then vertical), so pixels equal what
 * the reference feeds the model (checked byte for byte against Pillow 9.4). sharp's 'cubic'
 * kernel is not: about 0.2 levels mean, 15 max apart when shrinking, far more when enlarging
 * (another pixel-centre convention), hence the port. One deliberate difference: transparent images are
 * flattened on white, where PIL's convert('RGB') would keep whatever colour hides under
 * alpha 0.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import sharp, { type Sharp, type SharpOptions } from 'sharp';
import { InputError } from '../errors';

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** CLIP's preprocessing constants, read from a model's config (not hard-coded here). */
export interface ClipPreprocess {
  size: number;
  mean: readonly number[];
  std: readonly number[];
}

export interface DecodeOptions {
  /** How errors name the image (default: the file's base name, or "image"). */
  name?: string;
  /** Largest width × height accepted before decoding (default 4096 × 4096). */
  maxPixels?: number;
  /** Largest file accepted, in bytes (default 64 MiB). */
  maxBytes?: number;
  /** Most frames an animation may have; only the first is decoded (default 1000). */
  maxFrames?: number;
}

export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';
export type SniffedFormat = 'png' | 'jpeg' | 'webp' | 'gif';

/** Far below sharp's default (268 million pixels): a 4096×4096 RGBA decode is 64 MiB. */
export const DEFAULT_MAX_PIXELS = 4096 * 4096;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_FRAMES = 1000;
/** Longest side accepted, whatever the pixel count (a 1×16M strip is no picture). */
const MAX_SIDE = 16_384;
/** A decode that takes longer than this is stopped (sharp's per-pipeline timeout). */
const DECODE_TIMEOUT_S = 10;

/**
 * libvips loaders no input of ours ever needs, blocked for the whole process so that even a
 * mistake upstream of the content sniffing cannot reach them. SVG stays loadable because
 * rasterizeSvg draws our own documents with it; untrusted bytes that look like SVG are refused
 * by sniffImageFormat before sharp sees them, and the decoded format is checked again after.
 */
sharp.block({
  operation: [
    'VipsForeignLoadTiff', 'VipsForeignLoadHeif', 'VipsForeignLoadPdf', 'VipsForeignLoadMagick', 'VipsForeignLoadJp2k',
    'VipsForeignLoadJxl', 'VipsForeignLoadFits', 'VipsForeignLoadOpenslide', 'VipsForeignLoadMatrix', 'VipsForeignLoadCsv',
    'VipsForeignLoadVips', 'VipsForeignLoadPpm', 'VipsForeignLoadRad', 'VipsForeignLoadAnalyze', 'VipsForeignLoadRaw',
  ],
});

/**
 * The image format by its first bytes, or undefined for anything not on the allow-list
 * (SVG, PDF, TIFF, HEIF/AVIF, …). Extensions are never trusted.
 */
export function sniffImageFormat(buf: Uint8Array): SniffedFormat | undefined {
  const starts = (sig: readonly number[], at = 0) => sig.every((b, i) => buf[at + i] === b);
  if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (starts([0xff, 0xd8, 0xff])) return 'jpeg';
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return 'webp'; // RIFF....WEBP
  if (starts([0x47, 0x49, 0x46, 0x38]) && (buf[4] === 0x37 || buf[4] === 0x39) && buf[5] === 0x61) return 'gif'; // GIF87a / GIF89a
  return undefined;
}

/** What a refused file looks like, for the message ("SVG images are refused"); undefined if unknown. */
export function describeRefusedFormat(buf: Uint8Array): string | undefined {
  const head = Buffer.from(buf.subarray(0, 512)).toString('latin1');
  const starts = (sig: readonly number[], at = 0) => sig.every((b, i) => buf[at + i] === b);
  if (starts([0x49, 0x49, 0x2a, 0x00]) || starts([0x4d, 0x4d, 0x00, 0x2a]) || starts([0x49, 0x49, 0x2b, 0x00]) || starts([0x4d, 0x4d, 0x00, 0x2b])) return 'TIFF';
  if (head.startsWith('%PDF')) return 'PDF';
  if (/^\s*(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*(<!DOCTYPE svg[^>]*>\s*)?<svg[\s>]/i.test(head.replace(/^\uFEFF/, '')) || /<svg[\s>]/i.test(head)) return 'SVG';
  if (starts([0x66, 0x74, 0x79, 0x70], 4)) {
    const brand = head.slice(8, 12);
    return /avif|avis/.test(brand) ? 'AVIF' : /hei|mif|msf|hev/.test(brand) ? 'HEIF' : 'ISO media (HEIF/AVIF/MP4)';
  }
  if (starts([0x42, 0x4d])) return 'BMP';
  if (starts([0x00, 0x00, 0x01, 0x00])) return 'ICO';
  if (head.startsWith('8BPS')) return 'Photoshop';
  if (starts([0xff, 0x0a]) || starts([0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20])) return 'JPEG XL';
  if (starts([0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20])) return 'JPEG 2000';
  if (/^P[1-7]\s/.test(head)) return 'PPM/PGM';
  return undefined;
}

async function readInput(input: Buffer | string, name: string, maxBytes: number): Promise<Buffer> {
  if (Buffer.isBuffer(input)) {
    if (input.length > maxBytes) throw new InputError('image', `${name}: the file is ${input.length} bytes, over the limit of ${maxBytes}.`);
    return input;
  }
  if (typeof input !== 'string') throw new InputError('image', `${name}: expected a file path or a Buffer.`);
  try {
    const { size, isFile } = await stat(input).then((s) => ({ size: s.size, isFile: s.isFile() }));
    if (!isFile) throw new InputError('image', `${name}: not a regular file.`);
    if (size > maxBytes) throw new InputError('image', `${name}: the file is ${size} bytes, over the limit of ${maxBytes}.`);
    return await readFile(input);
  } catch (cause) {
    if (cause instanceof InputError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    throw new InputError('image', `${name}: ${code === 'ENOENT' ? 'file not found' : `could not read the file (${code ?? cause})`}.`, { cause });
  }
}

/**
 * The one decoder for images from users (uploads, init images, image prompts, drawings, the
 * CLI's files): PNG, JPEG, WebP or GIF into 8-bit RGB, judged by content, never by name or
 * MIME type. The header is read first and the size checked against `maxPixels` (4096×4096 by
 * default, far below sharp's) before any pixel is decoded; an animation must have at most
 * `maxFrames` frames and only its first is decoded; a corrupt or truncated file is an error
 * (`failOn: 'error'`) rather than a half-grey image; SVG, PDF, TIFF, HEIF and the rest are
 * refused by name. EXIF orientation is applied and transparency flattened on white; callers
 * re-encode the pixels (uploads are stored as fresh PNGs), so nothing of the original file
 * survives. Every failure is an `InputError('image', '<name>: …')`.
 *
 * @example
 * const img = await decodeImage(upload, { name: 'drawing.png' });
 * console.log(img.width, img.height, img.data.length); // w, h, w*h*3
 */
export async function decodeImage(input: Buffer | string, opts: DecodeOptions = {}): Promise<RgbImage> {
  const name = opts.name ?? (typeof input === 'string' ? basename(input) : 'image');
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxFrames = opts.maxFrames ?? DEFAULT_MAX_FRAMES;
  for (const [option, v] of [['maxPixels', maxPixels], ['maxFrames', maxFrames]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new InputError(option, `The \`${option}\` option must be a positive integer, got ${v}.`);
  }
  const buf = await readInput(input, name, opts.maxBytes ?? DEFAULT_MAX_BYTES);
  const format = sniffImageFormat(buf);
  if (!format) {
    const refused = describeRefusedFormat(buf);
    throw new InputError('image', refused
      ? `${name}: not a PNG, JPEG, WebP or GIF image (judged by content, not by the name): ${refused} images are refused.`
      : `${name}: not a PNG, JPEG, WebP or GIF image (judged by content; other formats are refused).`);
  }
  const options: SharpOptions = {
    limitInputPixels: maxPixels, failOn: 'error', pages: 1, page: 0, animated: false, sequentialRead: true,
  };
  try {
    // The header alone, so an oversized image is refused with its size named; decoding
    // below keeps sharp's own limit as a second guard.
    const meta = await sharp(buf, { ...options, limitInputPixels: false }).metadata();
    if (meta.format !== format) throw new InputError('image', `${name}: the content looks like ${format} but decodes as ${meta.format}.`);
    if (meta.width > MAX_SIDE || meta.height > MAX_SIDE || meta.width * meta.height > maxPixels) {
      throw new InputError('image', `${name}: ${meta.width}×${meta.height} is over the limit of ${maxPixels} pixels (${Math.floor(Math.sqrt(maxPixels))}×${Math.floor(Math.sqrt(maxPixels))}).`);
    }
    if ((meta.pages ?? 1) > maxFrames) {
      throw new InputError('image', `${name}: an animation of ${meta.pages} frames, over the limit of ${maxFrames}; use a still image or a shorter animation.`);
    }
    const { data, info } = await sharp(buf, options)
      .timeout({ seconds: DECODE_TIMEOUT_S })
      .rotate() // apply EXIF orientation
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: toRgb(data, info.channels, info.width * info.height) };
  } catch (cause) {
    if (cause instanceof InputError) throw cause;
    const message = (cause as Error).message?.split('\n')[0] ?? String(cause);
    const reason = /pixel limit/i.test(message) ? `larger than the limit of ${maxPixels} pixels`
      : /timeout/i.test(message) ? `took longer than ${DECODE_TIMEOUT_S} s to decode`
      : /channel limit/i.test(message) ? 'has more colour channels than an image may have'
      : `could not be decoded, it may be truncated or corrupt (${message})`;
    throw new InputError('image', `${name}: ${reason}.`, { cause });
  }
}

/** sharp's raw output as packed RGB (grey images come back with 1 band, alpha-free with 3). */
function toRgb(raw: Buffer, channels: number, pixels: number): Uint8Array {
  if (channels === 3) return new Uint8Array(raw.buffer, raw.byteOffset, raw.length).slice();
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) out[p * 3 + c] = raw[p * channels + (channels >= 3 ? c : 0)]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// CLIP preprocessing
// ---------------------------------------------------------------------------------------

/** Pillow's bicubic kernel (a = −0.5), support 2. */
function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Pillow's fixed-point precision for 8-bit resampling (32 − 8 − 2 bits). */
const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

type ResampleCoeffs = { first: Int32Array; count: Int32Array; ksize: number; weights: Int32Array };
const coeffCache = new Map<string, ResampleCoeffs>();

/**
 * Per output pixel: first input index, tap count, integer weights (Pillow precompute_coeffs).
 * Cached by size pair: training resizes thousands of pictures between the same two sizes.
 */
function resampleCoeffs(inSize: number, outSize: number): ResampleCoeffs {
  const key = `${inSize}>${outSize}`;
  const hit = coeffCache.get(key);
  if (hit) return hit;
  if (coeffCache.size >= 64) coeffCache.clear(); // uploads come in any size
  const made = computeCoeffs(inSize, outSize);
  coeffCache.set(key, made);
  return made;
}

function computeCoeffs(inSize: number, outSize: number): ResampleCoeffs {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) total += w[x] = bicubic((x + xmin - center + 0.5) / filterScale);
    for (let x = 0; x < xmax; x++) {
      const k = total !== 0 ? w[x]! / total : w[x]!;
      weights[o * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * ONE : 0.5 + k * ONE);
    }
    first[o] = xmin;
    count[o] = xmax;
  }
  return { first, count, ksize, weights };
}

function clip8(acc: number): number {
  // acc is an integer below 2^31 in magnitude (255 · Σ|weights| < 1.3 · 2^30): the shift floors exactly
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Bicubic resize exactly as Pillow's `Image.resize(size, Image.BICUBIC)` computes it
 * (what torchvision's Resize does to a PIL image), for 8-bit RGB.
 *
 * @example
 * const small = resizeBicubicPil(img, 224, 298);
 */
export function resizeBicubicPil(img: RgbImage, outW: number, outH: number): RgbImage {
  const { width: inW, height: inH } = img;
  let src = img.data;
  let rows = inH;
  const vert = resampleCoeffs(inH, outH);
  let rowOffset = 0;
  if (outW !== inW) {
    // Horizontal pass over only the rows the vertical pass will read.
    const firstRow = vert.first[0]!;
    const lastRow = vert.first[outH - 1]! + vert.count[outH - 1]!;
    rows = outH !== inH ? lastRow - firstRow : inH;
    rowOffset = outH !== inH ? firstRow : 0;
    const { first, count, ksize, weights } = resampleCoeffs(inW, outW);
    const tmp = new Uint8Array(outW * rows * 3);
    const input = src;
    for (let y = 0; y < rows; y++) {
      const rowIn = (y + rowOffset) * inW * 3;
      for (let x = 0; x < outW; x++) {
        const n = count[x]!, k = x * ksize;
        // int32 arithmetic: every partial sum stays below 2^31 (255 · Σ|weights| < 1.3 · 2^30)
        let r = HALF, g = HALF, b = HALF;
        for (let t = 0, p = rowIn + first[x]! * 3; t < n; t++, p += 3) {
          const wt = weights[k + t]!;
          r = (r + Math.imul(input[p]!, wt)) | 0; g = (g + Math.imul(input[p + 1]!, wt)) | 0; b = (b + Math.imul(input[p + 2]!, wt)) | 0;
        }
        const q = (y * outW + x) * 3;
        tmp[q] = clip8(r); tmp[q + 1] = clip8(g); tmp[q + 2] = clip8(b);
      }
    }
    src = tmp;
  }
  if (outH === inH) return { width: outW, height: outH, data: src === img.data ? src.slice() : src };
  const out = new Uint8Array(outW * outH * 3);
  const stride = outW * 3;
  // Row by row, one input row at a time into an int32 accumulator: integer sums, so the order
  // does not change the result, and each weight is read once per row rather than per pixel.
  const acc = new Int32Array(stride);
  for (let y = 0; y < outH; y++) {
    const y0 = vert.first[y]! - rowOffset, n = vert.count[y]!, k = y * vert.ksize;
    acc.fill(HALF);
    for (let t = 0; t < n; t++) {
      const wt = vert.weights[k + t]!, row = (y0 + t) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i]! + Math.imul(src[row + i]!, wt)) | 0;
    }
    for (let i = 0, q = y * stride; i < stride; i++) out[q + i] = clip8(acc[i]!);
  }
  return { width: outW, height: outH, data: out };
}

/** Python's round(): halves go to the even neighbour (torchvision's centre-crop offset uses it). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkPreprocess(pre: ClipPreprocess): void {
  if (!Number.isInteger(pre.size) || pre.size < 1) throw new InputError('preprocess', `The \`size\` must be a positive integer, got ${pre.size}.`);
  if (pre.mean.length !== 3 || pre.std.length !== 3) throw new InputError('preprocess', 'The `mean` and `std` must have 3 values each (R, G, B).');
  if (pre.std.some((s) => !(s > 0))) throw new InputError('preprocess', `Every \`std\` value must be positive, got ${pre.std.join(', ')}.`);
}

/**
 * CLIP's preprocessing of one decoded image: shorter side resized to `size` (Pillow
 * bicubic), centre crop `size`×`size`, /255, (x − mean)/std. Returns NCHW [1,3,size,size].
 *
 * @example
 * const pixels = toClipPixels(img, { size: 224, mean: [0.481, 0.458, 0.408], std: [0.269, 0.261, 0.276] });
 */
export function toClipPixels(img: RgbImage, pre: ClipPreprocess): Float32Array {
  checkPreprocess(pre);
  const { size } = pre;
  // torchvision Resize(int): the shorter side becomes `size`, the longer int(size * long / short).
  const short = Math.min(img.width, img.height);
  const long = Math.max(img.width, img.height);
  const longOut = Math.trunc((size * long) / short);
  const [w, h] = img.width <= img.height ? [size, longOut] : [longOut, size];
  const resized = w === img.width && h === img.height ? img : resizeBicubicPil(img, w, h);
  const top = roundHalfEven((h - size) / 2);
  const left = roundHalfEven((w - size) / 2);
  const out = new Float32Array(3 * size * size);
  const plane = size * size;
  const src = resized.data;
  for (let c = 0; c < 3; c++) {
    const table = normaliseTable(pre.mean[c]!, pre.std[c]!);
    for (let y = 0; y < size; y++) {
      for (let x = 0, p = ((y + top) * w + left) * 3 + c, q = c * plane + y * size; x < size; x++, p += 3, q++) out[q] = table[src[p]!]!;
    }
  }
  return out;
}

const normaliseTables = new Map<string, Float32Array>();

/** Each 8-bit level normalised, float32 at each step, as torch's ToTensor + Normalize compute it. */
function normaliseTable(mean: number, std: number): Float32Array {
  const key = `${mean}/${std}`;
  let t = normaliseTables.get(key);
  if (!t) {
    const m = Math.fround(mean), s = Math.fround(std);
    t = new Float32Array(256);
    for (let v = 0; v < 256; v++) t[v] = Math.fround(Math.fround(v / 255) - m) / s;
    if (normaliseTables.size >= 64) normaliseTables.clear();
    normaliseTables.set(key, t);
  }
  return t;
}

/**
 * Decode and preprocess one image for CLIP: `decodeImage` then `toClipPixels`.
 *
 * @example
 * const pixels = await preprocessForClip('photo.jpg', config.preprocess); // [1,3,S,S]
 */
export async function preprocessForClip(input: Buffer | string, pre: ClipPreprocess, opts?: DecodeOptions): Promise<Float32Array> {
  return toClipPixels(await decodeImage(input, opts), pre);
}

/**
 * Several images into one NCHW batch [N,3,size,size], decoded one at a time to bound
 * memory. `names` (optional) label the images in errors.
 *
 * @example
 * const batch = await preprocessBatch([a, b], pre); // Float32Array(2 * 3 * S * S)
 */
export async function preprocessBatch(
  inputs: ReadonlyArray<Buffer | string>, pre: ClipPreprocess, opts: Omit<DecodeOptions, 'name'> & { names?: string[] } = {},
): Promise<Float32Array> {
  checkPreprocess(pre);
  const one = 3 * pre.size * pre.size;
  const out = new Float32Array(inputs.length * one);
  for (let i = 0; i < inputs.length; i++) {
    const name = opts.names?.[i] ?? (typeof inputs[i] === 'string' ? undefined : `image ${i + 1}`);
    out.set(await preprocessForClip(inputs[i]!, pre, { ...opts, name }), i * one);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Resizing and encoding results
// ---------------------------------------------------------------------------------------

function checkDims(width: number, height: number, length: number, per: number, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new InputError('image', `Image size must be positive integers, got ${width}×${height}.`);
  }
  if (length !== width * height * per) {
    throw new InputError('image', `${what} for ${width}×${height} must hold ${width * height * per} values, got ${length}.`);
  }
}

/**
 * Planar CHW floats in [0,1] (a model's output) → interleaved RGB bytes, clamped and
 * rounded (x·255 + 0.5, as torchvision's save_image); NaN becomes 0.
 *
 * @example
 * const rgb = chwToRgbBytes(decoded, 256, 256);
 */
export function chwToRgbBytes(chw: Float32Array, width: number, height: number): Uint8Array {
  checkDims(width, height, chw.length, 3, 'CHW pixels');
  const plane = width * height;
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = Math.floor(chw[c * plane + p]! * 255 + 0.5);
      out[p * 3 + c] = v > 255 ? 255 : v > 0 ? v : 0; // NaN fails both tests → 0
    }
  }
  return out;
}

function rgbPipeline(data: Uint8Array | Float32Array, width: number, height: number): Sharp {
  const rgb = data instanceof Float32Array ? chwToRgbBytes(data, width, height) : data;
  checkDims(width, height, rgb.length, 3, 'RGB bytes');
  return sharp(rgb, { raw: { width, height, channels: 3 } });
}

/**
 * Encode RGB as PNG. `data` is interleaved RGB bytes (HWC) or planar CHW floats in [0,1].
 *
 * @example
 * await writeFile('out.png', await encodePng(chw, 256, 256));
 */
export async function encodePng(
  data: Uint8Array | Float32Array, width: number, height: number, opts: { compressionLevel?: number } = {},
): Promise<Buffer> {
  return rgbPipeline(data, width, height).png({ compressionLevel: opts.compressionLevel ?? 6 }).toBuffer();
}

/**
 * Encode RGB as WebP (lossy at `quality`, default 90, or `lossless`). Inputs as `encodePng`.
 *
 * @example
 * const preview = await encodeWebp(rgb, 128, 128, { quality: 80 });
 */
export async function encodeWebp(
  data: Uint8Array | Float32Array, width: number, height: number, opts: { quality?: number; lossless?: boolean } = {},
): Promise<Buffer> {
  return rgbPipeline(data, width, height).webp({ quality: opts.quality ?? 90, lossless: opts.lossless ?? false }).toBuffer();
}

/**
 * Resize an RGB image to exactly `width`×`height` with one of sharp's kernels (default
 * 'cubic'), for previews and thumbnails; CLIP's own preprocessing uses `toClipPixels`.
 *
 * @example
 * const thumb = await resizeRgb(img, 64, 64, 'lanczos3');
 */
export async function resizeRgb(img: RgbImage, width: number, height: number, kernel: ResizeKernel = 'cubic'): Promise<RgbImage> {
  checkDims(img.width, img.height, img.data.length, 3, 'RGB bytes');
  checkDims(width, height, width * height * 3, 3, 'the target');
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: toRgb(data, info.channels, info.width * info.height) };
}

/**
 * Rasterise an SVG document we wrote ourselves (evaluation drawings, never an upload:
 * decodeImage refuses SVG on purpose) to `size`×`size` RGB, flattened on white.
 *
 * @example
 * const img = await rasterizeSvg('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128">…</svg>', 128);
 */
export async function rasterizeSvg(svg: string, size: number): Promise<RgbImage> {
  checkDims(size, size, size * size * 3, 3, 'the target');
  const { data, info } = await sharp(Buffer.from(svg), { density: 72 })
    .resize(size, size, { fit: 'fill' })
    .flatten({ background: '#ffffff' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: toRgb(data, info.channels, info.width * info.height) };
}

/**
 * An animated WebP (looping) of equally sized RGB frames, e.g. a generation's previews; each
 * frame shows for `delayMs` (one number, or one per frame).
 *
 * @example
 * const webp = await encodeAnimation(frames.map((f) => f.rgb), 32, 32, { delayMs: [...frames.map(() => 150), 1500] });
 */
export async function encodeAnimation(
  frames: readonly Uint8Array[], width: number, height: number, opts: { delayMs?: number | number[]; quality?: number } = {},
): Promise<Buffer> {
  if (!frames.length) throw new InputError('frames', 'An animation needs at least one frame.');
  const stacked = new Uint8Array(frames.length * width * height * 3);
  frames.forEach((f, i) => {
    checkDims(width, height, f.length, 3, `frame ${i + 1}`);
    stacked.set(f, i * width * height * 3);
  });
  const delay = opts.delayMs ?? 150;
  return sharp(stacked, { raw: { width, height: height * frames.length, channels: 3, pageHeight: height } })
    .webp({ quality: opts.quality ?? 90, loop: 0, delay: Array.isArray(delay) ? delay : frames.map(() => delay) })
    .toBuffer();
}
