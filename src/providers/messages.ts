// The messages between DSO and a provider running in a Worker or a child process, and their
// validation: each side checks every message it receives, so a confused or compromised
// provider can only produce an error, never a wrong call.
import * as v from 'valibot';
import { MAX_TIMER_MS } from '../config/units.ts';
import { PROVIDER_ERROR_KINDS, type ProviderCapabilities, type ProviderErrorKind } from './contract.ts';

const id = v.pipe(v.number(), v.integer(), v.minValue(1));
const text = (max: number) => v.pipe(v.string(), v.maxLength(max));
const errorShape = v.object({ kind: v.picklist(PROVIDER_ERROR_KINDS as ProviderErrorKind[]), message: text(2000) });
const capabilities = v.object({ list: v.boolean(), watch: v.boolean(), versions: v.boolean() });
// A deadline a timer can hold: past it, AbortSignal.timeout throws and setTimeout fires at once.
const timeoutMs = v.pipe(v.number(), v.minValue(1), v.maxValue(MAX_TIMER_MS));
const account = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xfffffffe));

export const toProviderSchema = v.variant('type', [
  v.object({ type: v.literal('init'), kind: text(64), name: text(64), config: v.unknown(), dsoUid: v.optional(account), user: v.optional(v.object({ uid: account, gid: account })) }),
  v.object({ type: v.literal('get'), id, path: text(1024), version: v.optional(text(256)), maxBytes: v.pipe(v.number(), v.integer(), v.minValue(1)), timeoutMs }),
  v.object({ type: v.literal('list'), id, prefix: text(1024), timeoutMs }),
  v.object({ type: v.literal('close') }),
]);

export const fromProviderSchema = v.variant('type', [
  v.object({ type: v.literal('ready'), capabilities }),
  v.object({ type: v.literal('init-failed'), error: errorShape }),
  v.object({ type: v.literal('value'), id, value: v.instance(Uint8Array), version: v.optional(text(256)) }),
  v.object({ type: v.literal('names'), id, names: v.pipe(v.array(text(1024)), v.maxLength(100_000)) }),
  v.object({ type: v.literal('error'), id, error: errorShape }),
  v.object({ type: v.literal('log'), level: v.picklist(['debug', 'info', 'warn']), message: text(4000) }),
]);

export type ToProvider = v.InferOutput<typeof toProviderSchema>;
export type FromProvider = v.InferOutput<typeof fromProviderSchema>;
export type { ProviderCapabilities };

/** The message, or undefined when it does not match the protocol (the caller treats that as a fault). */
export function parseToProvider(message: unknown): ToProvider | undefined {
  const r = v.safeParse(toProviderSchema, message);
  return r.success ? r.output : undefined;
}

export function parseFromProvider(message: unknown): FromProvider | undefined {
  const r = v.safeParse(fromProviderSchema, message);
  return r.success ? r.output : undefined;
}
