// @ts-check
/**
 * Next.js serves pages only; the engine runs in server/ (see server.ts), never in the Next bundle.
 * serverExternalPackages is belt and braces: if an engine import ever reached a page, these native
 * or heavy packages would stay as runtime requires instead of being bundled.
 * @type {import('next').NextConfig}
 */
const nextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // `next build` type-checks only the app (and the protocol types it imports); the whole project
  // is checked by `npm test` (tsc --noEmit), so an unrelated test file cannot stop the studio starting.
  typescript: { tsconfigPath: 'tsconfig.next.json' },
  serverExternalPackages: [
    '@tensorflow/tfjs',
    '@tensorflow/tfjs-core',
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-node',
    '@tensorflow/tfjs-node-gpu',
    'onnxruntime-node',
    'sharp',
    'better-sqlite3',
  ],
};

export default nextConfig;
