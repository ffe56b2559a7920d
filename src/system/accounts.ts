// Users and groups of the host as /etc/passwd and /etc/group list them, read without spawning
// anything (`getent` would also ask NSS; system accounts that setup needs are local files).
import { existsSync, readFileSync } from 'node:fs';

export interface Accounts {
  users: Map<string, { uid: number; gid: number }>;
  /** Group name -> gid and the members listed in /etc/group. */
  groups: Map<string, { gid: number; members: string[] }>;
}

export function readAccounts(passwdFile: string, groupFile: string): Accounts {
  const users = new Map<string, { uid: number; gid: number }>();
  const groups = new Map<string, { gid: number; members: string[] }>();
  for (const line of lines(passwdFile)) {
    const [name, , uid, gid] = line.split(':');
    if (name && uid !== undefined && gid !== undefined) users.set(name, { uid: Number(uid), gid: Number(gid) });
  }
  for (const line of lines(groupFile)) {
    const [name, , gid, members] = line.split(':');
    if (name && gid !== undefined) groups.set(name, { gid: Number(gid), members: (members ?? '').split(',').filter(Boolean) });
  }
  return { users, groups };
}

export function groupNameOf(accounts: Accounts, gid: number): string | undefined {
  for (const [name, g] of accounts.groups) if (g.gid === gid) return name;
  return undefined;
}

export function userNameOf(accounts: Accounts, uid: number): string | undefined {
  for (const [name, u] of accounts.users) if (u.uid === uid) return name;
  return undefined;
}

function lines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
}

/**
 * useradd's arguments for the agent's system user: no home, no login, a group of the same name
 * (created with it, or the existing one: an admin may have made it first, as the socket's group).
 */
export function useraddArgs(user: string, shell: string, groupExists: boolean): string[] {
  return ['useradd', '--system', ...(groupExists ? ['--gid', user] : ['--user-group']), '--no-create-home', '--home-dir', '/nonexistent', '--shell', shell, '--comment', 'DSO agent', user];
}
