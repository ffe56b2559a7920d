// The process wire format: values as raw bytes, frames split anywhere, malformed streams refused.
import { expect, test } from 'bun:test';
import { encodeFrame, FrameDecoder, FrameError } from '../../../src/providers/frames.ts';

test('a message with a value survives any chunking, and the bytes are not in the JSON', () => {
  const value = new Uint8Array(70_000).map((_, i) => i % 251);
  const frames = new Uint8Array([...encodeFrame({ type: 'value', id: 1, value, version: '3' }), ...encodeFrame({ type: 'log', level: 'info', message: 'hi' })]);
  for (const size of [1, 7, 4096, frames.length]) {
    const d = new FrameDecoder();
    const got: Array<Record<string, unknown>> = [];
    for (let i = 0; i < frames.length; i += size) got.push(...d.push(frames.subarray(i, i + size)));
    expect(got.length).toBe(2);
    expect(got[0]!.type).toBe('value');
    expect(got[0]!.version).toBe('3');
    expect(got[0]!.value).toEqual(value);
    expect(got[0]!.$bytes).toBeUndefined();
    expect(got[1]).toEqual({ type: 'log', level: 'info', message: 'hi' });
  }
});

test('malformed streams are refused', () => {
  const bad = new Uint8Array([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]);
  expect(() => new FrameDecoder().push(bad)).toThrow(FrameError);
  const huge = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
  expect(() => new FrameDecoder().push(huge)).toThrow(FrameError);
  const notObject = encodeFrame({ x: 1 });
  const arr = new TextEncoder().encode('[1]');
  const frame = new Uint8Array(4 + arr.length);
  new DataView(frame.buffer).setUint32(0, arr.length);
  frame.set(arr, 4);
  expect(() => new FrameDecoder().push(frame)).toThrow('not an object');
  expect(new FrameDecoder().push(notObject)).toEqual([{ x: 1 }]);
});
