// Hidden input from the controlling terminal (/dev/tty, like ssh and gpg), so stdin stays free
// for piped secret values. Echo is turned off with stty and always restored, Ctrl-C included.
import { closeSync, openSync, read, writeSync } from 'node:fs';
import { DsoError } from '../errors.ts';

export function hasTty(): boolean {
  try {
    closeSync(openSync('/dev/tty', 'r+'));
    return true;
  } catch {
    return false;
  }
}

const STTY_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' };

function stty(fd: number, arg: string): void {
  Bun.spawnSync(['stty', arg], { stdin: fd, stdout: 'ignore', stderr: 'ignore', env: STTY_ENV });
}

/**
 * Asks on the terminal with echo off and returns the line typed, as bytes without the newline.
 * The caller owns (and wipes) the result.
 */
export async function promptHidden(question: string): Promise<Uint8Array> {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    throw new DsoError('PASSPHRASE_REQUIRED', 'no terminal to ask on', {
      hint: 'set DSO_PASSPHRASE or pass --passphrase-file FILE',
    });
  }
  const onSignal = () => {
    stty(fd, 'echo');
    process.stderr.write('\n');
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // Echo goes off before the prompt appears, so keys typed the instant it shows stay hidden.
    stty(fd, '-echo');
    writeSync(fd, question); // the prompt goes to the terminal, not to redirected output
    const line = await readLine(fd);
    writeSync(fd, '\n');
    return line;
  } finally {
    stty(fd, 'echo');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    closeSync(fd);
  }
}

/** Asks on the terminal with echo on (a yes/no question); not for secrets. */
export async function promptLine(question: string): Promise<string> {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    return '';
  }
  try {
    writeSync(fd, question);
    return new TextDecoder().decode(await readLine(fd));
  } finally {
    closeSync(fd);
  }
}

const MAX_LINE = 1 << 20;

async function readLine(fd: number): Promise<Uint8Array> {
  let buf = new Uint8Array(256);
  let len = 0;
  const chunk = new Uint8Array(256);
  try {
    for (;;) {
      const n = await new Promise<number>((resolve, reject) =>
        read(fd, chunk, 0, chunk.length, null, (err, bytes) => (err ? reject(err) : resolve(bytes))),
      );
      if (n === 0) break; // EOF (Ctrl-D)
      const nl = chunk.subarray(0, n).indexOf(0x0a);
      const take = nl === -1 ? n : nl;
      if (len + take > buf.length) {
        if (len + take > MAX_LINE) throw new DsoError('USAGE', 'input line too long (over 1 MiB)');
        const bigger = new Uint8Array(Math.max(buf.length * 2, len + take));
        bigger.set(buf.subarray(0, len));
        buf.fill(0);
        buf = bigger;
      }
      buf.set(chunk.subarray(0, take), len);
      len += take;
      if (nl !== -1) break;
    }
    if (len > 0 && buf[len - 1] === 0x0d) len--;
    return buf.slice(0, len);
  } finally {
    buf.fill(0);
    chunk.fill(0);
  }
}
