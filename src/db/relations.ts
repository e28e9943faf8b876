import { defineRelations } from "drizzle-orm";
import * as schema from "./schema.js";

export const relations = defineRelations(schema, (r) => ({
  regionTable: {
    parent: r.one.regionTable({ from: r.regionTable.parentId, to: r.regionTable.id, alias: "region_parent" }),
    children: r.many.regionTable({ alias: "region_parent" }),
    sites: r.many.siteTable(),
  },
  organizationTable: {
    sites: r.many.siteTable(),
    users: r.many.userTable(),
  },
  siteTable: {
    organization: r.one.organizationTable({
      from: r.siteTable.organizationId,
      to: r.organizationTable.id,
      optional: false,
    }),
    region: r.one.regionTable({ from: r.siteTable.regionId, to: r.regionTable.id, optional: false }),
    reports: r.many.reportTable(),
  },
  productTable: {
    units: r.many.packUnitTable(),
    inputs: r.many.bomLineTable({ alias: "bom_product" }),
  },
  packUnitTable: {
    product: r.one.productTable({ from: r.packUnitTable.productId, to: r.productTable.id, optional: false }),
  },
  bomLineTable: {
    product: r.one.productTable({
      from: r.bomLineTable.productId,
      to: r.productTable.id,
      optional: false,
      alias: "bom_product",
    }),
    input: r.one.productTable({
      from: r.bomLineTable.inputProductId,
      to: r.productTable.id,
      optional: false,
      alias: "bom_input",
    }),
  },
  userTable: {
    organization: r.one.organizationTable({ from: r.userTable.organizationId, to: r.organizationTable.id }),
    jurisdiction: r.one.regionTable({ from: r.userTable.jurisdictionRegionId, to: r.regionTable.id }),
    apiTokens: r.many.apiTokenTable(),
  },
  apiTokenTable: {
    user: r.one.userTable({ from: r.apiTokenTable.userId, to: r.userTable.id, optional: false }),
  },
  reportTable: {
    site: r.one.siteTable({ from: r.reportTable.siteId, to: r.siteTable.id, optional: false }),
    product: r.one.productTable({ from: r.reportTable.productId, to: r.productTable.id, optional: false }),
    revisions: r.many.reportRevisionTable(),
  },
  reportRevisionTable: {
    report: r.one.reportTable({ from: r.reportRevisionTable.reportId, to: r.reportTable.id, optional: false }),
  },
  demandScenarioTable: {
    region: r.one.regionTable({ from: r.demandScenarioTable.regionId, to: r.regionTable.id, optional: false }),
    product: r.one.productTable({ from: r.demandScenarioTable.productId, to: r.productTable.id, optional: false }),
  },
  procurementRequestTable: {
    organization: r.one.organizationTable({ from: r.procurementRequestTable.organizationId, to: r.organizationTable.id, optional: false }),
    site: r.one.siteTable({ from: r.procurementRequestTable.siteId, to: r.siteTable.id, optional: false }),
    product: r.one.productTable({ from: r.procurementRequestTable.productId, to: r.productTable.id, optional: false }),
  },
  forecastTable: {
    region: r.one.regionTable({ from: r.forecastTable.regionId, to: r.regionTable.id, optional: false }),
    product: r.one.productTable({ from: r.forecastTable.productId, to: r.productTable.id, optional: false }),
    run: r.one.forecastRunTable({ from: r.forecastTable.runId, to: r.forecastRunTable.id, optional: false }),
  },
  forecastLatestTable: {
    forecast: r.one.forecastTable({ from: r.forecastLatestTable.forecastId, to: r.forecastTable.id, optional: false }),
    region: r.one.regionTable({ from: r.forecastLatestTable.regionId, to: r.regionTable.id, optional: false }),
    product: r.one.productTable({ from: r.forecastLatestTable.productId, to: r.productTable.id, optional: false }),
  },
  matchTable: {
    product: r.one.productTable({ from: r.matchTable.productId, to: r.productTable.id, optional: false }),
    fromSite: r.one.siteTable({ from: r.matchTable.fromSiteId, to: r.siteTable.id, optional: false, alias: "match_from_site" }),
    toSite: r.one.siteTable({ from: r.matchTable.toSiteId, to: r.siteTable.id, alias: "match_to_site" }),
    toRegion: r.one.regionTable({ from: r.matchTable.toRegionId, to: r.regionTable.id, optional: false }),
    request: r.one.procurementRequestTable({ from: r.matchTable.requestId, to: r.procurementRequestTable.id }),
    run: r.one.matchRunTable({ from: r.matchTable.runId, to: r.matchRunTable.id, optional: false }),
  },
  bottleneckTable: {
    region: r.one.regionTable({ from: r.bottleneckTable.regionId, to: r.regionTable.id, optional: false }),
    product: r.one.productTable({ from: r.bottleneckTable.productId, to: r.productTable.id, optional: false, alias: "bottleneck_product" }),
    input: r.one.productTable({ from: r.bottleneckTable.inputProductId, to: r.productTable.id, optional: false, alias: "bottleneck_input" }),
  },
  alertTable: {
    region: r.one.regionTable({ from: r.alertTable.regionId, to: r.regionTable.id, optional: false }),
    product: r.one.productTable({ from: r.alertTable.productId, to: r.productTable.id }),
    organization: r.one.organizationTable({ from: r.alertTable.organizationId, to: r.organizationTable.id }),
    site: r.one.siteTable({ from: r.alertTable.siteId, to: r.siteTable.id }),
    match: r.one.matchTable({ from: r.alertTable.matchId, to: r.matchTable.id }),
    events: r.many.alertEventTable(),
  },
  alertEventTable: {
    alert: r.one.alertTable({ from: r.alertEventTable.alertId, to: r.alertTable.id, optional: false }),
  },
  webhookTable: {
    organization: r.one.organizationTable({ from: r.webhookTable.organizationId, to: r.organizationTable.id }),
    jurisdiction: r.one.regionTable({ from: r.webhookTable.jurisdictionRegionId, to: r.regionTable.id }),
    deliveries: r.many.deliveryTable(),
  },
  deliveryTable: {
    webhook: r.one.webhookTable({ from: r.deliveryTable.webhookId, to: r.webhookTable.id }),
    event: r.one.alertEventTable({ from: r.deliveryTable.alertEventId, to: r.alertEventTable.id }),
  },
  importTable: {
    organization: r.one.organizationTable({ from: r.importTable.organizationId, to: r.organizationTable.id }),
    uploader: r.one.userTable({ from: r.importTable.uploadedBy, to: r.userTable.id, optional: false }),
  },
}));
