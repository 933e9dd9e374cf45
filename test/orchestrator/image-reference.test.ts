import { describe, expect, test } from 'vitest';
import { Reason } from '../../orchestrator/index.ts';
import { Scenario } from '../fakes/platform.ts';

describe('an image that is not a valid reference', () => {
  test('is refused by the update spec before anything is touched, on any platform', async () => {
    const s = new Scenario();
    const result = await s.update({ image: 'Registry.io/Relay:2' });
    expect(result).toMatchObject({ code: 'refused', reason: Reason.InvalidSpec });
    expect(result.code === 'refused' && result.message).toBe('image: "Registry.io/Relay:2" is not a valid image reference: the repository name "Registry.io/Relay" must be lowercase');
    expect(s.cluster.log()).toEqual([]);
  });
});
