// Durations ("500ms", "30s", "5m", "1h30m") and sizes ("512Ki", "100Mi", "1G", "4096"), parsed
// strictly: a typo is an error, never a silent default.

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:ms|s|m|h))+$/;
const DURATION_PART = /(\d+)(ms|s|m|h)/g;

/** Milliseconds in `text`, or undefined when it is not a duration like 30s, 5m or 1h30m. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(DURATION_PART)) ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

export const DURATION_FORM = 'a duration like 500ms, 30s, 5m or 1h30m';

/**
 * The longest wait a timer can take (2^31 - 1 ms, about 24.8 days): setTimeout and setInterval
 * treat anything longer as 1 ms, so a polling interval of 600h would poll in a busy loop.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
export const MAX_TIMER_FORM = 'at most 596h (about 24 days), the longest a timer can wait';

const SIZE = /^(\d+)(Ki|Mi|Gi|K|M|G|B)?$/;
const SIZE_UNITS: Record<string, number> = { B: 1, K: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** Bytes in `text`, or undefined when it is not a size like 4096, 512Ki, 100Mi or 1G. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text);
  if (!m) return undefined;
  const bytes = Number(m[1]) * SIZE_UNITS[m[2] ?? 'B']!;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export const SIZE_FORM = 'a size like 4096, 512Ki, 100Mi or 1Gi';

/** HOST and PORT of an address already validated as HOST:PORT (IPv6 hosts in brackets). */
export function splitAddress(address: string): { hostname: string; port: number } {
  const i = address.lastIndexOf(':');
  return { hostname: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}
