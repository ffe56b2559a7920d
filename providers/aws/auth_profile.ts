// `auth: { method: profile }`: a named profile of the shared AWS files, resolved by the SDK
// (static keys, assume role, credential_process, web identity, IAM Identity Center). The files
// (found here for `method: sso` too) are the ones dso.yaml names, else those the provider's
// environment points at (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, HOME), never DSO's own.
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

export async function profileCredentials(auth: Extract<ProfileAuth, { method: 'profile' }>, env: Readonly<Record<string, string>>): Promise<AwsCredentialIdentityProvider> {
  const { fromIni } = await import('@aws-sdk/credential-providers');
  return fromIni({ profile: auth.profile, ...sharedFiles(auth, env), ignoreCache: true });
}
