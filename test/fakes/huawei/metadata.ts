// A fake ECS instance metadata service (http://169.254.169.254) for the `metadata` auth method:
// PUT /meta-data/latest/api/token (X-Metadata-Token-Ttl-Seconds) gives a session token,
// GET /openstack/latest/securitykey gives the agency's temporary credentials as
// {"credential": {"access", "secret", "securitytoken", "expires_at"}}, as Huawei's Go SDK reads
// them (core/auth/internal/metadata_accessor.go). Each credential it hands out is registered with
// the CSMS fake, with its token and expiry, so signed calls with it pass there.
import type { CsmsFake } from './csms.ts';

export interface MetadataFake {
  url: string;
  /** GETs of the security key answered with credentials. */
  issued: number;
  /** The credentials handed out last. */
  current?: { access: string; secret: string; securitytoken: string; expiresAt: number };
  /** Whether a session token is required (the token API is then served; else it answers 404). */
  setRequireToken(required: boolean): void;
  /** No agency attached to the instance: 401 with the SDK's "Please configure Cloud Service Agency first". */
  setAgency(attached: boolean): void;
  /** Lifetime of the credentials handed out from now on. */
  setLifetime(ms: number): void;
  /** Makes the credentials handed out last stop working at CSMS (as if they expired early). */
  expireCurrent(): void;
  stop(): Promise<void>;
}

export function startMetadataFake(csms: CsmsFake): MetadataFake {
  let requireToken = true;
  let agency = true;
  let lifetime = 60 * 60_000;
  const tokens = new Set<string>();
  let n = 0;
  const fake = { issued: 0 } as MetadataFake;
  const random = (chars: string, length: number) => Array.from(crypto.getRandomValues(new Uint8Array(length)), (b) => chars[b % chars.length]).join('');

  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === '/meta-data/latest/api/token' && req.method === 'PUT') {
        if (!requireToken) return new Response('Not Found', { status: 404 });
        const ttl = Number(req.headers.get('x-metadata-token-ttl-seconds'));
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return new Response('Bad Request', { status: 400 });
        const token = random('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 56);
        tokens.add(token);
        return new Response(token, { status: 200 });
      }
      if (url.pathname === '/openstack/latest/securitykey' && req.method === 'GET') {
        if (requireToken && !tokens.has(req.headers.get('x-metadata-token') ?? '')) return new Response('Unauthorized', { status: 401 });
        if (!agency) return new Response(JSON.stringify({ error: 'Please configure Cloud Service Agency first' }), { status: 401 });
        const access = `TMP${random('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', 17)}`;
        const secret = random('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 40);
        const securitytoken = `gQpjbi1ub3J0aC00${random('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 300)}`;
        const expiresAt = Date.now() + lifetime;
        csms.addCredential({ ak: access, sk: secret, securityToken: securitytoken, expiresAt });
        fake.current = { access, secret, securitytoken, expiresAt };
        fake.issued = ++n;
        // expires_at with microseconds, as the service writes it.
        const expires_at = new Date(expiresAt).toISOString().replace('Z', '000Z');
        return new Response(JSON.stringify({ credential: { access, secret, securitytoken, expires_at } }), { status: 200, headers: { 'content-type': 'application/json' } });
      }
      return new Response('Not Found', { status: 404 });
    },
  });

  Object.assign(fake, {
    url: `http://127.0.0.1:${server.port}`,
    setRequireToken: (r: boolean) => {
      requireToken = r;
    },
    setAgency: (a: boolean) => {
      agency = a;
    },
    setLifetime: (ms: number) => {
      lifetime = ms;
    },
    expireCurrent() {
      const c = fake.current;
      if (c) csms.addCredential({ ak: c.access, sk: c.secret, securityToken: c.securitytoken, expiresAt: Date.now() - 1000 });
    },
    async stop() {
      await server.stop(true);
    },
  });
  return fake;
}
