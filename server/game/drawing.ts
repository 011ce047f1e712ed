/**
 * Drawings from players are untrusted bytes: only a PNG of at most 512×512 and 300 KB is
 * accepted, checked by its signature and header before anything is decoded, then decoded
 * by the engine (engine/io/images.ts, the project's only sharp importer) and re-encoded, so
 * what the server keeps and shows others is a PNG it wrote itself (no ancillary chunks, no
 * metadata, no decoder tricks).
 *
 * @example
 * const d = await validateDrawing(bytes); // GameError('BAD_DRAWING', …, 'png') when refused
 * d.png; d.image.width; d.ink;
 */
import { decodeImage, encodePng, InputError, type RgbImage } from '../../engine/index';
import { PLAY_LIMITS } from '../protocol';
import { GameError } from './errors';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export interface Drawing {
  /** The server's own re-encoding. */
  png: Buffer;
  image: RgbImage;
  /** Fraction of pixels with ink (not near-white). */
  ink: number;
}

/** Below this fraction of inked pixels a canvas counts as empty (about 130 pixels of 512×512). */
export const BLANK_INK = 0.0005;

/** Width and height from a PNG's IHDR chunk, or an error naming what is wrong. */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  if (bytes.length < 33 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new GameError('BAD_DRAWING', 'The drawing is not a PNG image (by its content).', 'png');
  }
  const type = String.fromCharCode(bytes[12]!, bytes[13]!, bytes[14]!, bytes[15]!);
  if (type !== 'IHDR') throw new GameError('BAD_DRAWING', 'The drawing is not a valid PNG (its first chunk is not IHDR).', 'png');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Fraction of pixels whose darkest channel is below 200 (ink on white paper). */
export function inkFraction(img: RgbImage): number {
  const d = img.data;
  let ink = 0;
  for (let p = 0; p < d.length; p += 3) if (Math.min(d[p]!, d[p + 1]!, d[p + 2]!) < 200) ink++;
  return ink / (img.width * img.height);
}

/** Check, decode and re-encode a player's drawing. Every refusal is GameError('BAD_DRAWING', …, 'png'). */
export async function validateDrawing(bytes: Uint8Array): Promise<Drawing> {
  const decoded = await decodeDrawing(bytes);
  return { ...decoded, png: await reencode(decoded.image) };
}

/** The server's own PNG of a decoded drawing. */
export function reencode(image: RgbImage): Promise<Buffer> {
  return encodePng(image.data, image.width, image.height);
}

/** The checks that need no decoding: size in bytes, PNG signature, width and height. Throws GameError. */
export function checkDrawingHeader(bytes: Uint8Array): void {
  const { drawingMaxBytes: maxBytes, drawingMaxSide: maxSide } = PLAY_LIMITS;
  if (bytes.byteLength > maxBytes) {
    throw new GameError('BAD_DRAWING', `The drawing is ${bytes.byteLength} bytes, over the limit of ${maxBytes} (300 KB).`, 'png');
  }
  const { width, height } = pngSize(bytes);
  if (width < 1 || height < 1 || width > maxSide || height > maxSide) {
    throw new GameError('BAD_DRAWING', `The drawing is ${width}×${height}; at most ${maxSide}×${maxSide} is accepted.`, 'png');
  }
}

/**
 * `validateDrawing` without the re-encoding: the checks and the decoded pixels, so live
 * guesses need not wait for the PNG encoder (re-encode before keeping or forwarding it).
 */
export async function decodeDrawing(bytes: Uint8Array): Promise<Omit<Drawing, 'png'>> {
  const { drawingMaxBytes: maxBytes, drawingMaxSide: maxSide } = PLAY_LIMITS;
  checkDrawingHeader(bytes);
  let image: RgbImage;
  try {
    image = await decodeImage(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { name: 'drawing', maxPixels: maxSide * maxSide, maxBytes });
  } catch (err) {
    if (err instanceof InputError) throw new GameError('BAD_DRAWING', `The drawing ${err.message.replace(/^drawing: /, '')}`, 'png');
    throw err;
  }
  return { image, ink: inkFraction(image) };
}
