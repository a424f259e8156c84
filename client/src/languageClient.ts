/**
 * Creates the vscode-languageclient client for the paramlens server: stdio
 * transport, Python documents (files and untitled), the `paramlens.*`
 * configuration section, the status notification, and the middleware that
 * opens a summary tab when a class lens (server command `paramlens.summary`)
 * is clicked.
 */
import * as vscode from "vscode";
import { LanguageClient, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node";
import type { ClientHandlers, ServerClient } from "./host";
import type { ServerLaunch } from "./launch";
import { explicitSettings, SECTION } from "./settings";
import { STATUS_NOTIFICATION } from "./status";
import { SERVER_CMD_SUMMARY } from "./summary";

export function createLanguageClient(
  launch: ServerLaunch,
  handlers: ClientHandlers,
  outputChannel: vscode.OutputChannel,
): ServerClient {
  const serverOptions: ServerOptions = {
    command: launch.command,
    args: launch.args,
    // No `transport`: with TransportKind.stdio the client appends `--stdio` to the
    // arguments; without it, it still talks over stdio and runs our exact command.
    options: { env: launch.env },
  };
  const clientOptions: LanguageClientOptions = {
    // Notebooks: vscode-languageclient 9 syncs a notebook whose type a selector names
    // (LSP 3.17 notebook sync); its Python cells get the lenses, hovers and hints.
    documentSelector: [
      { language: "python", scheme: "file" },
      { language: "python", scheme: "untitled" },
      { notebook: { notebookType: "jupyter-notebook" }, language: "python" },
    ],
    synchronize: { configurationSection: SECTION },
    initializationOptions: launch.initializationOptions,
    outputChannel,
    middleware: {
      workspace: {
        // Answer workspace/configuration with what the user set, not VS Code's defaults,
        // so [tool.paramlens] in pyproject.toml still applies where the user set nothing.
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) return answers;
          return params.items.map((item, i) => {
            if (item.section !== SECTION) return answers[i];
            const scope = item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined;
            const config = vscode.workspace.getConfiguration(SECTION, scope);
            return explicitSettings((key) => config.inspect(key));
          });
        },
        // Pushed settings would be the whole section with VS Code's defaults (e.g. shapes:
        // true over `shapes = false` in pyproject.toml): push none, so the server pulls
        // them through `configuration` above.
        didChangeConfiguration: (_sections, next) => next(undefined),
      },
      executeCommand: async (command, args, next) => {
        const result: unknown = await next(command, args);
        if (command === SERVER_CMD_SUMMARY) handlers.onSummaryCommand(args, result);
        return result;
      },
    },
  };
  const client = new LanguageClient("paramlens", "paramlens", serverOptions, clientOptions);
  client.onNotification(STATUS_NOTIFICATION, (params: unknown) => handlers.onStatus(params));
  return {
    start: () => client.start(),
    stop: async () => {
      if (client.needsStop()) await client.stop(5000);
      await client.dispose();
    },
    executeCommand: (command, args) => client.sendRequest("workspace/executeCommand", { command, arguments: args }),
  };
}
