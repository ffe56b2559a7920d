// Runs a plan: a container after the containers of its project in earlier waves (a service after
// those it depends on), projects independently of each other, at most `concurrency` rotations at
// once (slots the agent shares between every plan it runs), and a random pause of up to
// `jitterMs` before each rotation that shares a secret with one already started, so that a
// hundred containers of one secret do not all restart (or all hit the provider) in the same second.
import type { RotationDeps, RotationOutcome } from './execute.ts';
import { executeRotation } from './execute.ts';
import type { ManagedContainer } from './inventory.ts';
import type { PlannedRotation, RotationPlan } from './plan.ts';

/** At most `size` holders at once; the others wait in the order they asked. */
export class Slots {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  constructor(readonly size: number) {
    this.#free = Math.max(1, size);
  }

  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

export interface RunOptions {
  /** Rotations at once, when no shared `slots` are given. */
  concurrency: number;
  jitterMs: number;
  /** Shared with other plans running at the same time (the agent's): they count together. */
  slots?: Slots;
  /** Once aborted, rotations not yet started are skipped (the agent is stopping). */
  signal?: AbortSignal;
  /** Carries out one rotation (the executor; a test gives its own). */
  execute?: (r: PlannedRotation, c: ManagedContainer) => Promise<RotationOutcome>;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export async function runPlan(deps: RotationDeps, plan: RotationPlan, containers: readonly ManagedContainer[], o: RunOptions): Promise<RotationOutcome[]> {
  const byId = new Map(containers.map((c) => [c.id, c]));
  const random = o.random ?? Math.random;
  const sleep = o.sleep ?? Bun.sleep;
  const slots = o.slots ?? new Slots(o.concurrency);
  const execute = o.execute ?? ((r: PlannedRotation, c: ManagedContainer) => executeRotation(deps, r, c));
  const outcomes: RotationOutcome[] = [];
  const startedSecrets = new Set<string>();
  // A secret that a service refused (its new container was not healthy) is not given to the
  // services of its project in later waves (those that depend on it): they would be left talking
  // to a dependency on the old value. Another project is not concerned.
  const refused = new Map<string, string>();
  const key = (r: PlannedRotation, id: string) => `${r.project ?? ''}\u0000${id}`;
  const finished = new Map<PlannedRotation, Promise<void>>();

  const rotate = async (r: PlannedRotation, before: PlannedRotation[]): Promise<void> => {
    await Promise.all(before.map((b) => finished.get(b)));
    const c = byId.get(r.containerId);
    if (!c) return;
    const skip = (reason: string) => outcomes.push({ rotation: '', container: r.name, strategy: r.strategy, status: 'skipped', reason, durationMs: 0 });
    const blocked = r.ids.filter((id) => refused.has(key(r, id)));
    if (blocked.length > 0) return void skip(`not rotated: ${blocked.map((id) => `${refused.get(key(r, id))} refused the new value of ${id}`).join('; ')}`);
    if (o.jitterMs > 0 && r.ids.some((id) => startedSecrets.has(id))) await sleep(Math.floor(random() * o.jitterMs));
    for (const id of r.ids) startedSecrets.add(id);
    const release = await slots.acquire();
    try {
      if (o.signal?.aborted) return void skip('not rotated: the agent is stopping');
      const result = await execute(r, c).catch((e: unknown): RotationOutcome => ({ rotation: '', container: r.name, strategy: r.strategy, status: 'failed', reason: e instanceof Error ? e.message : String(e), durationMs: 0 }));
      if (result.status !== 'done') for (const id of r.ids) refused.set(key(r, id), r.name);
      outcomes.push(result);
    } finally {
      release();
    }
  };

  // By wave, so that each one's predecessors are in `finished` before it.
  const rotations = [...plan.rotations].sort((a, b) => a.wave - b.wave);
  for (const r of rotations) {
    const before = rotations.filter((b) => b.wave < r.wave && (b.project ?? '') === (r.project ?? ''));
    finished.set(r, rotate(r, before));
  }
  await Promise.all(finished.values());
  return outcomes;
}
