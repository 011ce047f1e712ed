/**
 * A real HTTP file server on 127.0.0.1 for download tests: serves named byte buffers with
 * Range support, and can misbehave on purpose (cut the connection mid-body, ignore Range,
 * redirect with the hub's X-Linked-Etag, answer 404). Every request is recorded.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedFile {
  body: Buffer;
  /** Sent as `ETag: "<etag>"`. */
  etag?: string;
  /** Answer the first N requests by sending half the body, then destroying the socket. */
  cutFirst?: number;
  /** Answer with 200 and the whole body even when a Range is asked for. */
  ignoreRange?: boolean;
  /** Answer with a 302 to this path, adding `X-Linked-Etag` when `linkedEtag` is set. */
  redirectTo?: string;
  linkedEtag?: string;
}

export interface FileServer {
  url: string;
  files: Map<string, ServedFile>;
  requests: { path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

export async function startFileServer(files: Record<string, ServedFile> = {}): Promise<FileServer> {
  const served = new Map(Object.entries(files));
  const requests: FileServer['requests'] = [];
  const cuts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push({ path, headers: req.headers });
    const file = served.get(path);
    if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    if (file.redirectTo) {
      res.writeHead(302, { Location: file.redirectTo, ...(file.linkedEtag ? { 'X-Linked-Etag': `"${file.linkedEtag}"` } : {}) }).end();
      return;
    }
    const size = file.body.length;
    const etag = file.etag ? { ETag: `"${file.etag}"` } : {};
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !file.ignoreRange) {
      start = Number(range[1]);
      if (start >= size) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Length': size - start, 'Content-Range': `bytes ${start}-${size - 1}/${size}`, ...etag });
    } else {
      res.writeHead(200, { 'Content-Length': size, 'Accept-Ranges': 'bytes', ...etag });
    }
    const cutSoFar = cuts.get(path) ?? 0;
    if (cutSoFar < (file.cutFirst ?? 0)) {
      cuts.set(path, cutSoFar + 1);
      const half = file.body.subarray(start, start + Math.floor((size - start) / 2));
      res.write(half, () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(file.body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    files: served,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
