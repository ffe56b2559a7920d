// Waiting for a promise that cannot itself be cancelled (a login inside an SDK, an engine call),
// but no longer than an AbortSignal allows; deadlines that say what ran out and leave no timer.

/**
 * `promise`, or a rejection with `reason()` as soon as `signal` aborts. The promise goes on; what
 * it brings later is dropped (a later rejection is swallowed, so it is never "unhandled").
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, reason: () => unknown = () => signal.reason): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {});
      reject(reason());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

export interface Deadline {
  /** Aborts when the time is up (with `reason()`), or when the parent signal aborts (with its reason). */
  readonly signal: AbortSignal;
  /** Frees the timer and the parent listener; call it when the work is over, aborted or not. */
  clear(): void;
}

/**
 * A signal that aborts after `ms`, or as soon as one of `parents` does (with that one's reason).
 * Unlike AbortSignal.timeout, its reason says what ran out (a DsoError, say), and clear() leaves
 * no timer or listener behind.
 */
export function deadline(ms: number, reason: () => unknown, ...parents: Array<AbortSignal | undefined>): Deadline {
  const controller = new AbortController();
  const watched = parents.filter((p): p is AbortSignal => p !== undefined);
  const onParent = (e: Event) => controller.abort((e.target as AbortSignal).reason);
  // A timer can wait at most 2^31 - 1 ms; past that setTimeout fires at once.
  const timer = setTimeout(() => controller.abort(reason()), Math.min(Math.max(0, ms), 2 ** 31 - 1));
  const aborted = watched.find((p) => p.aborted);
  if (aborted) controller.abort(aborted.reason);
  else for (const p of watched) p.addEventListener('abort', onParent, { once: true });
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      for (const p of watched) p.removeEventListener('abort', onParent);
    },
  };
}

/** Sleeps `ms`, or less when `signal` aborts first (it resolves either way). */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
