// Turning valibot issues into dso.yaml problems: the key path and a message that never quotes the
// value found (valibot's default messages do, and a misplaced secret must not be printed).
import type * as v from 'valibot';

/** The issue messages a config check reports: never built from the value (valibot's defaults are). */
export function issueProblems(issues: readonly v.BaseIssue<unknown>[], prefix: ReadonlyArray<string | number>): Array<{ keys: Array<string | number>; message: string }> {
  return issues.map((issue) => {
    const keys = [...prefix, ...(issue.path ?? []).map((p) => p.key as string | number)];
    return { keys, message: scrub(issue) };
  });
}

/** The default message for checks that have none of their own: what was expected, not what was found. */
export const SAFE_MESSAGES: v.Config<v.BaseIssue<unknown>> = {
  message: (issue) => (issue.expected ? `expected ${issue.expected}` : `invalid ${issue.kind}`),
};

/** A custom message is ours, but a schema author may still have interpolated the input: hide it. */
function scrub(issue: v.BaseIssue<unknown>): string {
  let message = issue.message;
  if (typeof issue.input === 'string' && issue.input.length >= 3) message = message.split(issue.input).join('[value hidden]');
  return message;
}

