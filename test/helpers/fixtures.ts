import type { Database } from "../../src/db/index.js";
import { seedCatalog } from "../../src/domain/catalog.js";
import { createOrganization, createSite } from "../../src/domain/organizations.js";
import { createRegions } from "../../src/domain/regions.js";
import { authenticate, createApiToken } from "../../src/domain/tokens.js";
import { createUser } from "../../src/domain/users.js";
import { systemActor, type Actor, type Viewer } from "../../src/domain/viewer.js";
import type { Role } from "../../src/domain/types.js";

export const setupActor = systemActor("test");

/**
 * A small world: Zhejiang with two Hangzhou counties, and Jiangsu with one Nanjing county;
 * a manufacturer in Shangcheng (330102), a hospital in Xihu (330106), a supplier in Nanjing.
 */
export async function seedWorld(db: Database) {
  await seedCatalog(db, setupActor);
  await createRegions(db, setupActor, [
    { code: "CN", name: "中国", level: "COUNTRY" },
    { code: "330000", name: "浙江省", level: "PROVINCE", parentCode: "CN", latitude: 30.27, longitude: 120.15 },
    { code: "330100", name: "杭州市", level: "CITY", parentCode: "330000" },
    { code: "330102", name: "上城区", level: "COUNTY", parentCode: "330100" },
    { code: "330106", name: "西湖区", level: "COUNTY", parentCode: "330100" },
    { code: "320000", name: "江苏省", level: "PROVINCE", parentCode: "CN" },
    { code: "320100", name: "南京市", level: "CITY", parentCode: "320000" },
    { code: "320102", name: "玄武区", level: "COUNTY", parentCode: "320100" },
  ]);
  const maker = await createOrganization(db, setupActor, { name: "Hangzhou Mask Works", kind: "MANUFACTURER", creditCode: "91350100M000100Y43", contactEmail: "ops@maskworks.example", contactPhone: "+86 571 5550 1234" });
  const hospital = await createOrganization(db, setupActor, { name: "Xihu People's Hospital", kind: "HOSPITAL" });
  const supplier = await createOrganization(db, setupActor, { name: "Nanjing Nonwovens", kind: "RAW_MATERIAL_SUPPLIER" });
  const makerSite = await createSite(db, setupActor, { organizationId: maker.id, code: "HZ-MASK-1", name: "Shangcheng plant", regionCode: "330102" });
  const hospitalSite = await createSite(db, setupActor, { organizationId: hospital.id, code: "HZ-XIHU-H1", name: "Xihu main ward", regionCode: "330106" });
  const supplierSite = await createSite(db, setupActor, { organizationId: supplier.id, code: "NJ-NW-1", name: "Xuanwu mill", regionCode: "320102" });
  return { maker, hospital, supplier, makerSite, hospitalSite, supplierSite };
}

export type World = Awaited<ReturnType<typeof seedWorld>>;

export interface TestUser {
  token: string;
  viewer: Viewer;
  actor: Actor;
}

let counter = 0;
export async function makeUser(
  db: Database,
  role: Role,
  scope: { organizationId?: string; jurisdictionRegionCode?: string } = {},
): Promise<TestUser> {
  const user = await createUser(db, setupActor, { name: `${role} ${++counter}`, email: `${role.toLowerCase()}${counter}@test.example`, role, ...scope });
  const { token } = await createApiToken(db, setupActor, { userId: user.id, name: "test" });
  const viewer = (await authenticate(db, token))!;
  return { token, viewer, actor: { viewer } };
}
