import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { prependPythonPath, serverLaunch, torchMissingMessage } from "../../src/launch";

describe("serverLaunch", () => {
  it("runs `<python> -m paramlens lsp` with bundled/libs first on PYTHONPATH", () => {
    const launch = serverLaunch("/ext", "/venv/bin/python", { PATH: "/usr/bin", PYTHONPATH: "/mine:/other" }, ":");
    assert.equal(launch.command, "/venv/bin/python");
    assert.deepEqual(launch.args, ["-m", "paramlens", "lsp"]);
    assert.equal(launch.env.PYTHONPATH, "/ext/bundled/libs:/mine:/other");
    assert.equal(launch.env.PATH, "/usr/bin");
    assert.deepEqual(launch.initializationOptions, { python: "/venv/bin/python" });
  });

  it("sets PYTHONPATH when there was none", () => {
    assert.equal(serverLaunch("/ext", "python3", {}, ":").env.PYTHONPATH, "/ext/bundled/libs");
  });

  it("does not repeat or keep empty entries", () => {
    assert.equal(prependPythonPath("/a", "/a::/b:", ":"), "/a:/b");
    assert.equal(prependPythonPath("C:\\a", "C:\\b", ";"), "C:\\a;C:\\b");
  });
});

describe("torchMissingMessage", () => {
  it("is silent when torch imports", () => {
    assert.equal(torchMissingMessage("python3", { ok: true }), undefined);
  });

  it("says how to install torch or choose another Python", () => {
    const msg = torchMissingMessage("/v/bin/python", { ok: false, reason: "no-torch", detail: "ModuleNotFoundError" });
    assert.ok(msg);
    assert.match(msg, /"\/v\/bin\/python" has no torch/);
    assert.match(msg, /\/v\/bin\/python -m pip install torch/);
    assert.match(msg, /paramlens\.python/);
  });

  it("tells a missing interpreter apart", () => {
    const msg = torchMissingMessage("nope", { ok: false, reason: "no-python", detail: "ENOENT" });
    assert.match(msg ?? "", /could not run the Python "nope" \(ENOENT\)/);
  });
});
