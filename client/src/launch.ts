/**
 * How the server process is started: `<python> -m paramlens lsp` with the
 * extension's bundled pure-Python libraries first on PYTHONPATH. Pure.
 */
import * as path from "node:path";

export interface ServerLaunch {
  command: string;
  args: string[];
  env: Record<string, string>;
  /** The interpreter, sent to the server in initializationOptions. */
  initializationOptions: { python: string };
}

export function bundledLibsDir(extensionPath: string): string {
  return path.join(extensionPath, "bundled", "libs");
}

/** Prepends `dir` to a PYTHONPATH-style list, dropping empty entries. */
export function prependPythonPath(dir: string, existing: string | undefined, delimiter = path.delimiter): string {
  const rest = (existing ?? "").split(delimiter).filter((entry) => entry !== "" && entry !== dir);
  return [dir, ...rest].join(delimiter);
}

export function serverLaunch(
  extensionPath: string,
  python: string,
  baseEnv: NodeJS.ProcessEnv,
  delimiter = path.delimiter,
): ServerLaunch {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(baseEnv)) {
    if (value !== undefined) env[key] = value;
  }
  env.PYTHONPATH = prependPythonPath(bundledLibsDir(extensionPath), baseEnv.PYTHONPATH, delimiter);
  // Output goes over stdio as LSP frames; never let Python buffer it.
  env.PYTHONUNBUFFERED = "1";
  return {
    command: python,
    args: ["-m", "paramlens", "lsp"],
    env,
    initializationOptions: { python },
  };
}

/** The torch check: `<python> -c "import torch"` and its user-facing message. */
export const TORCH_CHECK_ARGS = ["-c", "import torch"];

export type TorchCheck =
  | { ok: true }
  | { ok: false; reason: "no-torch" | "no-python"; detail: string };

export function torchMissingMessage(python: string, check: TorchCheck): string | undefined {
  if (check.ok) return undefined;
  if (check.reason === "no-python") {
    return (
      `paramlens could not run the Python "${python}" (${check.detail}). ` +
      `Set "paramlens.python" to a Python that has torch >= 2.1, or select one in the Python extension.`
    );
  }
  return (
    `paramlens needs PyTorch, but "${python}" has no torch, so no parameter counts can be shown. ` +
    `Install it with "${python} -m pip install torch", or set "paramlens.python" to a Python that has torch >= 2.1.`
  );
}
