// `auth: { method: profile | sso }`: a named profile of the shared AWS files, resolved by the SDK
// (static keys, assume role, credential_process, web identity, or IAM Identity Center for sso).
// The files are the ones dso.yaml names, else those the provider's environment points at
// (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, HOME), never DSO's own environment.
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { AwsAuthConfig } from './config.ts';

type ProfileAuth = Extract<AwsAuthConfig, { method: 'profile' | 'sso' }>;

export interface SharedFiles {
  configFilepath: string;
  filepath: string;
}

export function sharedFiles(auth: ProfileAuth, env: Readonly<Record<string, string>>): SharedFiles {
  const home = env.HOME || homedir();
  return {
    configFilepath: auth.config_file ?? (env.AWS_CONFIG_FILE || join(home, '.aws', 'config')),
    filepath: (auth.method === 'profile' ? auth.credentials_file : undefined) ?? (env.AWS_SHARED_CREDENTIALS_FILE || join(home, '.aws', 'credentials')),
  };
}

export async function profileCredentials(auth: ProfileAuth, env: Readonly<Record<string, string>>): Promise<AwsCredentialIdentityProvider> {
  const { fromIni, fromSSO } = await import('@aws-sdk/credential-providers');
  const files = sharedFiles(auth, env);
  // The SSO token cache (~/.aws/sso/cache) is found by the SDK from HOME in this Worker's or
  // process's environment, which DSO sets to the provider's own.
  return auth.method === 'sso' ? fromSSO({ profile: auth.profile, ...files }) : fromIni({ profile: auth.profile, ...files, ignoreCache: true });
}
