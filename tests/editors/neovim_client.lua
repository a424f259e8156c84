-- Drive the paramlens server from Neovim 0.7+ headless and write what the user would see
-- to a JSON file. Arguments (globals set with -c): Python, File, Out.
local python, file, out = vim.g.paramlens_python, vim.g.paramlens_file, vim.g.paramlens_out

local function finish(result)
  local f = io.open(out, "w")
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd("qall!")
end

vim.cmd("edit " .. file)
local buf = vim.api.nvim_get_current_buf()
local client_id = vim.lsp.start_client({
  name = "paramlens",
  cmd = { python, "-m", "paramlens", "lsp" },
  root_dir = vim.fn.fnamemodify(file, ":h:h"),
  settings = { paramlens = { timeout = 10 } },
})
vim.lsp.buf_attach_client(buf, client_id)

local result = { lenses = {}, hover = "" }
local deadline = vim.loop.now() + 60000
while vim.loop.now() < deadline do
  result.lenses = {}
  local pending = false  -- a first look (parameters) while forward()'s shapes are computed
  local responses = vim.lsp.buf_request_sync(buf, "textDocument/codeLens",
    { textDocument = vim.lsp.util.make_text_document_params(buf) }, 2000) or {}
  for _, response in pairs(responses) do
    for _, lens in ipairs(response.result or {}) do
      if lens.command then
        table.insert(result.lenses, { line = lens.range.start.line + 1, title = lens.command.title })
        pending = pending or string.find(lens.command.title, "shapes…", 1, true) ~= nil
      end
    end
  end
  if #result.lenses > 0 and not pending then break end
  vim.wait(200)
end

local hovers = vim.lsp.buf_request_sync(buf, "textDocument/hover", {
  textDocument = vim.lsp.util.make_text_document_params(buf),
  position = { line = 10, character = 14 },
}, 5000) or {}
for _, response in pairs(hovers) do
  if response.result and response.result.contents then
    result.hover = response.result.contents.value or ""
  end
end
vim.lsp.stop_client(client_id)
vim.wait(500)
finish(result)
