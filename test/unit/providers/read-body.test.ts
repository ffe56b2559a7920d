// The capped body reader shared by the HTTP providers: the whole body in one buffer, refused from
// Content-Length or mid-stream when over the limit, and every chunk it read wiped either way.
import { expect, test } from 'bun:test';
import { BodyOverLimit, readBodyCapped } from '../../../src/providers/read-body.ts';

function streamed(chunks: Uint8Array[], headers: Record<string, string> = {}): Response {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]!);
      else controller.close();
    },
  });
  return new Response(body, { headers });
}

test('reads the whole body and wipes the chunks it came in', async () => {
  const chunks = [new TextEncoder().encode('secret-'), new TextEncoder().encode('value')];
  const body = await readBodyCapped(streamed(chunks), 100);
  expect(new TextDecoder().decode(body)).toBe('secret-value');
  for (const c of chunks) expect(c.every((b) => b === 0)).toBe(true);
});

test('refuses from Content-Length before reading, and mid-stream when there is none', async () => {
  const declared = await readBodyCapped(new Response('x'.repeat(50), { headers: { 'content-length': '50' } }), 10).catch((e) => e);
  expect(declared).toBeInstanceOf(BodyOverLimit);
  expect(declared.declared).toBe(50);
  const chunks = [new Uint8Array(8).fill(7), new Uint8Array(8).fill(7), new Uint8Array(8).fill(7)];
  const streamedOver = await readBodyCapped(streamed(chunks), 10).catch((e) => e);
  expect(streamedOver).toBeInstanceOf(BodyOverLimit);
  expect(streamedOver.declared).toBeUndefined();
  expect(chunks[0]!.every((b) => b === 0) && chunks[1]!.every((b) => b === 0)).toBe(true);
});

test('no body is empty bytes', async () => {
  expect((await readBodyCapped(new Response(null), 10)).length).toBe(0);
});
