// The CLI's side of the agent API: is an agent there, what is its status, and resolve
// references through it (values arrive as frames of raw bytes).
import { DsoError } from '../errors.ts';
import { FrameDecoder } from '../providers/frames.ts';
import { SecretBytes, wipeAll } from '../secrets/secret-bytes.ts';

export interface AgentResolution {
  values: Map<string, { value: SecretBytes; version?: string; fingerprint?: string; stale: boolean }>;
  failures: Array<{ id: string; kind: string; message: string }>;
}

async function call(socket: string, path: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(`http://dso-agent${path}`, { ...init, unix: socket } as RequestInit);
  } catch (e) {
    throw new DsoError('AGENT_UNREACHABLE', `cannot reach the DSO agent at ${socket}: ${(e as { code?: string }).code ?? (e as Error).message}`, {
      hint: 'start it (`sudo docker dso system enable`, or `dso agent`), and check that you may open its socket (group in agent.socket.group)',
    });
  }
}

export async function agentStatus(socket: string): Promise<Record<string, unknown>> {
  const r = await call(socket, '/v1/status');
  if (!r.ok) throw new DsoError('INTERNAL', `the agent answered ${r.status} to a status request`);
  return (await r.json()) as Record<string, unknown>;
}

/** Asks the agent to start (log in to) every provider and say which work. */
export async function agentCheckProviders(socket: string): Promise<Array<{ name: string; kind: string; isolation: string; ok: boolean; ms: number; error?: { kind: string; message: string } }>> {
  const r = await call(socket, '/v1/providers/check', { method: 'POST' });
  if (!r.ok) throw new DsoError('INTERNAL', `the agent answered ${r.status} to a provider check`);
  return ((await r.json()) as { providers: [] }).providers;
}

/** Resolves canonical ids through the agent. The caller owns (and wipes) the values. */
export async function agentResolve(socket: string, ids: string[]): Promise<AgentResolution> {
  const r = await call(socket, '/v1/resolve', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secrets: ids }) });
  if (!r.ok) {
    const body = (await r.json().catch(() => ({}))) as { error?: { code?: string; message?: string; hint?: string } };
    throw new DsoError('PROVIDER_FAILED', `the agent refused the request (${r.status}): ${body.error?.message ?? 'no details'}`, body.error?.hint ? { hint: body.error.hint } : {});
  }
  const bytes = new Uint8Array(await r.arrayBuffer());
  const decoder = new FrameDecoder();
  const out: AgentResolution = { values: new Map(), failures: [] };
  try {
    let ended = false;
    for (const m of decoder.push(bytes)) {
      if (m.type === 'value' && typeof m.id === 'string' && m.value instanceof Uint8Array) {
        out.values.set(m.id, { value: new SecretBytes(m.value), ...(typeof m.version === 'string' ? { version: m.version } : {}), ...(typeof m.fingerprint === 'string' ? { fingerprint: m.fingerprint } : {}), stale: m.stale === true });
      } else if (m.type === 'failure' && typeof m.id === 'string') {
        out.failures.push({ id: m.id, kind: String(m.kind), message: String(m.message) });
      } else if (m.type === 'end') {
        ended = true;
      }
    }
    if (!ended) throw new DsoError('INTERNAL', 'the agent\'s answer was cut short');
    return out;
  } catch (e) {
    wipeAll(...[...out.values.values()].map((v) => v.value));
    throw e;
  } finally {
    bytes.fill(0);
    decoder.wipe();
  }
}

/**
 * Asks the agent to rotate every container that uses `secret` (or, with dryRun, only to plan it).
 * The answer is a stream of JSON lines: progress lines while it works, then the result.
 */
export async function agentRotate(socket: string, body: { secret: string; dryRun: boolean }, onProgress?: (line: string) => void): Promise<import('../rotation/local.ts').LocalRotationResult> {
  const r = await call(socket, '/v1/rotate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok || !r.body) {
    const err = (await r.json().catch(() => ({}))) as { error?: { code?: string; message?: string; hint?: string } };
    throw new DsoError('ROTATION_FAILED', `the agent refused the rotation (${r.status}): ${err.error?.message ?? 'no details'}`, err.error?.hint ? { hint: err.error.hint } : {});
  }
  const decoder = new TextDecoder();
  let rest = '';
  let result: import('../rotation/local.ts').LocalRotationResult | undefined;
  // Lines of other types ("alive", which keeps the connection open while nothing happens) are skipped.
  const take = (line: string) => {
    let m: { type?: string; line?: string; plan?: unknown; outcomes?: unknown; error?: { message: string; hint?: string } };
    try {
      m = JSON.parse(line) as typeof m;
    } catch {
      throw new DsoError('INTERNAL', 'the agent\'s answer to the rotation is not JSON lines', { hint: 'is the agent the same version as this CLI? `docker dso version` and `docker dso status` say' });
    }
    if (m.type === 'progress' && m.line) onProgress?.(m.line);
    else if (m.type === 'result') result = { plan: m.plan, outcomes: m.outcomes } as import('../rotation/local.ts').LocalRotationResult;
    else if (m.type === 'error') throw new DsoError('ROTATION_FAILED', m.error?.message ?? 'the agent could not rotate', m.error?.hint ? { hint: m.error.hint } : {});
  };
  try {
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      rest += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf('\n')) !== -1) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim()) take(line);
      }
    }
  } catch (e) {
    if (e instanceof DsoError) throw e;
    // The connection broke (the agent stopped or crashed): what was asked may still be under way there.
    throw new DsoError('AGENT_UNREACHABLE', `the connection to the agent at ${socket} broke during the rotation of ${body.secret} (${(e as { code?: string }).code ?? (e as Error).message})`, {
      hint: 'the agent may still be rotating, or have stopped: `docker dso status` shows the outcome, `docker dso system logs` why',
    });
  }
  if (!result) throw new DsoError('ROTATION_FAILED', 'the agent\'s answer ended before its result', { hint: 'see `docker dso system logs`' });
  return result;
}
