import { expect } from "vitest";
import { DomainError } from "../../src/domain/errors.js";

/** The message of the BAD_INPUT DomainError that `fn` throws; fails the test when it throws none. */
export function badInputMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe("BAD_INPUT");
    return (error as DomainError).message;
  }
  throw new Error("expected a BAD_INPUT error, but the call succeeded");
}
