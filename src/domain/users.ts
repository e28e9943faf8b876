import { eq } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/index.js";
import { organizationTable, regionTable, roleEnum, userTable } from "../db/schema.js";
import { writeAudit } from "./audit.js";
import { DomainError, badInput, notFound } from "./errors.js";
import type { Actor } from "./viewer.js";
import { isUniqueViolation, parseInput } from "./validation.js";

const userInput = z.object({
  name: z.string().trim().min(1, "name must not be empty").max(200),
  email: z.email("email is not an e-mail address").transform((e) => e.toLowerCase()),
  role: z.enum(roleEnum.enumValues, { message: `role must be one of ${roleEnum.enumValues.join(", ")}` }),
  organizationId: z.uuid("organizationId is not a valid id").nullish(),
  jurisdictionRegionCode: z.string().trim().min(1).nullish(),
});
export type CreateUserInput = z.input<typeof userInput>;

export async function createUser(db: Database, actor: Actor, input: CreateUserInput) {
  const values = parseInput(userInput, input);
  if (values.role === "PLANNER" && !values.jurisdictionRegionCode) {
    throw badInput("a PLANNER needs jurisdictionRegionCode: the region whose subtree they watch");
  }
  if ((values.role === "REPORTER" || values.role === "PROCUREMENT") && !values.organizationId) {
    throw badInput(`a ${values.role} needs organizationId: the organization they report or buy for`);
  }
  if ((values.role === "PLANNER" || values.role === "ADMIN") && values.organizationId) {
    throw badInput(`organizationId applies to REPORTER and PROCUREMENT users only, not ${values.role}; leave it out`);
  }
  if (values.role !== "PLANNER" && values.jurisdictionRegionCode) {
    throw badInput(`jurisdictionRegionCode applies to PLANNER users only, not ${values.role}; leave it out`);
  }
  return db.transaction(async (tx) => {
    let organizationId: string | null = null;
    if (values.organizationId) {
      const [org] = await tx.select({ id: organizationTable.id }).from(organizationTable).where(eq(organizationTable.id, values.organizationId));
      if (!org) throw notFound(`no organization with id ${values.organizationId}`);
      organizationId = org.id;
    }
    let jurisdictionRegionId: number | null = null;
    if (values.jurisdictionRegionCode) {
      const [region] = await tx.select({ id: regionTable.id }).from(regionTable).where(eq(regionTable.code, values.jurisdictionRegionCode));
      if (!region) throw notFound(`no region with code ${values.jurisdictionRegionCode}; load regions first`);
      jurisdictionRegionId = region.id;
    }
    try {
      const [row] = await tx
        .insert(userTable)
        .values({ name: values.name, email: values.email, role: values.role, organizationId, jurisdictionRegionId })
        .returning();
      await writeAudit(tx, actor, {
        action: "user.create",
        entityType: "user",
        entityId: row!.id,
        after: { id: row!.id, role: row!.role, organizationId, jurisdictionRegionId },
      });
      return row!;
    } catch (error) {
      if (isUniqueViolation(error, "app_user_email_key")) {
        throw new DomainError("CONFLICT", "a user with this e-mail already exists; create a token for that user instead");
      }
      throw error;
    }
  });
}
