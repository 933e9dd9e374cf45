/**
 * The local platform's defaults, apart from the platform itself so that relayctl can print them in its help
 * without loading the platform.
 */
export const DEFAULT_NAME = 'relay';
/** UDP port of the service front that devices connect to. */
export const DEFAULT_SERVICE_PORT = 5684;
/** How long an idle device flow stays on its relay (kube-proxy's UDP conntrack timeout). */
export const DEFAULT_AFFINITY_MS = 30_000;
