import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VERSION } from '../../relay/version.ts';
import { ExitCode } from '../exit-codes.ts';
import { colorEnabled } from '../io.ts';
import { jsonLine } from '../render/json.ts';
import { createStyle } from '../render/style.ts';
import type { LocalClusterInfo } from '../platforms.ts';
import type { CommandContext } from './context.ts';

export interface DeployFlags {
  replicas: number;
  image: string;
  servicePort?: number;
  affinity?: number;
}

export const DEFAULT_REPLICAS = 3;
export const DEFAULT_IMAGE = `relay:${VERSION}`;

/**
 * Starts a local fleet in --state-dir: an upstream echo service, set `<name>-a` of relays behind a UDP front that
 * stands in for the Kubernetes Service. Prints where devices connect and where the server's public key is.
 */
export async function deployCommand(ctx: CommandContext, flags: DeployFlags): Promise<ExitCode> {
  const { io, globals } = ctx;
  const what = `${flags.replicas} relays (image ${flags.image}) as ${globals.name}-a in ${globals.stateDir}`;
  if (globals.dryRun) {
    if (globals.output === 'json') io.stdout.write(`${jsonLine({ dryRun: globals.dryRun, command: 'deploy', name: globals.name, stateDir: globals.stateDir, replicas: flags.replicas, image: flags.image })}\n`);
    else io.stdout.write(`dry run: would deploy ${what}\nnothing was changed\n`);
    return ExitCode.Success;
  }
  const local = await ctx.platforms.local();
  // Deploy reconciles: run again, it restarts what is missing of an existing cluster and changes nothing else.
  const existing = await local.localClusterInfo({ stateDir: globals.stateDir, name: globals.name });
  const info = await local.deployLocal({
    stateDir: globals.stateDir,
    name: globals.name,
    replicas: flags.replicas,
    image: flags.image,
    ...(flags.servicePort === undefined ? {} : { servicePort: flags.servicePort }),
    ...(flags.affinity === undefined ? {} : { affinityMs: flags.affinity }),
    // Regenerated certificates and the processes restarted for them: progress, so stderr.
    onNotice: (notice) => io.stderr.write(globals.output === 'json' ? `${jsonLine(notice)}\n` : `${notice.message}\n`),
  });
  const keyPath = await publicKeyFile(info);
  if (globals.output === 'json') {
    io.stdout.write(`${jsonLine({ ...info, serverPublicKey: info.serverPublicKey.toString('base64'), serverPublicKeyPath: keyPath })}\n`);
    return ExitCode.Success;
  }
  const style = createStyle(colorEnabled(io, io.stdout, globals.color));
  io.stdout.write(
    [
      existing === null ? `${style.ok('deployed')} ${what}` : `${style.ok('checked')} fleet "${globals.name}" in ${globals.stateDir}: it was deployed already; whatever was missing was started again`,
      `  service     udp ${info.service.address}:${info.service.port} (DTLS 1.2, devices connect here)`,
      `  upstream    udp ${info.upstream.address}:${info.upstream.port} (echo)`,
      `  sets        ${info.sets.join(', ')}`,
      `  server key  ${keyPath} (SubjectPublicKeyInfo, DER: pin it in devices)`,
      ...(info.logs === undefined ? [] : [`  logs        ${info.logs}`]),
      '',
    ].join('\n'),
  );
  return ExitCode.Success;
}

/** The file holding the relay's DTLS public key: the PKI's own copy when it matches, else one written beside it. */
async function publicKeyFile(info: LocalClusterInfo): Promise<string> {
  // Loaded here so that other commands do not pay for the PKI module.
  const { localPkiPaths } = await import('../../orchestrator/platform/local/pki.ts');
  const pkiCopy = localPkiPaths(info.stateDir).dtlsPublicKey;
  const onDisk = await readFile(pkiCopy).catch(() => null);
  if (onDisk !== null && onDisk.equals(info.serverPublicKey)) return pkiCopy;
  const written = join(info.stateDir, 'server-public-key.der');
  await writeFile(written, info.serverPublicKey);
  return written;
}

export async function teardownCommand(ctx: CommandContext): Promise<ExitCode> {
  const { io, globals } = ctx;
  if (globals.dryRun) {
    io.stdout.write(`dry run: would stop fleet "${globals.name}" and its processes in ${globals.stateDir}\nnothing was changed\n`);
    return ExitCode.Success;
  }
  const local = await ctx.platforms.local();
  await local.teardownLocal({ stateDir: globals.stateDir, name: globals.name });
  if (globals.output === 'json') io.stdout.write(`${jsonLine({ command: 'teardown', name: globals.name, stateDir: globals.stateDir, removed: true })}\n`);
  else io.stdout.write(`stopped fleet "${globals.name}" in ${globals.stateDir}\n`);
  return ExitCode.Success;
}
