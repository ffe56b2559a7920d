// Shared pieces of the fuzz suite: how many runs, a recognisable canary to plant in generated
// input, a deadline around every property, and the check that a failure is one of DSO's typed
// errors with a clear message that never repeats the planted canary.
import { randomBytes } from 'node:crypto';
import { expect } from 'bun:test';
import * as fc from 'fast-check';
import { DsoError } from '../../../src/errors.ts';

/**
 * Runs per property: DSO_FUZZ_RUNS, else a default that keeps the folder near a minute on a busy
 * 2-core machine. `cost` divides it for properties whose every run is expensive (a KDF, a Worker);
 * below 1 it multiplies it, for cheap properties with a large input space.
 */
export function runs(cost = 1): number {
  const base = Number(process.env.DSO_FUZZ_RUNS ?? '') || 300;
  return Math.max(5, Math.floor(base / cost));
}

/** fast-check parameters: the run count, and a seed taken from DSO_FUZZ_SEED to replay a failure. */
export function params<T>(cost = 1, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  const seed = process.env.DSO_FUZZ_SEED;
  return { numRuns: runs(cost), ...(seed ? { seed: Number(seed) } : {}), ...extra };
}

/** A secret-looking value nobody would type: if it shows up in a message, it was echoed. */
export const CANARY = `DSOFUZZCANARY${randomBytes(6).toString('hex')}`;

/** Text with the canary planted at a random place among generated characters. */
export const withCanary = (inner: fc.Arbitrary<string> = fc.string({ maxLength: 40 })): fc.Arbitrary<string> =>
  fc.tuple(inner, inner).map(([a, b]) => `${a}${CANARY}${b}`);

/** Fails when `p` has not settled within `ms`: a hang is a finding, not a stuck CI job. */
export async function withinDeadline<T>(p: Promise<T> | T, ms = 10_000, what = 'the call'): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.resolve(p), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a typed failure must look like: one of `codes`, a message that says something, no canary. */
export function expectClearDsoError(e: unknown, codes: readonly DsoError['code'][], canary = CANARY, maxLength = 2000): DsoError {
  if (!(e instanceof DsoError)) throw new Error(`expected a DsoError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
  expect(codes).toContain(e.code);
  expectClearMessage(e.message, canary, maxLength);
  if (e.hint !== undefined) expect(e.hint).not.toContain(canary);
  return e;
}

/** A message that names a problem in a few lines, not a dump, and never holds the canary. */
export function expectClearMessage(message: string, canary = CANARY, maxLength = 2000): void {
  expect(message.trim().length).toBeGreaterThan(10);
  expect(message.length).toBeLessThanOrEqual(maxLength);
  expect(message).not.toContain(canary);
}

/** Runs `f`, returning its result or the error it threw (sync or async), never throwing. */
export async function outcome<T>(f: () => T | Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await f() };
  } catch (error) {
    return { ok: false, error };
  }
}
