// The webhook: `POST /v1/webhook` with `{"secrets": ["vault:app/db", ...]}` asks the agent to
// check those secrets now rather than at the next poll. On the agent's unix socket the socket's
// permissions authorise it (as for the rest of the API); on TCP (agent.watch.webhook_address)
// every request must be signed with the key in the variable named by agent.watch.webhook_secret_env:
//
//   X-DSO-Timestamp: <Unix time in seconds>
//   X-DSO-Signature: sha256=<hex of HMAC-SHA256(key, "<timestamp>.<raw body>")>
//
// GitHub's header form, with the timestamp bound into the MAC (as Stripe and Slack do) and
// required: a request older or newer than 5 minutes is refused, and within those 5 minutes the
// same signature is accepted once, so a captured request cannot be replayed: not after a reload
// or a restart either, since the agent keeps what it accepted in its state directory
// (src/agent/replay.ts). A sender:
//
//   ts=$(date +%s); body='{"secrets":["vault:app/db"]}'
//   sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$DSO_WEBHOOK_SECRET" -r | cut -d' ' -f1)
//   curl -H "X-DSO-Timestamp: $ts" -H "X-DSO-Signature: sha256=$sig" -d "$body" http://HOST:PORT/v1/webhook
//
// Whatever is wrong with the signature, the answer is the same 401 "bad signature"; the agent's
// log says why, never with the body. The body is read only up to 64 KiB, parsed only once the
// signature holds, and never echoed back.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { Hono, type Context } from 'hono';
import * as v from 'valibot';
import { parseSecretId } from '../compose/references.ts';
import { DsoError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import { BodyOverLimit, readBodyCapped } from '../providers/read-body.ts';
import { splitAddress } from '../config/units.ts';
import { ReplayMemory } from './replay.ts';

export const WEBHOOK_PATH = '/v1/webhook';
export const SIGNATURE_HEADER = 'x-dso-signature';
export const TIMESTAMP_HEADER = 'x-dso-timestamp';
export const MAX_WEBHOOK_BODY = 64 * 1024;
export const MAX_WEBHOOK_SECRETS = 1000;
/** How far a request's timestamp may be from the agent's clock, either way. */
export const MAX_SIGNATURE_AGE_MS = 5 * 60_000;
/** A shorter key could be guessed offline from one captured request. */
export const MIN_KEY_BYTES = 16;

/** Asks for an immediate check of these canonical secret ids; says how many it took on. */
export type WebhookTrigger = (ids: string[]) => Promise<{ accepted: number }>;

/** The HMAC key, held as a KeyObject: the bytes it was made from are zeroed at once. */
export class WebhookKey {
  readonly #key: KeyObject;
  private constructor(bytes: Uint8Array) {
    this.#key = createSecretKey(bytes);
  }

  /** The key from `env[name]`; a clear error when it is missing or too short to be safe. */
  static fromEnv(env: Readonly<Record<string, string | undefined>>, name: string): WebhookKey {
    const text = env[name];
    if (text === undefined || text === '') {
      throw new DsoError('CONFIG_INVALID', `agent.watch.webhook_address is set, but ${name} (agent.watch.webhook_secret_env) is not set in the agent's environment: the webhook would accept unsigned requests from the network`, {
        hint: `give the agent ${name} (for the service: sudo ${name}=$(openssl rand -hex 32) docker dso system setup), or remove agent.watch.webhook_address`,
      });
    }
    const bytes = new TextEncoder().encode(text);
    try {
      if (bytes.length < MIN_KEY_BYTES) {
        throw new DsoError('CONFIG_INVALID', `${name} (agent.watch.webhook_secret_env) is shorter than ${MIN_KEY_BYTES} bytes: too easy to guess from a captured request`, {
          hint: 'use a random key, for instance `openssl rand -hex 32`',
        });
      }
      return new WebhookKey(bytes);
    } finally {
      bytes.fill(0);
    }
  }

  static fromBytes(bytes: Uint8Array): WebhookKey {
    if (bytes.length < MIN_KEY_BYTES) throw new DsoError('CONFIG_INVALID', `a webhook key must have at least ${MIN_KEY_BYTES} bytes`);
    return new WebhookKey(bytes);
  }

  /** HMAC-SHA256 of `${timestamp}.${body}`. */
  mac(timestamp: string, body: Uint8Array): Buffer {
    return createHmac('sha256', this.#key).update(`${timestamp}.`).update(body).digest();
  }
}

export interface WebhookOptions {
  trigger: WebhookTrigger;
  log: Logger;
  /** A key: requests must be signed (the TCP listener). 'socket': the unix socket's permissions authorise. */
  auth: WebhookKey | 'socket';
  /** The signatures accepted so far: the agent's one memory, kept across reloads and restarts. */
  replay?: ReplayMemory;
  now?: () => number;
}

const bodySchema = v.object(
  {
    secrets: v.pipe(
      v.array(v.string('each secret must be a reference in a string'), 'secrets must be a list of references'),
      v.minLength(1, `secrets must list 1 to ${MAX_WEBHOOK_SECRETS} references`),
      v.maxLength(MAX_WEBHOOK_SECRETS, `secrets must list 1 to ${MAX_WEBHOOK_SECRETS} references`),
    ),
  },
  'the body must be {"secrets": ["PROVIDER:PATH", ...]}',
);

/** `POST /v1/webhook`, as a sub-app: `app.route('/', webhookRoutes(...))` mounts it. */
export function webhookRoutes(options: WebhookOptions): Hono {
  const app = new Hono();
  const now = options.now ?? Date.now;
  const seen = options.replay ?? ReplayMemory.inMemory({ windowMs: MAX_SIGNATURE_AGE_MS });
  const log = options.log.child({ component: 'webhook' });

  app.post(WEBHOOK_PATH, async (c) => {
    let body: Uint8Array;
    try {
      body = await readBodyCapped(c.req.raw, MAX_WEBHOOK_BODY);
    } catch (e) {
      if (e instanceof BodyOverLimit) return problem(c, 413, 'TOO_LARGE', `the body is over the ${MAX_WEBHOOK_BODY}-byte limit`);
      return problem(c, 400, 'USAGE', 'the body could not be read');
    }

    if (options.auth !== 'socket') {
      const verdict = verify(options.auth, c, body, now());
      if (verdict.ok === false) {
        log.warn('Refused a webhook request: bad signature', { reason: verdict.reason, from: remoteAddress(c), bytes: body.length });
        return problem(c, 401, 'BAD_SIGNATURE', 'bad signature');
      }
      const memory = seen.remember(verdict.signature, verdict.signedAt, verdict.expiresAt, now());
      if (memory === 'seen') {
        log.warn('Ignored a replayed webhook request', { from: remoteAddress(c) });
        return c.json({ accepted: 0, duplicate: true }, 202);
      }
      if (memory !== 'new') {
        // Only a holder of the key gets here, so saying why costs nothing.
        log.warn('Refused a webhook request: the replay memory cannot tell whether it was seen', { reason: memory, from: remoteAddress(c) });
        c.header('retry-after', '60');
        return problem(c, 503, 'UNAVAILABLE', memory === 'full' ? 'too many webhook requests in the last 5 minutes; try again later' : 'the agent lost its memory of recent webhook requests; send a newly signed request in a few minutes');
      }
      // Durable before the request has any effect: a copy sent after a restart is refused too.
      await seen.flush();
    }

    const parsed = parseBody(body);
    if (typeof parsed === 'string') return problem(c, 400, 'USAGE', parsed);
    let result: { accepted: number };
    try {
      result = await options.trigger(parsed);
    } catch (e) {
      log.error('A webhook request could not be handled', { secrets: parsed.length, error: e instanceof Error ? e.message : String(e) });
      return problem(c, 500, 'INTERNAL', 'internal error; see the agent log');
    }
    log.info('Webhook: checking secrets now', { secrets: parsed.slice(0, 20), count: parsed.length, accepted: result.accepted });
    return c.json({ accepted: result.accepted }, 202);
  });
  return app;
}

/** The app the TCP listener serves: the signed route, and JSON for everything else. */
export function createWebhookApp(options: WebhookOptions & { auth: WebhookKey }): Hono {
  const app = new Hono();
  app.route('/', webhookRoutes(options));
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((e, c) => {
    options.log.error('Webhook error', { route: c.req.path, error: e instanceof Error ? e.message : String(e) });
    return c.json({ error: { code: 'INTERNAL', message: 'internal error; see the agent log' } }, 500);
  });
  return app;
}

export interface WebhookServer {
  url: string;
  stop(): Promise<void>;
}

/**
 * Serves the signed webhook on `address` (agent.watch.webhook_address). Refuses, before
 * listening, when the key variable is not named or not set: an unsigned webhook on the network
 * would let anyone make the agent poll its providers.
 */
export function startWebhookServer(options: {
  address: string;
  secretEnv: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  trigger: WebhookTrigger;
  log: Logger;
  replay?: ReplayMemory;
  now?: () => number;
}): WebhookServer {
  if (options.secretEnv === undefined) {
    throw new DsoError('CONFIG_INVALID', 'agent.watch.webhook_address is set without agent.watch.webhook_secret_env: the webhook would accept unsigned requests from the network', {
      hint: 'name the variable holding the HMAC key in agent.watch.webhook_secret_env, or remove agent.watch.webhook_address',
    });
  }
  const key = WebhookKey.fromEnv(options.env, options.secretEnv);
  const app = createWebhookApp({ trigger: options.trigger, log: options.log, auth: key, ...(options.replay ? { replay: options.replay } : {}), ...(options.now ? { now: options.now } : {}) });
  const { hostname, port } = splitAddress(options.address);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ hostname, port, maxRequestBodySize: MAX_WEBHOOK_BODY, fetch: (req, srv) => app.fetch(req, srv) });
  } catch (e) {
    throw new DsoError('REFUSED', `cannot serve the webhook on ${options.address} (agent.watch.webhook_address): ${e instanceof Error ? e.message : String(e)}`, {
      hint: 'is another program listening there? choose another port',
      cause: e,
    });
  }
  const host = server.hostname?.includes(':') ? `[${server.hostname}]` : server.hostname;
  const url = `http://${host}:${server.port}${WEBHOOK_PATH}`;
  options.log.info('Webhook listening', { url });
  return { url, stop: () => server.stop(true) };
}

type Verdict = { ok: true; signature: Buffer; signedAt: number; expiresAt: number } | { ok: false; reason: string };

function verify(key: WebhookKey, c: Context, body: Uint8Array, now: number): Verdict {
  const header = c.req.header(SIGNATURE_HEADER);
  const timestamp = c.req.header(TIMESTAMP_HEADER);
  if (header === undefined) return { ok: false, reason: `no ${SIGNATURE_HEADER} header` };
  if (timestamp === undefined) return { ok: false, reason: `no ${TIMESTAMP_HEADER} header` };
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!m) return { ok: false, reason: `${SIGNATURE_HEADER} is not sha256=<64 hex digits>` };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: `${TIMESTAMP_HEADER} is not a Unix time in seconds` };
  const given = Buffer.from(m[1]!, 'hex');
  const expected = key.mac(timestamp, body);
  if (!timingSafeEqual(given, expected)) return { ok: false, reason: 'the signature does not match (wrong key, or the body or timestamp changed)' };
  // Checked after the MAC, so only a holder of the key learns that the clock is the problem.
  const at = Number(timestamp) * 1000;
  if (Math.abs(now - at) > MAX_SIGNATURE_AGE_MS) return { ok: false, reason: `the timestamp is ${Math.round((now - at) / 1000)} s from the agent's clock (at most ${MAX_SIGNATURE_AGE_MS / 1000} s allowed)` };
  return { ok: true, signature: expected, signedAt: at, expiresAt: at + MAX_SIGNATURE_AGE_MS };
}

/** The canonical provider ids named by the body, each once; or what is wrong with it. */
function parseBody(body: Uint8Array): string[] | string {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return 'the body is not JSON';
  }
  const parsed = v.safeParse(bodySchema, raw);
  // valibot's messages may quote the input: only ours, which never do, are passed on.
  if (!parsed.success) return parsed.issues[0]?.message ?? 'the body must be {"secrets": ["PROVIDER:PATH", ...]}';
  const ids = new Set<string>();
  for (const [i, text] of parsed.output.secrets.entries()) {
    let id;
    try {
      id = text.length > 2048 ? undefined : parseSecretId(text, 'webhook');
    } catch {
      id = undefined;
    }
    if (id === undefined || id.provider === undefined) return `secrets[${i}] is not a provider secret reference (PROVIDER:PATH[#KEY][?version=V])`;
    ids.add(id.id);
  }
  return [...ids];
}

function problem(c: Context, status: 400 | 401 | 413 | 500 | 503, code: string, message: string) {
  return c.json({ error: { code, message } }, status);
}

function remoteAddress(c: Context): string | undefined {
  const server = c.env as { requestIP?(req: Request): { address: string } | null } | undefined;
  try {
    return server?.requestIP?.(c.req.raw)?.address ?? undefined;
  } catch {
    return undefined;
  }
}
