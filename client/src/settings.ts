/**
 * The `paramlens.*` settings: one typed, fully defaulted tree, and which of
 * them need a server restart. Pure: imports nothing from vscode, so unit tests
 * (and the package.json consistency test) can use it directly.
 */

export const SECTION = "paramlens";

export type Device = "meta" | "cpu";
export const OPTIMIZERS = ["adamw", "adam", "sgd-momentum", "sgd", "none"] as const;
export type Optimizer = (typeof OPTIMIZERS)[number];
export const PRECISIONS = ["fp32", "bf16", "fp16", "bf16-pure"] as const;
export type Precision = (typeof PRECISIONS)[number];
export const ATTENTIONS = ["auto", "math", "flash", "efficient"] as const;
export type Attention = (typeof ATTENTIONS)[number];
export const STRATEGIES = ["ddp", "zero1", "zero2", "zero3", "fsdp"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface ParamlensSettings {
  /** Interpreter path; "" means "find one" (see interpreter.ts). */
  python: string;
  /** Seconds a model build may take. */
  timeout: number;
  memoryMb: number;
  device: Device;
  layerLenses: boolean;
  /** Per-layer figures as end-of-line inlay hints (tensor shapes in forward() always are). */
  layerHints: boolean;
  /** Run forward() with an example input to show shapes and mult-adds. */
  shapes: boolean;
  /** Class name or "path.py::Class" -> Python expression for forward()'s example input. */
  inputs: Record<string, string>;
  /** Whose state the training-memory estimate counts. */
  optimizer: Optimizer;
  /** The training step in float32, under bf16/fp16 autocast, or with bfloat16 weights. */
  precision: Precision;
  /** The training step's batch size; 0 means the example input's own. */
  batch: number;
  /** The scaled_dot_product_attention kernel assumed; "auto" is the GPU's choice. */
  attention: Attention;
  /** Module classes whose activations are recomputed in backward (activation checkpointing). */
  checkpoint: string[];
  /** The loss, a Python expression of `output`; "" sums the output's floating tensors. */
  loss: string;
  /** The card to fit the step in ("24GB", "A100-80GB"); "" means none. The server checks it. */
  gpu: string;
  /** Training spread over this many GPUs: one GPU's figures. */
  gpus: number;
  /** How training is spread over them. */
  strategy: Strategy;
  /** The module classes FSDP2 shards as units; [] means the repeated blocks. */
  wrap: string[];
  analyzeOnSave: boolean;
  analyzeOnChange: boolean;
  debounceMs: number;
  /** Python files a workspace scan reads at most (a folder that is no project). */
  maxFiles: number;
}

export const DEFAULT_SETTINGS: Readonly<ParamlensSettings> = Object.freeze({
  python: "",
  timeout: 10,
  memoryMb: 2048,
  device: "meta",
  layerLenses: true,
  layerHints: false,
  shapes: true,
  inputs: Object.freeze({}) as Record<string, string>,
  optimizer: "adamw",
  precision: "fp32",
  batch: 0,
  attention: "auto",
  checkpoint: Object.freeze([]) as unknown as string[],
  loss: "",
  gpu: "",
  gpus: 1,
  strategy: "ddp",
  wrap: Object.freeze([]) as unknown as string[],
  analyzeOnSave: true,
  analyzeOnChange: true,
  debounceMs: 500,
  maxFiles: 5000,
});

/**
 * Settings the client itself acts on by restarting the server. Every other
 * setting is re-read by the server on workspace/didChangeConfiguration.
 */
export const RESTART_SETTINGS: readonly (keyof ParamlensSettings)[] = ["python"];

export interface SettingsResult {
  settings: ParamlensSettings;
  /** Human-readable notes about values that were replaced by defaults. */
  problems: string[];
}

/**
 * Builds a valid settings object from a `get(key)` lookup (e.g.
 * `WorkspaceConfiguration.get`). A value of the wrong type or out of range is
 * replaced by its default and reported, never thrown.
 */
export function readSettings(get: (key: string) => unknown): SettingsResult {
  const problems: string[] = [];
  const settings: ParamlensSettings = { ...DEFAULT_SETTINGS, inputs: {}, checkpoint: [], wrap: [] };
  const bad = (key: string, value: unknown, expected: string): void => {
    problems.push(
      `${SECTION}.${key}: expected ${expected}, got ${JSON.stringify(value)}; using ${JSON.stringify(
        (DEFAULT_SETTINGS as unknown as Record<string, unknown>)[key],
      )}`,
    );
  };

  const python = get("python");
  if (typeof python === "string") settings.python = python.trim();
  else if (python !== undefined && python !== null) bad("python", python, "a string");

  const numbers: [keyof ParamlensSettings, number][] = [
    ["timeout", Number.MIN_VALUE],
    ["memoryMb", 1],
    ["debounceMs", 0],
    ["maxFiles", 1],
  ];
  for (const [key, min] of numbers) {
    const value = get(key);
    if (value === undefined || value === null) continue;
    if (typeof value === "number" && Number.isFinite(value) && value >= min) {
      (settings as unknown as Record<string, unknown>)[key] = value;
    } else {
      bad(key, value, min > 0 ? "a positive number" : "a number >= 0");
    }
  }

  const device = get("device");
  if (device === "meta" || device === "cpu") settings.device = device;
  else if (device !== undefined && device !== null) bad("device", device, '"meta" or "cpu"');

  const optimizer = get("optimizer");
  if (isOneOf(optimizer, OPTIMIZERS)) settings.optimizer = optimizer;
  else if (optimizer !== undefined && optimizer !== null) bad("optimizer", optimizer, `one of ${OPTIMIZERS.join(", ")}`);

  const precision = get("precision");
  if (isOneOf(precision, PRECISIONS)) settings.precision = precision;
  else if (precision !== undefined && precision !== null) bad("precision", precision, `one of ${PRECISIONS.join(", ")}`);

  const batch = get("batch");
  if (typeof batch === "number" && Number.isInteger(batch) && batch >= 0) settings.batch = batch;
  else if (batch !== undefined && batch !== null) bad("batch", batch, "0 (the input's own batch) or a whole number");

  const attention = get("attention");
  if (isOneOf(attention, ATTENTIONS)) settings.attention = attention;
  else if (attention !== undefined && attention !== null) bad("attention", attention, `one of ${ATTENTIONS.join(", ")}`);

  for (const key of ["checkpoint", "wrap"] as const) {
    const value = get(key);
    if (typeof value === "string") settings[key] = [value]; // one class, as the server reads it
    else if (Array.isArray(value) && value.every((c) => typeof c === "string")) settings[key] = [...value];
    else if (value !== undefined && value !== null) bad(key, value, "a list of module class names");
  }

  const gpus = get("gpus");
  if (typeof gpus === "number" && Number.isInteger(gpus) && gpus >= 1) settings.gpus = gpus;
  else if (gpus !== undefined && gpus !== null) bad("gpus", gpus, "a whole number >= 1");

  const strategy = get("strategy");
  if (isOneOf(strategy, STRATEGIES)) settings.strategy = strategy;
  else if (strategy !== undefined && strategy !== null) bad("strategy", strategy, `one of ${STRATEGIES.join(", ")}`);

  // a Python expression and a card name: the server parses them, and reports what it cannot
  for (const key of ["loss", "gpu"] as const) {
    const value = get(key);
    if (typeof value === "string") settings[key] = value.trim();
    else if (value !== undefined && value !== null) bad(key, value, "a string");
  }

  for (const key of ["layerLenses", "layerHints", "shapes", "analyzeOnSave", "analyzeOnChange"] as const) {
    const value = get(key);
    if (typeof value === "boolean") settings[key] = value;
    else if (value !== undefined && value !== null) bad(key, value, "true or false");
  }

  const inputs = get("inputs");
  if (isStringTable(inputs)) settings.inputs = { ...inputs };
  else if (inputs !== undefined && inputs !== null) bad("inputs", inputs, 'an object of "Class": "expression" strings');

  return { settings, problems };
}

function isOneOf<T extends string>(value: unknown, choices: readonly T[]): value is T {
  return typeof value === "string" && (choices as readonly string[]).includes(value);
}

/** `{"Class": "expression", ...}`: an object whose values are all strings. */
function isStringTable(value: unknown): value is Record<string, string> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string")
  );
}

/** What `WorkspaceConfiguration.inspect` reports for one key (the parts we use). */
export interface Inspected {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/**
 * Only the settings the user set somewhere, most specific scope first. The server merges
 * these over `[tool.paramlens]` in pyproject.toml, so VS Code's defaults must not be sent:
 * they would hide the project's own configuration.
 */
export function explicitSettings(inspect: (key: string) => Inspected | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(DEFAULT_SETTINGS)) {
    const found = inspect(key);
    if (key === "inputs") {
      // A table, merged across scopes as VS Code merges object settings: a folder's
      // entry overrides the same class's entry in the user settings, and adds to the rest.
      // A value that is not such a table goes to the server as it is: it says what is wrong.
      const scopes = [found?.globalValue, found?.workspaceValue, found?.workspaceFolderValue];
      const set = scopes.filter((v) => v !== undefined && v !== null);
      const wrong = set.find((v) => !isStringTable(v));
      if (wrong !== undefined) out[key] = wrong;
      else if (set.length > 0) out[key] = Object.assign({}, ...set);
      continue;
    }
    const value = found?.workspaceFolderValue ?? found?.workspaceValue ?? found?.globalValue;
    if (value !== undefined && !(key === "python" && value === "")) out[key] = value;
  }
  return out;
}

/** True when a configuration change touches a setting that needs a restart. */
export function changeNeedsRestart(affects: (section: string) => boolean): boolean {
  return RESTART_SETTINGS.some((key) => affects(`${SECTION}.${key}`));
}
