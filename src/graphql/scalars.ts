import { DateTimeResolver, JSONObjectResolver } from "graphql-scalars";
import { GraphQLError, Kind } from "graphql";
import { dateProblem } from "../domain/reports/validate.js";
import { builder } from "./builder.js";

const parseDate = (value: unknown): string => {
  const problem = dateProblem(value);
  if (!problem) return value as string;
  throw new GraphQLError(`Date ${problem.replace("must be a calendar date as", "must be a calendar date written")}`);
};

builder.scalarType("Date", {
  description: "A calendar day without time zone, written YYYY-MM-DD (for reports: the site's local day).",
  serialize: (value) => String(value),
  parseValue: parseDate,
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : undefined),
});

builder.addScalarType("DateTime", DateTimeResolver, {});
builder.addScalarType("JSONObject", JSONObjectResolver, {});
