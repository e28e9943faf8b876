import { GraphQLError } from "graphql";
import { DomainError } from "../domain/errors.js";

/** Domain errors become client-visible GraphQL errors with a machine-readable code. */
export function toGraphQLError(error: DomainError): GraphQLError {
  return new GraphQLError(error.message, { extensions: { code: error.code, ...(error.details ?? {}) } });
}
