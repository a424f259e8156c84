/**
 * Checks the .vsix built by `npm run package`: the bundled server and its
 * Python dependencies with their metadata, the bundled extension code, and no
 * node_modules. Set PARAMLENS_VSIX to check another file.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { listZip, type ZipEntry } from "../zip";

const clientDir = path.resolve(__dirname, "..", "..", "..");
const vsix = process.env.PARAMLENS_VSIX ?? path.join(clientDir, "paramlens.vsix");

describe(`packaging: ${path.basename(vsix)}`, () => {
  let entries: ZipEntry[] = [];
  let names: string[] = [];
  before(() => {
    assert.ok(fs.existsSync(vsix), `${vsix} not found: run \`npm run package\` first`);
    entries = listZip(vsix);
    names = entries.map((e) => e.name);
  });

  const has = (prefix: string): boolean => names.some((n) => n.startsWith(prefix));
  const distInfo = (project: string): string | undefined =>
    names.find((n) => new RegExp(`^extension/bundled/libs/${project}-[^/]+\\.dist-info/METADATA$`).test(n));

  it("carries the extension's bundled code and manifest", () => {
    const lower = names.map((n) => n.toLowerCase());
    for (const name of ["extension/dist/extension.js", "extension/package.json", "extension.vsixmanifest", "extension/readme.md", "extension/changelog.md"]) {
      assert.ok(lower.includes(name), `missing ${name}`);
    }
    assert.ok(lower.includes("extension/license.txt") || lower.includes("extension/license"), "missing LICENSE");
    const main = entries.find((e) => e.name === "extension/dist/extension.js");
    assert.ok(main && main.size > 50_000, "dist/extension.js bundles vscode-languageclient");
  });

  it("carries the server and its Python dependencies with their .dist-info", () => {
    for (const pkg of ["pygls", "lsprotocol", "cattrs", "attrs", "paramlens"]) {
      assert.ok(has(`extension/bundled/libs/${pkg}/`), `missing bundled/libs/${pkg}/`);
      assert.ok(distInfo(pkg), `missing bundled/libs/${pkg}-*.dist-info/METADATA`);
    }
    assert.ok(names.includes("extension/bundled/libs/typing_extensions.py"), "missing typing_extensions.py");
    assert.ok(distInfo("typing_extensions"), "missing typing_extensions .dist-info");
    assert.ok(names.includes("extension/bundled/libs/paramlens/__main__.py"), "paramlens/__main__.py (for -m paramlens)");
    assert.match(distInfo("pygls") ?? "", /pygls-2\.1\.1\.dist-info/);
    assert.match(distInfo("lsprotocol") ?? "", /lsprotocol-2025\.0\.0\.dist-info/);
  });

  it("carries no node_modules, sources, caches or interpreter-specific scripts", () => {
    const bad = names.filter(
      (n) =>
        n.includes("node_modules/") ||
        n.startsWith("extension/src/") ||
        n.startsWith("extension/out/") ||
        n.includes("__pycache__/") ||
        n.endsWith(".pyc") ||
        n.startsWith("extension/bundled/libs/bin/") ||
        n.endsWith(".map") ||
        n.endsWith(".ts"),
    );
    assert.deepEqual(bad, []);
  });

  it("has the screenshot the README shows", () => {
    assert.ok(names.includes("extension/images/screenshot.png"), "missing images/screenshot.png");
  });
});
