import { describe, expect, test } from 'vitest';
import { serverSideApply, updateManagedFields } from '../support/kube-apiserver/apply.ts';
import { StatusError } from '../support/kube-apiserver/errors.ts';
import { decodeJsonPatch, jsonPatch, mergePatch, strategicMergePatch } from '../support/kube-apiserver/patch.ts';
import type { KubeObject } from '../support/kube-apiserver/resources.ts';
import { formatSelector, matchesAll, parseLabelSelector } from '../support/kube-apiserver/selectors.ts';

function statusOf(fn: () => unknown): { code: number; reason: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (error instanceof StatusError) return { code: error.code, reason: error.reason, message: error.message };
    throw error;
  }
  throw new Error('expected a StatusError');
}

describe('label selectors', () => {
  const labels = { app: 'relay', tier: 'edge', 'relayctl.dev/set': 'relay-a' };

  test.each([
    ['app=relay', true],
    ['app==relay', true],
    ['app!=relay', false],
    ['app!=other', true],
    ['missing!=x', true],
    ['app in (relay,echo)', true],
    ['app in (echo)', false],
    ['app notin (echo)', true],
    ['missing notin (echo)', true],
    ['app', true],
    ['missing', false],
    ['!missing', true],
    ['!app', false],
    ['app=relay,tier in (edge, core),!canary', true],
    ['relayctl.dev/set=relay-a', true],
    ['relayctl.dev/set in (relay-b)', false],
    ['', true],
  ])('%j matches: %s', (selector, expected) => {
    expect(matchesAll(parseLabelSelector(selector), labels)).toBe(expected);
  });

  test('a malformed selector is a 400 naming it', () => {
    expect(statusOf(() => parseLabelSelector('app=(x'))).toMatchObject({ code: 400, reason: 'BadRequest' });
    expect(statusOf(() => parseLabelSelector('app in ()')).message).toContain("values set can't be empty");
    expect(statusOf(() => parseLabelSelector('bad key=x')).code).toBe(400);
  });

  test('a LabelSelector prints as kubectl shows it', () => {
    expect(formatSelector({ matchLabels: { a: 'b' }, matchExpressions: [{ key: 'c', operator: 'In', values: ['y', 'x'] }, { key: 'd', operator: 'DoesNotExist' }] })).toBe(
      'a=b,c in (x,y),!d',
    );
  });
});

describe('patches', () => {
  const doc = { metadata: { name: 'x', labels: { a: '1', b: '2' } }, spec: { list: [1, 2], keep: true } };

  test('merge patch: objects merge, null deletes, lists are replaced', () => {
    expect(mergePatch(doc, { metadata: { labels: { a: null, c: '3' } }, spec: { list: [3] } })).toEqual({
      metadata: { name: 'x', labels: { b: '2', c: '3' } },
      spec: { list: [3], keep: true },
    });
  });

  test('JSON patch: add, replace, remove, move, copy and test', () => {
    const out = jsonPatch(doc, decodeJsonPatch([
      { op: 'test', path: '/metadata/name', value: 'x' },
      { op: 'add', path: '/metadata/labels/relayctl.dev~1restore', value: 'true' },
      { op: 'replace', path: '/spec/keep', value: false },
      { op: 'remove', path: '/metadata/labels/a' },
      { op: 'add', path: '/spec/list/-', value: 9 },
      { op: 'copy', from: '/spec/list/0', path: '/spec/first' },
      { op: 'move', from: '/spec/first', path: '/spec/moved' },
    ]));
    expect(out).toEqual({ metadata: { name: 'x', labels: { b: '2', 'relayctl.dev/restore': 'true' } }, spec: { list: [1, 2, 9], keep: false, moved: 1 } });
    expect(doc.metadata.labels).toEqual({ a: '1', b: '2' });
  });

  test('JSON patch: a failed test or a missing path is a 422, a non-list body a 400', () => {
    expect(statusOf(() => jsonPatch(doc, decodeJsonPatch([{ op: 'test', path: '/metadata/name', value: 'y' }])))).toMatchObject({
      code: 422,
      reason: 'Invalid',
    });
    expect(statusOf(() => jsonPatch(doc, decodeJsonPatch([{ op: 'remove', path: '/nope/x' }]))).code).toBe(422);
    expect(statusOf(() => decodeJsonPatch({ metadata: { labels: { a: 'b' } } }))).toEqual({
      code: 400,
      reason: 'BadRequest',
      message: 'json: cannot unmarshal object into Go value of type jsonpatch.Patch',
    });
  });

  test('strategic merge patch merges containers by name, env by name, finalizers as a set, and honours $patch', () => {
    const pod = {
      metadata: { finalizers: ['a'] },
      spec: { containers: [{ name: 'relay', image: 'r:1', env: [{ name: 'A', value: '1' }] }, { name: 'side', image: 's:1' }] },
    };
    const out = strategicMergePatch(pod, {
      metadata: { finalizers: ['b'] },
      spec: { containers: [{ name: 'relay', image: 'r:2', env: [{ name: 'B', value: '2' }] }, { name: 'side', $patch: 'delete' }] },
    });
    expect(out).toEqual({
      metadata: { finalizers: ['a', 'b'] },
      spec: { containers: [{ name: 'relay', image: 'r:2', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] }] },
    });
  });
});

describe('field ownership and server-side apply', () => {
  const time = '2026-01-01T00:00:00Z';
  const base = (replicas: number, image = 'relay:1'): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'relay-a', labels: { app: 'relay' } },
    spec: { replicas, template: { spec: { containers: [{ name: 'relay', image }] } } },
  });

  test('an apply owns what it applied; another manager changing one of those fields conflicts, force takes it', () => {
    const created = serverSideApply(undefined, base(3), { manager: 'deploy', subresource: '', apiVersion: 'apps/v1', time, force: false });
    expect(created.metadata.managedFields).toEqual([
      expect.objectContaining({
        manager: 'deploy',
        operation: 'Apply',
        fieldsV1: {
          'f:metadata': { 'f:labels': { 'f:app': {} } },
          'f:spec': { 'f:replicas': {}, 'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"relay"}': { '.': {}, 'f:image': {}, 'f:name': {} } } } } },
        },
      }),
    ]);
    // relayctl scales with an Update: it takes spec.replicas over.
    const scaled = { ...structuredClone(created), spec: { ...(created.spec as object), replicas: 5 } } as KubeObject;
    scaled.metadata.managedFields = updateManagedFields(created, scaled, { manager: 'relayctl', subresource: '', apiVersion: 'apps/v1', time });
    const again = () => serverSideApply(scaled, base(3, 'relay:2'), { manager: 'other', subresource: '', apiVersion: 'apps/v1', time, force: false });
    const conflict = statusOf(again);
    expect(conflict.code).toBe(409);
    expect(conflict.message).toBe(
      'Apply failed with 2 conflicts: conflicts with "deploy":\n- .spec.template.spec.containers[name="relay"].image\n' +
        `conflicts with "relayctl" using apps/v1 at ${time}:\n- .spec.replicas`,
    );
    const forced = serverSideApply(scaled, base(3, 'relay:2'), { manager: 'other', subresource: '', apiVersion: 'apps/v1', time, force: true });
    expect((forced.spec as { replicas: number }).replicas).toBe(3);
  });

  test('a field the applier stops applying is removed unless another manager owns it', () => {
    const first = serverSideApply(undefined, { ...base(3), metadata: { name: 'relay-a', labels: { app: 'relay', old: 'yes' } } }, {
      manager: 'deploy',
      subresource: '',
      apiVersion: 'apps/v1',
      time,
      force: false,
    });
    const second = serverSideApply(first, base(3), { manager: 'deploy', subresource: '', apiVersion: 'apps/v1', time, force: false });
    expect(second.metadata.labels).toEqual({ app: 'relay' });
  });
});
