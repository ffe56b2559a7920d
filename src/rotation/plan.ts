// Plan: which containers rotate, with which strategy, in which order. Pure data from the
// inventory (no I/O), printed as is by `rotate --dry-run` and carried out by the executor, which
// makes no decisions of its own. The strategy asked for (label, then dso.yaml) is downgraded to
// the safest one that works, and the plan says why:
//   - dso:// variables live in the container's configuration: only recreating it changes them,
//     so `signal` becomes `restart`;
//   - a container that cannot run twice (published host ports, a fixed name, shared writable
//     storage...) cannot overlap, so `rolling` becomes `restart`, with downtime;
//   - a stopped container is updated and left stopped.
import type { Strategy } from '../config/agent.ts';
import type { ManagedContainer } from './inventory.ts';

export interface PlannedRotation {
  containerId: string;
  name: string;
  project?: string;
  service?: string;
  /** The secret ids whose new values it gets. */
  ids: string[];
  requested: Strategy;
  strategy: Exclude<Strategy, 'none'>;
  /** Why the strategy differs from the one requested, in words. */
  why: string[];
  /** Sent by the signal strategy. */
  signal: string;
  /** Whether the service stops answering for a while. */
  downtime: boolean;
  /** The container is stopped: it is updated and stays stopped. */
  stopped: boolean;
  /** Rotations run in waves: a container rotates after those of the services it depends on. */
  wave: number;
}

export interface RotationPlan {
  rotations: PlannedRotation[];
  skipped: Array<{ containerId: string; name: string; ids: string[]; reason: string }>;
}

export interface PlanDefaults {
  /** defaults.rotation.strategy of dso.yaml, else agent.rotation.strategy. */
  strategy: Strategy;
  /** defaults.rotation.signal. */
  signal: string;
}

/** The plan for giving each container in `changes` the new values of its listed ids. */
export function planRotation(containers: readonly ManagedContainer[], changes: ReadonlyMap<string, readonly string[]>, defaults: PlanDefaults): RotationPlan {
  const rotations: PlannedRotation[] = [];
  const skipped: RotationPlan['skipped'] = [];
  for (const c of containers) {
    const ids = [...new Set(changes.get(c.id) ?? [])].filter((id) => c.ids.includes(id)).sort();
    if (ids.length === 0) continue;
    if (c.damaged) {
      skipped.push({ containerId: c.id, name: c.name, ids, reason: c.damaged });
      continue;
    }
    const requested: Strategy = c.optedOut ? 'none' : (c.strategy ?? defaults.strategy);
    if (requested === 'none') {
      skipped.push({ containerId: c.id, name: c.name, ids, reason: c.optedOut ? 'label dso.reloader=false' : c.strategy === 'none' ? 'label dso.strategy=none' : 'the default strategy is none' });
      continue;
    }
    const why: string[] = [];
    let strategy: Exclude<Strategy, 'none'> = requested;
    const envIds = ids.filter((id) => c.env.some((e) => e.id === id));
    if (!c.running) {
      strategy = 'restart';
      if (requested !== 'restart') why.push('it is stopped: it is updated and left stopped');
    } else if (requested === 'signal' && envIds.length > 0) {
      strategy = 'restart';
      why.push(`${envIds.join(', ')} ${envIds.length === 1 ? 'is' : 'are'} delivered as a dso:// variable, which only a new container can change`);
    } else if (requested === 'rolling' && !c.overlap.ok) {
      strategy = 'restart';
      why.push(`it cannot run twice at once: ${c.overlap.reasons.join('; ')}`);
    }
    rotations.push({
      containerId: c.id,
      name: c.name,
      ...(c.project ? { project: c.project } : {}),
      ...(c.service ? { service: c.service } : {}),
      ids,
      requested,
      strategy,
      why,
      signal: c.signal ?? defaults.signal,
      downtime: c.running && strategy === 'restart',
      stopped: !c.running,
      wave: 0,
    });
  }
  assignWaves(rotations, containers);
  rotations.sort((a, b) => a.wave - b.wave || a.name.localeCompare(b.name));
  return { rotations, skipped: skipped.sort((a, b) => a.name.localeCompare(b.name)) };
}

/** A container's wave is one more than the highest wave among the services it depends on (same project). */
function assignWaves(rotations: PlannedRotation[], containers: readonly ManagedContainer[]): void {
  const byId = new Map(containers.map((c) => [c.id, c]));
  const key = (project: string | undefined, service: string | undefined) => `${project ?? ''}\u0000${service ?? ''}`;
  const byService = new Map<string, PlannedRotation[]>();
  for (const r of rotations) {
    const k = key(r.project, r.service);
    byService.set(k, [...(byService.get(k) ?? []), r]);
  }
  const memo = new Map<string, number>();
  const waveOf = (r: PlannedRotation, seen: Set<string>): number => {
    const cached = memo.get(r.containerId);
    if (cached !== undefined) return cached;
    if (seen.has(r.containerId)) return 0; // a cycle (Compose refuses those): break it
    seen.add(r.containerId);
    let wave = 0;
    for (const dep of byId.get(r.containerId)?.dependsOn ?? []) {
      for (const d of byService.get(key(r.project, dep)) ?? []) wave = Math.max(wave, waveOf(d, seen) + 1);
    }
    memo.set(r.containerId, wave);
    return wave;
  };
  for (const r of rotations) r.wave = waveOf(r, new Set());
}

/** The plan as `rotate --dry-run` prints it. */
export function formatPlan(plan: RotationPlan, subject: string): string {
  const lines: string[] = [];
  if (plan.rotations.length === 0) lines.push(`No container to rotate for ${subject}.`);
  else lines.push(`Rotation plan for ${subject}: ${plan.rotations.length} container${plan.rotations.length === 1 ? '' : 's'}`);
  let n = 0;
  for (const r of plan.rotations) {
    n++;
    const how = r.strategy === 'signal' ? `signal (files rewritten, then ${r.signal})` : r.strategy === 'rolling' ? 'rolling (a new container is started and checked before the old one stops)' : r.stopped ? 'restart (recreated, left stopped)' : 'restart (stopped, recreated, started: downtime)';
    lines.push(`  ${n}. ${r.name}${r.wave > 0 ? ` [after wave ${r.wave - 1}]` : ''}: ${how}`);
    lines.push(`     secrets: ${r.ids.join(', ')}`);
    for (const w of r.why) lines.push(`     ${r.requested} was asked for, but ${w}`);
  }
  for (const s of plan.skipped) lines.push(`  - ${s.name}: not rotated (${s.reason}); secrets: ${s.ids.join(', ')}`);
  if (plan.rotations.some((r) => r.wave > 0)) lines.push('Waves follow depends_on: a service rotates after the services it depends on.');
  return `${lines.join('\n')}\n`;
}
