// A fake AWS IAM Identity Center (SSO) portal for tests: GetRoleCredentials, the one call the
// SDK's SSO credential provider makes, as the Portal API reference documents it, and a writer
// for the token cache that `aws sso login` leaves in ~/.aws/sso/cache. Point the SDK at it with
// AWS_ENDPOINT_URL_SSO.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SessionKeys } from './moto.ts';

export interface SsoPortal {
  /** The value for AWS_ENDPOINT_URL_SSO. */
  url: string;
  /** The access token `aws sso login` would have cached. */
  accessToken: string;
  accountId: string;
  roleName: string;
  readonly requests: number;
  stop(): Promise<void>;
}

/** Serves `credentials` for role `roleName` in `accountId` to holders of its access token. */
export function startSsoPortal(credentials: SessionKeys, options: { accountId?: string; roleName?: string } = {}): SsoPortal {
  const accessToken = `sso-access-token-${randomBytes(16).toString('hex')}`;
  const accountId = options.accountId ?? '123456789012';
  const roleName = options.roleName ?? 'DsoReader';
  let requests = 0;
  const error = (status: number, type: string, message: string) =>
    Response.json({ message }, { status, headers: { 'x-amzn-errortype': type, 'x-amzn-requestid': crypto.randomUUID() } });
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      requests++;
      const url = new URL(req.url);
      if (req.method !== 'GET' || url.pathname !== '/federation/credentials') return error(404, 'ResourceNotFoundException', 'unknown operation');
      if (req.headers.get('x-amz-sso_bearer_token') !== accessToken) return error(401, 'UnauthorizedException', 'Session token not found or invalid');
      if (url.searchParams.get('account_id') !== accountId || url.searchParams.get('role_name') !== roleName) {
        return error(403, 'ForbiddenException', 'No access');
      }
      return Response.json({
        roleCredentials: {
          accessKeyId: credentials.accessKeyId,
          secretAccessKey: credentials.secretAccessKey,
          sessionToken: credentials.sessionToken,
          expiration: credentials.expiration.getTime(),
        },
      });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    accessToken,
    accountId,
    roleName,
    get requests() {
      return requests;
    },
    async stop() {
      await server.stop(true);
    },
  };
}

/**
 * Writes the token cache file of a legacy SSO profile (sso_start_url in the profile) under
 * `home`, as `aws sso login` does: ~/.aws/sso/cache/SHA1(start url).json.
 */
export function writeSsoTokenCache(home: string, startUrl: string, region: string, accessToken: string, expiresAt: Date): void {
  const dir = join(home, '.aws', 'sso', 'cache');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `${createHash('sha1').update(startUrl).digest('hex')}.json`;
  writeFileSync(join(dir, name), JSON.stringify({ startUrl, region, accessToken, expiresAt: expiresAt.toISOString().replace(/\.\d+Z$/, 'Z') }), { mode: 0o600 });
}
