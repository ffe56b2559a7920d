// Real and fake AWS endpoints for tests: moto_server (a real emulator of Secrets Manager, IAM and
// STS, installed by scripts/test-env.sh), a proxy in front of it that can be made slow or answer
// errors the way AWS documents them, and a fake EC2 instance metadata service (IMDSv2) that hands
// out role credentials. Each start function returns a handle with stop(); a test file starts its
// own, so other test files (a compose stack using several providers) can reuse them.
import { CreateSecretCommand, DeleteSecretCommand, PutSecretValueCommand, SecretsManagerClient, UpdateSecretVersionStageCommand } from '@aws-sdk/client-secrets-manager';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface AwsKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Temporary credentials (an STS session), as IMDS and SSO hand them out. */
export interface SessionKeys extends AwsKeys {
  sessionToken: string;
  expiration: Date;
}

export interface PolicyStatement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
}

export interface Moto {
  /** http://127.0.0.1:PORT: the `endpoint` to give the SDK. */
  url: string;
  region: string;
  /** An IAM user allowed everything; its keys work before and after enforceIam(). */
  admin: AwsKeys;
  /** Creates the secret, or adds a new current version to it; the version id is moto's. */
  putSecret(name: string, value: string | Uint8Array): Promise<{ arn: string; versionId: string }>;
  /** Moves staging label `stage` to version `versionId`. */
  stageVersion(name: string, stage: string, versionId: string): Promise<void>;
  /** Deletes a secret: scheduled for deletion (still listed as deleted), or at once with `force`. */
  deleteSecret(name: string, options?: { force?: boolean }): Promise<void>;
  /** An IAM user with one inline policy, and an access key for it. Only before enforceIam(). */
  createUser(name: string, statements: PolicyStatement[]): Promise<AwsKeys>;
  /** An IAM role with one inline policy, assumed through STS. Only before enforceIam(). */
  createRoleSession(roleName: string, statements: PolicyStatement[]): Promise<SessionKeys>;
  /**
   * From now on every request must be signed by a known key and be allowed by that principal's
   * policies (moto's INITIAL_NO_AUTH_ACTION_COUNT=0). moto checks actions, not resources: a
   * policy restricted to some secret ARNs allows nothing (moto authorises against "*").
   */
  enforceIam(): Promise<void>;
  /** Requests moto has logged (one access-log line each), for debugging a failing test. */
  log(): string[];
  stop(): Promise<void>;
}

/**
 * The command that starts moto_server: $DSO_TEST_MOTO_SERVER, else what scripts/test-env.sh
 * would export. Throws when moto is not installed: tests that need it must fail, not skip.
 */
export function motoServerCommand(): string {
  let command = process.env.DSO_TEST_MOTO_SERVER;
  if (!command) {
    const script = join(import.meta.dir, '../../../scripts/test-env.sh');
    const out = Bun.spawnSync(['bash', script, 'env'], { env: { ...process.env }, stdout: 'pipe', stderr: 'pipe' });
    const line = out.stdout.toString().split('\n').find((l) => l.startsWith('export DSO_TEST_MOTO_SERVER='));
    command = line?.slice('export DSO_TEST_MOTO_SERVER='.length).replace(/^'(.*)'$/, '$1');
  }
  if (!command || !existsSync(command)) {
    throw new Error(`moto_server is not installed${command ? ` (no ${command})` : ''}: run \`bash scripts/test-env.sh up\` as root (npm test does), which installs it`);
  }
  return command;
}

const ACCOUNT = '123456789012';

/** Starts moto_server on a free port, with an admin user created. */
export async function startMoto(options: { region?: string } = {}): Promise<Moto> {
  const region = options.region ?? 'us-east-1';
  const proc = Bun.spawn([motoServerCommand(), '-H', '127.0.0.1', '-p', '0'], {
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
  });
  const lines: string[] = [];
  const { promise: port, resolve: announced } = Promise.withResolvers<number>();
  // werkzeug logs every request to stderr: keep reading it, or moto blocks on a full pipe.
  void (async () => {
    let rest = '';
    const text = new TextDecoder();
    for await (const chunk of proc.stderr) {
      rest += text.decode(chunk, { stream: true });
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        const m = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (m) announced(Number(m[1]));
        lines.push(line);
        if (lines.length > 500) lines.shift();
      }
    }
  })();
  const exited = proc.exited.then((code) => {
    throw new Error(`moto_server exited with code ${code} before it was ready:\n${lines.slice(-20).join('\n')}`);
  });
  const timeout = Bun.sleep(20_000).then(() => {
    throw new Error(`moto_server did not start within 20 s:\n${lines.slice(-20).join('\n')}`);
  });
  let url: string;
  try {
    url = `http://127.0.0.1:${await Promise.race([port, exited, timeout])}`;
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  exited.catch(() => {});
  timeout.catch(() => {});

  let enforced = false;
  const unsigned = (service: string) => `AWS4-HMAC-SHA256 Credential=AKIAMOTOSETUP0000000/20240101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`;
  // IAM and STS speak the query protocol; before enforceIam() moto reads the service from the
  // credential scope and checks no signature.
  const query = async (service: 'iam' | 'sts', params: Record<string, string>): Promise<string> => {
    if (enforced) throw new Error(`moto: ${params.Action} must run before enforceIam()`);
    const version = service === 'iam' ? '2010-05-08' : '2011-06-15';
    const response = await fetch(`${url}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', authorization: unsigned(service) },
      body: new URLSearchParams({ Version: version, ...params }),
    });
    const body = await response.text();
    if (!response.ok) throw new Error(`moto ${service} ${params.Action}: HTTP ${response.status}: ${body.slice(0, 500)}`);
    return body;
  };
  const element = (xml: string, name: string): string => {
    const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
    if (!m) throw new Error(`moto: no <${name}> in the answer`);
    return m[1]!;
  };
  const policy = (statements: PolicyStatement[]) => JSON.stringify({ Version: '2012-10-17', Statement: statements });

  const createUser = async (name: string, statements: PolicyStatement[]): Promise<AwsKeys> => {
    await query('iam', { Action: 'CreateUser', UserName: name });
    await query('iam', { Action: 'PutUserPolicy', UserName: name, PolicyName: `${name}-policy`, PolicyDocument: policy(statements) });
    const xml = await query('iam', { Action: 'CreateAccessKey', UserName: name });
    return { accessKeyId: element(xml, 'AccessKeyId'), secretAccessKey: element(xml, 'SecretAccessKey') };
  };

  let admin: AwsKeys;
  try {
    admin = await createUser('dso-test-admin', [{ Effect: 'Allow', Action: '*', Resource: '*' }]);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  const client = new SecretsManagerClient({ endpoint: url, region, credentials: admin, maxAttempts: 1 });

  return {
    url,
    region,
    admin,
    async putSecret(name, value) {
      const body = typeof value === 'string' ? { SecretString: value } : { SecretBinary: value };
      try {
        const out = await client.send(new CreateSecretCommand({ Name: name, ...body }));
        return { arn: out.ARN!, versionId: out.VersionId! };
      } catch (e) {
        if ((e as Error).name !== 'ResourceExistsException') throw e;
        const out = await client.send(new PutSecretValueCommand({ SecretId: name, ...body }));
        return { arn: out.ARN!, versionId: out.VersionId! };
      }
    },
    async stageVersion(name, stage, versionId) {
      await client.send(new UpdateSecretVersionStageCommand({ SecretId: name, VersionStage: stage, MoveToVersionId: versionId }));
    },
    async deleteSecret(name, options = {}) {
      await client.send(new DeleteSecretCommand({ SecretId: name, ...(options.force ? { ForceDeleteWithoutRecovery: true } : {}) }));
    },
    createUser,
    async createRoleSession(roleName, statements) {
      const trust = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'sts:AssumeRole' }] });
      await query('iam', { Action: 'CreateRole', RoleName: roleName, AssumeRolePolicyDocument: trust });
      await query('iam', { Action: 'PutRolePolicy', RoleName: roleName, PolicyName: `${roleName}-policy`, PolicyDocument: policy(statements) });
      const xml = await query('sts', { Action: 'AssumeRole', RoleArn: `arn:aws:iam::${ACCOUNT}:role/${roleName}`, RoleSessionName: 'dso-test', DurationSeconds: '3600' });
      return {
        accessKeyId: element(xml, 'AccessKeyId'),
        secretAccessKey: element(xml, 'SecretAccessKey'),
        sessionToken: element(xml, 'SessionToken'),
        expiration: new Date(element(xml, 'Expiration')),
      };
    },
    async enforceIam() {
      const response = await fetch(`${url}/moto-api/reset-auth`, { method: 'POST', body: '0' });
      if (!response.ok) throw new Error(`moto: reset-auth answered HTTP ${response.status}`);
      enforced = true;
    },
    log: () => [...lines],
    async stop() {
      client.destroy();
      proc.kill('SIGTERM');
      const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
      if (!done) proc.kill('SIGKILL');
      await proc.exited;
    },
  };
}

/** What the proxy answers instead of forwarding, for errors moto does not produce. */
export interface CannedResponse {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

/** An AWS JSON-protocol error, as Secrets Manager sends it (awsJson1_1). */
export function awsJsonError(status: number, type: string, message: string): CannedResponse {
  return {
    status,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': crypto.randomUUID() },
    body: JSON.stringify({ __type: type, message }),
  };
}

export interface Proxy {
  url: string;
  /** Wait this long before forwarding each request (0: not at all). */
  setDelay(ms: number): void;
  /** Answer every request with this instead of forwarding (undefined: forward again). */
  failWith(response: CannedResponse | undefined): void;
  /** Requests received so far. */
  readonly requests: number;
  stop(): Promise<void>;
}

/**
 * An HTTP proxy in front of `target` (moto) that forwards requests byte for byte, the Host
 * header included (SigV4 signs it, and an enforcing moto checks the signature).
 */
export function startProxy(target: string): Proxy {
  let delay = 0;
  let canned: CannedResponse | undefined;
  let requests = 0;
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      requests++;
      const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await req.arrayBuffer();
      if (delay > 0) {
        await Promise.race([Bun.sleep(delay), new Promise((resolve) => req.signal.addEventListener('abort', resolve))]);
        if (req.signal.aborted) return new Response(null, { status: 499 });
      }
      if (canned) return new Response(canned.body, { status: canned.status, headers: canned.headers ?? {} });
      const url = new URL(req.url);
      const upstream = await fetch(`${target}${url.pathname}${url.search}`, { method: req.method, headers: req.headers, body, redirect: 'manual' });
      const headers = new Headers(upstream.headers);
      headers.delete('content-length');
      headers.delete('content-encoding');
      headers.delete('transfer-encoding');
      return new Response(await upstream.arrayBuffer(), { status: upstream.status, headers });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    setDelay: (ms) => {
      delay = ms;
    },
    failWith: (response) => {
      canned = response;
    },
    get requests() {
      return requests;
    },
    async stop() {
      await server.stop(true);
    },
  };
}

export interface Imds {
  /** The value for AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  url: string;
  role: string;
  /** What was asked, as "METHOD PATH" lines. */
  readonly requests: string[];
  stop(): Promise<void>;
}

/**
 * A fake EC2 instance metadata service, IMDSv2 only (as instances launched with
 * HttpTokens=required): PUT /latest/api/token with a TTL header gives a session token, which
 * every GET must carry; /latest/meta-data/iam/security-credentials/ names the instance's role and
 * /latest/meta-data/iam/security-credentials/ROLE gives its temporary credentials, in the
 * documented JSON form.
 */
export function startImds(credentials: SessionKeys, role = 'dso-test-instance-role'): Imds {
  const tokens = new Set<string>();
  const requests: string[] = [];
  const text = (status: number, body: string) => new Response(body, { status, headers: { 'content-type': 'text/plain' } });
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      requests.push(`${req.method} ${path}`);
      if (path === '/latest/api/token') {
        if (req.method !== 'PUT') return text(405, '');
        const ttl = Number(req.headers.get('x-aws-ec2-metadata-token-ttl-seconds'));
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return text(400, '');
        const token = crypto.randomUUID();
        tokens.add(token);
        return new Response(token, { headers: { 'content-type': 'text/plain', 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) } });
      }
      if (req.method !== 'GET') return text(405, '');
      if (!tokens.has(req.headers.get('x-aws-ec2-metadata-token') ?? '')) return text(401, '');
      if (path === '/latest/meta-data/iam/security-credentials/') return text(200, role);
      if (path === `/latest/meta-data/iam/security-credentials/${role}`) {
        return Response.json({
          Code: 'Success',
          LastUpdated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          Type: 'AWS-HMAC',
          AccessKeyId: credentials.accessKeyId,
          SecretAccessKey: credentials.secretAccessKey,
          Token: credentials.sessionToken,
          Expiration: credentials.expiration.toISOString().replace(/\.\d+Z$/, 'Z'),
        });
      }
      return text(404, '');
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    role,
    requests,
    async stop() {
      await server.stop(true);
    },
  };
}

/** A URL where nothing listens (a port that was free a moment ago). */
export async function deadUrl(): Promise<string> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  const port = server.port;
  await server.stop(true);
  return `http://127.0.0.1:${port}`;
}

export interface ContainerCredentials {
  /** The value for AWS_CONTAINER_CREDENTIALS_FULL_URI (a loopback address, which the SDK allows over http). */
  url: string;
  /** The value for AWS_CONTAINER_AUTHORIZATION_TOKEN (or the content of its token file). */
  token: string;
  /** What was asked, as "METHOD PATH" lines. */
  readonly requests: string[];
  stop(): Promise<void>;
}

/**
 * A fake container credentials endpoint, as the EKS Pod Identity agent serves it: GET on the path
 * in AWS_CONTAINER_CREDENTIALS_FULL_URI with the pod's token in the Authorization header gives the
 * role's temporary credentials in the documented JSON form; a missing or wrong token is 401.
 */
export function startContainerCredentials(credentials: SessionKeys, token = `pod-identity-token-${crypto.randomUUID()}`): ContainerCredentials {
  const path = '/v1/credentials';
  const requests: string[] = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      requests.push(`${req.method} ${url.pathname}`);
      if (req.method !== 'GET') return new Response('', { status: 405 });
      if (req.headers.get('authorization') !== token) return Response.json({ Code: 'AccessDeniedException', Message: 'invalid token' }, { status: 401 });
      if (url.pathname !== path) return Response.json({ Code: 'NotFound', Message: 'no such path' }, { status: 404 });
      return Response.json({
        AccessKeyId: credentials.accessKeyId,
        SecretAccessKey: credentials.secretAccessKey,
        Token: credentials.sessionToken,
        AccountId: ACCOUNT,
        Expiration: credentials.expiration.toISOString().replace(/\.\d+Z$/, 'Z'),
      });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}${path}`,
    token,
    requests,
    async stop() {
      await server.stop(true);
    },
  };
}
