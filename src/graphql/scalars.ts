import { DateTimeResolver } from "graphql-scalars";
import { GraphQLError, Kind } from "graphql";
import { isValid, parseISO } from "date-fns";
import { builder } from "./builder.js";

const parseDate = (value: unknown): string => {
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}$/.test(value) && isValid(parseISO(value))) return value;
  throw new GraphQLError(`Date must be a calendar date written YYYY-MM-DD, got ${JSON.stringify(value)}`);
};

builder.scalarType("Date", {
  description: "A calendar day without time zone, written YYYY-MM-DD (for reports: the site's local day).",
  serialize: (value) => String(value),
  parseValue: parseDate,
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : undefined),
});

builder.addScalarType("DateTime", DateTimeResolver, {});
