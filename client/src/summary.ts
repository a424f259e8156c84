/**
 * Model summaries: which model the cursor is in, the results of the server's
 * `paramlens.models` / `paramlens.summary` commands, and the URIs of the
 * read-only summary tabs. Pure.
 */

/** Server-side command ids (registered by vscode-languageclient itself). */
export const SERVER_CMD_SUMMARY = "paramlens.summary";
export const SERVER_CMD_MODELS = "paramlens.models";
export const SUMMARY_SCHEME = "paramlens-summary";

export interface ModelInfo {
  name: string;
  /** 1-based line of the `class` statement. */
  line: number;
}

export type SummaryResult = { ok: true; text: string; model?: unknown } | { ok: false; error: string };

export function parseModels(result: unknown): ModelInfo[] {
  if (typeof result !== "object" || result === null) return [];
  const models = (result as { models?: unknown }).models;
  if (!Array.isArray(models)) return [];
  const out: ModelInfo[] = [];
  for (const m of models) {
    if (typeof m !== "object" || m === null) continue;
    const { name, line } = m as { name?: unknown; line?: unknown };
    if (typeof name === "string" && name !== "" && typeof line === "number" && Number.isInteger(line) && line >= 1) {
      out.push({ name, line });
    }
  }
  return out;
}

export function parseSummary(result: unknown): SummaryResult {
  if (typeof result !== "object" || result === null) {
    return { ok: false, error: "paramlens returned no summary" };
  }
  const r = result as { text?: unknown; model?: unknown; error?: unknown };
  if (typeof r.error === "string") return { ok: false, error: r.error };
  if (typeof r.text === "string") return { ok: true, text: r.text, model: r.model };
  return { ok: false, error: "paramlens returned a summary without text" };
}

const CLASS_LINE = /^\s*class\s+([A-Za-z_][A-Za-z0-9_]*)\b/;

/**
 * The model whose `class` line is nearest at or above the cursor, among the
 * models the server knows. `lines` is the document text split into lines and
 * `cursorLine` is 0-based (as in vscode.Position). Class lines of classes the
 * server does not know as models are skipped.
 */
export function modelAtCursor(
  lines: readonly string[],
  cursorLine: number,
  models: readonly ModelInfo[],
): ModelInfo | undefined {
  const byName = new Map(models.map((m) => [m.name, m]));
  for (let i = Math.min(cursorLine, lines.length - 1); i >= 0; i--) {
    const match = CLASS_LINE.exec(lines[i] ?? "");
    if (match) {
      const known = byName.get(match[1] as string);
      if (known) return known;
    }
  }
  return undefined;
}

/** Path part of a summary tab's URI: readable in the tab title. */
export function summaryPath(className: string): string {
  return `/${className.replace(/[^A-Za-z0-9_.-]/g, "_")} summary.txt`;
}

/** Query part of a summary tab's URI: the source document, so tabs of equal names differ. */
export function summaryQuery(sourceUri: string): string {
  return `source=${encodeURIComponent(sourceUri)}`;
}
