// Waiting for a promise that cannot itself be cancelled (a login inside an SDK, an engine call),
// but no longer than an AbortSignal allows.

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
