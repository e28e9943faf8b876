import { eq } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/index.js";
import { organizationKindEnum, organizationTable, regionTable, siteTable } from "../db/schema.js";
import { writeAudit } from "./audit.js";
import { creditCodeProblem } from "./credit-code.js";
import { DomainError, notFound } from "./errors.js";
import type { Actor } from "./viewer.js";
import { isUniqueViolation, parseInput } from "./validation.js";

const organizationInput = z.object({
  name: z.string().trim().min(1, "name must not be empty").max(300),
  kind: z.enum(organizationKindEnum.enumValues, { message: `kind must be one of ${organizationKindEnum.enumValues.join(", ")}` }),
  creditCode: z
    .string()
    .trim()
    .toUpperCase()
    .nullish()
    .transform((v) => (v ? v : null))
    .superRefine((v, ctx) => {
      const problem = v ? creditCodeProblem(v) : null;
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  contactName: z.string().trim().max(200).nullish(),
  contactEmail: z.email("contactEmail is not an e-mail address").nullish(),
  contactPhone: z
    .string()
    .trim()
    .regex(/^\+?[0-9 ()-]{5,30}$/, "contactPhone may hold digits, spaces, +, ( ) and - only")
    .nullish(),
});
export type CreateOrganizationInput = z.input<typeof organizationInput>;

export async function createOrganization(db: Database, actor: Actor, input: CreateOrganizationInput) {
  const values = parseInput(organizationInput, input);
  return db.transaction(async (tx) => {
    try {
      const [row] = await tx.insert(organizationTable).values(values).returning();
      await writeAudit(tx, actor, {
        action: "organization.create",
        entityType: "organization",
        entityId: row!.id,
        // Contact details are personal data: the audit keeps only that they were given.
        after: { id: row!.id, name: row!.name, kind: row!.kind, creditCode: row!.creditCode, hasContact: !!values.contactEmail || !!values.contactPhone },
      });
      return row!;
    } catch (error) {
      if (isUniqueViolation(error, "organization_credit_code_key")) {
        throw new DomainError("CONFLICT", `an organization with credit code ${values.creditCode} already exists; look it up instead of creating it again`);
      }
      throw error;
    }
  });
}

const SITE_CODE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const siteInput = z.object({
  organizationId: z.uuid("organizationId is not a valid id"),
  code: z.string().trim().regex(SITE_CODE, "code must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
  name: z.string().trim().min(1, "name must not be empty").max(300),
  regionCode: z.string().trim().min(1, "regionCode must not be empty"),
  timeZone: z
    .string()
    .trim()
    .refine((tz) => {
      try {
        new Intl.DateTimeFormat("en", { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    }, "timeZone is not an IANA time zone such as Asia/Shanghai")
    .nullish(),
});
export type CreateSiteInput = z.input<typeof siteInput>;

export async function createSite(db: Database, actor: Actor, input: CreateSiteInput) {
  const values = parseInput(siteInput, input);
  return db.transaction(async (tx) => {
    const [org] = await tx.select({ id: organizationTable.id }).from(organizationTable).where(eq(organizationTable.id, values.organizationId));
    if (!org) throw notFound(`no organization with id ${values.organizationId}; create it first (createOrganization)`);
    const [region] = await tx.select({ id: regionTable.id }).from(regionTable).where(eq(regionTable.code, values.regionCode));
    if (!region) throw notFound(`no region with code ${values.regionCode}; load regions first (createRegions or the CLI's regions seed)`);
    try {
      const [row] = await tx
        .insert(siteTable)
        .values({
          organizationId: org.id,
          code: values.code,
          name: values.name,
          regionId: region.id,
          ...(values.timeZone ? { timeZone: values.timeZone } : {}),
        })
        .returning();
      await writeAudit(tx, actor, { action: "site.create", entityType: "site", entityId: row!.id, after: row });
      return row!;
    } catch (error) {
      if (isUniqueViolation(error, "site_code_key")) {
        throw new DomainError("CONFLICT", `site code ${values.code} is already taken; site codes are unique across all organizations`);
      }
      throw error;
    }
  });
}

