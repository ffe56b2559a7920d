// Phase timings for slow commands, printed to stderr when DSO_TRACE=1: where the time of a
// `dso up` goes, without a profiler. Phase names only; never values.

export interface Tracer {
  phase(name: string): void;
}

export function tracer(env: Readonly<Record<string, string | undefined>>, write: (s: string) => void): Tracer {
  if (env.DSO_TRACE !== '1') return { phase() {} };
  let last = performance.now();
  const start = last;
  return {
    phase(name) {
      const now = performance.now();
      write(`[trace] ${name.padEnd(28)} +${(now - last).toFixed(1)} ms  (${(now - start).toFixed(1)} ms)\n`);
      last = now;
    },
  };
}
