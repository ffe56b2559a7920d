// Human output helpers: colour only on a terminal (and never with NO_COLOR), tables, and the one
// place that turns an error into the text a user reads.
import { DsoError } from '../errors.ts';
import type { Cli, Output } from './context.ts';

export function useColor(out: Output, env: Cli['env']): boolean {
  return out.isTTY && !env.NO_COLOR && env.TERM !== 'dumb';
}

const paint = (code: string) => (s: string, on: boolean) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
export const red = paint('31');
export const yellow = paint('33');
export const green = paint('32');
export const bold = paint('1');
export const dim = paint('2');

export function warn(cli: Cli, message: string): void {
  cli.stderr.write(`${yellow('warning:', useColor(cli.stderr, cli.env))} ${message}\n`);
}

export function info(cli: Cli, message: string): void {
  cli.stderr.write(`${message}\n`);
}

/** Formats any thrown value for the user. Unknown errors keep only their message: no stack, no cause chain. */
export function formatError(cli: Cli, e: unknown): { text: string; exitCode: number } {
  const color = useColor(cli.stderr, cli.env);
  if (e instanceof DsoError) {
    const hint = e.hint ? `\n  ${dim('hint:', color)} ${e.hint}` : '';
    return { text: `${red('error:', color)} ${e.message}${hint}\n`, exitCode: e.exitCode };
  }
  const message = e instanceof Error ? e.message : String(e);
  const debug = cli.env.DSO_DEBUG && e instanceof Error && e.stack ? `\n${e.stack}` : '';
  return {
    text: `${red('error:', color)} unexpected failure: ${message}${debug}\n  ${dim('hint:', color)} this is a bug in DSO; rerun with DSO_DEBUG=1 and report it\n`,
    exitCode: 1,
  };
}

export function table(rows: string[][], headers: string[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}
