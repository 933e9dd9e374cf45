/**
 * The container runtime stand-in: an image is a recipe for a local process. `entrypoint` is the image's
 * ENTRYPOINT (an executable and fixed arguments, e.g. `[process.execPath, '/repo/bin/relayd.js']`), `cmd` its CMD
 * (default arguments), `env` and `workingDir` its defaults. An image the runtime does not know cannot be pulled:
 * the container waits in ErrImagePull / ImagePullBackOff.
 *
 * How a container's process line is built follows Docker and Kubernetes: `command` replaces the entrypoint (and
 * drops CMD), `args` replaces CMD; `$(VAR)` in command and args expands from the container's environment.
 */
import type { Container } from '../kinds/pod-spec.ts';

export interface ImageSpec {
  entrypoint: readonly string[];
  cmd?: readonly string[];
  env?: Readonly<Record<string, string>>;
  workingDir?: string;
}

export type ImageResolver = (image: string) => ImageSpec | undefined;

export function imageResolver(images: Readonly<Record<string, ImageSpec>> | ImageResolver | undefined): ImageResolver {
  if (images === undefined) return () => undefined;
  if (typeof images === 'function') return images;
  return (image) => images[image];
}

/** `$(VAR)` from `env` (unknown references stay as written), `$$(VAR)` for a literal `$(VAR)`. */
export function expand(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && Object.hasOwn(env, name) ? env[name]! : match;
  });
}

export function processLine(image: ImageSpec, container: Container, env: Readonly<Record<string, string>>): string[] {
  const expanded = (parts: readonly string[]): string[] => parts.map((part) => expand(part, env));
  if (container.command !== undefined && container.command.length > 0) return [...expanded(container.command), ...expanded(container.args ?? [])];
  return [...image.entrypoint, ...(container.args !== undefined ? expanded(container.args) : (image.cmd ?? []))];
}
