// Coalesces a check that many callers ask for at once: at most one run per key at a time, and
// every caller that arrives while one is running shares the single run after it. That next run
// starts after they all asked, so its answer is as fresh for each of them as a run of their own:
// a storm of N callers for one key costs at most two runs, not N.

export class Coalescer<T> {
  readonly #running = new Map<string, Promise<T>>();
  readonly #next = new Map<string, Promise<T>>();

  run(key: string, check: () => Promise<T>): Promise<T> {
    const queued = this.#next.get(key);
    if (queued) return queued;
    const current = this.#running.get(key);
    if (!current) return this.#start(key, check);
    const next = current.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.#next.delete(key);
      return this.#start(key, check);
    });
    this.#next.set(key, next);
    return next;
  }

  #start(key: string, check: () => Promise<T>): Promise<T> {
    const p: Promise<T> = check().finally(() => {
      if (this.#running.get(key) === p) this.#running.delete(key);
    });
    this.#running.set(key, p);
    return p;
  }
}
