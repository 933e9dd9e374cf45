/**
 * Loopback addresses for pods and Services, like a cluster's pod and service CIDRs: each server draws a random
 * 127.b.c.0/24 per pool (b in 1..254, never 127.0.x.x, which holds 127.0.0.1) and hands out .1 to .254, then
 * moves to the next /24. Addresses are not reused while the server lives, so a new pod never inherits a dead
 * pod's sockets in TIME_WAIT. Two servers on one machine (parallel test files) collide with a probability of
 * about 1 in 65,000 per pool.
 */
export class LoopbackPool {
  private b: number;
  private c: number;
  private d = 0;

  constructor(avoidB?: number) {
    do this.b = 1 + Math.floor(Math.random() * 254);
    while (this.b === avoidB);
    this.c = Math.floor(Math.random() * 256);
  }

  get secondOctet(): number {
    return this.b;
  }

  next(): string {
    this.d++;
    if (this.d > 254) {
      this.d = 1;
      this.c = (this.c + 1) % 256;
    }
    return `127.${this.b}.${this.c}.${this.d}`;
  }
}

/** Node ports (30000-32767), unique per server. */
export class NodePortPool {
  private readonly used = new Set<number>();

  next(): number {
    if (this.used.size >= 2768) throw new Error('node port range 30000-32767 exhausted');
    for (;;) {
      const port = 30000 + Math.floor(Math.random() * 2768);
      if (this.used.has(port)) continue;
      this.used.add(port);
      return port;
    }
  }
}
