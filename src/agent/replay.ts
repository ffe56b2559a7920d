// The webhook's memory of the signatures it accepted, so that a captured request is accepted once
// only, across a reload and a restart as well: one instance, owned by the agent's composition
// root, kept in memory and in `<state_dir>/webhook-replay.json` (mode 0600, written atomically).
// The file holds a digest of each accepted signature and the instant its timestamp leaves the
// 5-minute window; never a body, a key or a signature that could be sent again.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { writeFileAtomic } from '../vault/atomic-write.ts';

export const REPLAY_FILE = 'webhook-replay.json';
/** Signatures remembered at most; past it, new requests wait (a 503) rather than old ones be forgotten. */
export const REPLAY_LIMIT = 10_000;

/**
 * What the memory says of a signed request: new (now remembered), seen before, or not known:
 * `unknown` after a start whose file could not be read (the previous agent may have accepted it),
 * `full` when the memory holds REPLAY_LIMIT live signatures.
 */
export type ReplayVerdict = 'new' | 'seen' | 'unknown' | 'full';

type Log = (level: 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

const fileSchema = v.object({
  version: v.literal(1),
  /** Set after a start with an unreadable file: requests signed before this instant are refused. */
  refuse_before: v.optional(v.pipe(v.number(), v.safeInteger())),
  seen: v.record(v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)), v.pipe(v.number(), v.safeInteger())),
});

export class ReplayMemory {
  readonly #until = new Map<string, number>();
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #log: Log;
  readonly #now: () => number;
  #dir: string | undefined;
  #refuseBefore = 0;
  #writing: Promise<void> | undefined;
  #dirty = false;
  #writeFailed = false;

  private constructor(options: { dir?: string; limit: number; windowMs: number; log: Log; now: () => number }) {
    this.#dir = options.dir;
    this.#now = options.now;
    this.#limit = options.limit;
    this.#windowMs = options.windowMs;
    this.#log = options.log;
  }

  /** A memory that lives as long as the process (tests, a webhook app built alone). */
  static inMemory(options: { windowMs: number; limit?: number }): ReplayMemory {
    return new ReplayMemory({ limit: options.limit ?? REPLAY_LIMIT, windowMs: options.windowMs, log: () => {}, now: Date.now });
  }

  /**
   * The memory kept in `dir` (created 0700, like the rest of the state directory). A file that
   * cannot be read or is not in the expected form is not trusted and not fatal: the agent starts,
   * says so, and refuses every signed request whose timestamp the lost memory could have covered
   * (signed before now + the window), so that nothing accepted before can be accepted again.
   * Starting with an empty memory would accept replays for 5 minutes; refusing to start would take
   * the whole agent (secrets for `docker dso up`) down over a file of 5-minute-old digests.
   */
  static open(dir: string, options: { windowMs: number; log: Log; limit?: number; now?: () => number }): ReplayMemory {
    const clock = options.now ?? Date.now;
    const now = clock();
    const memory = new ReplayMemory({ dir, limit: options.limit ?? REPLAY_LIMIT, windowMs: options.windowMs, log: options.log, now: clock });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const path = memory.path!;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return memory;
      memory.#forgotten(path, (e as NodeJS.ErrnoException).code ?? 'unreadable', now);
      return memory;
    }
    let parsed;
    try {
      parsed = v.safeParse(fileSchema, JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      memory.#forgotten(path, 'not in the expected form', now);
      return memory;
    }
    memory.#refuseBefore = parsed.output.refuse_before ?? 0;
    // The latest expiries first: past the limit (a file from a larger limit), the soonest go.
    const live = Object.entries(parsed.output.seen)
      .filter(([, until]) => until >= now)
      .sort((a, b) => b[1] - a[1])
      .slice(0, memory.#limit);
    for (const [digest, until] of live) memory.#until.set(digest, until);
    return memory;
  }

  /** Where the memory is kept, if anywhere. */
  get path(): string | undefined {
    return this.#dir === undefined ? undefined : join(this.#dir, REPLAY_FILE);
  }

  /** How many signatures are remembered (expired ones included until the next sweep). */
  get size(): number {
    return this.#until.size;
  }

  /** Keeps the memory in another (existing) state directory from now on: agent.state_dir changed on reload. */
  moveTo(dir: string): Promise<void> {
    if (dir === this.#dir) return Promise.resolve();
    this.#dir = dir;
    return this.flush();
  }

  /**
   * Remembers `signature` (of a request signed at `signedAt`, valid until `expiresAt`) unless it
   * was seen, or the memory cannot tell. Synchronous, so two copies arriving together cannot both
   * be new; `flush()` then makes it durable.
   */
  remember(signature: Uint8Array, signedAt: number, expiresAt: number, now: number): ReplayVerdict {
    const digest = createHash('sha256').update(signature).digest('hex').slice(0, 32);
    const known = this.#until.get(digest);
    if (known !== undefined && known >= now) return 'seen';
    if (signedAt < this.#refuseBefore) return 'unknown';
    if (this.#until.size >= this.#limit) {
      for (const [d, until] of this.#until) if (until < now) this.#until.delete(d);
      if (this.#until.size >= this.#limit) return 'full';
    }
    this.#until.set(digest, expiresAt);
    return 'new';
  }

  /**
   * Writes the memory (live entries only) to its file; writes asked for while one is under way
   * are made together, once, after it. A write that fails is logged and does not fail the
   * request: the memory in this process still refuses replays, and the file on disk stays whole.
   */
  flush(): Promise<void> {
    if (this.#dir === undefined) return Promise.resolve();
    this.#dirty = true;
    this.#writing ??= (async () => {
      try {
        while (this.#dirty) {
          this.#dirty = false;
          await this.#write();
        }
      } finally {
        this.#writing = undefined;
      }
    })();
    return this.#writing;
  }

  async #write(): Promise<void> {
    const now = this.#now();
    const seen: Record<string, number> = {};
    for (const [digest, until] of this.#until) {
      if (until >= now) seen[digest] = until;
      else this.#until.delete(digest);
    }
    const data = { version: 1, ...(this.#refuseBefore > now ? { refuse_before: this.#refuseBefore } : {}), seen };
    const path = this.path!;
    try {
      await writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify(data)}\n`), { mode: 0o600 });
      if (this.#writeFailed) this.#log('warn', 'The webhook replay memory is written again', { file: path });
      this.#writeFailed = false;
    } catch (e) {
      // Said once per run of failures, not once per request.
      if (!this.#writeFailed) {
        const code = (e as NodeJS.ErrnoException).code ?? 'error';
        this.#log('error', 'Cannot write the webhook replay memory: a request accepted now could be accepted again after a restart (within its 5 minutes)', {
          file: path,
          error: code,
          hint: code === 'ENOSPC' || code === 'EDQUOT' ? 'free disk space there' : 'check that the agent may write its state directory',
        });
      }
      this.#writeFailed = true;
    }
  }

  /** Also written at once, so that another restart within the window keeps the same limit. */
  #forgotten(path: string, why: string, now: number): void {
    this.#refuseBefore = now + this.#windowMs;
    void this.flush();
    this.#log('warn', 'The webhook replay memory could not be read: signed webhook requests are refused (503) until the requests it may have covered are too old', {
      file: path,
      reason: why,
      refused_if_signed_before: new Date(this.#refuseBefore).toISOString(),
      hint: 'nothing to do: the file is rewritten at the next accepted request; polling and the socket\'s webhook route go on meanwhile',
    });
  }
}
