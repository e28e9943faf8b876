// Assembles the schema: each domain module only registers its types and fields on the builder.
import { lexicographicSortSchema } from "graphql";
import { builder } from "./builder.js";
import "./scalars.js";
import "./enums.js";
import "./regions.js";
import "./catalog.js";
import "./organizations.js";
import "./users.js";
import "./reports.js";
import "./demand.js";
import "./completeness.js";
import "./forecasts.js";
import "./matching.js";
import "./alerts.js";
import "./subscriptions.js";
import "./webhooks.js";
import "./imports.js";

builder.queryType({ description: "Read access; every field is limited to what the viewer may see." });
builder.mutationType({ description: "Writes; each one is audited in the same transaction." });
builder.subscriptionType({ description: "Live streams over server-sent events ('Accept: text/event-stream'); each is limited to what the viewer may see." });

export const schema = lexicographicSortSchema(builder.toSchema());
