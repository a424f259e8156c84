/**
 * Entry point: wires the controller to VS Code's commands and lifecycle.
 * Logic lives in controller.ts (and the pure modules it uses).
 */
import * as vscode from "vscode";
import { Controller } from "./controller";
import { CMD_RESTART, CMD_SHOW_OUTPUT, CMD_SHOW_SUMMARY } from "./status";
import { VscodeHost } from "./vscodeHost";

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const host = new VscodeHost(context);
  controller = new Controller(host);
  const c = controller;
  context.subscriptions.push(
    host,
    c,
    vscode.commands.registerCommand(CMD_SHOW_SUMMARY, () => c.showSummary()),
    vscode.commands.registerCommand(CMD_RESTART, () => c.restart()),
    vscode.commands.registerCommand(CMD_SHOW_OUTPUT, () => host.showOutput()),
  );
  await c.activate();
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}
