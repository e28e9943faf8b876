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

export const badInput = (message: string, details?: Record<string, unknown>) =>
  new DomainError("BAD_INPUT", message, details);
export const notFound = (message: string) => new DomainError("NOT_FOUND", message);
export const forbidden = (message: string) => new DomainError("FORBIDDEN", message);
