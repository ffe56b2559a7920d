// An HTTP proxy put between DSO and a fake backend that breaks on demand: it forwards faithfully,
// or it is down (connection refused), hangs, or answers garbage, a truncated body, a cut
// connection, an endless body or JSON of the wrong shape, so tests can attack the provider edge
// with what real networks and broken backends send. It can serve HTTPS (for a client that only
// speaks TLS), keep the client's Host header (for signed requests) and be told what a wrong shape
// looks like for the API behind it.
import type { Server } from 'bun';

export type Fault =
  | 'none'
  /** Nothing listens on the port: connection refused. */
  | 'down'
  /** Accepts and never answers. */
  | 'hang'
  /** 200 with an HTML page, not JSON. */
  | 'html'
  /** 200 application/json whose text stops in the middle (a complete, shorter body). */
  | 'truncated'
  /** 200 whose body is cut by a reset after half of it was sent. */
  | 'reset'
  /** 200 application/json that never ends (chunked, no Content-Length). */
  | 'huge'
  /** 200 application/json, valid, but not the shape the API documents. */
  | 'wrong-shape'
  /** 502 with a non-JSON body, what a load balancer in front of a dead backend says. */
  | 'bad-gateway';

export interface FaultProxy {
  url: string;
  /** Requests seen since start (forwarded or broken). */
  requests: number;
  set(fault: Fault): Promise<void>;
  stop(): void;
}

export interface FaultProxyOptions {
  /** Serve HTTPS with this certificate and key. */
  tls?: { cert: string; key: string };
  /** PEM CA certificates to trust when `upstream` is https. */
  upstreamCa?: string;
  /** Forward the Host header the client sent: a signed request (SigV4, Huawei's AK/SK) signs it. */
  keepHost?: boolean;
  /**
   * Write the proxy's own address over the upstream's in forwarded bodies: a discovery document
   * (Entra ID's OpenID configuration) would otherwise send the client around the proxy.
   */
  rewriteOrigin?: boolean;
  /** Break only requests whose path matches (a login's token endpoint); forward the others. */
  only?: RegExp;
  /** The answer to `wrong-shape`: valid JSON that is not what this API documents (Vault's by default). */
  wrongShape?: (bait: string) => unknown;
}

/** Headers that describe one connection or one encoding of the body, not the answer: not forwarded. */
const HOP_HEADERS = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding'];

/** Starts the proxy in front of `upstream` (`http(s)://127.0.0.1:PORT`). `bait` is put into broken answers, to prove DSO never echoes them. */
export async function startFaultProxy(upstream: string, bait: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  let fault: Fault = 'none';
  let server: Server<undefined> | undefined;
  let port = 0;
  const hanging = new Set<() => void>();
  let stopped = false;

  const forward = async (req: Request, url: URL, body: ArrayBuffer | undefined): Promise<Response> => {
    const headers = new Headers(req.headers);
    if (!options.keepHost) headers.delete('host');
    const r = await fetch(`${upstream}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body,
      redirect: 'manual',
      ...(options.upstreamCa === undefined ? {} : { tls: { ca: options.upstreamCa } }),
    } as RequestInit);
    // The answer's own headers (a bearer challenge, an error type) matter to the client.
    const answerHeaders = new Headers(r.headers);
    for (const h of HOP_HEADERS) answerHeaders.delete(h);
    if (!answerHeaders.has('content-type')) answerHeaders.set('content-type', 'application/json');
    const answerBody = options.rewriteOrigin ? (await r.text()).replaceAll(upstream, proxy.url) : await r.arrayBuffer();
    return new Response(answerBody, { status: r.status, headers: answerHeaders });
  };

  const answer = async (req: Request): Promise<Response> => {
    proxy.requests++;
    const url = new URL(req.url);
    // Read first: a held request is forwarded once the fault clears.
    const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await req.arrayBuffer();
    switch (options.only === undefined || options.only.test(url.pathname) ? fault : 'none') {
      case 'hang':
        // Held open until the fault changes or the caller gives up; then answered late, as a
        // backend that was only slow would (a caller that gave up must drop what comes).
        await new Promise<void>((resolve) => hanging.add(resolve));
        return fault === 'none' && !stopped ? forward(req, url, body) : new Response('', { status: 503 });
      case 'html':
        return new Response(`<html><body><h1>Welcome to nginx!</h1><p>${bait}</p></body></html>`, { status: 200, headers: { 'content-type': 'text/html' } });
      case 'truncated':
        return new Response(`{"request_id":"x","data":{"data":{"password":"${bait}`, { status: 200, headers: { 'content-type': 'application/json' } });
      case 'reset': {
        let sent = false;
        return new Response(
          new ReadableStream({
            pull(controller) {
              if (!sent) {
                sent = true;
                controller.enqueue(new TextEncoder().encode(`{"request_id":"x","data":{"data":{"password":"${bait}`));
                return;
              }
              controller.error(new Error('connection reset by the test'));
            },
          }),
          { status: 200, headers: { 'content-type': 'application/json', 'content-length': '4096' } },
        );
      }
      case 'huge': {
        const chunk = new TextEncoder().encode(`"${bait}",`.repeat(4096));
        let sent = 0;
        return new Response(
          new ReadableStream({
            pull(controller) {
              if (sent === 0) controller.enqueue(new TextEncoder().encode('{"data":{"data":{"password":['));
              // 2 GiB at most, far over any limit; the reader is expected to stop long before.
              if (sent > 2 ** 31) return controller.close();
              sent += chunk.length;
              controller.enqueue(chunk);
            },
          }),
          { status: 200, headers: { 'content-type': 'application/json' } },
        );
      }
      case 'wrong-shape':
        return Response.json(options.wrongShape ? options.wrongShape(bait) : { request_id: 'x', data: [bait], warnings: null }, { status: 200 });
      case 'bad-gateway':
        return new Response(`<html><head><title>502 Bad Gateway</title></head><body>${bait}</body></html>`, { status: 502, headers: { 'content-type': 'text/html' } });
      default:
        return forward(req, url, body);
    }
  };

  const listen = () => {
    server = Bun.serve({ hostname: '127.0.0.1', port, idleTimeout: 0, fetch: answer, ...(options.tls === undefined ? {} : { tls: options.tls }) });
    port = server.port ?? 0;
  };

  const proxy: FaultProxy = {
    url: '',
    requests: 0,
    async set(next) {
      if (next === fault) return;
      if (fault === 'down') listen();
      fault = next;
      for (const release of hanging) release();
      hanging.clear();
      if (next === 'down') {
        server?.stop(true);
        server = undefined;
      }
    },
    stop() {
      stopped = true;
      for (const release of hanging) release();
      server?.stop(true);
    },
  };
  listen();
  proxy.url = `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  return proxy;
}
