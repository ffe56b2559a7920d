// Starting every configured provider now, login included, to learn whether its credentials
// work: used by `doctor` (in Local Mode, in the CLI) and by the agent (at start, and for
// `doctor` in Cloud Mode). A provider that is already running counts as checked.
import { ProviderError, type ProviderErrorKind } from './contract.ts';
import type { ProviderSet } from './resolver.ts';

export interface ProviderCheck {
  name: string;
  kind: string;
  isolation: string;
  ok: boolean;
  /** How long the start (and login) took. */
  ms: number;
  error?: { kind: ProviderErrorKind; message: string };
}

export async function checkProviders(set: ProviderSet): Promise<ProviderCheck[]> {
  return Promise.all(
    [...set.config.providers.values()].map(async (p): Promise<ProviderCheck> => {
      const started = performance.now();
      const base = { name: p.name, kind: p.kind, isolation: p.isolation };
      try {
        await set.host(p.name).start();
        return { ...base, ok: true, ms: Math.round(performance.now() - started) };
      } catch (e) {
        const error = e instanceof ProviderError ? { kind: e.kind, message: e.message } : { kind: 'internal' as const, message: 'unexpected error while starting the provider' };
        return { ...base, ok: false, ms: Math.round(performance.now() - started), error };
      }
    }),
  );
}
