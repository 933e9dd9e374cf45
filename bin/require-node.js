// Plain JavaScript, so that it runs (and explains) even on a Node too old to strip TypeScript types.

/** The oldest Node the project runs on (package.json "engines"): type stripping without a flag, and what the code uses. */
export const MINIMUM_NODE = '22.19';

/** Whether `version` (process.versions.node) is at least MINIMUM_NODE. */
export function nodeIsRecentEnough(version) {
  const [major, minor] = version.split('.').map(Number);
  const [needMajor, needMinor] = MINIMUM_NODE.split('.').map(Number);
  return major > needMajor || (major === needMajor && minor >= needMinor);
}

/** Exits at once with a message naming `what` and how to run it on the project's Node, when this Node is too old. */
export function requireNode(what, advice) {
  if (nodeIsRecentEnough(process.versions.node)) return;
  process.stderr.write(`${what}: needs Node ${MINIMUM_NODE} or later (24 LTS recommended); this is Node ${process.versions.node} at ${process.execPath}.\n${advice}\n`);
  process.exit(2);
}
