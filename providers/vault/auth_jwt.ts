// JWT auth: a JWT from an identity provider (a CI system's OIDC token, say), exchanged for a
// Vault token at auth/<mount>/login. Read at each login, so a refreshed token is used.
import { callOptions, type VaultApi } from './api.ts';
import { readCredential } from './credentials.ts';
import { loginWith, type AuthMethod } from './login.ts';
import type { VaultAuthConfig } from './config.ts';

type JwtConfig = Extract<VaultAuthConfig, { method: 'jwt' }>;

export function jwtAuth(config: JwtConfig, api: VaultApi, env: Readonly<Record<string, string>>): AuthMethod {
  return {
    describe: `the JWT login at auth/${config.mount} (role ${config.role})`,
    canReplace: true,
    loginBeforeExpiry: true,
    obtain(signal) {
      const jwt = readCredential(config.jwt_env !== undefined ? { env: config.jwt_env, key: 'jwt_env' } : { file: config.jwt_file!, key: 'jwt_file' }, env, 'the JWT');
      return loginWith(`logging in to Vault with JWT auth at auth/${config.mount} as role ${config.role}`, [jwt], () =>
        api.jwtLogin({ mount_point: config.mount, role: config.role, jwt, requestOptions: callOptions(undefined, signal) }),
      );
    },
  };
}
