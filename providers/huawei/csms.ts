// The three CSMS calls DSO makes, signed with AK/SK: a secret version with its value
// (ShowSecretVersion), the version a stage points at (ShowSecretStage), and the secret names
// (ListSecrets, paged by marker). Answers are checked against the documented shapes, and every
// failure becomes a ProviderError from the status and the error code.
import { ProviderError, type ProviderErrorKind } from '../../src/providers/contract.ts';
import { kindForStatus } from '../../src/providers/http-status.ts';
import { sanitize } from '../../src/providers/sanitize.ts';
import type { CredentialSource } from './credentials.ts';
import { exchange, type Exchange } from './http.ts';
import { signRequest } from './signer.ts';

/** What a secret version's JSON may add around its value: metadata, key names, quoting. */
const ENVELOPE_BYTES = 16 * 1024;
/** The largest error or listing answer read. */
const SMALL_LIMIT = 1024 * 1024;
/** The most pages a listing follows (CSMS keeps at most a few hundred secrets per project). */
const MAX_PAGES = 1000;
const VERSION_ID = /^[A-Za-z0-9_.-]{1,64}$/;

export interface CsmsOptions {
  endpoint: string;
  projectId: string;
  credentials: CredentialSource;
  ca?: string;
}

export interface SecretVersion {
  value: Uint8Array;
  /** version_metadata.id, like v3. */
  version: string;
}

export class CsmsClient {
  readonly #o: CsmsOptions;

  constructor(options: CsmsOptions) {
    this.#o = options;
  }

  /** GET /v1/{project_id}/secrets/{secret_name}/versions/{version_id} */
  async version(name: string, versionId: string, options: { maxBytes: number; signal: AbortSignal }): Promise<SecretVersion> {
    const what = `reading secret ${name} (version ${versionId}) from CSMS`;
    // A value of maxBytes can take up to 6 bytes per byte as a JSON string (\u0000 escapes):
    // only a body bigger than that is surely too large before looking inside.
    const limit = options.maxBytes * 6 + ENVELOPE_BYTES;
    const answer = await this.#call(['secrets', name, 'versions', versionId], undefined, { signal: options.signal, limit, what });
    // JSON.parse makes a string copy of the whole answer, the value included: that copy cannot be
    // wiped and stays until the GC reuses it (docs/providers/huawei.md says so). The bytes are ours.
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(answer.body));
    } catch {
      throw new ProviderError('invalid_response', `${what}: the answer is not JSON`);
    } finally {
      answer.body.fill(0);
    }
    const version = (parsed as { version?: Record<string, unknown> } | null)?.version;
    if (typeof version !== 'object' || version === null) throw new ProviderError('invalid_response', `${what}: the answer has no version object`);
    const id = (version.version_metadata as { id?: unknown } | undefined)?.id;
    if (typeof id !== 'string' || !VERSION_ID.test(id)) throw new ProviderError('invalid_response', `${what}: the answer has no valid version_metadata.id`);
    const value = valueOf(version, what);
    if (value.length > options.maxBytes) {
      value.fill(0);
      throw new ProviderError('too_large', `${what}: the value is ${value.length} bytes, over the ${options.maxBytes}-byte limit`);
    }
    return { value, version: id };
  }

  /** GET /v1/{project_id}/secrets/{secret_name}/stages/{stage_name}: the version id it marks. */
  async stage(name: string, stage: string, signal: AbortSignal): Promise<string> {
    const what = `reading stage ${stage} of secret ${name} from CSMS`;
    const answer = await this.#call(['secrets', name, 'stages', stage], undefined, { signal, limit: SMALL_LIMIT, what });
    const id = (json(answer, what) as { stage?: { version_id?: unknown } } | null)?.stage?.version_id;
    if (typeof id !== 'string' || !VERSION_ID.test(id)) throw new ProviderError('invalid_response', `${what}: the answer has no valid stage.version_id`);
    return id;
  }

  /** GET /v1/{project_id}/secrets, following page_info.next_marker. Names only. */
  async names(signal: AbortSignal): Promise<string[]> {
    const what = 'listing secrets in CSMS';
    const names = new Set<string>();
    let marker: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const answer = await this.#call(['secrets'], marker === undefined ? undefined : { marker }, { signal, limit: SMALL_LIMIT, what });
      const body = json(answer, what) as { secrets?: unknown; page_info?: { next_marker?: unknown } } | null;
      if (!Array.isArray(body?.secrets)) throw new ProviderError('invalid_response', `${what}: the answer has no secrets list`);
      for (const s of body.secrets) {
        const { name, state } = (s ?? {}) as { name?: unknown; state?: unknown };
        // Only ENABLED secrets can be read (ShowSecretVersion): the others are not offered.
        if (typeof name === 'string' && (state === undefined || state === 'ENABLED')) names.add(name);
      }
      const next = body.page_info?.next_marker;
      if (typeof next !== 'string' || next === '' || body.secrets.length === 0) return [...names].sort();
      // A marker that does not move would loop for ever.
      if (next === marker) throw new ProviderError('invalid_response', `${what}: the next page marker does not advance`);
      marker = next;
    }
    throw new ProviderError('invalid_response', `${what}: more than ${MAX_PAGES} pages`);
  }

  async #call(segments: string[], query: Record<string, string> | undefined, o: { signal: AbortSignal; limit: number; what: string }): Promise<Exchange> {
    const url = new URL(`/v1/${[this.#o.projectId, ...segments].map(encodeURIComponent).join('/')}`, this.#o.endpoint);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    // One retry when CSMS refuses credentials the source can renew (an agency's rotated keys).
    for (let attempt = 0; ; attempt++) {
      const credentials = await this.#o.credentials.get(o.signal);
      const headers = signRequest({ method: 'GET', url, headers: { Accept: 'application/json' } }, credentials);
      const answer = await exchange(url, { method: 'GET', headers }, { ...o, ...(this.#o.ca === undefined ? {} : { ca: this.#o.ca }) });
      if (answer.status === 200) return answer;
      const error = errorFrom(answer, o.what, this.#o.credentials.redactions());
      if (error.kind === 'auth' && attempt === 0 && this.#o.credentials.refused()) continue;
      throw error;
    }
  }
}

/** secret_binary (base64) when present, else secret_string, as a new buffer. */
function valueOf(version: Record<string, unknown>, what: string): Uint8Array {
  const { secret_binary: binary, secret_string: text } = version;
  if (typeof binary === 'string' && binary !== '') {
    try {
      return Uint8Array.fromBase64(binary);
    } catch {
      throw new ProviderError('invalid_response', `${what}: secret_binary is not valid base64`);
    }
  }
  if (typeof text === 'string') return new TextEncoder().encode(text);
  throw new ProviderError('invalid_response', `${what}: the answer has neither secret_string nor secret_binary`);
}

function json(answer: Exchange, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(answer.body));
  } catch {
    throw new ProviderError('invalid_response', `${what}: the answer is not JSON`);
  }
}

/**
 * Error codes whose meaning the status alone does not carry. CSMS answers a missing secret or
 * version with HTTP 400 and CSMS.0005 or CSMS.0106 (its error code table), a secret pending
 * deletion with CSMS.0103 or CSMS.0107; API Gateway answers bad signatures, unknown AKs and expired
 * tokens with APIGW.0301 (APIG.0301 on some stacks) and a path it does not serve with APIGW.0101.
 */
const CODE_KINDS: Record<string, { kind: ProviderErrorKind; say: string }> = {
  'CSMS.0005': { kind: 'not_found', say: 'no such secret or version' },
  'CSMS.0106': { kind: 'not_found', say: 'no such secret' },
  'CSMS.0103': { kind: 'not_found', say: 'the secret is scheduled for deletion' },
  'CSMS.0107': { kind: 'not_found', say: 'the secret is scheduled for deletion' },
  'APIGW.0301': { kind: 'auth', say: 'the AK/SK, signature or security token was refused' },
  'APIG.0301': { kind: 'auth', say: 'the AK/SK, signature or security token was refused' },
  'APIGW.0101': { kind: 'config', say: 'this endpoint does not serve the CSMS API (check endpoint and region)' },
  'APIG.0101': { kind: 'config', say: 'this endpoint does not serve the CSMS API (check endpoint and region)' },
};

const STATUS_SAYS: Partial<Record<ProviderErrorKind, string>> = {
  auth: 'the credentials were refused',
  denied: 'permission denied',
  not_found: 'not found',
  unavailable: 'CSMS is unavailable',
};

/** `{"error_code", "error_msg"}` (CSMS and API Gateway), also nested under "error" as some stacks do. */
export function errorFrom(answer: Exchange, what: string, redactions: string[]): ProviderError {
  let code: string | undefined;
  let message: string | undefined;
  try {
    const body = JSON.parse(new TextDecoder().decode(answer.body)) as Record<string, unknown>;
    const e = (typeof body.error === 'object' && body.error !== null ? body.error : body) as Record<string, unknown>;
    const c = e.error_code ?? e.code;
    const m = e.error_msg ?? e.message;
    if (typeof c === 'string' && /^[A-Za-z0-9._-]{1,40}$/.test(c)) code = c;
    if (typeof m === 'string') message = m;
  } catch {
    // Not JSON (a proxy's HTML page): the status says enough.
  }
  const known = code === undefined ? undefined : CODE_KINDS[code];
  const kind = known?.kind ?? kindForStatus(answer.status);
  const say = known?.say ?? STATUS_SAYS[kind] ?? 'unexpected answer';
  // The backend's own words help (an AK that does not exist, a clock too far off), cleaned of
  // anything credential-like and cut short.
  const detail = message === undefined ? '' : `: ${sanitize(message.replace(/[\u0000-\u001f]/g, ' '), redactions).slice(0, 200)}`;
  return new ProviderError(kind, `${what}: ${say} (HTTP ${answer.status}${code === undefined ? '' : `, ${code}`})${detail}`);
}
