// The agent's HTTP API, served on its unix socket. Whoever can open the socket may use it (the
// socket's mode and group are the access control; see docs/agent.md): the API adds no tokens of
// its own, and so never has any to leak. With an admin socket (agent.socket.admin) the routes that
// change containers (rotate, the webhook trigger) are served there alone, and the API socket
// refuses them. Secret values leave as raw bytes in length-prefixed frames
// (src/providers/frames.ts), not as text in JSON.
import { Hono } from 'hono';
import * as v from 'valibot';
import { parseSecretId, type SecretId } from '../compose/references.ts';
import { DsoError } from '../errors.ts';
import { encodeFrame } from '../providers/frames.ts';
import type { Rotator } from './rotator.ts';
import type { AgentService } from './service.ts';
import { webhookRoutes } from './webhook.ts';

export const FRAMES_TYPE = 'application/vnd.dso.frames';
const MAX_IDS = 10_000;

/**
 * How often a long answer (a rotation) sends a line when it has nothing else to say. Bun's server
 * closes a connection that stays silent for its idle timeout (10 s by default, at most 255 s;
 * measured with Bun 1.4.5 on the unix socket: any line sent resets it).
 */
export const KEEPALIVE_MS = 3000;

export interface ApiOptions {
  /** Tests shorten it. */
  keepaliveMs?: number;
}

const resolveBody = v.object({
  secrets: v.pipe(v.array(v.pipe(v.string(), v.maxLength(2048))), v.minLength(1), v.maxLength(MAX_IDS)),
});

const rotateBody = v.object({ secret: v.pipe(v.string(), v.maxLength(2048)), dryRun: v.optional(v.boolean()) });

const STATUS: Partial<Record<DsoError['code'], 400 | 403 | 404 | 409 | 503>> = { USAGE: 400, INVALID_REFERENCE: 400, INVALID_SECRET_NAME: 400, PROVIDER_NOT_CONFIGURED: 404, PERMISSION_DENIED: 403 };

/**
 * Which routes a socket serves. Without an admin socket, the API socket serves them all. With
 * one, the API socket (`read`) serves health, status, the provider check and resolve, and the
 * admin socket (`admin`) health, rotate and the webhook trigger.
 */
export type ApiSurface = { serves: 'all' } | { serves: 'read' | 'admin'; adminSocket: string };

/** The routes that change containers: only on the admin socket when there is one. */
export const ADMIN_ROUTES = ['/v1/rotate', '/v1/webhook'] as const;

/**
 * A reference from a request body. A refusal says which field and the form expected, not what was
 * sent: whatever a client put there (a value by mistake) is not sent back, as in the webhook.
 */
function requestedId(text: string, field: string): SecretId {
  try {
    return parseSecretId(text, 'request');
  } catch (e) {
    if (!(e instanceof DsoError) || e.code !== 'INVALID_REFERENCE') throw e;
    throw new DsoError('INVALID_REFERENCE', `${field} in the request body is not a secret reference`, { hint: 'write NAME or PROVIDER:PATH[#KEY][?version=V], like vault:app/db#password' });
  }
}

export function createApi(service: AgentService, rotator?: Rotator, surface: ApiSurface = { serves: 'all' }, options: ApiOptions = {}): Hono {
  const app = new Hono();
  const reads = surface.serves !== 'admin';

  app.use(async (c, next) => {
    await next();
    service.metrics.apiRequests.inc({ route: c.req.routePath, status: String(c.res.status) });
  });

  app.get('/v1/health', (c) => c.json({ status: 'ok' }));
  if (reads) app.get('/v1/status', (c) => c.json(service.status()));

  // Starts every provider (login included) and says which work: `doctor` in Cloud Mode.
  if (reads) app.post('/v1/providers/check', async (c) => c.json({ providers: await service.checkProviders() }));

  if (reads) app.post('/v1/resolve', async (c) => {
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      throw new DsoError('USAGE', 'the request body is not JSON');
    }
    const body = v.safeParse(resolveBody, raw);
    if (!body.success) throw new DsoError('USAGE', `the request body must be {"secrets": [1 to ${MAX_IDS} references]}`);
    const ids: SecretId[] = [...new Set(body.output.secrets)].map((s, i) => requestedId(s, `secrets[${i}]`));
    const { values, failures } = await service.resolve(ids);
    const frames: Uint8Array[] = [];
    for (const r of values) {
      frames.push(encodeFrame({ type: 'value', id: r.id, stale: r.stale, ...(r.version === undefined ? {} : { version: r.version }), ...(r.fingerprint === undefined ? {} : { fingerprint: r.fingerprint }), value: r.value.expose() }));
      r.value.wipe();
    }
    for (const f of failures) frames.push(encodeFrame({ type: 'failure', ...f }));
    frames.push(encodeFrame({ type: 'end', values: values.length, failures: failures.length }));
    const total = frames.reduce((n, f) => n + f.length, 0);
    const body2 = new Uint8Array(total);
    let at = 0;
    for (const f of frames) {
      body2.set(f, at);
      at += f.length;
      f.fill(0);
    }
    return c.body(body2, 200, { 'content-type': FRAMES_TYPE, 'cache-control': 'no-store' });
  });

  if (rotator && surface.serves !== 'read') {
    // `rotate NAME` in Cloud Mode: the plan (and with dryRun only the plan), progress lines while
    // it runs, then the outcome: one JSON document per line.
    app.post('/v1/rotate', async (c) => {
      let raw: unknown;
      try {
        raw = await c.req.json();
      } catch {
        throw new DsoError('USAGE', 'the request body is not JSON');
      }
      const body = v.safeParse(rotateBody, raw);
      if (!body.success) throw new DsoError('USAGE', 'the request body must be {"secret": "PROVIDER:PATH", "dryRun": false}');
      const id = requestedId(body.output.secret, 'secret').id;
      const encoder = new TextEncoder();
      // The client may go (a closed terminal, a cut connection): the rotation goes on all the
      // same, to its one end, and what it would have said to the client is dropped.
      let gone = false;
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          const send = (m: unknown) => {
            if (gone) return;
            try {
              controller.enqueue(encoder.encode(`${JSON.stringify(m)}\n`));
            } catch {
              gone = true;
            }
          };
          // A rotation can wait a long while with nothing to report (a slow health check): a
          // line now and then keeps the connection open. Clients skip lines of unknown types.
          const keepalive = setInterval(() => send({ type: 'alive' }), options.keepaliveMs ?? KEEPALIVE_MS);
          try {
            const result = await rotator.rotateNow(id, body.output.dryRun ?? false, (line) => send({ type: 'progress', line }));
            send({ type: 'result', plan: result.plan, outcomes: result.outcomes });
          } catch (e) {
            send({ type: 'error', error: { message: e instanceof Error ? e.message : String(e), ...(e instanceof DsoError && e.hint ? { hint: e.hint } : {}) } });
          } finally {
            clearInterval(keepalive);
          }
          if (!gone) {
            try {
              controller.close();
            } catch {}
          }
        },
        cancel() {
          gone = true;
        },
      });
      return c.body(stream, 200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    });
    // Who may open the socket may ask for a check: no signature here (see docs/agent.md).
    app.route('/', webhookRoutes({ trigger: async (ids) => ({ accepted: (await rotator.checkSecrets(ids)).checked }), log: service.log, auth: 'socket' }));
  } else if (surface.serves === 'read') {
    for (const route of ADMIN_ROUTES) {
      app.post(route, () => {
        throw new DsoError('PERMISSION_DENIED', `this socket does not serve POST ${route}: the agent serves it on its admin socket ${surface.adminSocket} (agent.socket.admin)`, {
          hint: `\`docker dso rotate\` uses that socket when /etc/dso/dso.yaml names it (or $DSO_AGENT_ADMIN_SOCKET does); opening it takes agent.socket.admin.group (or sudo)`,
        });
      });
    }
  }

  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((e, c) => {
    if (e instanceof DsoError) return c.json({ error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } }, STATUS[e.code] ?? 500);
    service.log.error('API error', { route: c.req.path, error: e });
    return c.json({ error: { code: 'INTERNAL', message: 'internal error; see the agent log' } }, 500);
  });
  return app;
}
