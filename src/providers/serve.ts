// The provider side of the boundary, shared by the Worker entry (workers/provider.ts) and the
// child-process entry (src/providers/process-main.ts): receive `init`, build the provider from
// the environment this Worker or process was started with, then answer calls, one timer and
// one AbortSignal each. Values leave as transferred bytes; errors leave sanitised.
import * as v from 'valibot';
import { ProviderError, type CreateProvider, type Provider, type ProviderDefinition } from './contract.ts';
import { parseToProvider, type FromProvider } from './messages.ts';
import { sanitize } from './sanitize.ts';

export interface Channel {
  send(message: FromProvider, transfer?: ArrayBuffer[]): void;
  onMessage(handler: (message: unknown) => void): void;
  /** Ends this Worker or process. */
  exit(code: number): void;
}

export interface ProviderModules {
  loadDefinition(kind: string): Promise<ProviderDefinition<unknown>>;
  loadClient(kind: string): Promise<CreateProvider<unknown>>;
}

export function serveProvider(channel: Channel, modules: ProviderModules, env: Readonly<Record<string, string | undefined>>): void {
  const ownEnv: Record<string, string> = {};
  for (const [k, val] of Object.entries(env)) if (typeof val === 'string') ownEnv[k] = val;
  // Credentials the provider was given: whatever a backend echoes back, they never leave.
  const known = Object.values(ownEnv).filter((x) => x.length >= 8);
  const clean = (text: string) => sanitize(text, known);
  let provider: Provider | undefined;
  let starting: Promise<void> | undefined;

  const fail = (id: number, e: unknown) => {
    const error = e instanceof ProviderError ? { kind: e.kind, message: clean(e.message) } : { kind: 'internal' as const, message: clean(`unexpected error: ${e instanceof Error ? e.message : String(e)}`) };
    channel.send({ type: 'error', id, error });
  };

  channel.onMessage(async (raw) => {
    const msg = parseToProvider(raw);
    if (!msg) {
      channel.send({ type: 'log', level: 'warn', message: 'ignored a message that does not follow the provider protocol' });
      return;
    }
    switch (msg.type) {
      case 'init': {
        if (starting) return;
        starting = (async () => {
          try {
            const definition = await modules.loadDefinition(msg.kind);
            const parsed = v.safeParse(definition.schema, msg.config);
            if (!parsed.success) throw new ProviderError('config', 'the provider configuration did not pass its own checks');
            const create = await modules.loadClient(msg.kind);
            provider = await create(parsed.output, {
              name: msg.name,
              env: ownEnv,
              ...(msg.dsoUid === undefined ? {} : { dsoUid: msg.dsoUid }),
              ...(msg.user === undefined ? {} : { user: msg.user }),
              log: (level, message) => channel.send({ type: 'log', level, message: clean(message).slice(0, 4000) }),
            });
            channel.send({ type: 'ready', capabilities: provider.capabilities });
          } catch (e) {
            const error = e instanceof ProviderError ? { kind: e.kind, message: clean(e.message) } : { kind: 'internal' as const, message: clean(e instanceof Error ? e.message : String(e)) };
            channel.send({ type: 'init-failed', error });
          }
        })();
        return;
      }
      case 'get': {
        if (!provider) return fail(msg.id, new ProviderError('internal', 'called before the provider was ready'));
        const signal = AbortSignal.timeout(msg.timeoutMs);
        try {
          const got = await provider.get(msg.path, { version: msg.version, maxBytes: msg.maxBytes, signal });
          if (!(got.value instanceof Uint8Array)) throw new ProviderError('internal', 'the provider returned something other than bytes');
          if (got.value.length > msg.maxBytes) {
            got.value.fill(0);
            throw new ProviderError('too_large', `the value is ${got.value.length} bytes, over the ${msg.maxBytes}-byte limit`);
          }
          // Transfer moves the bytes out of this thread; a view into a bigger buffer would move
          // (and expose) the rest of it, so such a value is copied into its own buffer first.
          let value: Uint8Array = got.value;
          if (value.byteOffset !== 0 || value.byteLength !== value.buffer.byteLength || !(value.buffer instanceof ArrayBuffer)) {
            const own: Uint8Array = new Uint8Array(value);
            value.fill(0);
            value = own;
          }
          channel.send({ type: 'value', id: msg.id, value: value as Uint8Array<ArrayBuffer>, ...(got.version === undefined ? {} : { version: String(got.version).slice(0, 256) }) }, [value.buffer as ArrayBuffer]);
        } catch (e) {
          // After the deadline, whatever the SDK threw (an AbortError, a "cancelled") means timeout.
          const vague = !(e instanceof ProviderError) || e.kind === 'unavailable' || e.kind === 'internal';
          fail(msg.id, signal.aborted && vague ? new ProviderError('timeout', `no answer within ${msg.timeoutMs} ms`) : e);
        }
        return;
      }
      case 'list': {
        if (!provider) return fail(msg.id, new ProviderError('internal', 'called before the provider was ready'));
        if (!provider.list) return fail(msg.id, new ProviderError('config', 'this provider cannot list secrets'));
        try {
          const names = await provider.list(msg.prefix, { signal: AbortSignal.timeout(msg.timeoutMs) });
          channel.send({ type: 'names', id: msg.id, names });
        } catch (e) {
          fail(msg.id, e);
        }
        return;
      }
      case 'close': {
        await starting?.catch(() => {});
        await provider?.close?.().catch(() => {});
        channel.exit(0);
      }
    }
  });
}

/** Runs the provider loop in the current Worker: the whole of a Worker entrypoint. */
export function serveInWorker(modules: ProviderModules): void {
  const port = globalThis as unknown as { postMessage(m: unknown, transfer: ArrayBuffer[]): void; onmessage: ((e: MessageEvent) => void) | null };
  serveProvider(
    {
      send: (message, transfer) => port.postMessage(message, transfer ?? []),
      onMessage: (handler) => {
        port.onmessage = (event) => handler(event.data);
      },
      exit: (code) => process.exit(code),
    },
    modules,
    process.env,
  );
}
