// A fake Huawei Cloud CSMS endpoint (kms.{region}.myhuaweicloud.com) behind a fake API Gateway,
// for tests: the documented paths of ShowSecretVersion, ShowSecretStage and ListSecrets, their
// JSON shapes, and the documented error bodies ({"error_code", "error_msg"}: CSMS.0106 and
// CSMS.0005 with HTTP 400 for a missing secret or version, APIGW.0301 with 401 for a refused
// signature, AK or token, APIGW.0101 with 404 for a path it does not serve).
//
// Signatures are checked by the official Node SDK's own signer (AKSKSigner from
// @huaweicloud/huaweicloud-sdk-core, a devDependency), so the fake is an oracle independent of
// providers/huawei/signer.ts: a request passes only if Huawei's code computes the same signature.
//
// One assumption, marked where it is made: the public error table does not list the error code
// CSMS answers an IAM policy denial with; the fake uses HTTP 403 (documented for every CSMS API)
// with a code of its own, and the provider decides on the status alone.
import { timingSafeEqual } from 'node:crypto';
import { AKSKSigner } from '@huaweicloud/huaweicloud-sdk-core/auth/AKSKSigner';
import { makeTestCa, type TestCa } from '../tls.ts';

export interface FakeCredential {
  ak: string;
  sk: string;
  /** Temporary credentials: the X-Security-Token they must come with, and when they expire. */
  securityToken?: string;
  expiresAt?: number;
  /** Secret names this identity may not read (403), or '*' for all. */
  denied?: string[] | '*';
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  /** What the fake answered. */
  status: number;
}

export interface CsmsFake {
  url: string;
  projectId: string;
  region: string;
  /** The CA file to trust, when started with tls. */
  caPath?: string;
  /** Adds or replaces (by AK) an identity. */
  addCredential(c: FakeCredential): void;
  removeCredential(ak: string): void;
  /** A new version with a text value; it becomes SYSCURRENT, the previous one SYSPREVIOUS. Returns its id. */
  putString(name: string, value: string): string;
  /** A new version with a binary value (served base64 in secret_binary). */
  putBinary(name: string, value: Uint8Array): string;
  setStage(name: string, stage: string, versionId: string): void;
  /** Marks a secret PENDING_DELETE (CSMS.0103 on reads). */
  scheduleDeletion(name: string): void;
  /** Every later answer waits this long first. */
  setDelay(ms: number): void;
  /** Every later secret call answers this instead (undefined: normal again). */
  setFailure(failure: { status: number; body?: unknown } | undefined): void;
  /** How the value of a version is sent: normally, or as an endless chunked body. */
  setBodyMode(mode: 'normal' | 'endless'): void;
  /** Shifts the fake's clock, to test X-Sdk-Date checks. */
  setClockOffset(ms: number): void;
  /** ListSecrets page size when the request has no limit (the documented default is 50). */
  pageSize: number;
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

interface Version {
  id: string;
  string?: string;
  binary?: Uint8Array;
  created: number;
}

interface Secret {
  id: string;
  name: string;
  state: 'ENABLED' | 'PENDING_DELETE';
  versions: Version[];
  stages: Map<string, { versionId: string; updated: number }>;
  created: number;
}

const NAME = /^[a-zA-Z0-9._-]{1,64}$/;
const VERSION_ID = /^v[0-9]{1,10}$|^latest$/;
const MAX_SKEW_MS = 15 * 60_000;

export function startCsmsFake(options: { tls?: boolean; projectId?: string; region?: string } = {}): CsmsFake {
  const projectId = options.projectId ?? '0a1b2c3d4e5f60718293a4b5c6d7e8f9';
  const region = options.region ?? 'cn-north-4';
  const secrets = new Map<string, Secret>();
  const credentials = new Map<string, FakeCredential>();
  const requests: RecordedRequest[] = [];
  let delay = 0;
  let failure: { status: number; body?: unknown } | undefined;
  let bodyMode: 'normal' | 'endless' = 'normal';
  let clockOffset = 0;
  let requestCount = 0;
  const tls: TestCa | undefined = options.tls ? makeTestCa() : undefined;
  const fake = { pageSize: 50 } as CsmsFake;

  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json;charset=UTF-8', 'x-request-id': requestId() } });
  const requestId = () => (++requestCount).toString(16).padStart(32, '0');
  // API Gateway's answers for IAM authentication failures (API Request Signing Guide, FAQ).
  const apigAuth = (detail: string) => json(401, { error_msg: `Incorrect IAM authentication information: ${detail}`, error_code: 'APIGW.0301', request_id: requestId() });
  const csmsError = (status: number, code: string, msg: string) => json(status, { error_code: code, error_msg: msg });

  const authenticate = (req: Request, url: URL): { ok: FakeCredential } | { fail: Response } => {
    const header = req.headers.get('authorization');
    if (!header) return { fail: apigAuth('x-auth-token not found') };
    const m = /^SDK-HMAC-SHA256 Access=([^,\s]+), SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(header);
    if (!m) return { fail: apigAuth('verify aksk signature fail') };
    const [, ak, signedList, signature] = m as unknown as [string, string, string, string];
    const cred = credentials.get(ak);
    if (!cred) return { fail: apigAuth('Get secretKey failed,ak:******,err:ak not exist') };
    const signed = signedList.split(';');
    const date = req.headers.get('x-sdk-date');
    if (!signed.includes('host') || !signed.includes('x-sdk-date') || !date) return { fail: apigAuth('verify aksk signature fail') };
    const when = parseSdkDate(date);
    if (when === undefined || Math.abs(Date.now() + clockOffset - when) > MAX_SKEW_MS) return { fail: apigAuth('verify aksk signature fail') };
    // Rebuild the request the way the SDK's signer takes it and let Huawei's code sign it.
    const headers: Record<string, string> = {};
    for (const name of signed) {
      const value = req.headers.get(name);
      if (value === null) return { fail: apigAuth('verify aksk signature fail') };
      headers[name === 'x-sdk-date' ? 'X-Sdk-Date' : name] = value;
    }
    const queryParams: Record<string, string | string[]> = {};
    for (const key of new Set(url.searchParams.keys())) {
      const all = url.searchParams.getAll(key);
      queryParams[key] = all.length === 1 ? all[0]! : all;
    }
    const expected = AKSKSigner.sign(
      { method: req.method, endpoint: `${url.protocol}//${url.host}${url.pathname}`, queryParams, headers } as never,
      { getAk: () => ak, getSk: () => cred.sk } as never,
    ) as Record<string, string>;
    const want = /Signature=([0-9a-f]{64})$/.exec(expected.Authorization ?? '')?.[1] ?? '';
    if (want.length !== 64 || !timingSafeEqual(Buffer.from(want), Buffer.from(signature))) return { fail: apigAuth('verify aksk signature fail') };
    if (cred.securityToken !== undefined) {
      const token = req.headers.get('x-security-token');
      if (token === null || !signed.includes('x-security-token') || token !== cred.securityToken) return { fail: apigAuth('decrypt token fail') };
      if (cred.expiresAt !== undefined && cred.expiresAt <= Date.now() + clockOffset) {
        return { fail: apigAuth(`token expires, expires_at: ${new Date(cred.expiresAt).toISOString()}`) };
      }
    }
    return { ok: cred };
  };

  const versionBody = (s: Secret, v: Version) => ({
    version: {
      version_metadata: {
        id: v.id,
        create_time: v.created,
        kms_key_id: 'b168fe00-ff26-4d23-a4e5-0a8ac4c0a0a4',
        secret_name: s.name,
        version_stages: [...s.stages].filter(([, st]) => st.versionId === v.id).map(([name]) => name),
      },
      ...(v.binary === undefined ? { secret_string: v.string } : { secret_binary: v.binary.toBase64() }),
    },
  });

  const route = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const auth = authenticate(req, url);
    if ('fail' in auth) return auth.fail;
    let parts: string[];
    try {
      parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      return csmsError(400, 'CSMS.0003', 'The request is invalid.');
    }
    const apiMissing = () => json(404, { error_msg: 'The API does not exist or has not been published in the environment', error_code: 'APIGW.0101', request_id: requestId() });
    if (req.method !== 'GET' || parts[0] !== 'v1' || parts[2] !== 'secrets') return apiMissing();
    if (parts[1] !== projectId) return csmsError(400, 'CSMS.0002', 'The value of parameter is invalid.');
    if (delay > 0) await Bun.sleep(delay);
    if (failure) return json(failure.status, failure.body ?? { error_code: 'CSMS.0001', error_msg: 'Internal error.' });

    if (parts.length === 3) return listSecrets(url, auth.ok);
    const name = parts[3]!;
    if (!NAME.test(name)) return csmsError(400, 'CSMS.0002', 'The value of parameter is invalid.');
    // ASSUMPTION (see the top of the file): the code of a policy denial is not documented.
    const denied = auth.ok.denied === '*' || auth.ok.denied?.includes(name);
    const action = parts[4] === 'stages' ? 'csms:secret:getStage' : 'csms:secret:getVersion';
    if (denied) return csmsError(403, 'CSMS.0403', `Policy doesn't allow ${action} to be performed.`);
    const secret = secrets.get(name);
    if (!secret) return csmsError(400, 'CSMS.0106', 'The secret name not found int the db.');
    if (secret.state === 'PENDING_DELETE') return csmsError(400, 'CSMS.0103', 'The secret is in the scheduled deletion state.');
    if (parts.length === 6 && parts[4] === 'versions') {
      const id = parts[5]!;
      if (!VERSION_ID.test(id)) return csmsError(400, 'CSMS.0002', 'The value of parameter is invalid.');
      const version = id === 'latest' ? secret.versions.at(-1) : secret.versions.find((v) => v.id === id);
      if (!version) return csmsError(400, 'CSMS.0005', 'The resource does not exist.');
      if (bodyMode === 'endless') return endless();
      return json(200, versionBody(secret, version));
    }
    if (parts.length === 6 && parts[4] === 'stages') {
      const stage = secret.stages.get(parts[5]!);
      if (!stage) return csmsError(400, 'CSMS.0005', 'The resource does not exist.');
      return json(200, { stage: { name: parts[5], update_time: stage.updated, secret_name: name, version_id: stage.versionId } });
    }
    return apiMissing();
  };

  const listSecrets = (url: URL, who: FakeCredential): Response => {
    if (who.denied === '*') return csmsError(403, 'CSMS.0403', "Policy doesn't allow csms:secret:list to be performed.");
    const limitText = url.searchParams.get('limit');
    const limit = limitText === null ? fake.pageSize : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) return csmsError(400, 'CSMS.0002', 'The value of parameter is invalid.');
    const marker = url.searchParams.get('marker');
    const all = [...secrets.values()].sort((a, b) => a.name.localeCompare(b.name));
    const start = marker === null ? 0 : all.findIndex((s) => s.name > marker);
    const page = start === -1 ? [] : all.slice(start, start + limit);
    const more = start !== -1 && start + limit < all.length;
    return json(200, {
      secrets: page.map((s) => ({ id: s.id, name: s.name, state: s.state, kms_key_id: 'b168fe00-ff26-4d23-a4e5-0a8ac4c0a0a4', description: '', create_time: s.created, update_time: s.created, scheduled_delete_time: 0, secret_type: 'COMMON' })),
      page_info: { ...(more ? { next_marker: page.at(-1)!.name } : {}), ...(marker === null ? {} : { previous_marker: marker }), current_count: page.length },
    });
  };

  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    ...(tls ? { tls: { cert: tls.serverCert, key: tls.serverKey } } : {}),
    async fetch(req) {
      const url = new URL(req.url);
      const response = await route(req);
      const headers: Record<string, string> = {};
      req.headers.forEach((v, k) => {
        headers[k] = v;
      });
      requests.push({ method: req.method, path: url.pathname, query: url.search, headers, status: response.status });
      return response;
    },
  });

  const put = (name: string, v: Omit<Version, 'id' | 'created'>): string => {
    const now = Date.now();
    let s = secrets.get(name);
    if (!s) {
      s = { id: crypto.randomUUID(), name, state: 'ENABLED', versions: [], stages: new Map(), created: now };
      secrets.set(name, s);
    }
    const id = `v${s.versions.length + 1}`;
    s.versions.push({ id, created: now, ...v });
    const current = s.stages.get('SYSCURRENT');
    if (current) s.stages.set('SYSPREVIOUS', { versionId: current.versionId, updated: now });
    s.stages.set('SYSCURRENT', { versionId: id, updated: now });
    return id;
  };

  Object.assign(fake, {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${server.port}`,
    projectId,
    region,
    ...(tls ? { caPath: tls.caFile } : {}),
    requests,
    addCredential: (c: FakeCredential) => credentials.set(c.ak, c),
    removeCredential: (ak: string) => credentials.delete(ak),
    putString: (name: string, value: string) => put(name, { string: value }),
    putBinary: (name: string, value: Uint8Array) => put(name, { binary: new Uint8Array(value) }),
    setStage(name: string, stage: string, versionId: string) {
      const s = secrets.get(name);
      if (!s || !s.versions.some((v) => v.id === versionId)) throw new Error(`fake: no version ${versionId} of ${name}`);
      s.stages.set(stage, { versionId, updated: Date.now() });
    },
    scheduleDeletion(name: string) {
      const s = secrets.get(name);
      if (s) s.state = 'PENDING_DELETE';
    },
    setDelay: (ms: number) => {
      delay = ms;
    },
    setFailure: (f: { status: number; body?: unknown } | undefined) => {
      failure = f;
    },
    setBodyMode: (m: 'normal' | 'endless') => {
      bodyMode = m;
    },
    setClockOffset: (ms: number) => {
      clockOffset = ms;
    },
    async stop() {
      await server.stop(true);
      tls?.remove();
    },
  });
  return fake;
}

/** A 200 answer whose body never ends (chunked, no Content-Length): the client must stop reading. */
function endless(): Response {
  const chunk = new TextEncoder().encode(`{"version":{"secret_string":"${'x'.repeat(16 * 1024)}`);
  let sent = 0;
  const stream = new ReadableStream({
    async pull(c) {
      // A bound, so a client that never stops cannot make the test machine run out of memory.
      if (sent > 256 * 1024 * 1024) return c.close();
      await Bun.sleep(1);
      c.enqueue(chunk);
      sent += chunk.length;
    },
  });
  return new Response(stream, { status: 200, headers: { 'content-type': 'application/json;charset=UTF-8' } });
}

/** X-Sdk-Date, YYYYMMDDTHHMMSSZ. */
function parseSdkDate(text: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) return undefined;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}
