// Running a plan, with a stand-in executor whose rotations end when the test says: a project's
// slow rotation holds up no other project (its later waves included), a project keeps its
// depends_on order, plans that share slots never run more than the concurrency together, a
// refused value spares the dependants of its own project only, and a stopping agent starts
// nothing new.
import { expect, test } from 'bun:test';
import type { RotationDeps, RotationOutcome } from '../../../src/rotation/execute.ts';
import type { ManagedContainer } from '../../../src/rotation/inventory.ts';
import type { PlannedRotation, RotationPlan } from '../../../src/rotation/plan.ts';
import { runPlan, Slots } from '../../../src/rotation/run.ts';

function planned(name: string, project: string, wave: number, ids = ['vault:app/x#v']): PlannedRotation {
  return { containerId: name, name, project, service: name, ids, requested: 'restart', strategy: 'restart', why: [], signal: 'SIGHUP', downtime: true, stopped: false, wave };
}

const containers = (plan: RotationPlan) => plan.rotations.map((r) => ({ id: r.containerId }) as ManagedContainer);
const deps = {} as RotationDeps;

/** An executor whose rotations each wait for the test to end them, and that records what ran when. */
function controlled() {
  const started: string[] = [];
  const ends = new Map<string, (status: RotationOutcome['status']) => void>();
  let running = 0;
  let most = 0;
  const execute = (r: PlannedRotation) =>
    new Promise<RotationOutcome>((resolve) => {
      started.push(r.name);
      running++;
      most = Math.max(most, running);
      ends.set(r.name, (status) => {
        running--;
        resolve({ rotation: `r-${r.name}`, container: r.name, strategy: r.strategy, status, durationMs: 1, ...(status === 'done' ? {} : { reason: 'not healthy' }) });
      });
    });
  const end = async (name: string, status: RotationOutcome['status'] = 'done') => {
    await until(() => ends.has(name));
    ends.get(name)!(status);
    ends.delete(name);
  };
  return { started, execute, end, most: () => most };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await Bun.sleep(1);
  expect(check()).toBe(true);
}

test("a slow rotation in one project holds up no other project, not even the other's later waves", async () => {
  const x = controlled();
  const plan: RotationPlan = { rotations: [planned('a-db', 'a', 0), planned('b-db', 'b', 0), planned('a-api', 'a', 1), planned('b-api', 'b', 1)], skipped: [] };
  const run = runPlan(deps, plan, containers(plan), { concurrency: 4, jitterMs: 0, execute: x.execute });
  await x.end('b-db');
  await x.end('b-api'); // b's second wave ran while a-db is still under way
  expect(x.started).toEqual(['a-db', 'b-db', 'b-api']);
  await x.end('a-db');
  await x.end('a-api');
  expect((await run).map((o) => o.container)).toEqual(['b-db', 'b-api', 'a-db', 'a-api']);
});

test('within a project, a container rotates only after every container of its earlier waves', async () => {
  const x = controlled();
  const plan: RotationPlan = { rotations: [planned('db', 'p', 0), planned('cache', 'p', 0), planned('api', 'p', 1), planned('web', 'p', 2)], skipped: [] };
  const run = runPlan(deps, plan, containers(plan), { concurrency: 4, jitterMs: 0, execute: x.execute });
  await x.end('db');
  await Bun.sleep(10);
  expect(x.started).toEqual(['db', 'cache']);
  await x.end('cache');
  await x.end('api');
  await x.end('web');
  expect(x.started).toEqual(['db', 'cache', 'api', 'web']);
  await run;
});

test('two plans sharing slots run no more rotations together than the concurrency', async () => {
  const x = controlled();
  const slots = new Slots(2);
  const one: RotationPlan = { rotations: [planned('a1', 'a', 0), planned('a2', 'a', 0)], skipped: [] };
  const two: RotationPlan = { rotations: [planned('b1', 'b', 0), planned('b2', 'b', 0)], skipped: [] };
  const runs = [runPlan(deps, one, containers(one), { concurrency: 2, jitterMs: 0, execute: x.execute, slots }), runPlan(deps, two, containers(two), { concurrency: 2, jitterMs: 0, execute: x.execute, slots })];
  await until(() => x.started.length === 2);
  await Bun.sleep(10);
  expect(x.started).toEqual(['a1', 'a2']);
  await x.end('a1');
  await until(() => x.started.length === 3);
  for (const name of ['a2', 'b1', 'b2']) await x.end(name);
  await Promise.all(runs);
  expect(x.most()).toBe(2);
});

test("a refused value is kept from the later waves of its own project, not from another project's", async () => {
  const x = controlled();
  const plan: RotationPlan = { rotations: [planned('a-db', 'a', 0), planned('b-db', 'b', 0), planned('a-api', 'a', 1), planned('b-api', 'b', 1)], skipped: [] };
  const run = runPlan(deps, plan, containers(plan), { concurrency: 4, jitterMs: 0, execute: x.execute });
  await x.end('a-db', 'rolled_back');
  await x.end('b-db');
  await x.end('b-api');
  const outcomes = await run;
  expect(outcomes.find((o) => o.container === 'a-api')).toMatchObject({ status: 'skipped', reason: 'not rotated: a-db refused the new value of vault:app/x#v' });
  expect(outcomes.find((o) => o.container === 'b-api')?.status).toBe('done');
});

test('once the agent stops, rotations not yet started are skipped; the one under way ends', async () => {
  const x = controlled();
  const stopping = new AbortController();
  const plan: RotationPlan = { rotations: [planned('db', 'p', 0), planned('api', 'p', 1)], skipped: [] };
  const run = runPlan(deps, plan, containers(plan), { concurrency: 4, jitterMs: 0, execute: x.execute, signal: stopping.signal });
  await until(() => x.started.length === 1);
  stopping.abort();
  await x.end('db');
  const outcomes = await run;
  expect(outcomes.map((o) => [o.container, o.status])).toEqual([
    ['db', 'done'],
    ['api', 'skipped'],
  ]);
  expect(outcomes[1]!.reason).toBe('not rotated: the agent is stopping');
  expect(x.started).toEqual(['db']);
});

test('an executor that throws ends as a failed outcome, and the plan goes on', async () => {
  const plan: RotationPlan = { rotations: [planned('a', 'a', 0), planned('b', 'b', 0)], skipped: [] };
  const outcomes = await runPlan(deps, plan, containers(plan), {
    concurrency: 1,
    jitterMs: 0,
    execute: async (r) => {
      if (r.name === 'a') throw new Error('could not take the lock');
      return { rotation: 'r', container: r.name, strategy: r.strategy, status: 'done', durationMs: 1 };
    },
  });
  expect(outcomes.map((o) => [o.container, o.status, o.reason])).toEqual([
    ['a', 'failed', 'could not take the lock'],
    ['b', 'done', undefined],
  ]);
});
