// The size rule of SPEC §3, checked as the user types (the server checks it again).
export function sizeProblem(text, rule) {
  if (text === "auto") return null;
  const match = /^(\d{1,5})x(\d{1,5})$/.exec(text);
  if (!match) return "W×H, e.g. 1792x1024";
  const [w, h] = [Number(match[1]), Number(match[2])];
  if (Array.isArray(rule)) return rule.includes(text) ? null : "allowed: " + rule.join(", ");
  if (rule !== "custom") return null;
  if (w % 16 || h % 16) return "width and height must be multiples of 16";
  if (w * h < 655360) return "at least 655,360 pixels";
  if (Math.max(w, h) / Math.min(w, h) > 3) return "long side at most 3× the short side";
  if (Math.max(w, h) > 3840) return "long side at most 3840";
  if (w * h > 3840 * 2160) return "at most 3840×2160 pixels";
  return null;
}
