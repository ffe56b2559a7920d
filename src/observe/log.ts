// Structured logs: one JSON object per line (or readable text), with a level, a message, a
// timestamp and fields, every line passed through the Redactor before it is written.
import type { Redactor } from './redact.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines all carry `fields` (a component, a provider name). */
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level: Level;
  format: 'json' | 'text';
  redactor: Redactor;
  write(line: Uint8Array): void;
  now?: () => Date;
}

export function createLogger(options: LoggerOptions, base: Record<string, unknown> = {}): Logger {
  const now = options.now ?? (() => new Date());
  const emit = (level: Level, msg: string, fields: Record<string, unknown> = {}) => {
    if (ORDER[level] < ORDER[options.level]) return;
    const safe = options.redactor.fields({ ...base, ...fields });
    const message = (options.redactor.fields({ msg }) as { msg: string }).msg;
    const ts = now().toISOString();
    const text =
      options.format === 'json'
        ? JSON.stringify({ level, msg: message, ts, ...safe })
        : `${ts} ${level.toUpperCase().padEnd(5)} ${message}${Object.entries(safe)
            .map(([k, v]) => ` ${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`)
            .join('')}`;
    options.write(options.redactor.line(`${text}\n`));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}
