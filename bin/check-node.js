// Plain JavaScript, so that it runs (and explains) even on a Node too old to strip TypeScript types.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `${process.argv[1]}: needs Node 22.19 or later (24 LTS recommended); this is Node ${process.versions.node} at ${process.execPath}.\n` +
      'Run it through npm, which puts the project\'s own Node 24 first on PATH: npm run relayctl -- <args>, npm run relayd -- <args>, or npx relayctl.\n',
  );
  process.exit(2);
}
