export interface RetransmitPolicy {
  /** First timeout after a flight; it doubles on each retransmission of that flight (RFC 6347 4.2.4). */
  readonly initialMs: number;
  /** Ceiling of the doubling (RFC 6347 4.2.4.1 suggests 60 s). */
  readonly maxMs: number;
  /** Timer-driven retransmissions of one flight before giving up. */
  readonly maxRetransmissions: number;
  /** Overall deadline of the handshake, from begin(). */
  readonly handshakeTimeoutMs: number;
}

export interface RetransmitActions {
  /** Resend the last flight. */
  retransmit(): void;
  /** The deadline passed or the retries ran out. */
  timeout(retransmissions: number): void;
}

/**
 * The handshake's single timer: one per connecting session, unref'd so it never holds the process,
 * never beyond the overall deadline, and gone once the handshake ends.
 */
export class RetransmitTimer {
  readonly #policy: RetransmitPolicy;
  readonly #actions: RetransmitActions;
  #timer: NodeJS.Timeout | null = null;
  #deadline = 0;
  #delayMs = 0;
  #retransmissions = 0;
  /** The armed timer ends at the deadline rather than at the retransmission delay. */
  #armedToDeadline = false;

  constructor(policy: RetransmitPolicy, actions: RetransmitActions) {
    this.#policy = policy;
    this.#actions = actions;
  }

  /** Starts the overall deadline; until the first flight the timer only watches it. */
  begin(): void {
    this.#deadline = performance.now() + this.#policy.handshakeTimeoutMs;
    this.#arm(Number.POSITIVE_INFINITY);
  }

  /** A new flight went out: the count and the delay start over. */
  flightSent(): void {
    this.#retransmissions = 0;
    this.#delayMs = this.#policy.initialMs;
    this.#arm(this.#delayMs);
  }

  stop(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  readonly #fire = (): void => {
    this.#timer = null;
    if (this.#armedToDeadline || this.#retransmissions >= this.#policy.maxRetransmissions) {
      this.#actions.timeout(this.#retransmissions);
      return;
    }
    this.#retransmissions++;
    this.#delayMs = Math.min(this.#delayMs * 2, this.#policy.maxMs);
    this.#arm(this.#delayMs);
    this.#actions.retransmit();
  };

  #arm(delayMs: number): void {
    this.stop();
    const untilDeadline = Math.max(0, this.#deadline - performance.now());
    this.#armedToDeadline = untilDeadline <= delayMs;
    this.#timer = setTimeout(this.#fire, this.#armedToDeadline ? untilDeadline : delayMs);
    this.#timer.unref();
  }
}
