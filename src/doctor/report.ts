// The doctor's report: its JSON form (a stable, versioned schema that provisioning scripts read;
// documented in docs/doctor.md, and checked against this valibot schema by the tests) and the
// text a person reads.
import * as v from 'valibot';
import type { ModeDecision } from '../config/mode.ts';
import { VERSION } from '../version.ts';
import type { CheckResult, Level } from './checks.ts';

export const DOCTOR_SCHEMA_ID = 'dso.doctor/v1';

const status = v.picklist(['pass', 'warn', 'fail', 'skip']);

export const doctorReportSchema = v.strictObject({
  schema: v.literal(DOCTOR_SCHEMA_ID),
  version: v.string(),
  level: v.picklist(['basic', 'full']),
  mode: v.nullable(v.picklist(['local', 'cloud'])),
  /** True when no check failed (warnings allowed): the exit code is 0 exactly then. */
  ok: v.boolean(),
  summary: v.strictObject({ pass: v.number(), warn: v.number(), fail: v.number(), skip: v.number() }),
  checks: v.array(
    v.strictObject({
      id: v.pipe(v.string(), v.regex(/^[a-z]+(\.[a-z0-9_-]+)*$/)),
      title: v.string(),
      status,
      detail: v.string(),
      fix: v.optional(v.string()),
    }),
  ),
});

export type DoctorReport = v.InferOutput<typeof doctorReportSchema>;

export function buildReport(level: Level, mode: ModeDecision | undefined, checks: CheckResult[]): DoctorReport {
  const summary = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.status]++;
  return { schema: DOCTOR_SCHEMA_ID, version: VERSION, level, mode: mode?.mode ?? null, ok: summary.fail === 0, summary, checks };
}

const MARK: Record<CheckResult['status'], string> = { pass: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

export function renderReport(r: DoctorReport, paint: (status: CheckResult['status'], text: string) => string): string {
  const width = Math.max(...r.checks.map((c) => c.title.length));
  const lines = [`DSO ${r.version} doctor, ${r.level} checks${r.mode ? `, ${r.mode} mode` : ''}`, ''];
  for (const c of r.checks) {
    lines.push(`  ${paint(c.status, `[${MARK[c.status]}]`)} ${c.title.padEnd(width)}  ${c.detail}`);
    if (c.fix && (c.status === 'fail' || c.status === 'warn')) lines.push(`  ${' '.repeat(7)}${' '.repeat(width)}  fix: ${c.fix}`);
  }
  const { pass, warn, fail, skip } = r.summary;
  lines.push('', `${fail} failed, ${warn} warning${warn === 1 ? '' : 's'}, ${pass} passed, ${skip} skipped.${r.level === 'basic' ? ' Run with --level full to log in to providers and test RAM-backed storage.' : ''}`);
  return `${lines.join('\n')}\n`;
}
