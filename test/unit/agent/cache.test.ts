// The agent cache: ttl, LRU eviction by total size, per-value limit, zeroing, and serving stale
// values while a provider is down (and only then, and only up to max_stale).
import { expect, test } from 'bun:test';
import { SecretCache } from '../../../src/agent/cache.ts';
import { ProviderError } from '../../../src/providers/contract.ts';
import { SecretBytes } from '../../../src/secrets/secret-bytes.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const text = (b: SecretBytes) => new TextDecoder().decode(b.expose());

function setup(over: Partial<ConstructorParameters<typeof SecretCache>[0]> = {}) {
  let clock = 1_000_000;
  const cache = new SecretCache({ ttlMs: 60_000, maxBytes: 100, maxSecretBytes: 50, maxStaleMs: 300_000, now: () => clock, ...over });
  let calls = 0;
  const fetchOk = (v: string, version?: string) => async () => {
    calls++;
    return { value: new SecretBytes(enc(v)), ...(version ? { version } : {}) };
  };
  const fetchFail = (kind: ConstructorParameters<typeof ProviderError>[0]) => async () => {
    calls++;
    throw new ProviderError(kind, 'backend down');
  };
  return { cache, fetchOk, fetchFail, advance: (ms: number) => (clock += ms), calls: () => calls };
}

test('fresh values are served from the cache; after ttl they are fetched again', async () => {
  const { cache, fetchOk, advance, calls } = setup();
  const a = await cache.get('vault:a', fetchOk('one', 'v1'));
  expect([text(a.value), a.version, a.cached]).toEqual(['one', 'v1', false]);
  const b = await cache.get('vault:a', fetchOk('two'));
  expect([text(b.value), b.cached, calls()]).toEqual(['one', true, 1]);
  advance(60_000);
  const c = await cache.get('vault:a', fetchOk('two', 'v2'));
  expect([text(c.value), c.version, c.cached, calls()]).toEqual(['two', 'v2', false, 2]);
  expect(cache.stats()).toMatchObject({ entries: 1, bytes: 3, hits: 1, misses: 2 });
});

test('served values are copies: wiping one does not wipe the cache', async () => {
  const { cache, fetchOk } = setup();
  (await cache.get('k', fetchOk('value'))).value.wipe();
  expect(text((await cache.get('k', fetchOk('other'))).value)).toBe('value');
});

test('the least recently used values are evicted, and zeroed, to stay within max_cache_size', async () => {
  const { cache } = setup();
  const held: SecretBytes[] = [];
  for (const id of ['a', 'b', 'c']) {
    const v = new SecretBytes(new Uint8Array(40).fill(7));
    held.push(v);
    cache.put(id, { value: v });
  }
  // a (40) + b (40) + c (40) > 100: a went first.
  expect(held[0]!.wiped).toBe(true);
  expect(held[1]!.wiped).toBe(false);
  expect(cache.stats()).toMatchObject({ entries: 2, bytes: 80, evictions: 1 });
});

test('use refreshes recency', async () => {
  const { cache, fetchOk } = setup();
  cache.put('a', { value: new SecretBytes(new Uint8Array(40)) });
  cache.put('b', { value: new SecretBytes(new Uint8Array(40)) });
  await cache.get('a', fetchOk('x'));
  cache.put('c', { value: new SecretBytes(new Uint8Array(40)) });
  expect((await cache.get('a', fetchOk('fetched'))).cached).toBe(true);
  expect((await cache.get('b', fetchOk('fetched'))).cached).toBe(false);
});

test('a value over max_secret_size is refused and zeroed', async () => {
  const { cache } = setup();
  const big = new SecretBytes(new Uint8Array(51));
  expect(() => cache.put('big', { value: big })).toThrow('over max_secret_size');
  expect(big.wiped).toBe(true);
  const viaGet = await cache.get('big', async () => ({ value: new SecretBytes(new Uint8Array(51)) })).catch((e: ProviderError) => e);
  expect((viaGet as ProviderError).kind).toBe('too_large');
  expect(cache.stats().entries).toBe(0);
});

test('while the provider is down, a stale value is served up to max_stale, marked stale', async () => {
  const { cache, fetchOk, fetchFail, advance } = setup();
  await cache.get('k', fetchOk('last-known'));
  advance(60_000 + 299_000);
  const stale = await cache.get('k', fetchFail('unavailable'));
  expect([text(stale.value), stale.stale, stale.cached]).toEqual(['last-known', true, true]);
  expect(cache.stats().staleServed).toBe(1);
  // Recovery: the provider answers again, the value is fresh again.
  const fresh = await cache.get('k', fetchOk('new-value'));
  expect([text(fresh.value), fresh.stale]).toEqual(['new-value', false]);
});

test('an answer that is garbage (invalid or endless) counts as the backend down: the stale value is served', async () => {
  const { cache, fetchOk, fetchFail, advance } = setup();
  await cache.get('k', fetchOk('last-known'));
  for (const kind of ['invalid_response', 'too_large'] as const) {
    advance(60_000);
    const served = await cache.get('k', fetchFail(kind));
    expect([text(served.value), served.stale]).toEqual(['last-known', true]);
  }
});

test('past max_stale, or for a non-transient failure, the error is thrown', async () => {
  const { cache, fetchOk, fetchFail, advance } = setup();
  await cache.get('k', fetchOk('v'));
  advance(60_000);
  await expect(cache.get('k', fetchFail('denied'))).rejects.toThrow('backend down');
  advance(300_000);
  await expect(cache.get('k', fetchFail('timeout'))).rejects.toThrow('backend down');
  expect(cache.sweep()).toBe(1);
  expect(cache.stats().entries).toBe(0);
});

test('clear zeroes every value (shutdown)', () => {
  const { cache } = setup();
  const values = ['a', 'b'].map((id) => {
    const v = new SecretBytes(enc(`value-${id}`));
    cache.put(id, { value: v });
    return v;
  });
  cache.clear();
  for (const v of values) expect(v.wiped).toBe(true);
  expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
});
