import { describe, expect, test } from 'vitest';
import { applyMergePatch, type JsonValue } from '../../orchestrator/platform/platform.ts';

describe('applyMergePatch (RFC 7386)', () => {
  // RFC 7386, Appendix A: every example, target, patch and result.
  const EXAMPLES: Array<[JsonValue, JsonValue, JsonValue]> = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];

  test.each(EXAMPLES)('%j patched with %j is %j', (target, patch, expected) => {
    const before = structuredClone(target);
    expect(applyMergePatch(target, patch)).toEqual(expected);
    expect(target).toEqual(before);
  });

  test('labels: null removes a key, a string sets it, other keys stay', () => {
    const labels = { app: 'relay', 'relayctl.dev/restore': 'true' };
    expect(applyMergePatch(labels, { 'relayctl.dev/restore': null, 'relayctl.dev/serving': 'true' })).toEqual({
      app: 'relay',
      'relayctl.dev/serving': 'true',
    });
    expect(applyMergePatch(labels, { absent: null })).toEqual(labels);
    expect(labels).toEqual({ app: 'relay', 'relayctl.dev/restore': 'true' });
  });

  test('a "__proto__" key from a parsed request is an ordinary key, never a prototype', () => {
    const patch = JSON.parse('{"__proto__": {"polluted": "yes"}, "a": "b"}') as Record<string, string | null>;
    const merged = applyMergePatch({}, patch) as Record<string, unknown>;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.keys(merged).sort()).toEqual(['__proto__', 'a']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
