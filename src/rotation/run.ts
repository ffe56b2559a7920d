// Runs a plan: wave after wave (a service after those it depends on), at most `concurrency`
// rotations at once, and a random pause of up to `jitterMs` before each rotation that shares a
// secret with one already started, so that a hundred containers of one secret do not all restart
// (or all hit the provider) in the same second.
import type { RotationDeps, RotationOutcome } from './execute.ts';
import { executeRotation } from './execute.ts';
import type { ManagedContainer } from './inventory.ts';
import type { RotationPlan } from './plan.ts';

export interface RunOptions {
  concurrency: number;
  jitterMs: number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export async function runPlan(deps: RotationDeps, plan: RotationPlan, containers: readonly ManagedContainer[], o: RunOptions): Promise<RotationOutcome[]> {
  const byId = new Map(containers.map((c) => [c.id, c]));
  const random = o.random ?? Math.random;
  const sleep = o.sleep ?? Bun.sleep;
  const outcomes: RotationOutcome[] = [];
  const waves = [...new Set(plan.rotations.map((r) => r.wave))].sort((a, b) => a - b);
  const startedSecrets = new Set<string>();
  // A secret that a service refused (its new container was not healthy) is not given to the
  // services that depend on it: they would be left talking to a dependency on the old value.
  const refused = new Map<string, string>();
  for (const wave of waves) {
    const todo = plan.rotations.filter((r) => r.wave === wave);
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const r = todo[next++]!;
        const c = byId.get(r.containerId);
        if (!c) continue;
        const blocked = r.ids.filter((id) => refused.has(id));
        if (blocked.length > 0) {
          outcomes.push({ rotation: '', container: r.name, strategy: r.strategy, status: 'skipped', reason: `not rotated: ${blocked.map((id) => `${refused.get(id)} refused the new value of ${id}`).join('; ')}`, durationMs: 0 });
          continue;
        }
        if (o.jitterMs > 0 && r.ids.some((id) => startedSecrets.has(id))) await sleep(Math.floor(random() * o.jitterMs));
        for (const id of r.ids) startedSecrets.add(id);
        const result = await executeRotation(deps, r, c);
        if (result.status !== 'done') for (const id of r.ids) refused.set(id, r.name);
        outcomes.push(result);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, todo.length)) }, worker));
  }
  return outcomes;
}
