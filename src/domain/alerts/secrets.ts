// Webhook signing secrets: generated here, shown to their owner once, kept encrypted. A copy of
// the database (a backup, a replica, a leaked dump) does not let anyone forge our signatures
// without SECRET_KEY as well.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/** Standard Webhooks secrets: `whsec_` and the base64 of the key; 32 random bytes (the spec asks for 24 to 64). */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

const VERSION = "v1";

/**
 * A 256-bit key from SECRET_KEY (any string of 32+ characters), through HKDF so the same
 * SECRET_KEY used elsewhere never yields this key.
 */
function keyFrom(secretKey: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secretKey, "supply-monitor", "webhook-signing-secret", 32));
}

/**
 * AES-256-GCM, as `v1.<iv>.<tag>.<ciphertext>` (base64). `context` (the webhook id) is bound as
 * associated data, so a ciphertext copied onto another webhook's row does not decrypt.
 */
export function encryptSecret(plaintext: string, secretKey: string, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keyFrom(secretKey), iv);
  cipher.setAAD(Buffer.from(context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return [VERSION, iv.toString("base64"), cipher.getAuthTag().toString("base64"), ciphertext.toString("base64")].join(".");
}

export class SecretDecryptionError extends Error {}

export function decryptSecret(stored: string, secretKey: string, context: string): string {
  const [version, iv, tag, ciphertext] = stored.split(".");
  if (version !== VERSION || !iv || !tag || ciphertext === undefined) {
    throw new SecretDecryptionError(`the stored signing secret is not in the ${VERSION} format; register the webhook again`);
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyFrom(secretKey), Buffer.from(iv, "base64"));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(Buffer.from(tag, "base64"));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64")), decipher.final()]).toString("utf8");
  } catch {
    throw new SecretDecryptionError(
      "cannot decrypt the webhook's signing secret: SECRET_KEY is not the one it was registered under; restore that SECRET_KEY, or register the webhook again",
    );
  }
}
