/**
 * What the status bar item shows for each state of the server, and parsing of
 * the server's `paramlens/status` notification. Pure.
 */

export type ServerState =
  | { kind: "restricted" }
  | { kind: "stopped" }
  | { kind: "starting" }
  | { kind: "building"; model?: string }
  | { kind: "ready"; models?: number }
  | { kind: "error"; message: string }
  | { kind: "noTorch"; python: string; message: string };

export interface StatusView {
  text: string;
  tooltip: string;
  /** Client command run on click. */
  command: string;
  /** Shown with the status bar's error/warning colours. */
  severity: "normal" | "warning" | "error";
}

export const STATUS_NOTIFICATION = "paramlens/status";
export const CMD_SHOW_OUTPUT = "paramlens.showOutput";
export const CMD_SHOW_SUMMARY = "paramlens.showSummary";
export const CMD_RESTART = "paramlens.restartServer";
export const CMD_MANAGE_TRUST = "workbench.trust.manage";

export function statusView(state: ServerState): StatusView {
  switch (state.kind) {
    case "restricted":
      return {
        text: "$(shield) paramlens: off",
        tooltip:
          "paramlens is off in Restricted Mode: it would run this folder's code to count parameters. Click to trust the folder.",
        command: CMD_MANAGE_TRUST,
        severity: "warning",
      };
    case "stopped":
      return { text: "$(circle-slash) paramlens", tooltip: "paramlens server stopped. Click for its output.", command: CMD_SHOW_OUTPUT, severity: "normal" };
    case "starting":
      return { text: "$(sync~spin) paramlens", tooltip: "paramlens server starting…", command: CMD_SHOW_OUTPUT, severity: "normal" };
    case "building":
      return {
        text: `$(sync~spin) paramlens: ${state.model ?? "building"}`,
        tooltip: state.model ? `Building ${state.model}…` : "Building models…",
        command: CMD_SHOW_OUTPUT,
        severity: "normal",
      };
    case "ready": {
      const n = state.models;
      const count = n === undefined ? "" : `: ${n} ${n === 1 ? "model" : "models"}`;
      return {
        text: `$(check) paramlens${count}`,
        tooltip: "paramlens is ready. Click for the model summary.",
        command: CMD_SHOW_SUMMARY,
        severity: "normal",
      };
    }
    case "error":
      return {
        text: "$(error) paramlens: error",
        tooltip: `${state.message}\nClick for the output.`,
        command: CMD_SHOW_OUTPUT,
        severity: "error",
      };
    case "noTorch":
      return {
        text: "$(warning) paramlens: no torch",
        tooltip: state.message,
        command: CMD_SHOW_OUTPUT,
        severity: "warning",
      };
  }
}

/** Turns a `paramlens/status` notification into a state; undefined if malformed. */
export function parseStatusNotification(params: unknown): ServerState | undefined {
  if (typeof params !== "object" || params === null) return undefined;
  const p = params as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
  switch (p.state) {
    case "starting":
      return { kind: "starting" };
    case "building":
      return { kind: "building", model: str(p.model) };
    case "ready":
      return {
        kind: "ready",
        models: typeof p.models === "number" && Number.isInteger(p.models) && p.models >= 0 ? p.models : undefined,
      };
    case "error":
      return { kind: "error", message: str(p.message) ?? "paramlens reported an error" };
    default:
      return undefined;
  }
}
