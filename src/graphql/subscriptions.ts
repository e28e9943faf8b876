import { GraphQLError } from "graphql";
import { subscribeToAlerts } from "../domain/alerts/live.js";
import { AlertKindEnum, AlertObject } from "./alerts.js";
import { builder } from "./builder.js";

builder.subscriptionFields((t) => ({
  alertRaised: t.field({
    type: AlertObject,
    description:
      "Alerts as they are raised, escalated or resolved (status and severity say which), from now on, limited to what the viewer may see: planners their jurisdiction, organization users their organization's, admins all. Over server-sent events: POST /graphql with 'Accept: text/event-stream'.",
    authScopes: { authenticated: true },
    args: {
      regionCode: t.arg.string({
        description:
          "Only alerts of this region and the regions below it: for planners a region of their jurisdiction, for organization users one that holds a site of theirs.",
      }),
      kinds: t.arg({
        type: [AlertKindEnum],
        description: "Only these kinds. Without it, every kind, except REPORT_OVERDUE for planners (they follow reporting as completeness).",
      }),
    },
    subscribe: async (_root, args, ctx) => {
      if (!ctx.live) {
        throw new GraphQLError("live alerts are not served by this process; list them with the alerts query", {
          extensions: { code: "SERVICE_UNAVAILABLE" },
        });
      }
      return subscribeToAlerts(ctx.db, ctx.live, ctx.viewer!, { regionCode: args.regionCode, kinds: args.kinds });
    },
    resolve: (value) => {
      if (value instanceof Error) throw value;
      return value;
    },
  }),
}));
