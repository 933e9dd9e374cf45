import type { UpdateStatus } from '../../orchestrator/index.ts';
import { formatDuration } from '../../lib/duration.ts';
import { table } from './format.ts';
import type { Style } from './style.ts';

/** `relayctl status` in text: the update record, the lock, the sets and a row per pod. */
export function statusLines(status: UpdateStatus, style: Style, now: number): string[] {
  const lines = [`${style.bold(`fleet ${status.name}`)} on ${status.platform}`];
  const record = status.update;
  if (status.recordError !== null) {
    lines.push(`update  ${style.bad('record unreadable')}: ${status.recordError.message}`);
  } else if (record === null) {
    lines.push('update  none recorded');
  } else {
    const phase = record.phase === 'Completed' ? style.ok(record.phase) : record.phase === 'Failed' ? style.bad(record.phase) : style.warn(record.phase);
    const where = status.inProgress ? `, ${record.direction} at step ${record.step}` : '';
    lines.push(`update  ${record.id}: ${record.from} (${record.fromImage}) -> ${record.to} (${record.image}), ${phase}${where}, by ${record.owner}`);
    if (record.failure !== null) lines.push(`        failure at step ${record.failure.step}: ${record.failure.message} (${record.failure.code})`);
  }
  lines.push(status.lock === null ? 'lock    free' : `lock    held by ${status.lock.owner}, expires in ${formatDuration(Math.max(0, status.lock.expiresAt - now), 1000)}`);
  if (status.sets.length === 0) {
    lines.push('', style.warn(`neither ${status.name}-a nor ${status.name}-b exists`));
    return lines;
  }
  lines.push('');
  const sets = [['SET', 'IMAGE', 'REPLICAS', 'READY'].map((cell) => style.dim(cell))];
  for (const { set, pods } of status.sets) {
    sets.push([set.name, set.image, String(set.replicas), `${pods.filter((pod) => pod.ready).length}/${set.replicas}`]);
  }
  lines.push(...table(sets));
  lines.push('');
  const pods = [['POD', 'PHASE', 'READY', 'RELAY', 'SESSIONS', 'FORWARDED', 'LABELS'].map((cell) => style.dim(cell))];
  for (const { pods: setPods, relays } of status.sets) {
    for (const pod of setPods) {
      const relay = relays?.[pod.name] ?? null;
      pods.push([
        pod.name,
        pod.phase,
        pod.ready ? style.ok('yes') : style.warn('no'),
        relay === null ? style.dim('unreachable') : relay.state,
        relay === null ? '' : String(relay.sessions),
        relay === null ? '' : String(relay.forwardedDatagrams),
        pod.labels['restore'] === undefined ? '' : `restore=${pod.labels['restore']}`,
      ]);
    }
  }
  lines.push(...table(pods, { right: [4, 5] }));
  if (record !== null) {
    const moved = Object.entries(record.direction === 'rollback' ? record.handedBack : record.handedOver);
    if (moved.length > 0) {
      lines.push('', record.direction === 'rollback' ? 'handed back' : 'handed over');
      for (const [ordinal, entry] of moved.sort(([x], [y]) => Number(x) - Number(y))) {
        lines.push(`  ordinal ${ordinal}: ${entry.state === 'done' ? `${entry.sessions ?? '?'} sessions` : style.warn('in flight')} ${entry.source} -> ${entry.target}`);
      }
    }
    if (record.conditions.length > 0) {
      lines.push('');
      lines.push(...table(record.conditions.map((condition) => [condition.type, condition.status, condition.reason, condition.message])));
    }
  }
  return lines;
}

/** One line for watching off a terminal: printed again only when it changes. */
export function statusSummary(status: UpdateStatus): string {
  const parts: string[] = [];
  for (const { set, pods, relays } of status.sets) {
    const label = set.name.startsWith(`${status.name}-`) ? set.name.slice(status.name.length + 1) : set.name;
    const ready = pods.filter((pod) => pod.ready).length;
    const sessions = pods.reduce((sum, pod) => sum + (relays?.[pod.name]?.sessions ?? 0), 0);
    parts.push(`${label}: ${ready === set.replicas ? `${ready} ready` : `${ready} of ${set.replicas} ready`}, ${sessions} sessions`);
  }
  const record = status.update;
  if (record !== null) {
    parts.push(status.inProgress ? `update ${record.phase}: ${record.direction} at step ${record.step}` : `last update ${record.phase}`);
  }
  if (status.lock !== null) parts.push(`lock held by ${status.lock.owner}`);
  return parts.join('  ');
}
