/**
 * An expected failure caused by the caller's input or rights. Its message is shown to the
 * client as is, so it must say what was wrong and what to do; anything else is masked.
 */
export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export type DomainErrorCode =
  | "BAD_INPUT"
  | "NOT_FOUND"
  | "FORBIDDEN"
  | "UNAUTHENTICATED"
  | "CONFLICT"
  | "BATCH_TOO_LARGE"
  | "IDEMPOTENCY_KEY_REUSED";

/**
 * The first error in a chain of wrappers (GraphQL's originalError, drizzle's cause) that passes
 * `test`: errors reach the edges of the service wrapped once or twice.
 */
export function findCause<T = any>(error: unknown, test: (e: any) => boolean): T | undefined {
  for (let e: any = error; e; e = e.originalError ?? e.cause) if (test(e)) return e as T;
  return undefined;
}

export const badInput = (message: string, details?: Record<string, unknown>) =>
  new DomainError("BAD_INPUT", message, details);
export const notFound = (message: string) => new DomainError("NOT_FOUND", message);
export const forbidden = (message: string) => new DomainError("FORBIDDEN", message);
