/**
 * Unified social credit code (GB 32100-2015): 18 characters from a 31-character alphabet
 * (digits and capitals without I, O, S, V, Z); the last is a check character over the rest,
 * weighted by 3^i mod 31.
 */
const ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

export function creditCodeCheckChar(first17: string): string | null {
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const v = ALPHABET.indexOf(first17[i] ?? "");
    if (v < 0) return null;
    sum += v * WEIGHTS[i]!;
  }
  return ALPHABET[(31 - (sum % 31)) % 31]!;
}

/** Returns null when valid, else a sentence saying what is wrong with the code. */
export function creditCodeProblem(code: string): string | null {
  if (code.length !== 18) return `a unified social credit code has 18 characters, got ${code.length}`;
  const bad = [...code].find((c) => !ALPHABET.includes(c));
  if (bad !== undefined) {
    return `character '${bad}' cannot appear in a unified social credit code (allowed: digits and ${ALPHABET.slice(10)})`;
  }
  const expected = creditCodeCheckChar(code.slice(0, 17));
  if (expected !== code[17]) {
    return `check character is '${code[17]}' but the first 17 characters require '${expected}'; check the code for a typo`;
  }
  return null;
}
