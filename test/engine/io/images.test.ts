/**
 * Image I/O: hardened decoding of untrusted files, CLIP preprocessing, encoding.
 * Test images are made with the module's own encoders or embedded as small base64 files
 * (formats it cannot write: JPEG with EXIF orientation, animated GIF, TIFF, alpha PNG).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import {
  chwToRgbBytes, decodeImage, encodePng, encodeWebp, preprocessBatch, preprocessForClip, resizeRgb, toClipPixels,
  type RgbImage,
} from '../../../engine/io/images';
import { InputError } from '../../../engine/errors';

const CLIP_PRE = { size: 32, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] };
const b64 = (s: string) => Buffer.from(s, 'base64');
/** 16×8, left half red, right half blue, EXIF orientation 6 (display rotated 90° clockwise). */
const JPEG_ORIENTED = b64('/9j/4QC8RXhpZgAASUkqAAgAAAAGABIBAwABAAAABgAAABoBBQABAAAAVgAAABsBBQABAAAAXgAAACgBAwABAAAAAgAAABMCAwABAAAAAQAAAGmHBAABAAAAZgAAAAAAAAA4YwAA6AMAADhjAADoAwAABgAAkAcABAAAADAyMTABkQcABAAAAAECAwAAoAcABAAAADAxMDABoAMAAQAAAP//AAACoAQAAQAAABAAAAADoAQAAQAAAAgAAAAAAAAA/9sAQwACAQEBAQECAQEBAgICAgIEAwICAgIFBAQDBAYFBgYGBQYGBgcJCAYHCQcGBggLCAkKCgoKCgYICwwLCgwJCgoK/9sAQwECAgICAgIFAwMFCgcGBwoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoK/8AAEQgACAAQAwEiAAIRAQMRAf/EABUAAQEAAAAAAAAAAAAAAAAAAAAI/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/EABQBAQAAAAAAAAAAAAAAAAAAAAj/xAAYEQACAwAAAAAAAAAAAAAAAAAACUaExP/aAAwDAQACEQMRAD8Ai9IYFQsuV0dg1GGRm7kP/9k=');
/** The same JPEG without its EXIF (APP1) segment: no orientation. */
const JPEG_PLAIN = Buffer.concat([JPEG_ORIENTED.subarray(0, 2), JPEG_ORIENTED.subarray(4 + JPEG_ORIENTED.readUInt16BE(4))]);
/** 4×4 GIF, two frames: red then blue. */
const GIF_ANIMATED = b64('R0lGODlhBAAEAIAAAExpcf8AACH5BAUAAAAALAAAAAAEAAQAAAIEjI8ZBQAh+QQFAAAAACwAAAAABAAEAIBMaXEAAP8CBIyPGQUAOw==');
/** 2×1 RGBA PNG: a fully transparent black pixel, then opaque green. */
const PNG_ALPHA = b64('iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAYAAAD0In+KAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAADklEQVQImWNgAIH/DP8BBAUB/9RAzYAAAAAASUVORK5CYII=');
/** 4×4 uncompressed TIFF. */
const TIFF = b64('SUkqADgAAAAJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkPAAABAwABAAAABAAAAAEBAwABAAAABAAAAAIBAwADAAAAAgEAAAMBAwABAAAAAQAAAAYBAwABAAAAAgAAABEBBAABAAAACAAAABIBAwABAAAAAQAAABUBAwABAAAAAwAAABYBAwABAAAAAAEAABcBBAABAAAAMAAAABoBBQABAAAA8gAAABsBBQABAAAA+gAAABwBAwABAAAAAQAAACgBAwABAAAAAgAAAFMBAwADAAAACAEAAAAAAAAzM8sAAAAIADMzywAAAAgACAAIAAgAAQABAAEA');
const SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="red"/></svg>';

function image(width: number, height: number, colour: (x: number, y: number) => [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(colour(x, y), (y * width + x) * 3);
  return { width, height, data };
}
const pixel = (img: RgbImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
const near = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

/** A PNG whose header declares width×height, with a few rows of data: a decompression bomb. */
function pngDeclaring(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(8); head.writeUInt32BE(body.length); head.write(type, 4, 'ascii');
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4); ihdr[8] = 8; ihdr[9] = 2;
  const idat = deflateSync(Buffer.alloc((width * 3 + 1) * 4));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

async function rejectsNaming(promise: Promise<unknown>, name: string, pattern?: RegExp) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected an InputError, got ${e}`);
    assert.equal(e.field, 'image');
    assert.ok(e.message.startsWith(`${name}: `), e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

test('PNG round trip keeps every byte, from RGB bytes and from CHW floats', async () => {
  const img = image(7, 5, (x, y) => [(x * 37) % 256, (y * 91) % 256, (x * y * 13) % 256]);
  const back = await decodeImage(await encodePng(img.data, 7, 5));
  assert.deepEqual([back.width, back.height], [7, 5]);
  assert.deepEqual(back.data, img.data);

  const chw = new Float32Array(3 * 7 * 5).map((_, i) => ((i * 0.137) % 1.4) - 0.2); // some out of [0,1]
  const fromFloats = await decodeImage(await encodePng(chw, 7, 5));
  assert.deepEqual(fromFloats.data, chwToRgbBytes(chw, 7, 5));
});

test('chwToRgbBytes clamps, rounds half up and interleaves channels', () => {
  // 2×1 image: R plane [-0.5, 0.5], G plane [1.5, 0.2], B plane [NaN, 1].
  const rgb = chwToRgbBytes(new Float32Array([-0.5, 0.5, 1.5, 0.2, NaN, 1]), 2, 1);
  assert.deepEqual(Array.from(rgb), [0, 255, 0, 128, 51, 255]);
  assert.throws(() => chwToRgbBytes(new Float32Array(5), 2, 1), InputError);
});

test('WebP (lossless and lossy) and JPEG decode', async () => {
  const img = image(12, 6, (x) => (x < 6 ? [250, 10, 10] : [10, 10, 250]));
  assert.deepEqual((await decodeImage(await encodeWebp(img.data, 12, 6, { lossless: true }))).data, img.data);
  const lossy = await decodeImage(await encodeWebp(img.data, 12, 6, { quality: 90 }));
  assert.ok(near(pixel(lossy, 1, 3), [250, 10, 10], 24) && near(pixel(lossy, 10, 3), [10, 10, 250], 24));

  const jpeg = await decodeImage(JPEG_PLAIN);
  assert.deepEqual([jpeg.width, jpeg.height], [16, 8]);
  assert.ok(near(pixel(jpeg, 1, 4), [255, 0, 0], 8) && near(pixel(jpeg, 14, 4), [0, 0, 255], 8));
});

test('EXIF orientation is applied, animated GIFs give the first frame, alpha is flattened on white', async () => {
  const rotated = await decodeImage(JPEG_ORIENTED);
  assert.deepEqual([rotated.width, rotated.height], [8, 16]);
  assert.ok(near(pixel(rotated, 4, 1), [255, 0, 0], 8), 'red (left) half is on top after a 90° clockwise turn');
  assert.ok(near(pixel(rotated, 4, 14), [0, 0, 255], 8));

  const gif = await decodeImage(GIF_ANIMATED);
  assert.deepEqual([gif.width, gif.height], [4, 4]);
  assert.deepEqual(pixel(gif, 2, 2), [255, 0, 0]);

  const alpha = await decodeImage(PNG_ALPHA);
  assert.deepEqual(Array.from(alpha.data), [255, 255, 255, 0, 255, 0]);
});

test('formats off the allow-list and broken files are refused, naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-images-'));
  const svgAsPng = join(dir, 'innocent.png');
  writeFileSync(svgAsPng, SVG);
  await rejectsNaming(decodeImage(svgAsPng), 'innocent.png', /not a PNG, JPEG, WebP or GIF/);
  await rejectsNaming(decodeImage(Buffer.from(SVG), { name: 'drawing.svg' }), 'drawing.svg');
  await rejectsNaming(decodeImage(TIFF, { name: 'scan.tiff' }), 'scan.tiff', /not a PNG/);
  await rejectsNaming(decodeImage(Buffer.from('%PDF-1.4\n%\xe2\xe3\n'), { name: 'doc.pdf' }), 'doc.pdf');
  await rejectsNaming(decodeImage(Buffer.alloc(0), { name: 'empty.png' }), 'empty.png');
  await rejectsNaming(decodeImage(join(dir, 'missing.png')), 'missing.png', /not found/);

  const noise = image(64, 64, (x, y) => [(x * 7919 + y * 104729) % 251, (x * y) % 253, (x + 3 * y) % 255]);
  const png = await encodePng(noise.data, 64, 64);
  const truncated = join(dir, 'cut.png');
  writeFileSync(truncated, png.subarray(0, Math.floor(png.length / 2)));
  await rejectsNaming(decodeImage(truncated), 'cut.png', /could not be decoded/);
});

test('a decompression bomb is refused from its header; the pixel limit is configurable', async () => {
  const bomb = pngDeclaring(20000, 20000);
  assert.ok(bomb.length < 200_000, `the bomb file is small (${bomb.length} bytes)`);
  await rejectsNaming(decodeImage(bomb, { name: 'bomb.png' }), 'bomb.png', /20000×20000 is over the limit of 16777216 pixels/);

  const png = await encodePng(image(100, 100, () => [1, 2, 3]).data, 100, 100);
  await rejectsNaming(decodeImage(png, { name: 'big.png', maxPixels: 5000 }), 'big.png', /over the limit of 5000/);
  assert.equal((await decodeImage(png, { maxPixels: 10_000 })).width, 100);
});

test('preprocessing a wide image resizes the short side and keeps the centre', async () => {
  // 300×100: red | green | blue thirds. Short side 100 → 32, so 96×32, centre crop = green third.
  const img = image(300, 100, (x) => (x < 100 ? [255, 0, 0] : x < 200 ? [0, 255, 0] : [0, 0, 255]));
  const pixels = await preprocessForClip(await encodePng(img.data, 300, 100), { size: 32, mean: [0, 0, 0], std: [1, 1, 1] });
  assert.equal(pixels.length, 1 * 3 * 32 * 32);
  const at = (c: number, y: number, x: number) => pixels[c * 32 * 32 + y * 32 + x]!;
  for (let y = 0; y < 32; y++) {
    for (let x = 3; x < 29; x++) {
      // Away from the two colour edges, where bicubic blends in a little red/blue.
      assert.ok(at(0, y, x) <= 1 / 255 && at(1, y, x) >= 254 / 255 && at(2, y, x) <= 1 / 255, `(${x},${y}) is green`);
    }
    assert.ok(at(0, y, 0) > at(2, y, 0), 'the left edge leans red');
    assert.ok(at(2, y, 31) > at(0, y, 31), 'the right edge leans blue');
  }

  // A tall image crops the middle rows the same way.
  const tall = image(100, 300, (_x, y) => (y < 100 ? [255, 0, 0] : y < 200 ? [0, 255, 0] : [0, 0, 255]));
  const tallPixels = toClipPixels(tall, { size: 32, mean: [0, 0, 0], std: [1, 1, 1] });
  assert.ok(tallPixels[1 * 1024 + 16 * 32 + 16]! >= 254 / 255 && tallPixels[16 * 32 + 16]! <= 1 / 255);
});

test('normalisation is (x/255 − mean)/std in float32, per channel', async () => {
  const colour: [number, number, number] = [200, 100, 50];
  const img = image(40, 20, () => colour);
  const pixels = toClipPixels(img, CLIP_PRE);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const expected = f(f(f(colour[c]! / 255) - f(CLIP_PRE.mean[c]!)) / f(CLIP_PRE.std[c]!));
    const plane = pixels.subarray(c * 32 * 32, (c + 1) * 32 * 32);
    assert.ok(plane.every((v) => v === expected), `channel ${c}: ${plane[0]} vs ${expected}`);
  }
});

test('preprocessBatch stacks images in order and names a bad one', async () => {
  const a = await encodePng(image(40, 40, () => [255, 255, 255]).data, 40, 40);
  const b = await encodePng(image(50, 40, () => [0, 0, 0]).data, 50, 40);
  const batch = await preprocessBatch([a, b], CLIP_PRE);
  assert.equal(batch.length, 2 * 3 * 32 * 32);
  assert.deepEqual(batch.subarray(0, 3072), await preprocessForClip(a, CLIP_PRE));
  assert.deepEqual(batch.subarray(3072), await preprocessForClip(b, CLIP_PRE));
  await rejectsNaming(preprocessBatch([a, TIFF], CLIP_PRE, { names: ['a.png', 'b.tif'] }), 'b.tif');
  assert.throws(() => toClipPixels(image(4, 4, () => [0, 0, 0]), { size: 4, mean: [0, 0], std: [1, 1, 1] }), InputError);
});

test('resizeRgb gives the requested size with a flat colour preserved', async () => {
  const small = await resizeRgb(image(30, 20, () => [10, 120, 230]), 9, 13, 'lanczos3');
  assert.deepEqual([small.width, small.height, small.data.length], [9, 13, 9 * 13 * 3]);
  assert.ok(near(pixel(small, 4, 6), [10, 120, 230], 1));
});

/**
 * Pillow's bicubic resample as its definition reads: each tap summed in double precision, per
 * output pixel, floored at 22 fractional bits. resizeBicubicPil must match it byte for byte
 * (it sums in int32 row by row and caches its coefficients, for training's thousands of resizes).
 */
function pillowBicubicReference(img: RgbImage, outW: number, outH: number): RgbImage {
  const kernel = (x: number) => { x = Math.abs(x); return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * -0.5 : 0; };
  const coeffs = (inSize: number, outSize: number) => {
    const scale = inSize / outSize, fs = Math.max(scale, 1), support = 2 * fs;
    return Array.from({ length: outSize }, (_, o) => {
      const center = (o + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(center - support + 0.5));
      const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
      const w = Array.from({ length: n }, (_, x) => kernel((x + xmin - center + 0.5) / fs));
      const total = w.reduce((a, b) => a + b, 0);
      return { first: xmin, weights: w.map((v) => { const k = total !== 0 ? v / total : v; return Math.trunc(k < 0 ? -0.5 + k * 2 ** 22 : 0.5 + k * 2 ** 22); }) };
    });
  };
  const clip8 = (acc: number) => Math.min(255, Math.max(0, Math.floor(acc / 2 ** 22)));
  const pass = (src: Uint8Array, w: number, h: number, horizontal: boolean, outSize: number) => {
    const c = coeffs(horizontal ? w : h, outSize);
    const [ow, oh] = horizontal ? [outSize, h] : [w, outSize];
    const out = new Uint8Array(ow * oh * 3);
    for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) for (let ch = 0; ch < 3; ch++) {
      const { first, weights } = c[horizontal ? x : y]!;
      let acc = 2 ** 21;
      weights.forEach((wt, t) => { acc += src[((horizontal ? y : first + t) * w + (horizontal ? first + t : x)) * 3 + ch]! * wt; });
      out[(y * ow + x) * 3 + ch] = clip8(acc);
    }
    return out;
  };
  let data = img.width === outW ? img.data : pass(img.data, img.width, img.height, true, outW);
  if (img.height !== outH) data = pass(data, outW, img.height, false, outH);
  return { width: outW, height: outH, data };
}

test('the bicubic resize is Pillow\'s, byte for byte, down and up, wide and tall', async () => {
  const { resizeBicubicPil } = await import('../../../engine/io/images');
  let state = 12345;
  const noise = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24);
  // noise and hard edges: overshoot past 0 and 255 must clamp as Pillow does
  const busy = (w: number, h: number) => image(w, h, (x, y) => (((x >> 2) + (y >> 2)) % 2 ? [255, noise(), 0] : [0, noise(), 255]));
  for (const [w, h, ow, oh] of [[128, 128, 64, 64], [128, 128, 64, 64], [97, 41, 32, 13], [30, 50, 64, 107], [64, 64, 64, 31], [333, 200, 224, 134]] as const) {
    const src = busy(w, h);
    assert.deepEqual(resizeBicubicPil(src, ow, oh), pillowBicubicReference(src, ow, oh), `${w}×${h} → ${ow}×${oh}`);
  }
});
