// The rotation state file: each rotation's steps as they happen, so that after a crash (of DSO, or
// of the engine) recovery knows what was under way and can finish or undo it. It holds names,
// ids, steps and fingerprints, never a secret value. Every change is written atomically (a reader,
// and the disk after a power cut, see the old state or the new, never a mix) before the step it
// records is taken further.
import { mkdirSync, chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { writeFileAtomic } from '../vault/atomic-write.ts';
import { withLock } from '../vault/file-lock.ts';

/**
 * The steps of a rotation, in order. Signal: files-published, signalled. Restart: volumes-ready,
 * original-stopped, original-renamed, created, started, healthy, original-removed. Rolling:
 * volumes-ready, created, started, healthy, original-renamed, swapped, original-stopped,
 * original-removed. `done` closes every kind.
 */
export const STEPS = ['planned', 'volumes-ready', 'files-published', 'signalled', 'original-stopped', 'original-renamed', 'created', 'started', 'healthy', 'swapped', 'original-removed', 'done'] as const;
export type Step = (typeof STEPS)[number];
export type RotationStatus = 'in_progress' | 'done' | 'rolled_back' | 'failed' | 'stuck';

const record = v.object({
  id: v.string(),
  container: v.object({ id: v.string(), name: v.string(), project: v.optional(v.string()), service: v.optional(v.string()), running: v.boolean() }),
  strategy: v.picklist(['signal', 'restart', 'rolling']),
  ids: v.array(v.string()),
  startedAt: v.string(),
  updatedAt: v.string(),
  step: v.picklist(STEPS),
  status: v.picklist(['in_progress', 'done', 'rolled_back', 'failed', 'stuck']),
  /** The temporary name of the original once renamed, and the new container's id and temporary name. */
  oldName: v.optional(v.string()),
  newName: v.optional(v.string()),
  newContainerId: v.optional(v.string()),
  /** What this rotation created: secret volumes and their holder. */
  volumes: v.optional(v.array(v.string())),
  holder: v.optional(v.string()),
  /** Fingerprints of the values the new container holds, by id. */
  markers: v.optional(v.record(v.string(), v.string())),
  reason: v.optional(v.string()),
  durationMs: v.optional(v.number()),
  downtimeMs: v.optional(v.number()),
  history: v.array(v.object({ step: v.picklist(STEPS), at: v.string() })),
});
export type RotationRecord = v.InferOutput<typeof record>;

const stateFile = v.object({
  version: v.literal(1),
  rotations: v.array(record),
  /** Fingerprints of values given to containers in place (signal strategy), whose labels cannot change. */
  inPlace: v.record(v.string(), v.record(v.string(), v.string())),
});
type StateFile = v.InferOutput<typeof stateFile>;

/** Finished rotations kept for `status` and inspection. */
const KEEP_FINISHED = 50;

export class RotationState {
  readonly path: string;
  readonly #dir: string;
  #data: StateFile;
  #queue: Promise<void> = Promise.resolve();
  #now: () => Date;

  private constructor(dir: string, data: StateFile, now: () => Date) {
    this.#dir = dir;
    this.path = join(dir, 'rotations.json');
    this.#data = data;
    this.#now = now;
  }

  /** Opens (or starts) the state in `dir`, which is created private (0700). */
  static open(dir: string, options: { now?: () => Date } = {}): RotationState {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const path = join(dir, 'rotations.json');
    let data: StateFile = { version: 1, rotations: [], inPlace: {} };
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== undefined) {
      const parsed = v.safeParse(stateFile, JSON.parse(text));
      if (!parsed.success) throw new Error(`the rotation state ${path} is not in the expected form; move it aside to start afresh`);
      data = parsed.output;
    }
    return new RotationState(dir, data, options.now ?? (() => new Date()));
  }

  /** Serialises a rotation on one container with every other DSO process on this host. */
  async withContainerLock<T>(containerId: string, fn: () => Promise<T>): Promise<T> {
    mkdirSync(join(this.#dir, 'locks'), { recursive: true, mode: 0o700 });
    return withLock(join(this.#dir, 'locks', `${containerId.slice(0, 64)}.lock`), fn, { timeoutMs: 10 * 60_000 });
  }

  get(id: string): RotationRecord | undefined {
    const r = this.#data.rotations.find((x) => x.id === id);
    return r === undefined ? undefined : structuredClone(r);
  }

  inProgress(): RotationRecord[] {
    return this.#data.rotations.filter((r) => r.status === 'in_progress' || r.status === 'stuck').map((r) => structuredClone(r));
  }

  recent(): RotationRecord[] {
    return this.#data.rotations.filter((r) => r.status !== 'in_progress').map((r) => structuredClone(r));
  }

  markers(containerId: string): Record<string, string> {
    return { ...(this.#data.inPlace[containerId] ?? {}) };
  }

  async begin(r: Omit<RotationRecord, 'startedAt' | 'updatedAt' | 'step' | 'status' | 'history'>): Promise<RotationRecord> {
    const at = this.#now().toISOString();
    const full: RotationRecord = { ...r, startedAt: at, updatedAt: at, step: 'planned', status: 'in_progress', history: [{ step: 'planned', at }] };
    await this.#change((d) => d.rotations.push(full));
    return structuredClone(full);
  }

  /** Records that `step` was reached (and anything learnt with it), durably, before going on. */
  async advance(id: string, step: Step, patch: Partial<Pick<RotationRecord, 'oldName' | 'newName' | 'newContainerId' | 'volumes' | 'holder' | 'markers' | 'downtimeMs'>> = {}): Promise<void> {
    await this.#change((d) => {
      const r = d.rotations.find((x) => x.id === id);
      if (!r) throw new Error(`internal: no rotation ${id}`);
      const at = this.#now().toISOString();
      Object.assign(r, patch, { step, updatedAt: at });
      r.history.push({ step, at });
    });
  }

  async finish(id: string, status: Exclude<RotationStatus, 'in_progress'>, patch: { reason?: string; durationMs?: number; downtimeMs?: number } = {}): Promise<void> {
    await this.#change((d) => {
      const r = d.rotations.find((x) => x.id === id);
      if (!r) return;
      const at = this.#now().toISOString();
      Object.assign(r, patch, { status, updatedAt: at });
      if (status === 'done') {
        r.step = 'done';
        r.history.push({ step: 'done', at });
      }
      const finished = d.rotations.filter((x) => x.status !== 'in_progress' && x.status !== 'stuck');
      const drop = new Set(finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED)).map((x) => x.id));
      d.rotations = d.rotations.filter((x) => !drop.has(x.id));
    });
  }

  async setMarkers(containerId: string, markers: Record<string, string>): Promise<void> {
    await this.#change((d) => {
      d.inPlace[containerId] = { ...(d.inPlace[containerId] ?? {}), ...markers };
    });
  }

  /** Forgets in-place fingerprints of containers that no longer exist. */
  async prune(liveContainerIds: ReadonlySet<string>): Promise<void> {
    if (Object.keys(this.#data.inPlace).every((id) => liveContainerIds.has(id))) return;
    await this.#change((d) => {
      for (const id of Object.keys(d.inPlace)) if (!liveContainerIds.has(id)) delete d.inPlace[id];
    });
  }

  /** Applies `edit` to a copy, writes it atomically, and only then makes it the state in memory. */
  #change(edit: (d: StateFile) => void): Promise<void> {
    const run = async () => {
      const next = structuredClone(this.#data);
      edit(next);
      try {
        await writeFileAtomic(this.path, new TextEncoder().encode(`${JSON.stringify(next, null, 1)}\n`), { mode: 0o600 });
      } catch (e) {
        // The file on disk is still the previous, whole state (the write is atomic).
        const code = (e as NodeJS.ErrnoException).code ?? 'error';
        const fix = code === 'ENOSPC' || code === 'EDQUOT' ? 'free disk space there' : 'check that the agent may write there';
        throw new Error(`cannot write the rotation state ${this.path} (${code}); it keeps its previous content: ${fix}`, { cause: e });
      }
      this.#data = next;
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }
}
