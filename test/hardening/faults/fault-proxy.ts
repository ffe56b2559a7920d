// An HTTP proxy put between DSO and a fake backend that breaks on demand: it forwards faithfully,
// or it is down (connection refused), hangs, or answers garbage, a truncated body, a cut
// connection, an endless body or JSON of the wrong shape, so tests can attack the provider edge
// with what real networks and broken backends send.
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

/** Starts the proxy in front of `upstream` (`http://127.0.0.1:PORT`). `bait` is put into broken answers, to prove DSO never echoes them. */
export async function startFaultProxy(upstream: string, bait: string): Promise<FaultProxy> {
  let fault: Fault = 'none';
  let server: Server<undefined> | undefined;
  let port = 0;
  const hanging = new Set<() => void>();

  const answer = async (req: Request): Promise<Response> => {
    proxy.requests++;
    const url = new URL(req.url);
    switch (fault) {
      case 'hang':
        // Held open until the fault changes or the caller gives up.
        await new Promise<void>((resolve) => hanging.add(resolve));
        return new Response('', { status: 503 });
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
        return Response.json({ request_id: 'x', data: [bait], warnings: null }, { status: 200 });
      case 'bad-gateway':
        return new Response(`<html><head><title>502 Bad Gateway</title></head><body>${bait}</body></html>`, { status: 502, headers: { 'content-type': 'text/html' } });
      default: {
        const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await req.arrayBuffer();
        const headers = new Headers(req.headers);
        headers.delete('host');
        const r = await fetch(`${upstream}${url.pathname}${url.search}`, { method: req.method, headers, body, redirect: 'manual' });
        return new Response(await r.arrayBuffer(), { status: r.status, headers: { 'content-type': r.headers.get('content-type') ?? 'application/json' } });
      }
    }
  };

  const listen = () => {
    server = Bun.serve({ hostname: '127.0.0.1', port, idleTimeout: 0, fetch: answer });
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
      for (const release of hanging) release();
      server?.stop(true);
    },
  };
  listen();
  proxy.url = `http://127.0.0.1:${port}`;
  return proxy;
}
